"""Internet-facing load balancers: an ALB that only speaks TLS, and an NLB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.access_logs import AccessLogBucket, AccessLogBucketArgs
from components.firewall import allow_tcp
from settings.model import LoadBalancerSettings


class _LoadBalancer(pulumi.ComponentResource):
    """What both load balancers share: a security group whose egress is opened per target."""

    security_group: aws.ec2.SecurityGroup
    load_balancer: aws.lb.LoadBalancer
    access_log_bucket: AccessLogBucket | None = None

    def _extras(
        self, name: str, extras: LoadBalancerSettings, load_balancer_type: str
    ) -> tuple[dict, list]:
        """The load balancer's optional arguments and what it must wait for.

        Only what is set reaches the load balancer, so stacks without extras keep their
        registered inputs.
        """
        kwargs: dict = {}
        waits: list[pulumi.Resource] = []
        if extras.deletion_protection:
            kwargs["enable_deletion_protection"] = True
        if extras.access_logs:
            bucket: pulumi.Input[str]
            if extras.access_logs_bucket is None:
                self.access_log_bucket = AccessLogBucket(
                    f"{name}-access-logs",
                    AccessLogBucketArgs(
                        prefix=extras.access_logs_prefix,
                        expiration_days=extras.access_logs_expiration_days,
                        load_balancer_type=load_balancer_type,
                    ),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                bucket = self.access_log_bucket.bucket.bucket
                # ELB tests that it may write when logging is turned on (AccessDenied
                # otherwise), so the policy comes first.
                waits = list(self.access_log_bucket.ready)
            else:
                bucket = extras.access_logs_bucket
            kwargs["access_logs"] = {
                "bucket": bucket,
                "enabled": True,
                **({"prefix": extras.access_logs_prefix} if extras.access_logs_prefix else {}),
            }
        return kwargs, waits

    def _associate_web_acl(self, name: str, extras: LoadBalancerSettings) -> None:
        if extras.waf_web_acl_arn is None:
            return
        aws.wafv2.WebAclAssociation(
            f"{name}-waf",
            resource_arn=self.load_balancer.arn,
            web_acl_arn=extras.waf_web_acl_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def allow_to_targets(self, target_security_group_id: pulumi.Input[str], port: int) -> None:
        """Let the load balancer reach the targets' port, and nothing else."""
        allow_tcp(
            f"{self._name}-out-{port}",
            self.security_group.id,
            port,
            self,
            description="To the target port",
            peer_group_id=target_security_group_id,
            egress=True,
        )

    def _allow_clients(self, port: int, cidrs: Sequence[str], description: str) -> None:
        for i, cidr in enumerate(cidrs):
            allow_tcp(
                f"{self._name}-in-{port}-{i}",
                self.security_group.id,
                port,
                self,
                description=description,
                cidr=cidr,
            )


# What a load balancer must speak to a target whose app protocol (ECS `appProtocol`) is
# http, http2 or grpc. ALB: the target group's protocol version. NLB TLS listener: the
# ALPN policy it offers clients (None: no ALPN, as before HTTP/2 existed).
ALB_PROTOCOL_VERSIONS = {"http": "HTTP1", "http2": "HTTP2", "grpc": "GRPC"}
NLB_ALPN_POLICIES = {"http": None, "http2": "HTTP2Preferred", "grpc": "HTTP2Only"}

# ALB's own gRPC health check: a call to this method answers UNIMPLEMENTED (12) from any
# gRPC server, which proves the server speaks gRPC. [ELB API Matcher: GrpcCode default 12]
GRPC_DEFAULT_HEALTH_PATH = "/AWS.ALB/healthcheck"


def alb_health_check(protocol_version: str, path: str, port: str) -> dict:
    """HTTPS health check through the target's TLS; gRPC targets get gRPC status codes."""
    matcher = "200-399"
    if protocol_version == "GRPC":
        # "/" (the default) cannot be a gRPC method: use ALB's own probe. A given path is
        # a health method (e.g. /grpc.health.v1.Health/Check) that must answer OK (0).
        path, matcher = (GRPC_DEFAULT_HEALTH_PATH, "12") if path == "/" else (path, "0")
    return {
        "protocol": "HTTPS",
        "port": port,
        "path": path,
        "matcher": matcher,
        "interval": 15,
        "timeout": 5,
        "healthy_threshold": 2,
        "unhealthy_threshold": 3,
    }


