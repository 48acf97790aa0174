"""Where the stack tells its operators that something needs them: one SNS topic and alarms.

Nothing renews an imported ACM certificate (ACM renews only the certificates it issued),
so every certificate a listener presents gets an alarm on ACM's `DaysToExpiry` metric.
"""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_aws as aws

from components.iam import Statement
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


# Certificates issued at run time (certbot) are in no AWS service that publishes their
# expiry: the program that holds each one after a renewal run puts this metric itself.
CERTIFICATE_METRIC_NAMESPACE = "ECS-TLS"
CERTIFICATE_METRIC = "DaysToExpiry"
CERTIFICATE_DIMENSION = "Certificate"  # the certificate's first name, e.g. db.example.com


def certificate_metric_alarm_args(
    certificate: str, threshold_days: int, topic_arn: pulumi.Input[str]
) -> dict:
    """`days_to_expiry_alarm_args` for a certificate whose renewal run publishes
    CERTIFICATE_METRIC: the same alarm on the project's namespace and dimension. Runs are
    days apart, so missing data keeps the state; a run that cannot start or fails has its
    own alert (dead-letter queue, failed-task rule)."""
    args = days_to_expiry_alarm_args("", threshold_days, topic_arn)
    args.update(
        namespace=CERTIFICATE_METRIC_NAMESPACE,
        metric_name=CERTIFICATE_METRIC,
        dimensions={CERTIFICATE_DIMENSION: certificate},
    )
    return args


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


# ------------------------------------------------------------------ dead letters
# SQS's longest retention (SQS API reference, SetQueueAttributes MessageRetentionPeriod):
# a message may wait for a person back from two weeks away.
DEAD_LETTER_RETENTION_S = 14 * SECONDS_PER_DAY
DEAD_LETTER_SUFFIX = "-undelivered-events"
SQS_NAME_MAX = 80  # SQS API reference, CreateQueue QueueName
DEAD_LETTER_PERIOD_S = 300


def dead_letter_queue_name(stack_name: str) -> str:
    """`<project>-<stack>-undelivered-events` in SQS's alphabet and length: stack names may
    hold dots, and the suffix survives any truncation so the queue says what it holds."""
    body = re.sub(r"[^A-Za-z0-9_-]+", "-", stack_name).strip("-")
    return body[: SQS_NAME_MAX - len(DEAD_LETTER_SUFFIX)] + DEAD_LETTER_SUFFIX


