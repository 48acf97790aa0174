"""A notice to the alerts topic before a certificate known at deploy time expires.

CloudWatch alarms on metrics, and nothing publishes a metric for a certificate that
pulumi-tls made, or for one of yours that only Secrets Manager holds (ACM publishes
DaysToExpiry, with its own alarm, only for the copy a load balancer presents). Its expiry
is known at deploy time, though (pulumi-tls's `validity_end_time`, RFC 3339, or the PEM's
notAfter), so an EventBridge Scheduler one-time schedule `at(...)`, `threshold_days`
before that, publishes the notice to the alerts topic.

One schedule per certificate, not one per stack on the earliest expiry: each notice names
its certificate and what to do about it, and a re-issued certificate moves only its own
schedule (an update in place of `schedule_expression`, not a replacement).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pulumi
import pulumi_aws as aws
from cryptography import x509

from components.alerts import Alerts, dead_letter_send_statement
from components.iam import Statement, assume_role_policy, policy_document
from components.renewal import schedule_group_arn

# Scheduler documents no catch-up for a one-time schedule whose time has passed, and
# CreateSchedule is reported to refuse one: a notice already due (your own certificate,
# deployed with fewer days left than the threshold) fires this long after the deploy that
# computes it, and again after each later deploy until the certificate is replaced.
LATE_NOTICE_DELAY = timedelta(minutes=5)
# Logical names are auto-named with "-" and 7 characters; Scheduler names are at most 64
# characters of [0-9a-zA-Z-_.] (scheduler:CreateSchedule:Name).
LOGICAL_NAME_MAX = 64 - 8


def schedule_logical_name(name: str) -> str:
    """`name`, or when too long its start and a digest of the whole, so two long names
    (e.g. two 63-character service names) stay distinct."""
    if len(name) <= LOGICAL_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: LOGICAL_NAME_MAX - 9].rstrip('-')}-{digest}"


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 time (`Z` or an offset, as pulumi-tls writes it) as an aware UTC time."""
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (RFC 3339 requires Z or an offset)")
    return parsed.astimezone(UTC)


def pem_validity_end(certificate_pem: str) -> str:
    """The end of a PEM certificate's validity (its first certificate), RFC 3339 UTC."""
    certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
    return f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"


def notice_time(validity_end: str, threshold_days: int, now: datetime) -> datetime:
    """When to tell: `threshold_days` before the end, or soon after `now` when that is past.

    Whole seconds, UTC: `at()` takes no fraction and no zone (the schedule's zone is UTC).
    """
    if threshold_days < 1:
        raise ValueError(f"threshold_days must be at least 1, not {threshold_days}")
    due = parse_rfc3339(validity_end) - timedelta(days=threshold_days)
    earliest = now.astimezone(UTC) + LATE_NOTICE_DELAY
    return max(due, earliest).replace(microsecond=0)


def at_expression(validity_end: str, threshold_days: int, now: datetime | None = None) -> str:
    """The one-time schedule expression `at(yyyy-mm-ddThh:mm:ss)` for the notice.

    It depends on `now` only when the notice is already due: a later `up` then computes
    the same expression, and the schedule stays as it is.
    """
    when = notice_time(validity_end, threshold_days, now or datetime.now(UTC))
    return f"at({when:%Y-%m-%dT%H:%M:%S})"


def notice_message(certificate: str, validity_end: str, threshold_days: int, action: str) -> str:
    """The message published to the topic. SNS would take plain text from a templated
    target, but JSON also serves a program subscribed to the topic (and every schedule
    input here is JSON, scripts/emulator/aws_rules.py); the sentence comes first for the
    person who reads the e-mail."""
    expires = parse_rfc3339(validity_end)
    return json.dumps(
        {
            "notice": (
                f"{certificate[:1].upper()}{certificate[1:]} expires on "
                f"{expires:%Y-%m-%d %H:%M} UTC, "
                f"in {threshold_days} days or less. {action}"
            ),
            "certificate": certificate,
            "expires": f"{expires:%Y-%m-%dT%H:%M:%SZ}",
        }
    )


def publish_statements(
    topic_arn: str, key_arn: str, region: str, dead_letter_arn: str | None = None
) -> list[Statement]:
    """What the schedules' role may do: publish to the alerts topic, and have SNS use the
    topic's key for that. SNS calls GenerateDataKey and Decrypt as the publisher (the two
    actions AWS's own publishers are granted on encrypted topics); the key policy admits
    the account's principals through SNS only (components/kms.py sns_topic_key_policy)."""
    return [
        Statement("PublishExpiryNotice", ["sns:Publish"], [topic_arn]),
        Statement(
            "EncryptNoticeThroughSns",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            [key_arn],
            condition={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
        ),
        # A notice SNS refuses (a key policy changed by hand) goes to the dead-letter queue,
        # which Scheduler writes with this role.
        *([dead_letter_send_statement(dead_letter_arn)] if dead_letter_arn else []),
    ]


@dataclass(frozen=True)
class ExpiryNoticesArgs:
    topic_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]  # the topic's customer managed key
    threshold_days: int
    dead_letter_arn: pulumi.Input[str]  # Alerts.dead_letter_arn
    # (name, certificate) watched from the start, before the component registers its
    # outputs; `watch` adds more afterwards.
    watched: Sequence[tuple[str, WatchedCertificate]] = ()


