"""An internet-facing ALB that only speaks TLS to clients and to its targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


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


class HttpsLoadBalancer(pulumi.ComponentResource):
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
        for port in (443, 80):
            for i, cidr in enumerate(args.allowed_cidrs):
                aws.vpc.SecurityGroupIngressRule(
                    f"{name}-in-{port}-{i}",
                    security_group_id=self.security_group.id,
                    description="HTTPS" if port == 443 else "HTTP, redirected to HTTPS",
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    opts=child,
                )
        self.load_balancer = aws.lb.LoadBalancer(
            name,
            load_balancer_type="application",
            internal=False,
            subnets=args.subnet_ids,
            security_groups=[self.security_group.id],
            # Requests with malformed headers are dropped instead of passed to the app.
            drop_invalid_header_fields=True,
            opts=child,
        )
        self.target_group = aws.lb.TargetGroup(
            name,
            vpc_id=args.vpc_id,
            target_type="ip",
            protocol="HTTPS",
            port=args.target_port,
            deregistration_delay=30,
            health_check={
                "protocol": "HTTPS",
                "port": args.health_check_port,
                "path": args.health_check_path,
                "matcher": "200-399",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
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
        self.register_outputs(
            {
                "dnsName": self.load_balancer.dns_name,
                "securityGroupId": self.security_group.id,
                "targetGroupArn": self.target_group.arn,
            }
        )

    def allow_to_targets(self, target_security_group_id: pulumi.Input[str], port: int) -> None:
        """Let the load balancer reach the targets' port, and nothing else."""
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-out-{port}",
            security_group_id=self.security_group.id,
            description="To the tasks' TLS port",
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            referenced_security_group_id=target_security_group_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
