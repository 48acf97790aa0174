"""Where moto answers differently from AWS in a way that breaks the provider, and the fix
made to moto in this process, each with the AWS behaviour it restores.

Each fix is the smallest change to moto's answer, never to the program's request: the
request check sees what the provider sends either way.
"""

from __future__ import annotations

_APPLIED: list[str] = []


def _service_without_network_configuration() -> None:
    # AWS omits networkConfiguration from a service that has none (bridge or host network
    # mode); moto answers {}, on which the provider's reader dereferences a missing
    # awsvpcConfiguration and crashes (terraform-provider-aws 5.100, ecs/service.go,
    # flattenNetworkConfiguration).
    from moto.ecs import models

    original = models.Service.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        if not self.network_configuration:
            self.network_configuration = None

    models.Service.__init__ = init


def _load_balancers_active_at_once() -> None:
    # AWS takes a few minutes to provision a load balancer; moto reports "provisioning"
    # until the second description. Like every other delayed state in the emulator
    # (server.py), it is made immediate: the provider still waits its fixed 30 s before
    # it first looks (elbv2 waitLoadBalancerActive, Delay).
    from moto.elbv2 import models

    original = models.FakeLoadBalancer.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.state = "active"

    models.FakeLoadBalancer.__init__ = init


def _access_point_ids_as_aws_makes_them() -> None:
    # AWS names access points fsap- and 17 hex digits, and Lambda's CreateFunction refuses
    # any other (FileSystemConfig Arn pattern); moto makes 8.
    from moto.efs import models
    from moto.moto_api._internal import mock_random

    original = models.AccessPoint.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        short = self.access_point_id
        self.access_point_id = f"fsap-{mock_random.get_random_hex(17)}"
        self.access_point_arn = self.access_point_arn.replace(short, self.access_point_id)

    models.AccessPoint.__init__ = init


def _task_ids_as_aws_makes_them() -> None:
    # ECS task IDs in the long ARN format are 32 hex digits; moto makes a dashed UUID, which
    # the per-task DNS function (one 32-hex label per name) refuses.
    from moto.ecs import models

    original = models.Task.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        self.id = self.id.replace("-", "")

    models.Task.__init__ = init


def _route53_create_checks_the_record_itself() -> None:
    # moto refuses a CREATE identical to one in its change journal whenever any record sorts
    # at or after that name: a record deleted and created again (a stack switched away from
    # a domain and back) is "already exists". AWS refuses a CREATE only when that name and
    # type (and set identifier) exist now.
    from moto.route53 import models
    from moto.route53.exceptions import ResourceRecordAlreadyExists

    original = models.Route53Backend.change_resource_record_sets

    def change(self, zoneid: str, change_list: list) -> None:
        zone = self.get_hosted_zone(zoneid)
        for value in change_list:
            if value.get("Action") != "CREATE":
                continue
            wanted = value["ResourceRecordSet"]
            name = wanted["Name"].strip(".").lower()
            for record in zone.rrsets:
                if (
                    record.name.strip(".").lower() == name
                    and record.type == wanted["Type"]
                    and record.set_identifier == wanted.get("SetIdentifier")
                ):
                    raise ResourceRecordAlreadyExists(name=f"{name}.", _type=wanted["Type"])
            while value in zone.rr_changes:  # the journal of a record that is gone
                zone.rr_changes.remove(value)
        return original(self, zoneid, change_list)

    models.Route53Backend.change_resource_record_sets = change


def _file_system_policy_deletes() -> None:
    # moto has no DeleteFileSystemPolicy; AWS removes the policy (204, empty body). The
    # provider calls it whenever a file system's policy goes.
    from moto.efs import models, responses

    def delete_policy(backend, file_system_id: str) -> None:
        backend.file_systems_by_id[file_system_id].file_system_policy = None

    def delete_response(self):
        self.efs_backend.delete_file_system_policy(self._get_param("FileSystemId"))
        return 204, {}, ""

    models.EFSBackend.delete_file_system_policy = delete_policy
    responses.EFSResponse.delete_file_system_policy = delete_response


def _lambda_vpc_id_of_its_subnets() -> None:
    # AWS answers a function's VpcConfig with the VPC its subnets are in; moto answers a
    # fixed "vpc-123abc". The provider looks that VPC's default security group up when a
    # function with replace_security_groups_on_destroy goes, and fails on the fixed ID.
    from moto.awslambda import models
    from moto.ec2 import ec2_backends

    def vpc_config(self):
        if not self._vpc_config:
            return None
        config = self._vpc_config.copy()
        if config["SecurityGroupIds"]:
            ec2 = ec2_backends[self.account_id][self.region]
            subnets = [ec2.get_subnet(s) for s in config.get("SubnetIds", [])]
            config["VpcId"] = subnets[0].vpc_id if subnets else None
        return config

    models.LambdaFunction.vpc_config = property(vpc_config)


def _scaling_target_tags() -> None:
    # Application Auto Scaling tags scalable targets (TagResource, UntagResource,
    # ListTagsForResource, and Tags on RegisterScalableTarget); moto has none of them, and
    # the provider lists a target's tags after creating it (terraform-provider-aws 5.100,
    # appautoscaling/target.go), so the apply stops. Tags are kept per ARN, as AWS does.
    import json

    from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse

    tags: dict[str, dict[str, str]] = {}
    register = ApplicationAutoScalingResponse.register_scalable_target

    def register_scalable_target(self) -> str:
        answer = register(self)
        arn = json.loads(answer)["ScalableTargetARN"]
        tags.setdefault(arn, {}).update(self._get_param("Tags") or {})
        return answer

    def tag_resource(self) -> str:
        tags.setdefault(self._get_param("ResourceARN"), {}).update(self._get_param("Tags"))
        return "{}"

    def untag_resource(self) -> str:
        held = tags.get(self._get_param("ResourceARN"), {})
        for key in self._get_param("TagKeys") or []:
            held.pop(key, None)
        return "{}"

    def list_tags_for_resource(self) -> str:
        return json.dumps({"Tags": tags.get(self._get_param("ResourceARN"), {})})

    ApplicationAutoScalingResponse.register_scalable_target = register_scalable_target
    ApplicationAutoScalingResponse.tag_resource = tag_resource
    ApplicationAutoScalingResponse.untag_resource = untag_resource
    ApplicationAutoScalingResponse.list_tags_for_resource = list_tags_for_resource


FIXES = {
    "ecs: no networkConfiguration on a service without awsvpc": (
        _service_without_network_configuration
    ),
    "elbv2: load balancers active at once": _load_balancers_active_at_once,
    "efs: access point IDs of 17 hex digits": _access_point_ids_as_aws_makes_them,
    "efs: DeleteFileSystemPolicy": _file_system_policy_deletes,
    "ecs: task IDs of 32 hex digits": _task_ids_as_aws_makes_them,
    "route53: CREATE refused only for a record that exists": (
        _route53_create_checks_the_record_itself
    ),
    "lambda: VpcConfig names its subnets' VPC": _lambda_vpc_id_of_its_subnets,
    "application-autoscaling: tags of scalable targets": _scaling_target_tags,
}


def apply() -> list[str]:
    """Apply every fix once per process; returns what was fixed."""
    for label, fix in FIXES.items():
        if label not in _APPLIED:
            fix()
            _APPLIED.append(label)
    return list(_APPLIED)