@dataclass(frozen=True)
class WatchedCertificate:
    """One generated certificate: a name for people, its end, and what to do."""

    # What a person calls it, e.g. "the private root CA of example.com".
    label: str
    validity_end_time: pulumi.Input[str]
    action: str


# What to do, per kind of generated certificate.
REISSUE = "Run `pulumi up`: it issues a new one, and tasks restart with it."
REISSUE_CA = (
    "Run `pulumi up`: it issues a new CA and new certificates from it, and tasks restart "
    "with them. Clients that trust this CA need the new caCertificatePem stack output."
)

# A certificate of yours that no AWS service holds (appmesh-efs: mesh.clientCertificate).
RENEW_CLIENT = (
    "Set ecs-tls:mesh.clientCertificate to a renewed client certificate from the same CA "
    "and run `pulumi up`: tasks restart with it."
)


class ExpiryNotices(pulumi.ComponentResource):
    """One role allowed to publish to the alerts topic, and one schedule per certificate."""

    role: aws.iam.Role
    schedules: list[aws.scheduler.Schedule]

    def __init__(
        self, name: str, args: ExpiryNoticesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:expiry_notice:ExpiryNotices", name, None, opts)
        self._name = name
        self._threshold_days = args.threshold_days
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        self.role = aws.iam.Role(
            name,
            description="EventBridge Scheduler: tell the alerts topic a certificate expires soon",
            assume_role_policy=pulumi.Output.all(partition, region, account).apply(
                lambda v: assume_role_policy(
                    "scheduler.amazonaws.com", v[2], schedule_group_arn(v[0], v[1], v[2])
                )
            ),
            opts=child,
        )
        self._policy = aws.iam.RolePolicy(
            name,
            name="publish-expiry-notice",
            role=self.role.id,
            policy=pulumi.Output.all(
                args.topic_arn, args.key_arn, region, args.dead_letter_arn
            ).apply(lambda v: policy_document(publish_statements(v[0], v[1], v[2], v[3]))),
            opts=child,
        )
        self._topic_arn = args.topic_arn
        self._dead_letter_arn = args.dead_letter_arn
        self.schedules = []
        for watched_name, certificate in args.watched:
            self.watch(watched_name, certificate)
        self.register_outputs({"roleArn": self.role.arn})

    def watch(self, name: str, certificate: WatchedCertificate) -> aws.scheduler.Schedule:
        """Publish a notice `threshold_days` before `certificate` expires."""
        end = pulumi.Output.from_input(certificate.validity_end_time)
        days = self._threshold_days
        schedule = aws.scheduler.Schedule(
            schedule_logical_name(name),
            description=f"Tell the alerts topic {days} days before {certificate.label} expires",
            schedule_expression=end.apply(lambda e: at_expression(e, days)),
            schedule_expression_timezone="UTC",
            flexible_time_window={"mode": "OFF"},
            # A completed one-time schedule stays (Scheduler's default, actionAfterCompletion
            # NONE): it costs nothing and never runs again, and a deleted one would come back
            # as a diff at the next `up`.
            target={
                "arn": self._topic_arn,
                "role_arn": self.role.arn,
                "dead_letter_config": {"arn": self._dead_letter_arn},
                # A templated target (SNS Publish): the input is the message itself.
                "input": end.apply(
                    lambda e: notice_message(certificate.label, e, days, certificate.action)
                ),
            },
            # The notice must find the role able to publish.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._policy]),
        )
        self.schedules.append(schedule)
        return schedule


def generated_ca(domain: str, validity_end_time: pulumi.Input[str]) -> WatchedCertificate:
    """The private root CA that pulumi-tls generated for `domain`."""
    return WatchedCertificate(f"the private root CA of {domain}", validity_end_time, REISSUE_CA)


def expiry_notices(
    name: str,
    alerts: Alerts,
    threshold_days: int,
    parent: pulumi.Resource,
    watched: Sequence[tuple[str, WatchedCertificate]] = (),
) -> ExpiryNotices:
    """A topology's notices, published to the stack's alerts topic."""
    return ExpiryNotices(
        f"{name}-expiry",
        ExpiryNoticesArgs(
            alerts.topic.arn,
            alerts.key.arn,
            threshold_days,
            alerts.dead_letter_arn,
            tuple(watched),
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