def dead_letter_queue_policy(queue_arn: str, partition: str, region: str, account: str) -> str:
    """EventBridge rules of this account and region may put undelivered events here.

    EventBridge sends a target's dead letters with the queue's resource policy, the rule's
    ARN as aws:SourceArn (EventBridge user guide, "Granting permissions to the dead-letter
    queue"). Scheduler is not named: it sends a schedule's dead letters with the schedule's
    execution role (Scheduler user guide, "Configuring a schedule's dead-letter queue"),
    which `dead_letter_send_statement` grants.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "RulesOfThisAccountSendDeadLetters",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {
                        "ArnLike": {
                            "aws:SourceArn": f"arn:{partition}:events:{region}:{account}:rule/*"
                        },
                        "StringEquals": {"aws:SourceAccount": account},
                    },
                },
            ],
        },
        sort_keys=True,
    )


def dead_letter_send_statement(queue_arn: str) -> Statement:
    """What a schedule's execution role needs to hand Scheduler's dead letters over."""
    return Statement("SendDeadLetters", ["sqs:SendMessage"], [queue_arn])


def dead_letter_alarm_args(queue_name: pulumi.Input[str], topic_arn: pulumi.Input[str]) -> dict:
    """The alarm's arguments: any message waiting in the dead-letter queue.

    SQS publishes ApproximateNumberOfMessagesVisible every 5 minutes for an active queue and
    keeps publishing while messages wait. An idle queue may publish nothing, which is not a
    fault; a message stays until someone reads it, so the alarm holds until then.
    """
    return {
        "namespace": "AWS/SQS",
        "metric_name": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": queue_name},
        "statistic": "Maximum",
        "period": DEAD_LETTER_PERIOD_S,
        "evaluation_periods": 1,
        "comparison_operator": "GreaterThanOrEqualToThreshold",
        "threshold": 1,
        "treat_missing_data": "notBreaching",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
    }


# ------------------------------------------------------------------ still serving
SERVING_PERIOD_S = 60
SERVING_PERIODS = 3


def serving_alarm_args(
    namespace: str,
    metric_name: str,
    dimensions: dict[str, pulumi.Input[str]],
    desired_count: int,
    topic_arn: pulumi.Input[str],
    periods: int = SERVING_PERIODS,
) -> dict:
    """The alarm's arguments: the fewest healthy targets or running tasks in each 1-minute
    period stayed below `desired_count` for `periods` minutes running.

    Missing data is breaching: ECS publishes no service metric while the service has no
    running task (ECS developer guide, "Amazon ECS CloudWatch metrics"), so silence is the
    worst case, not an idle one. A deployment's brief dip shorter than `periods` is not told.
    """
    if desired_count < 1:
        raise ValueError("a service scaled to zero has nothing to stop serving")
    return {
        "namespace": namespace,
        "metric_name": metric_name,
        "dimensions": dimensions,
        "statistic": "Minimum",
        "period": SERVING_PERIOD_S,
        "evaluation_periods": periods,
        "datapoints_to_alarm": periods,
        "comparison_operator": "LessThanThreshold",
        "threshold": desired_count,
        "treat_missing_data": "breaching",
        "alarm_actions": [topic_arn],
        "ok_actions": [topic_arn],
    }


def healthy_targets_alarm_args(
    load_balancer_type: str,
    load_balancer_arn_suffix: pulumi.Input[str],
    target_group_arn_suffix: pulumi.Input[str],
    desired_count: int,
    topic_arn: pulumi.Input[str],
) -> dict:
    """`serving_alarm_args` on a target group's HealthyHostCount (dimensions TargetGroup
    and LoadBalancer, the ARN suffixes: ELB user guides, "CloudWatch metrics")."""
    namespace = {"application": "AWS/ApplicationELB", "network": "AWS/NetworkELB"}
    return serving_alarm_args(
        namespace[load_balancer_type],
        "HealthyHostCount",
        {"TargetGroup": target_group_arn_suffix, "LoadBalancer": load_balancer_arn_suffix},
        desired_count,
        topic_arn,
    )


def running_tasks_alarm_args(
    cluster_name: pulumi.Input[str],
    service_name: pulumi.Input[str],
    desired_count: int,
    topic_arn: pulumi.Input[str],
) -> dict:
    """`serving_alarm_args` on a service's RunningTaskCount, which only Container Insights
    publishes (namespace ECS/ContainerInsights, dimensions ClusterName and ServiceName);
    components/cluster.py turns it on for the cluster."""
    return serving_alarm_args(
        "ECS/ContainerInsights",
        "RunningTaskCount",
        {"ClusterName": cluster_name, "ServiceName": service_name},
        desired_count,
        topic_arn,
    )


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


# Before `alertsEmail` applied to every topology, direct-task subscribed the address itself;
# this alias keeps that confirmed subscription (a new one waits for a new confirmation).
DIRECT_TASK_SUBSCRIPTION = pulumi.Alias(
    name="direct-task-alerts-email",
    parent=pulumi.create_urn("direct-task", "ecs-tls:direct_task:DirectTask"),
)


class Alerts(pulumi.ComponentResource):
    """The stack's alert topic, the address it mails (`alertsEmail`), the alarms that use
    it, and the queue that keeps what EventBridge and Scheduler could not deliver."""

    topic: aws.sns.Topic
    key: CustomerKey
    email: aws.sns.TopicSubscription | None

    def __init__(
        self, name: str, email: str | None = None, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:alerts:Alerts", name, None, opts)
        self._name = name
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self._account = account = aws.get_caller_identity_output(opts=invoke).account_id
        self._partition = partition = aws.get_partition_output(opts=invoke).partition
        self._region = region = aws.get_region_output(opts=invoke).region
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
        # Every topology's alerts reach a person; SNS first mails a link to confirm, and
        # until it is followed the subscription stays pending and receives nothing (SNS
        # developer guide, "Email notifications").
        self.email = (
            aws.sns.TopicSubscription(
                f"{name}-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=email,
                opts=pulumi.ResourceOptions(parent=self, aliases=[DIRECT_TASK_SUBSCRIPTION]),
            )
            if email
            else None
        )
        # Part of the foundation even where no topology sends to it yet, so that a switch
        # of topology keeps it and whatever it holds.
        self._dead_letters = self._dead_letter_queue()
        self.register_outputs(
            {"topicArn": self.topic.arn, "deadLetterQueueArn": self._dead_letters.arn}
        )

    @property
    def dead_letter_arn(self) -> pulumi.Output[str]:
        """The stack's one dead-letter queue: every EventBridge target and Scheduler
        schedule that starts a task or calls a function sends what it could not deliver
        there (`dead_letter_config`). A RunTask that cannot place its task starts nothing
        and sends no task event: this queue is then the only trace."""
        return self._dead_letters.arn

    def _dead_letter_queue(self) -> aws.sqs.Queue:
        name = f"{self._name}-undelivered"
        child = pulumi.ResourceOptions(parent=self)
        queue = aws.sqs.Queue(
            name,
            name=dead_letter_queue_name(physical_name()),
            message_retention_seconds=DEAD_LETTER_RETENTION_S,
            # SSE-SQS: SQS holds the key, so EventBridge and Scheduler need no key grant to
            # send (a KMS key would need kms:GenerateDataKey and kms:Decrypt for both: SQS
            # developer guide, "Key management").
            sqs_managed_sse_enabled=True,
            opts=child,
        )
        where = pulumi.Output.all(queue.arn, self._partition, self._region, self._account)
        aws.sqs.QueuePolicy(
            name,
            queue_url=queue.url,
            policy=where.apply(lambda v: dead_letter_queue_policy(*v)),
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=(
                "A scheduled or event-started run (certificate issue or renewal, task DNS) "
                "or an alert could not be delivered: a task that could not be placed, a "
                "function that could not be invoked, or missing rights. Each message in "
                "the queue "
                f"{dead_letter_queue_name(physical_name())} names the rule or schedule and "
                "the error; read it, fix the cause, then purge the queue."
            ),
            **dead_letter_alarm_args(queue.name, self.topic.arn),
            opts=child,
        )
        return queue

    def serving_alarm(
        self, name: str, args: dict, what: str, parent: pulumi.Resource
    ) -> aws.cloudwatch.MetricAlarm:
        """Alarm with `healthy_targets_alarm_args` or `running_tasks_alarm_args`: `what`
        has fewer healthy targets or running tasks than it should."""
        periods = args["evaluation_periods"]
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=(
                f"{what} has had fewer than {args['threshold']} healthy tasks for "
                f"{periods} minutes: clients may fail. The ECS service's events and stopped "
                "tasks, and the cluster's log group, say why."
            ),
            **args,
            opts=pulumi.ResourceOptions(parent=parent),
        )

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

    def certificate_metric_alarm(
        self, name: str, certificate: str, threshold_days: int, what: str, parent: pulumi.Resource
    ) -> aws.cloudwatch.MetricAlarm:
        """Alarm when the renewal runs of `certificate` report < `threshold_days` left."""
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=(
                f"The certificate of {certificate} expires in less than {threshold_days} days "
                f"and {what} has not renewed it: its log says why."
            ),
            **certificate_metric_alarm_args(certificate, threshold_days, self.topic.arn),
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
            dead_letter_config={"arn": self.dead_letter_arn},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return rule