@dataclass(frozen=True)
class HttpsLoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    certificate_arn: pulumi.Input[str]
    target_port: int
    health_check_path: str
    ssl_policy: str
    allowed_cidrs: Sequence[str]
    # "traffic-port" or a port number as text (pulumi-aws takes a string).
    health_check_port: str = "traffic-port"
    protocol_version: str = "HTTP1"  # HTTP1 | HTTP2 | GRPC, towards the targets
    extras: LoadBalancerSettings = field(default_factory=LoadBalancerSettings)
    # The targets' security group: the load balancer may reach it on target_port only. Set
    # here, the rule is made before the component registers its outputs; None: the caller
    # calls allow_to_targets.
    target_security_group_id: pulumi.Input[str] | None = None


class HttpsLoadBalancer(_LoadBalancer):
    """ALB with an HTTPS:443 listener, an HTTP:80 redirect, and an HTTPS target group.

    Targets are IP addresses (awsvpc tasks). The ALB re-encrypts to them; it does not
    validate target certificates, so a private CA works behind it.
    """

    load_balancer: aws.lb.LoadBalancer
    security_group: aws.ec2.SecurityGroup
    target_group: aws.lb.TargetGroup
    https_listener: aws.lb.Listener

    def __init__(
        self, name: str, args: HttpsLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:load_balancer:HttpsLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = aws.ec2.SecurityGroup(
            name,
            description="Load balancer: HTTPS and the HTTP redirect from allowed CIDRs",
            vpc_id=args.vpc_id,
            opts=child,
        )
        self._allow_clients(443, args.allowed_cidrs, "HTTPS")
        self._allow_clients(80, args.allowed_cidrs, "HTTP, redirected to HTTPS")
        extras, waits = self._extras(name, args.extras, "application")
        self.load_balancer = aws.lb.LoadBalancer(
            name,
            load_balancer_type="application",
            internal=False,
            subnets=args.subnet_ids,
            security_groups=[self.security_group.id],
            # Requests with malformed headers are dropped instead of passed to the app.
            drop_invalid_header_fields=True,
            **extras,
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        self._associate_web_acl(name, args.extras)
        self.target_group = aws.lb.TargetGroup(
            name,
            vpc_id=args.vpc_id,
            target_type="ip",
            protocol="HTTPS",
            protocol_version=args.protocol_version,
            port=args.target_port,
            deregistration_delay=30,
            health_check=alb_health_check(
                args.protocol_version, args.health_check_path, args.health_check_port
            ),
            opts=child,
        )
        self.https_listener = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=self.load_balancer.arn,
            port=443,
            protocol="HTTPS",
            # Explicit: the API default is ELBSecurityPolicy-2016-08, which also makes the ALB
            # talk TLS 1.2 at most to the targets.
            ssl_policy=args.ssl_policy,
            certificate_arn=args.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=self.load_balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "redirect",
                    "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"},
                }
            ],
            opts=child,
        )
        if args.target_security_group_id is not None:
            self.allow_to_targets(args.target_security_group_id, args.target_port)
        self.register_outputs(
            {
                "dnsName": self.load_balancer.dns_name,
                "securityGroupId": self.security_group.id,
                "targetGroupArn": self.target_group.arn,
            }
        )


@dataclass(frozen=True)
class NlbListener:
    """One NLB port. TCP passes TLS through untouched; TLS terminates and re-encrypts."""

    port: int
    target_port: int
    protocol: str = "TCP"  # TCP | TLS
    # Health checks are TCP: NLB HTTPS checks validate strictly and fail against private-CA
    # or TLS-1.3-only targets. A port as text checks another port than the traffic's.
    health_check_port: str = "traffic-port"
    alpn_policy: str | None = None  # TLS listeners: see NLB_ALPN_POLICIES
    # ACME HTTP-01 only: Let's Encrypt validates from addresses it does not publish, so a
    # port limited to `allowed_cidrs` would never validate.
    open_to_internet: bool = False
    # The target sees the client's address in a PROXY protocol v2 header the NLB prepends
    # (TCP targets only; its health checks send the header too, without an address).
    proxy_protocol_v2: bool = False


