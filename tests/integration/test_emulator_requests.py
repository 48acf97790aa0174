"""The emulator's request check (`scripts/emulator/aws_requests.py`) in front of moto's server.

Each server test sends what AWS refuses and what it accepts through boto3 with its own
checks off, so the refusal comes from the emulator and the acceptance is proved by moto
answering. The round trip test (no server) serializes inputs of every operation of the
services the program uses with botocore's own serializers, in every protocol their models
list, and parses them back.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("moto")
pytest.importorskip("flask")
import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, create_request_object, prepare_request_dict
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import create_serializer
from dateutil.tz import tzutc
from pulumi import AssetArchive, StringAsset

from scripts.emulator import aws_requests, moto_fixes, server
from scripts.emulator.translate import _archive

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "not-a-secret")
SERVICES = (
    *("ec2", "iam", "elbv2", "route53", "ecs", "logs", "dlm", "lambda", "s3", "sqs", "sns"),
    *("efs", "servicediscovery", "secretsmanager", "events", "scheduler", "cloudwatch", "kms"),
    # and the other services the program's resources and the provider call
    *("acm", "acm-pca", "ram", "autoscaling", "ssm", "sts"),
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[server.Emulator]:
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("NO_PROXY", "no_proxy"):
            patch.setenv(variable, "127.0.0.1,localhost")
        # moto's EC2 would load thousands of AMIs first; nothing here needs one.
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        with server.start() as running:
            running.reset()
            yield running


def client(emulator: server.Emulator, service: str, **config: Any) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        endpoint_url=emulator.url,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}, **config),
    )


def refused(call: Any, code: str = "ValidationError", **params: Any) -> str:
    """The emulator's refusal of `call(**params)`, as the SDK reads it: its message."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    error = caught.value.response["Error"]
    assert error["Code"] == code, error
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert " breaks " in error["Message"]
    return error["Message"]


# --- EC2 (ec2 protocol) ---------------------------------------------------------------------


def test_ec2_security_group_description_apostrophe(emulator: server.Emulator) -> None:
    ec2 = client(emulator, "ec2")
    invalid = "InvalidParameterValue"
    message = refused(
        ec2.create_security_group, invalid, GroupName="targets", Description="To the targets' port"
    )
    assert "ec2-description" in message and "EC2 API reference" in message
    assert 'CreateSecurityGroup: Description = "To the targets\' port"' in message
    group = ec2.create_security_group(GroupName="targets", Description="To the targets port")
    permission = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "the VPC's clients"}],
    }
    message = refused(
        ec2.authorize_security_group_ingress,
        invalid,
        GroupId=group["GroupId"],
        IpPermissions=[permission],
    )
    assert "IpPermissions[0].IpRanges[0].Description" in message
    assert "ec2-description" in message
    permission["IpRanges"][0]["Description"] = "the VPC clients"
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[permission])
    (described,) = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    assert described["IpPermissions"][0]["IpRanges"][0]["Description"] == "the VPC clients"


# --- DLM (rest-json; moto has no DLM) -----------------------------------------------------


def lifecycle_policy(description: str) -> dict[str, Any]:
    return {
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/dlm",
        "Description": description,
        "State": "ENABLED",
        "PolicyDetails": {
            "ResourceTypes": ["VOLUME"],
            "TargetTags": [{"Key": "backup", "Value": "daily"}],
            "Schedules": [
                {
                    "Name": "daily",
                    "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS"},
                    "RetainRule": {"Count": 7},
                }
            ],
        },
    }


def test_dlm_description_pattern(emulator: server.Emulator) -> None:
    dlm = client(emulator, "dlm")
    message = refused(
        dlm.create_lifecycle_policy, **lifecycle_policy("Daily snapshots of db.example.com")
    )
    assert "Description = 'Daily snapshots of db.example.com'" in message
    assert "pattern [0-9A-Za-z _-]+" in message
    assert "botocore model dlm CreateLifecyclePolicy Description" in message
    key = ("dlm", "CreateLifecyclePolicy")
    before, violations = emulator.checked.checked[key], len(emulator.checked.violations)
    # moto, without DLM, answers 500 (and boto3 retries that once): only the check refuses.
    with pytest.raises(ClientError) as moto_error:
        dlm.create_lifecycle_policy(**lifecycle_policy("Daily snapshots of the database"))
    assert moto_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert emulator.checked.checked[key] > before
    assert len(emulator.checked.violations) == violations


