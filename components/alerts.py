"""Where the stack tells its operators that something needs them: one SNS topic and alarms.

Nothing renews an imported ACM certificate (ACM renews only the certificates it issued),
so every certificate a listener presents gets an alarm on ACM's `DaysToExpiry` metric.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.naming import physical_name

SECONDS_PER_DAY = 86400


def days_to_expiry_alarm_args(
    certificate_arn: pulumi.Input[str], threshold_days: int, topic_arn: pulumi.Input[str]
) -> dict:
    """The alarm's arguments: the daily minimum of `DaysToExpiry` below the threshold.

    ACM publishes the metric once a day per certificate (namespace AWS/CertificateManager,
    dimension CertificateArn) and stops once the certificate has expired. Missing data keeps
    the alarm's state: a new certificate has no datapoint for up to a day and must not
    alarm, and an expired one has been in ALARM since it crossed the threshold.
    """
    return {
        "namespace": "AWS/CertificateManager",
        "metric_name": "DaysToExpiry",
        "dimensions": {"CertificateArn": certificate_arn},
        "statistic": "Minimum",
        "period": SECONDS_PER_DAY,
        "evaluation_periods": 1,
        "comparison_operator": "LessThanThreshold",
        "threshold": threshold_days,
        "treat_missing_data": "missing",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
    }


class Alerts(pulumi.ComponentResource):
    """The stack's alert topic (subscribe e-mail or chat to it) and the alarms that use it."""

    topic: aws.sns.Topic

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:alerts:Alerts", name, None, opts)
        # Not encrypted with the AWS managed SNS key: CloudWatch cannot publish to a topic
        # under that key (its policy cannot be changed to admit cloudwatch.amazonaws.com).
        # Alarm messages carry ARNs and numbers, never a secret.
        self.topic = aws.sns.Topic(
            name,
            display_name=f"{physical_name()} alerts",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"topicArn": self.topic.arn})

    def certificate_expiry_alarm(
        self,
        name: str,
        certificate_arn: pulumi.Input[str],
        domain: str,
        threshold_days: int,
        parent: pulumi.Resource,
    ) -> aws.cloudwatch.MetricAlarm:
        """Alarm when the certificate presented for `domain` expires in < `threshold_days`."""
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=(
                f"The certificate of {domain} expires in less than {threshold_days} days. "
                "Generated certificates: run `pulumi up`, which issues a new one. "
                "Your own: set ecs-tls:certificate to a renewed one and run `pulumi up`."
            ),
            **days_to_expiry_alarm_args(certificate_arn, threshold_days, self.topic.arn),
            opts=pulumi.ResourceOptions(parent=parent),
        )
