"""The ECS cluster shared by every topology: cluster, log group and execution role."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.exec_command import exec_command_statements, exec_key_policy
from components.iam import (
    Statement,
    assume_role_policy,
    execution_role_statements,
    policy_document,
)
from components.image_cache import ImageCache, ImageCacheArgs
from components.kms import CustomerKey, CustomerKeyArgs, alias_name
from components.naming import physical_name
from settings.images import (
    ImageSettings,
    cache_repository_arns,
    ecr_repository_arn,
    image_map,
    registry_host,
    with_cached_images,
)


@dataclass(frozen=True)
class ClusterArgs:
    log_retention_days: int = 30
    # Cloud Map HTTP namespace for Service Connect; None: <project>-<stack>.
    namespace_name: str | None = None
    # Where tasks pull the program's own images from (settings/images.py).
    images: ImageSettings = field(default_factory=ImageSettings)
    # The images the user chose: the execution role may pull the private ECR ones.
    user_images: tuple[str, ...] = ()
    # ECS Exec for some workload: sessions encrypted with the cluster's key and logged.
    execute_command: bool = False


class Cluster(pulumi.ComponentResource):
    """ECS cluster with Container Insights, Fargate capacity providers and shared roles."""

    cluster: aws.ecs.Cluster
    namespace: aws.servicediscovery.HttpNamespace
    log_group: aws.cloudwatch.LogGroup
    execution_role: aws.iam.Role
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ecs-tls:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        stack_name = physical_name()
        self.region = aws.get_region_output(opts=invoke).region
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke)
        rules = args.images.rules
        self.image_cache = (
            ImageCache(f"{name}-images", ImageCacheArgs(rules), opts=child) if rules else None
        )
        # The rules' own prefixes are read so that every task definition naming a cached
        # image is registered after the rules exist.
        prefixes = [r.ecr_repository_prefix for r in self.image_cache.rules] if rules else []
        self.image_map: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            self.account_id, self.region, partition.dns_suffix, *prefixes
        ).apply(lambda v: image_map(registry_host(v[0], v[1], v[2]), rules))

        # The namespace costs nothing and is the cluster's Service Connect default, so it
        # belongs to the foundation: topologies that use Service Connect share it.
        self.namespace = aws.servicediscovery.HttpNamespace(
            name,
            name=args.namespace_name or stack_name,
            description=f"Service Connect namespace of {stack_name}",
            opts=child,
        )
        self.exec_key: CustomerKey | None = None
        self.exec_log_group: aws.cloudwatch.LogGroup | None = None
        configuration = None
        if args.execute_command:
            configuration = self._exec_configuration(name, args, partition.partition)
        self.cluster = aws.ecs.Cluster(
            name,
            name=stack_name,
            settings=[{"name": "containerInsights", "value": "enabled"}],
            service_connect_defaults={"namespace": self.namespace.arn},
            # Only with ECS Exec, so other stacks keep their registered inputs. UpdateCluster
            # takes `configuration`, and the provider updates it in place: turning ECS Exec on
            # or off never replaces the cluster.
            **({"configuration": configuration} if configuration else {}),
            opts=child,
        )
        aws.ecs.ClusterCapacityProviders(
            name,
            cluster_name=self.cluster.name,
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategies=[
                {"capacity_provider": "FARGATE", "weight": 1, "base": 1}
            ],
            opts=child,
        )
        self.log_group = aws.cloudwatch.LogGroup(
            name,
            name=f"/ecs/{stack_name}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        self.execution_role = aws.iam.Role(
            f"{name}-execution",
            description=f"ECS agent role of {stack_name}: pull images, write logs, read secrets",
            assume_role_policy=self.account_id.apply(
                lambda account: assume_role_policy("ecs-tasks.amazonaws.com", account)
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            name="pull-images-write-logs",
            role=self.execution_role.id,
            policy=pulumi.Output.all(
                self.log_group.arn, partition.partition, self.region, self.account_id
            ).apply(
                lambda v: policy_document(
                    execution_role_statements(
                        v[0],
                        ecr_repository_arns=[
                            arn
                            for image in args.user_images
                            if (arn := ecr_repository_arn(image, v[1])) is not None
                        ],
                        cache_repository_arns=cache_repository_arns(rules, v[1], v[2], v[3]),
                    )
                )
            ),
            opts=child,
        )
        self.register_outputs(
            {
                "clusterArn": self.cluster.arn,
                "clusterName": self.cluster.name,
                "namespaceArn": self.namespace.arn,
                "logGroupName": self.log_group.name,
                "executionRoleArn": self.execution_role.arn,
            }
        )

    def _exec_configuration(
        self, name: str, args: ClusterArgs, partition: pulumi.Output[str]
    ) -> dict:
        """A customer managed key for ECS Exec sessions and an encrypted log of them."""
        child = pulumi.ResourceOptions(parent=self)
        log_group_name = f"/ecs/{physical_name()}/exec"
        log_group_arn = pulumi.Output.all(partition, self.region, self.account_id).apply(
            lambda v: f"arn:{v[0]}:logs:{v[1]}:{v[2]}:log-group:{log_group_name}"
        )
        self.exec_key = CustomerKey(
            f"{name}-exec",
            CustomerKeyArgs(
                description=f"Encrypts the ECS Exec sessions of {physical_name()}",
                alias=alias_name(physical_name(), "exec"),
                policy=pulumi.Output.all(
                    partition, self.account_id, self.region, log_group_arn
                ).apply(lambda v: exec_key_policy(v[0], v[1], v[2], v[3])),
            ),
            opts=child,
        )
        self.exec_log_group = aws.cloudwatch.LogGroup(
            f"{name}-exec",
            name=log_group_name,
            retention_in_days=args.log_retention_days,
            kms_key_id=self.exec_key.arn,
            opts=child,
        )
        return {
            "execute_command_configuration": {
                "kms_key_id": self.exec_key.arn,
                # OVERRIDE: what runs in a session goes to this group, not the task's logs.
                "logging": "OVERRIDE",
                "log_configuration": {
                    "cloud_watch_log_group_name": self.exec_log_group.name,
                    "cloud_watch_encryption_enabled": True,
                },
            }
        }

    def allow_execute_command(
        self, name: str, role: aws.iam.Role, parent: pulumi.Resource
    ) -> aws.iam.RolePolicy:
        """Let a task role open ECS Exec sessions under the cluster's key and log them."""
        if self.exec_key is None or self.exec_log_group is None:
            raise ValueError("ECS Exec needs ClusterArgs.execute_command")
        return aws.iam.RolePolicy(
            name,
            name="ecs-exec",
            role=role.id,
            policy=pulumi.Output.all(self.exec_key.arn, self.exec_log_group.arn).apply(
                lambda v: policy_document(exec_command_statements(v[0], v[1]))
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )

    def resolve_images(self, container_definitions: pulumi.Input[str]) -> pulumi.Input[str]:
        """A task's container definitions with the program's images read from the cache.

        Without the cache the definitions pass through untouched.
        """
        if self.image_cache is None:
            return container_definitions
        return pulumi.Output.all(container_definitions, self.image_map).apply(
            lambda v: with_cached_images(v[0], v[1])
        )

    def allow_secret_read(
        self, name: str, sid: str, secret_arn: pulumi.Input[str], parent: pulumi.Resource
    ) -> aws.iam.RolePolicy:
        """Let the shared execution role read one secret, which ECS injects at task start.

        Each topology grants its own secrets, so the role never reads more than the
        topology in place needs.
        """
        return aws.iam.RolePolicy(
            name,
            name=name,
            role=self.execution_role.id,
            policy=pulumi.Output.from_input(secret_arn).apply(
                lambda arn: policy_document(
                    [Statement(sid, ["secretsmanager:GetSecretValue"], [arn])]
                )
            ),
            opts=pulumi.ResourceOptions(parent=parent),
        )