# --- Route53 (rest-xml) ---------------------------------------------------------------------


def txt_change(name: str, value: str) -> dict[str, Any]:
    record = {"Name": name, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": value}]}
    return {"Changes": [{"Action": "CREATE", "ResourceRecordSet": record}]}


def test_route53_txt_string_length(emulator: server.Emulator) -> None:
    route53 = client(emulator, "route53")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="txt")["HostedZone"]
    message = refused(
        route53.change_resource_record_sets,
        HostedZoneId=zone["Id"],
        ChangeBatch=txt_change("long.example.com.", '"' + "a" * 256 + '"'),
    )
    assert "route53-txt-string" in message
    assert "ChangeBatch.Changes[0].ResourceRecordSet.ResourceRecords[0].Value" in message
    fits = '"' + "a" * 255 + '"'
    route53.change_resource_record_sets(
        HostedZoneId=zone["Id"], ChangeBatch=txt_change("fits.example.com.", fits)
    )
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    txt = [r for r in records if r["Name"] == "fits.example.com." and r["Type"] == "TXT"]
    assert [v["Value"] for v in txt[0]["ResourceRecords"]] == [fits]
    assert not any(r["Name"] == "long.example.com." for r in records)


def test_route53_record_created_again_after_its_delete(emulator: server.Emulator) -> None:
    """A stack switched away from a domain and back creates the same record again: AWS
    accepts it once the first is deleted (moto's journal would not, hence a fix)."""
    moto_fixes.apply()
    route53 = client(emulator, "route53")
    zone = route53.create_hosted_zone(Name="example.org", CallerReference="again")["HostedZone"]
    change = txt_change("db.example.org.", '"first"')
    route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch=change)
    later = txt_change("tasks.example.org.", '"sorts after db"')
    route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch=later)
    with pytest.raises(ClientError, match="already exists"):
        route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch=change)
    delete = {"Changes": [{**change["Changes"][0], "Action": "DELETE"}]}
    route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch=delete)
    route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch=change)
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    assert {(r["Name"], r["Type"]) for r in records} >= {
        ("db.example.org.", "TXT"),
        ("tasks.example.org.", "TXT"),
    }


# --- IAM (query) ----------------------------------------------------------------------------


def test_iam_role_name_length(emulator: server.Emulator) -> None:
    iam = client(emulator, "iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    message = refused(iam.create_role, RoleName="r" * 65, AssumeRolePolicyDocument=trust)
    assert "RoleName" in message and "max 64 (65 characters)" in message
    assert "botocore model iam CreateRole RoleName" in message
    iam.create_role(RoleName="r" * 64, AssumeRolePolicyDocument=trust)
    assert iam.get_role(RoleName="r" * 64)["Role"]["RoleName"] == "r" * 64


# --- ECS (json) -----------------------------------------------------------------------------


def test_ecs_container_name_and_required_service_name(emulator: server.Emulator) -> None:
    ecs = client(emulator, "ecs")
    task = {
        "family": "web",
        "containerDefinitions": [{"name": "app.web", "image": "nginx", "memory": 64}],
    }
    message = refused(ecs.register_task_definition, **task)
    assert "containerDefinitions[0].name = 'app.web'" in message and "ecs-name" in message
    task["containerDefinitions"][0]["name"] = "app-web"
    registered = ecs.register_task_definition(**task)["taskDefinition"]
    assert registered["containerDefinitions"][0]["name"] == "app-web"
    cluster = ecs.create_cluster(clusterName="tls")["cluster"]["clusterArn"]
    service = {"cluster": cluster, "taskDefinition": "web", "desiredCount": 0}
    message = refused(ecs.create_service, **service)
    assert "serviceName = (missing) breaks required" in message
    created = ecs.create_service(serviceName="web", **service)["service"]
    assert created["serviceName"] == "web"


# --- Secrets Manager (json, sensitive members) ---------------------------------------------


def test_secret_values_are_redacted(emulator: server.Emulator) -> None:
    secrets = client(emulator, "secretsmanager")
    secret = "hunter2-correct-horse-battery-staple"
    before = len(emulator.checked.violations)
    too_long = refused(secrets.create_secret, Name="db", SecretString=secret * 2000)
    assert "SecretString = [redacted] breaks max 65536" in too_long
    other_member = refused(
        secrets.create_secret, Name="db", SecretString=secret, Description="d" * 2049
    )
    assert "Description" in other_member
    found = emulator.checked.violations[before:]
    assert {v.member for v in found} == {"SecretString", "Description"}
    for text in (too_long, other_member, *map(str, found), *(v.value for v in found)):
        assert "hunter2" not in text
    secrets.create_secret(Name="db", SecretString=secret)
    assert secrets.get_secret_value(SecretId="db")["SecretString"] == secret


# --- Lambda (rest-json, URI label), EFS, S3 (rest-xml) ------------------------------------


def test_lambda_function_name_from_the_uri(emulator: server.Emulator) -> None:
    lambda_ = client(emulator, "lambda")
    message = refused(lambda_.get_function, FunctionName="bad name!")
    assert "lambda GetFunction: FunctionName = 'bad name!'" in message
    key = ("lambda", "GetFunction")
    before = emulator.checked.checked[key]
    with pytest.raises(ClientError) as missing:
        lambda_.get_function(FunctionName="absent")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert emulator.checked.checked[key] == before + 1


def test_lambda_vpc_config_names_the_subnets_vpc(emulator: server.Emulator) -> None:
    # The provider finds the default security group of this VPC when a function that
    # replaces its security groups on destroy goes.
    moto_fixes.apply()
    ec2 = client(emulator, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    role = client(emulator, "iam").create_role(
        RoleName="fn", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}'
    )["Role"]["Arn"]
    lambda_ = client(emulator, "lambda")
    lambda_.create_function(
        FunctionName="in-vpc",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        # The zip the translation makes of a function's code (scripts/emulator/translate.py).
        Code={
            "ZipFile": _archive(
                AssetArchive({"index.py": StringAsset("def handler(e, c): pass\n")})
            )
        },
        VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]},
    )
    config = lambda_.get_function(FunctionName="in-vpc")["Configuration"]["VpcConfig"]
    assert config["VpcId"] == vpc