@dataclass(frozen=True)
class NetworkLoadBalancerArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    listeners: Sequence[NlbListener]
    allowed_cidrs: Sequence[str]
    certificate_arn: pulumi.Input[str] | None = None  # for TLS listeners
    ssl_policy: str | None = None  # for TLS listeners
    target_type: str = "ip"  # ip (awsvpc tasks) | instance (EC2 host networking)
    # Reachable from inside the VPC (and peered networks) only; subnets then are private.
    internal: bool = False
    # Access logs: NLBs log TLS listeners only (settings refuse them elsewhere). No WAF.
    extras: LoadBalancerSettings = field(default_factory=LoadBalancerSettings)
    # The targets' security group: the load balancer may reach it on the listeners' target
    # and health-check ports only, by rules made before the component registers outputs.
    target_security_group_id: pulumi.Input[str] | None = None


class NetworkLoadBalancer(_LoadBalancer):
    """Internet-facing NLB with security groups, cross-zone, one target group per listener."""

    load_balancer: aws.lb.LoadBalancer
    security_group: aws.ec2.SecurityGroup
    target_groups: dict[int, aws.lb.TargetGroup]
    listeners: list[aws.lb.Listener]

    def __init__(
        self, name: str, args: NetworkLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:load_balancer:NetworkLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if any(lst.protocol == "TLS" for lst in args.listeners) and not (
            args.certificate_arn and args.ssl_policy
        ):
            raise ValueError("TLS listeners need certificate_arn and ssl_policy")
        self.security_group = aws.ec2.SecurityGroup(
            name,
            description="Network load balancer: listener ports from allowed CIDRs",
            vpc_id=args.vpc_id,
            opts=child,
        )
        for listener in args.listeners:
            if listener.open_to_internet:
                self._allow_clients(listener.port, ["0.0.0.0/0"], "ACME HTTP-01 from anywhere")
            else:
                self._allow_clients(listener.port, args.allowed_cidrs, "Listener port")
        if args.extras.waf_web_acl_arn is not None:
            raise ValueError("a WAF web ACL attaches to an application load balancer only")
        if args.extras.access_logs and not any(lst.protocol == "TLS" for lst in args.listeners):
            raise ValueError("an NLB writes access logs for TLS listeners only")
        extras, waits = self._extras(name, args.extras, "network")
        self.load_balancer = aws.lb.LoadBalancer(
            name,
            load_balancer_type="network",
            internal=args.internal,
            subnets=args.subnet_ids,
            security_groups=[self.security_group.id],
            enable_cross_zone_load_balancing=True,
            **extras,
            opts=pulumi.ResourceOptions(parent=self, depends_on=waits),
        )
        self.target_groups, self.listeners = {}, []
        for listener in args.listeners:
            tls = listener.protocol == "TLS"
            group = aws.lb.TargetGroup(
                f"{name}-{listener.port}",
                vpc_id=args.vpc_id,
                target_type=args.target_type,
                protocol=listener.protocol,
                port=listener.target_port,
                deregistration_delay=30,
                # Only when asked: other stacks keep their registered inputs.
                **({"proxy_protocol_v2": True} if listener.proxy_protocol_v2 else {}),
                health_check={
                    "protocol": "TCP",
                    "port": listener.health_check_port,
                    "interval": 10,
                    "healthy_threshold": 2,
                    "unhealthy_threshold": 2,
                },
                opts=child,
            )
            self.target_groups[listener.port] = group
            self.listeners.append(
                aws.lb.Listener(
                    f"{name}-{listener.port}",
                    load_balancer_arn=self.load_balancer.arn,
                    port=listener.port,
                    protocol=listener.protocol,
                    ssl_policy=args.ssl_policy if tls else None,
                    certificate_arn=args.certificate_arn if tls else None,
                    alpn_policy=listener.alpn_policy if tls else None,
                    default_actions=[{"type": "forward", "target_group_arn": group.arn}],
                    opts=child,
                )
            )
        if args.target_security_group_id is not None:
            # The listeners' target ports, and the health-check ports that are not one.
            checks = [
                int(lst.health_check_port)
                for lst in args.listeners
                if lst.health_check_port.isdigit()
            ]
            for port in dict.fromkeys([*(lst.target_port for lst in args.listeners), *checks]):
                self.allow_to_targets(args.target_security_group_id, port)
        self.register_outputs({"dnsName": self.load_balancer.dns_name})
