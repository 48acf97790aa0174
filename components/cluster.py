"""The ECS cluster shared by every topology: cluster, log group and execution role.

The component is public (hosted by the component package, package/): its args mirror the
configuration keys the cluster reads (logRetentionDays, serviceConnect.namespace, images),
parsed by the same code (settings/).

No `from __future__ import annotations` here: Pulumi's schema analyzer reads the
annotations of ClusterArgs and Cluster as objects (topologies/args.py).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from components.arguments import as_arguments, check_component_name, config_from_args
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
from components.tokens import component_type
from settings.errors import invalid
from settings.images import (
    CacheRule,
    ImageSettings,
    cache_repository_arns,
    ecr_repository_arn,
    image_map,
    parse_images,
    registry_host,
    warmup_commands,
    with_cached_images,
)
from settings.parse import parse_log_retention, parse_service_connect
from settings.readers import read_image


class ImagesArgs(TypedDict, total=False):
    """Where tasks pull the project's own images (Envoy, certbot, the helpers; each pinned by digest). Default: each from its own registry."""  # noqa: E501

    pull_through_cache: bool
    """true: ECR pull-through cache rules in this account and region mirror ECR Public (and Docker Hub with dockerHubCredentialsArn), and tasks pull the project's images from them; run the commands of imageCacheWarmup once before tasks start. Default: false."""  # noqa: E501
    docker_hub_credentials_arn: str
    """ARN of a Secrets Manager secret named ecr-pullthroughcache/... holding a Docker Hub username and accessToken; ECR caches Docker Hub only with it."""  # noqa: E501
    repository_prefix: str
    """Path the cache rules put their repositories under (<prefix>/ecr-public, <prefix>/docker-hub); rules are per account and region. Default: ecs-tls."""  # noqa: E501


class ClusterArgs(TypedDict, total=False):
    """The ECS cluster's settings; each has a working default."""

    log_retention_days: int
    """Retention of the cluster's CloudWatch log group (and of the ECS Exec session log), one of the values CloudWatch accepts. Default: 30."""  # noqa: E501
    namespace: str
    """Name of the Cloud Map HTTP namespace, the cluster's Service Connect default (configuration key serviceConnect.namespace). Default: <project>-<stack>."""  # noqa: E501
    images: ImagesArgs
    """Where tasks pull the project's own images from."""
    task_images: Sequence[str]
    """Images your tasks run: the shared execution role may pull those in private ECR repositories, and only those."""  # noqa: E501
    execute_command: bool
    """ECS Exec on the cluster: sessions encrypted with a customer managed KMS key the cluster creates, and logged to an encrypted log group. Default: false."""  # noqa: E501


@dataclass(frozen=True)
class ClusterSettings:
    """ClusterArgs, validated."""

    log_retention_days: int
    namespace_name: str | None
    images: ImageSettings
    user_images: tuple[str, ...]
    execute_command: bool


def cluster_settings(args: Mapping[str, Any]) -> ClusterSettings:
    """`args` validated as their configuration keys are; a bad value raises a ConfigError
    naming the argument (`images.repositoryPrefix`), before any resource is registered."""
    values = config_from_args(args, ClusterArgs)
    execute = values.get("executeCommand", False)
    if not isinstance(execute, bool):
        raise invalid("executeCommand", execute, "true or false")
    images = values.get("taskImages", [])
    if not isinstance(images, list):
        raise invalid("taskImages", images, "a list of container image references")
    with as_arguments("serviceConnect.namespace", "namespace"):
        service_connect = parse_service_connect(
            {"serviceConnect": {"namespace": values.get("namespace")}}
        )
    return ClusterSettings(
        log_retention_days=parse_log_retention(values),
        namespace_name=service_connect.namespace,
        images=parse_images(values),
        user_images=tuple(read_image(image, f"taskImages[{i}]") for i, image in enumerate(images)),
        execute_command=execute,
    )


def images_args(images: ImageSettings) -> ImagesArgs:
    """The arguments that give `images` back (this program's `images` configuration)."""
    if not images.pull_through_cache:
        return ImagesArgs()
    return ImagesArgs(
        pull_through_cache=True,
        docker_hub_credentials_arn=images.docker_hub_credentials_arn,  # type: ignore[typeddict-item]
        repository_prefix=images.repository_prefix,
    )