def test_efs_access_point_root_directory(emulator: server.Emulator) -> None:
    efs = client(emulator, "efs")
    system = efs.create_file_system(CreationToken="data")["FileSystemId"]
    message = refused(
        efs.create_access_point, FileSystemId=system, RootDirectory={"Path": "data;rm"}
    )
    assert "RootDirectory.Path = 'data;rm'" in message and "pattern" in message
    point = efs.create_access_point(FileSystemId=system, RootDirectory={"Path": "/data"})
    assert point["RootDirectory"]["Path"] == "/data"


def test_s3_path_style(emulator: server.Emulator) -> None:
    s3 = client(emulator, "s3", s3={"addressing_style": "path"})
    s3.create_bucket(
        Bucket="ecs-tls-state", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    s3.put_object(Bucket="ecs-tls-state", Key="dir/a file.txt", Body=b"hello")
    message = refused(
        s3.put_bucket_tagging,
        Bucket="ecs-tls-state",
        Tagging={"TagSet": [{"Key": "", "Value": "empty key"}]},
    )
    assert "Tagging.TagSet[0].Key = '' breaks min 1" in message
    s3.put_bucket_tagging(Bucket="ecs-tls-state", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.get_bucket_tagging(Bucket="ecs-tls-state")["TagSet"] == [{"Key": "a", "Value": "b"}]
    body = s3.get_object(Bucket="ecs-tls-state", Key="dir/a file.txt")["Body"].read()
    assert body == b"hello"
    for operation in ("CreateBucket", "PutObject", "PutBucketTagging", "GetObject"):
        assert emulator.checked.checked[("s3", operation)] >= 1, operation


# --- what the check cannot read, and moto's reset -----------------------------------------


def signed(emulator: server.Emulator, service: str, body: bytes, headers: dict[str, str]):
    request = AWSRequest("POST", f"{emulator.url}/", data=body, headers=headers)
    SigV4Auth(CREDENTIALS, service, REGION).add_auth(request)
    prepared = request.prepare()
    return urllib.request.Request(
        prepared.url, data=body, headers=dict(prepared.headers), method="POST"
    )


def test_an_unreadable_request_is_recorded_as_unparsed(emulator: server.Emulator) -> None:
    before = sum(emulator.checked.checked.values())
    headers = {"X-Amz-Target": "NoSuchService_20200101.DoThings"}
    headers["Content-Type"] = "application/x-amz-json-1.1"
    request = signed(emulator, "ecs", b"\x00garbage", headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    # moto answers however it does; the check has to have recorded the request.
    with contextlib.suppress(urllib.error.HTTPError):
        opener.open(request, timeout=30).close()
    assert sum(emulator.checked.checked.values()) == before
    (unparsed,) = [u for u in emulator.checked.unparsed if "NoSuchService" in u.reason]
    assert "no operation for X-Amz-Target" in str(unparsed)


def test_reset_forgets_moto_state(emulator: server.Emulator) -> None:
    sqs = client(emulator, "sqs")  # JSON protocol, as the Go SDK sends it too
    sqs.create_queue(QueueName="renewals")
    assert sqs.list_queues().get("QueueUrls")
    emulator.reset()
    assert not sqs.list_queues().get("QueueUrls")


def test_delayed_state_transitions_are_set(emulator: server.Emulator) -> None:
    def transition(model: str) -> dict[str, Any]:
        url = f"{emulator.url}/moto-api/state-manager/get-transition?model_name={model}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=30) as response:
            return json.load(response)

    # moto's defaults: ECS tasks move on towards STOPPED, CloudFront deploys on the 2nd read.
    assert transition("ecs::task") == server.HELD
    assert transition("cloudfront::distribution") == server.IMMEDIATE
    assert transition("dax::cluster") == server.IMMEDIATE
    # moto's own API is neither checked nor reported as unparsed
    assert not any("/moto-api" in u.request for u in emulator.checked.unparsed)


# --- parse and check without a server ------------------------------------------------------

WHEN = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tzutc())


def example(shape, name: str, depth: int = 0, location: str | None = None, full=True) -> Any:
    """An input value for `shape`: every member (`full`) or the required ones, two items per
    list and map, text that needs escaping wherever it travels outside a header."""
    kind = shape.type_name
    if kind == "structure":
        return example_structure(shape, depth, full)
    if kind == "list":
        items = [example(shape.member, f"{name}{i}", depth + 1, location, full) for i in (1, 2)]
        return [i for i in items if i is not None] or None
    if kind == "map":
        keys = shape.key.enum[:2] or (["qk1", "qk2"] if location == "querystring" else ["k1", "k2"])
        items = {k: example(shape.value, f"{name}{k}", depth + 1, location, full) for k in keys}
        return {k: v for k, v in items.items() if v is not None} or None
    if kind == "string":
        return example_text(shape, name, location)
    scalars = {"float": 1.5, "double": 2.5, "boolean": True, "timestamp": WHEN, "blob": b"\x00b"}
    if kind in scalars:
        return scalars[kind]
    low, high = shape.metadata.get("min", 7), shape.metadata.get("max", 7)
    return min(max(7, int(low)), int(high))  # integer, long


def example_structure(shape, depth: int, full: bool) -> dict[str, Any] | None:
    if shape.metadata.get("document"):
        return {"document": [1, "a", {"b": None}]}
    if depth > 4:  # recursive shapes
        return None
    out = {}
    for name, member in shape.members.items():
        if not full and name not in shape.required_members:
            continue
        if member.serialization.get("hostLabel"):
            out[name] = "host"
            continue
        location = member.serialization.get("location") if depth == 0 else None
        value = example(member, name, depth + 1, location, full)
        if value is not None:
            out[name] = value
        if shape.metadata.get("union") and out:
            break
    return out or None


def example_text(shape, name: str, location: str | None) -> Any:
    if shape.serialization.get("jsonvalue"):
        return {"json": [1, "header"]}
    if shape.enum:
        return shape.enum[-1]
    # Header values stay plain; elsewhere: spaces, slashes, non-ASCII and URL/XML specials.
    text = f"v-{name}" if location == "header" else f"v {name}/é+&=?<'>"
    text = text.ljust(shape.metadata.get("min", 0), "x")
    return text[: shape.metadata["max"]] if "max" in shape.metadata else text


def normal(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return ("timestamp", value.timestamp())
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def on_the_wire(service: str, operation: str, params: dict, protocol: str) -> dict[str, Any]:
    """What botocore sends for `params` in `protocol`: parse's arguments."""
    model = aws_requests.service_model(service)
    serializer = create_serializer(protocol, include_validation=False)
    request_dict = serializer.serialize_to_request(params, model.operation_model(operation))
    prepare_request_dict(request_dict, endpoint_url="http://127.0.0.1:4566")
    prepared = create_request_object(request_dict).prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    # parse reads only the credential scope of a signature; computing one would be wasted.
    scope = f"{CREDENTIALS.access_key}/20260101/{REGION}/{model.signing_name}/aws4_request"
    authorization = f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"
    return {
        "method": prepared.method,
        "path": url.path,
        "query_string": url.query,
        "headers": {**prepared.headers, "Authorization": authorization},
        "body": body.encode() if isinstance(body, str) else body,
    }


def indistinguishable(service: str, protocol: str, wire: dict[str, Any], call) -> bool:
    """Whether the operation `call` names sends its params exactly as `wire` is (S3's
    ListBuckets and ListDirectoryBuckets, which only the endpoint tells apart)."""
    again = on_the_wire(service, call.operation, call.params, protocol)
    fields = ("method", "path", "query_string", "body")
    return all(again[f] == wire[f] for f in fields)


def parsed_params(call, params: dict[str, Any]) -> dict[str, Any]:
    # The HTTP client sets Content-Length, which S3 also models as a member.
    framing = {"ContentLength"} - set(params) if call.service == "s3" else set()
    return {k: v for k, v in call.params.items() if k not in framing}


def round_trip(service: str, protocol: str, full: bool) -> list[str]:
    model = aws_requests.service_model(service)
    failures = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        if operation.has_event_stream_input:
            continue
        shape = operation.input_shape
        params = (example_structure(shape, 0, full) if shape else None) or {}
        wire = on_the_wire(service, name, params, protocol)
        call = aws_requests.parse(**wire)
        if call is None or not call.parsed or call.service != service:
            failures.append(f"{protocol} {name}: {call}")
        elif call.operation != name:
            if not indistinguishable(service, protocol, wire, call):
                failures.append(f"{protocol} {name}: parsed as {call.operation}")
        elif normal(parsed_params(call, params)) != normal(params):
            failures.append(f"{protocol} {name}: {call.params!r:.300} != {params!r:.300}")
    return failures


@pytest.mark.parametrize("service", SERVICES)
def test_parse_inverts_botocore_serializers(service: str) -> None:
    supported = (aws_requests.QUERY, aws_requests.EC2, aws_requests.JSON, aws_requests.CBOR)
    supported += (aws_requests.REST_JSON, aws_requests.REST_XML)
    listed = aws_requests.protocols(service)
    assert set(listed) <= set(supported)
    failures = [f for p in listed for full in (True, False) for f in round_trip(service, p, full)]
    # The one ambiguity: S3's deprecated PutBucketNotification names two members alike.
    known = {"rest-xml PutBucketNotification"}
    assert [f for f in failures if f.partition(":")[0] not in known] == []


def test_parse_tells_elb_from_elbv2_and_events_from_scheduler() -> None:
    for service, operation, params in (
        ("elb", "DescribeLoadBalancers", {"LoadBalancerNames": ["web"]}),
        ("elbv2", "DescribeLoadBalancers", {"Names": ["web"]}),
        ("events", "PutRule", {"Name": "renew"}),
        ("scheduler", "GetSchedule", {"Name": "renew"}),
        ("cloudwatch", "DescribeAlarms", {"AlarmNames": ["cpu"]}),
        ("efs", "DescribeFileSystems", {"CreationToken": "data"}),
    ):
        for protocol in aws_requests.protocols(service):
            call = aws_requests.parse(**on_the_wire(service, operation, params, protocol))
            assert (call.service, call.operation, call.params) == (service, operation, params)


def test_parse_skips_moto_api_and_marks_what_it_cannot_read() -> None:
    assert aws_requests.parse("POST", "/moto-api/reset", "", {}, b"") is None
    unsigned = aws_requests.parse("GET", "/whatever", "", {}, b"")
    assert unsigned is not None and not unsigned.parsed
    wire = on_the_wire("sqs", "ListQueues", {}, "json")
    wire["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    del wire["headers"]["X-Amz-Target"]
    wire["body"] = b"Action=ListQueues&Version=2012-11-05"
    query_to_json_only = aws_requests.parse(**wire)
    assert "does not take the query protocol" in query_to_json_only.unparsed
    assert aws_requests.check(query_to_json_only) == []


def test_check_walks_nested_members_with_indexes() -> None:
    params = {
        "GroupId": "sg-1",
        "IpPermissions": [
            {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "::/0", "Description": "x'y"}]},
        ],
    }
    wire = on_the_wire("ec2", "AuthorizeSecurityGroupIngress", params, "ec2")
    (violation,) = aws_requests.check(aws_requests.parse(**wire))
    assert violation.member == "IpPermissions[1].IpRanges[0].Description"
    assert violation.value == '"x\'y"' and violation.rule.startswith("ec2-description")
    assert violation.source.startswith("EC2 API reference")
    assert str(violation).startswith("ec2 AuthorizeSecurityGroupIngress: IpPermissions[1]")


def test_check_coerces_query_strings_and_reports_types() -> None:
    wire = on_the_wire("iam", "ListRoles", {"MaxItems": 1001}, "query")
    (too_many,) = aws_requests.check(aws_requests.parse(**wire))
    assert (too_many.member, too_many.rule) == ("MaxItems", "max 1000")
    wire["body"] = wire["body"].replace(b"MaxItems=1001", b"MaxItems=lots")
    (not_a_number,) = aws_requests.check(aws_requests.parse(**wire))
    assert (not_a_number.rule, not_a_number.value) == ("type integer", "'lots'")


def test_violation_values_are_truncated() -> None:
    params = {"RoleName": "r" * 500, "AssumeRolePolicyDocument": "{}"}
    found = aws_requests.check(aws_requests.Call("iam", "CreateRole", params, "query"))
    assert {v.rule for v in found} == {"max 64 (500 characters)"}
    assert len(found[0].value) <= 120 and found[0].value.endswith("…")


def wsgi_environ(wire: dict[str, Any]) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": wire["method"],
        "PATH_INFO": wire["path"],
        "RAW_URI": wire["path"] + (f"?{wire['query_string']}" if wire["query_string"] else ""),
        "QUERY_STRING": wire["query_string"],
        "CONTENT_LENGTH": str(len(wire["body"])),
        "wsgi.input": io.BytesIO(wire["body"]),
    }
    for name, value in wire["headers"].items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def test_middleware_refuses_in_cbor_and_passes_the_body_on() -> None:
    """CloudWatch's preferred protocol, which boto3 does not send: the refusal must be CBOR
    the SDKs decode, and an accepted request must reach the app with its body intact."""
    seen: list[bytes] = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [])
        return [b""]

    checked = aws_requests.Checked(app)
    alarm = {"AlarmName": "", "EvaluationPeriods": 1, "ComparisonOperator": "LessThanThreshold"}
    wire = on_the_wire("cloudwatch", "PutMetricAlarm", alarm, aws_requests.CBOR)
    statuses: list[str] = []
    body = b"".join(checked(wsgi_environ(wire), lambda status, _h: statuses.append(status)))
    assert statuses == ["400 Bad Request"] and not seen
    parser = RpcV2CBORParser()
    error = parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))
    assert error["__type"] == "ValidationError"
    assert "cloudwatch PutMetricAlarm: AlarmName = '' breaks min 1" in error["message"]
    alarm["AlarmName"] = "cpu"
    wire = on_the_wire("cloudwatch", "PutMetricAlarm", alarm, aws_requests.CBOR)
    checked(wsgi_environ(wire), lambda status, _h: statuses.append(status))
    assert statuses[-1] == "200 OK" and seen == [wire["body"]]
    assert checked.checked[("cloudwatch", "PutMetricAlarm")] == 2
    assert checked.unparsed == []


def test_parse_reads_what_the_go_sdk_sends_differently() -> None:
    """x-id naming S3's operation, aws-chunked bodies, gzip-compressed CloudWatch metrics."""
    wire = on_the_wire("s3", "PutObject", {"Bucket": "b", "Key": "k", "Body": b"hi"}, "rest-xml")
    wire["query_string"] = "x-id=PutObject"
    wire["headers"]["Content-Encoding"] = "aws-chunked"
    wire["body"] = b"2;chunk-signature=0\r\nhi\r\n0;chunk-signature=0\r\nx-amz-checksum-crc32:x\r\n"
    call = aws_requests.parse(**wire)
    assert (call.operation, call.params["Body"]) == ("PutObject", b"hi")
    wire["query_string"] = "x-id=UploadPart&partNumber=1&uploadId=u"
    assert aws_requests.parse(**wire).operation == "UploadPart"
    metrics = {"Namespace": "tls", "MetricData": [{"MetricName": "days", "Value": 30.0}]}
    wire = on_the_wire("cloudwatch", "PutMetricData", metrics, "query")
    wire["headers"]["Content-Encoding"] = "gzip"
    wire["body"] = gzip.compress(wire["body"])
    assert aws_requests.parse(**wire).params == metrics
