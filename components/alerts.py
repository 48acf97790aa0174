"""Where the stack tells its operators that something needs them: one SNS topic and alarms.

Nothing renews an imported ACM certificate (ACM renews only the certificates it issued),
so every certificate a listener presents gets an alarm on ACM's `DaysToExpiry` metric.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.kms import CustomerKey, CustomerKeyArgs, alias_name, sns_topic_key_policy
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


FUNCTION_PERIOD_S = 300


def function_alarm_args(
    function_name: pulumi.Input[str], metric: str, periods: int, topic_arn: pulumi.Input[str]
) -> dict:
    """The alarm's arguments: a Lambda function's `metric` (AWS/Lambda, dimension
    FunctionName, e.g. Errors or Throttles) at least once in each of `periods` 5-minute
    periods. A function that is not invoked publishes nothing: missing data is not a failure.
    """
    return {
        "namespace": "AWS/Lambda",
        "metric_name": metric,
        "dimensions": {"FunctionName": function_name},
        "statistic": "Sum",
        "period": FUNCTION_PERIOD_S,
        "evaluation_periods": periods,
        "datapoints_to_alarm": periods,
        "comparison_operator": "GreaterThanOrEqualToThreshold",
        "threshold": 1,
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
    }


def failed_task_pattern(cluster_arn: str, family: str) -> str:
    """EventBridge pattern: a task of `family` in the cluster stopped and did not succeed.

    Either a container exited with a non-zero code (an array of objects in the event:
    EventBridge matches when any element matches, see "Arrays in EventBridge event
    patterns"), or the task never started (image pull, secrets, capacity).
    """
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {
                "clusterArn": [cluster_arn],
                "group": [f"family:{family}"],
                "lastStatus": ["STOPPED"],
                "$or": [
                    {"containers": {"exitCode": [{"anything-but": 0}]}},
                    {"stopCode": ["TaskFailedToStart"]},
                ],
            },
        },
        sort_keys=True,
    )


def topic_policy(topic_arn: str, account_id: str) -> str:
    """The account administers the topic; CloudWatch alarms and EventBridge rules of this
    account may publish to it (EventBridge needs this grant: the default policy has none)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": account_id},
                    "Action": [
                        "sns:GetTopicAttributes",
                        "sns:ListSubscriptionsByTopic",
                        "sns:Publish",
                        "sns:SetTopicAttributes",
                        "sns:Subscribe",
                    ],
                    "Resource": topic_arn,
                },
                {
                    "Sid": "AlarmsAndRulesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        },
        sort_keys=True,
    )


class Alerts(pulumi.ComponentResource):
    """The stack's alert topic (subscribe e-mail or chat to it) and the alarms that use it."""

    topic: aws.sns.Topic
    key: CustomerKey

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:alerts:Alerts", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        # Encrypted at rest with a customer managed key, not the AWS managed aws/sns key:
        # CloudWatch cannot publish to a topic under aws/sns, whose policy cannot be changed
        # to admit cloudwatch.amazonaws.com (components/kms.py sns_topic_key_policy).
        self.key = CustomerKey(
            f"{name}-key",
            CustomerKeyArgs(
                description="Encrypts the messages of the stack alerts topic",
                alias=alias_name(physical_name(name)),
                policy=pulumi.Output.all(partition, account, region).apply(
                    lambda v: sns_topic_key_policy(v[0], v[1], v[2])
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.topic = aws.sns.Topic(
            name,
            display_name=f"{physical_name()} alerts",
            kms_master_key_id=self.key.arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.sns.TopicPolicy(
            name,
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, account).apply(
                lambda v: topic_policy(v[0], v[1])
            ),
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

    def function_alarm(
        self,
        name: str,
        function_name: pulumi.Input[str],
        metric: str,
        periods: int,
        description: str,
        parent: pulumi.Resource,
    ) -> aws.cloudwatch.MetricAlarm:
        """Alarm when a Lambda function's `metric` is non-zero `periods` times running."""
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=description,
            **function_alarm_args(function_name, metric, periods, self.topic.arn),
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def email_subscription(
        self, name: str, address: str, parent: pulumi.Resource
    ) -> aws.sns.TopicSubscription:
        """Send the topic's messages to `address`; SNS first mails a link to confirm it.

        Until the link is followed the subscription stays pending and receives nothing
        (SNS developer guide, "Email notifications").
        """
        return aws.sns.TopicSubscription(
            name,
            topic=self.topic.arn,
            protocol="email",
            endpoint=address,
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def failed_task_rule(
        self,
        name: str,
        cluster_arn: pulumi.Input[str],
        family: str,
        what: str,
        parent: pulumi.Resource,
    ) -> aws.cloudwatch.EventRule:
        """Tell the topic when a task of `family` fails (e.g. a certificate renewal)."""
        rule = aws.cloudwatch.EventRule(
            name,
            description=f"A {what} task failed",
            event_pattern=pulumi.Output.from_input(cluster_arn).apply(
                lambda arn: failed_task_pattern(arn, family)
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        aws.cloudwatch.EventTarget(
            name,
            rule=rule.name,
            arn=self.topic.arn,
            input_transformer={
                "input_paths": {"task": "$.detail.taskArn", "reason": "$.detail.stoppedReason"},
                "input_template": (
                    f'"The {what} task <task> failed (<reason>). Nothing else changed; '
                    "its log stream in the cluster's log group says why.\""
                ),
            },
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return rule