class Cluster(pulumi.ComponentResource):
    """An ECS cluster with Container Insights, Fargate and Fargate Spot capacity providers, its Service Connect namespace, a log group and the execution role its tasks share."""  # noqa: E501

    cluster_arn: pulumi.Output[str]
    """ARN of the ECS cluster (the cluster argument of a topology component)."""
    cluster_name: pulumi.Output[str]
    """Name of the ECS cluster: <project>-<stack>."""
    namespace_arn: pulumi.Output[str]
    """ARN of the Cloud Map HTTP namespace, the cluster's Service Connect default."""
    log_group_name: pulumi.Output[str]
    """Name of the cluster's CloudWatch log group: /ecs/<project>-<stack>."""
    execution_role_arn: pulumi.Output[str]
    """ARN of the execution role the cluster's tasks share: pull images, write logs."""
    image_cache_warmup: pulumi.Output[list[str]]
    """With images.pullThroughCache: the docker pulls by tag that fill the cache before the first task pulls by digest (run them once); empty otherwise."""  # noqa: E501

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        # Checked before the component registers: bad arguments leave nothing behind.
        check_component_name(name)
        s = cluster_settings(args)
        super().__init__(component_type("cluster", "Cluster"), name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        stack_name = physical_name()
        self.region = aws.get_region_output(opts=invoke).region
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke)
        rules = s.images.rules
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
            name=s.namespace_name or stack_name,
            description=f"Service Connect namespace of {stack_name}",
            opts=child,
        )
        self.exec_key: CustomerKey | None = None
        self.exec_log_group: aws.cloudwatch.LogGroup | None = None
        configuration = None
        if s.execute_command:
            configuration = self._exec_configuration(name, s, partition.partition)
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
        self.log_group, self.execution_role = task_logs_and_execution_role(
            name,
            stack_name,
            s.log_retention_days,
            "pull images, write logs, read secrets",
            TaskAccount(partition.partition, self.region, self.account_id),
            s.user_images,
            rules,
            parent=self,
        )
        self.cluster_arn = self.cluster.arn
        self.cluster_name = self.cluster.name
        self.namespace_arn = self.namespace.arn
        self.log_group_name = self.log_group.name
        self.execution_role_arn = self.execution_role.arn
        self.image_cache_warmup = self.image_map.apply(warmup_commands)
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
        self, name: str, s: ClusterSettings, partition: pulumi.Output[str]
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
            retention_in_days=s.log_retention_days,
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
            raise ValueError("ECS Exec needs the argument executeCommand of the cluster")
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
        return secret_read_policy(self.execution_role, name, sid, secret_arn, parent)


@dataclass(frozen=True)
class TaskAccount:
    """Where the tasks run: the ARNs of the execution role's policy are built from it."""

    partition: pulumi.Output[str]
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]


def task_logs_and_execution_role(
    name: str,
    physical: str,
    retention_days: int,
    role_purpose: str,
    where: TaskAccount,
    user_images: Sequence[str],
    cache_rules: Sequence[CacheRule] = (),
    *,
    parent: pulumi.Resource,
) -> tuple[aws.cloudwatch.LogGroup, aws.iam.Role]:
    """The log group `/ecs/<physical>` the tasks write to and the execution role that
    starts them: it pulls the user's private ECR images (and the pull-through cache's
    repositories of `cache_rules`) and writes to that log group, nothing else."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        name, name=f"/ecs/{physical}", retention_in_days=retention_days, opts=child
    )
    role = aws.iam.Role(
        f"{name}-execution",
        description=f"ECS agent role of {physical}: {role_purpose}",
        assume_role_policy=where.account_id.apply(
            lambda account: assume_role_policy("ecs-tasks.amazonaws.com", account)
        ),
        opts=child,
    )
    aws.iam.RolePolicy(
        f"{name}-execution",
        name="pull-images-write-logs",
        role=role.id,
        policy=pulumi.Output.all(
            log_group.arn, where.partition, where.region, where.account_id
        ).apply(
            lambda v: policy_document(
                execution_role_statements(
                    v[0],
                    ecr_repository_arns=[
                        arn
                        for image in user_images
                        if (arn := ecr_repository_arn(image, v[1])) is not None
                    ],
                    cache_repository_arns=cache_repository_arns(cache_rules, v[1], v[2], v[3]),
                )
            )
        ),
        opts=child,
    )
    return log_group, role


def secret_read_policy(
    role: aws.iam.Role,
    name: str,
    sid: str,
    secret_arn: pulumi.Input[str],
    parent: pulumi.Resource,
) -> aws.iam.RolePolicy:
    """An inline policy of `role` that reads the one secret `secret_arn` (an execution role:
    ECS injects the secret at task start), under `parent`."""
    return aws.iam.RolePolicy(
        name,
        name=name,
        role=role.id,
        policy=pulumi.Output.from_input(secret_arn).apply(
            lambda arn: policy_document([Statement(sid, ["secretsmanager:GetSecretValue"], [arn])])
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
