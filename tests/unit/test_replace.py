"""The pure parts of the replacement check (scripts/emulator/replace.py) and how the plan
shows replacements; tests/integration/test_replacements.py asks the real provider."""

from __future__ import annotations

import json

from scripts import plan
from scripts.emulator import replace
from scripts.emulator.translate import ProviderSchema, Translation
from scripts.mock_runtime import Resource, run_program

VPC = "aws_vpc.network-vpc_1"
SUBNET = "aws_subnet.network-public-0_2"


def resource(type_: str, name: str, inputs: dict | None = None, id_: str = "") -> Resource:
    urn = f"urn:pulumi:dev::ecs-tls::{type_}::{name}"
    return Resource(type_, name, urn, id_, None, inputs or {}, {}, [], True)


def schema() -> ProviderSchema:
    string = {"type": "string", "optional": True}
    return ProviderSchema(
        resources={
            "aws_vpc": {
                "version": 1,
                "block": {
                    "attributes": {
                        "id": {"type": "string", "computed": True},
                        "cidr_block": string,
                        "ipv6_cidr_block": {**string, "computed": True},
                        "tags_all": {"type": ["map", "string"], "computed": True},
                    }
                },
            },
            "aws_subnet": {
                "version": 1,
                "block": {
                    "attributes": {
                        "id": {"type": "string", "computed": True},
                        "vpc_id": string,
                        "cidr_block": string,
                    }
                },
            },
        },
        provider={},
    )


def test_references_resolve_to_the_mocks_values_and_others_stay():
    config = {"a": ["${aws_vpc.v_1.id}/x", {"b": "${aws_vpc.v_1.arn}"}], "n": 3}
    assert replace.resolve_references(config, {("aws_vpc.v_1", "id"): "vpc-1"}) == {
        "a": ["vpc-1/x", {"b": "${aws_vpc.v_1.arn}"}],
        "n": 3,
    }


def test_the_state_holds_planned_values_with_stand_ins_for_what_aws_computes():
    plan_doc = {
        "planned_values": {"root_module": {"resources": [{"address": VPC, "schema_version": 1}]}},
        "resource_changes": [
            {
                "address": VPC,
                "mode": "managed",
                "type": "aws_vpc",
                "name": "network-vpc_1",
                "change": {
                    "actions": ["create"],
                    "after": {"cidr_block": "10.0.0.0/16", "instance_tenancy": "default"},
                    "after_unknown": {
                        "id": True,
                        "ipv6_cidr_block": True,
                        "tags_all": True,
                        "nested": [{"x": True}],
                    },
                },
            },
            {"address": "data.x.y", "mode": "data", "change": {"actions": ["read"]}},
        ],
    }
    state = replace.synthetic_state(plan_doc, {VPC: {"id": "vpc-123"}}, schema(), "1.11.4")
    assert state["version"] == 4 and state["terraform_version"] == "1.11.4"
    (only,) = state["resources"]
    assert only["provider"] == 'provider["registry.terraform.io/hashicorp/aws"]'
    (instance,) = only["instances"]
    assert instance["schema_version"] == 1
    assert instance["attributes"] == {
        "cidr_block": "10.0.0.0/16",
        # The provider's default, which a state from the configuration alone would lack.
        "instance_tenancy": "default",
        # The mocks' ID: what the next configuration's references resolve to.
        "id": "vpc-123",
        # A computed scalar stays null; a computed collection is empty, so the provider
        # keeps it rather than planning it unknown again.
        "ipv6_cidr_block": None,
        "tags_all": {},
    }


def test_placeholders_never_invent_a_scalar():
    assert replace.placeholder("string") is None
    assert replace.placeholder("bool") is None
    assert replace.placeholder(["set", "string"]) == []
    assert replace.placeholder(["map", "string"]) == {}


def test_provider_arguments_map_back_to_pulumi_input_names():
    subnet = resource("aws:ec2/subnet:Subnet", "s", {"cidrBlock": "10.0.0.0/20"})
    assert replace.input_name(subnet, "cidr_block") == "cidrBlock"
    assert replace.input_name(subnet, "availability_zone_id") == "availabilityZoneId"
    listener = resource("aws:lb/listener:Listener", "l", {"defaultActions": [{}]})
    assert replace.input_name(listener, "default_action") == "defaultActions"
    alarm = resource("aws:cloudwatch/metricAlarm:MetricAlarm", "a", {"name": "x"})
    assert replace.input_name(alarm, "alarm_name") == "name"


def _translation(subnet_body: dict) -> Translation:
    vpc = resource("aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.1.0.0/16"})
    subnet = resource("aws:ec2/subnet:Subnet", "network-public-0", {"cidrBlock": "x"})
    config = {
        "resource": {
            "aws_vpc": {"network-vpc_1": {"cidr_block": "10.1.0.0/16"}},
            "aws_subnet": {"network-public-0_2": subnet_body},
        }
    }
    return Translation(config, config, {VPC: vpc, SUBNET: subnet}, {}, [], {})


def _change(address: str, actions: list[str], paths: list[list]) -> dict:
    return {
        "address": address,
        "mode": "managed",
        "change": {"actions": actions, "replace_paths": paths},
    }


def test_a_forcing_argument_and_a_reference_to_a_replaced_resource_are_told_apart():
    body = {"vpc_id": "${aws_vpc.network-vpc_1.id}", "cidr_block": "10.1.0.0/20"}
    after = _translation(body)
    before = _translation({**body, "cidr_block": "10.0.0.0/20"})
    plan_doc = {
        "resource_changes": [
            _change(VPC, ["create", "delete"], [["cidr_block"]]),
            _change(SUBNET, ["delete", "create"], [["cidr_block"], ["vpc_id"]]),
        ]
    }
    found = replace.read_changes(plan_doc, before, after)
    by_name = {x.resource.name: x for x in found.values()}
    assert by_name["network-vpc"].reason() == "replace (forced by: cidrBlock)"
    assert by_name["network-public-0"].forced_by == ["cidrBlock"]
    assert by_name["network-public-0"].cascade == [("network-vpc", "vpcId")]
    assert by_name["network-public-0"].reason() == (
        "replace (forced by: cidrBlock; cascade: network-vpc vpcId)"
    )


def test_a_default_neither_configuration_sets_forces_nothing():
    # The state lacks what the provider would have filled in; its default against that
    # null is no change AWS would see.
    body = {"cidr_block": "10.0.0.0/20"}
    plan_doc = {"resource_changes": [_change(SUBNET, ["create", "delete"], [["ipv6_native"]])]}
    assert replace.read_changes(plan_doc, _translation(body), _translation(body)) == {}


def test_no_cascade_from_a_replacement_that_was_only_a_default():
    body = {"vpc_id": "${aws_vpc.network-vpc_1.id}", "cidr_block": "10.0.0.0/20"}
    plan_doc = {
        "resource_changes": [
            _change(VPC, ["create", "delete"], [["instance_tenancy"]]),
            _change(SUBNET, ["delete", "create"], [["vpc_id"]]),
        ]
    }
    assert replace.read_changes(plan_doc, _translation(body), _translation(body)) == {}


def test_what_refers_to_a_replaced_resource_is_an_update_naming_it():
    body = {"vpc_id": "${aws_vpc.network-vpc_1.id}", "cidr_block": "10.0.0.0/20"}
    after = _translation(body)
    plan_doc = {"resource_changes": [_change(SUBNET, ["update"], [])]}
    vpc_urn = after.addresses[VPC].urn
    subnet_urn = after.addresses[SUBNET].urn
    assert replace.followers(plan_doc, after, {vpc_urn}) == {
        subnet_urn: ["vpcId (new network-vpc)"]
    }
    assert replace.followers(plan_doc, after, set()) == {}


def test_updates_and_creations_are_not_replacements():
    body = {"cidr_block": "10.0.0.0/20"}
    plan_doc = {"resource_changes": [_change(SUBNET, ["update"], []), _change(VPC, ["create"], [])]}
    assert replace.read_changes(plan_doc, _translation(body), _translation(body)) == {}


def test_a_changed_generated_key_replaces_what_it_signs():
    before = run_program({"topology": "alb-envoy", "domain": "app.example.com"})
    after = run_program({"topology": "alb-envoy", "domain": "api.example.com"})
    found = {x.resource.name: x for x in replace.tls_replacements(before, after).values()}
    assert found, "a new domain must reissue the generated certificate"
    signed = [x for x in found.values() if x.resource.type.endswith(":LocallySignedCert")]
    assert signed and all(x.cascade or x.forced_by for x in signed)
    assert replace.tls_replacements(before, before) == {}


# --- how the plan shows them --------------------------------------------------------------


def _diff(replaced: tuple, note: str | None = None) -> plan.Diff:
    source = plan.Source("Pulumi.dev.yaml", {"ecs-tls:topology": "alb-envoy"}, ())
    return plan.Diff("dev", source, source, [], [], [], [], [], {}, replaced, note)


def test_a_replacement_shows_as_plus_minus_with_its_cause_in_every_format():
    ca = resource("aws:acmpca/certificateAuthority:CertificateAuthority", "service-connect-ca", {})
    subnet = resource("aws:ec2/subnet:Subnet", "network-public-0")
    d = _diff(
        (
            replace.Replacement(ca, forced_by=["certificateAuthorityConfiguration"]),
            replace.Replacement(subnet, cascade=[("network-vpc", "vpcId")]),
        ),
        note=None,
    )
    text = plan.diff_text(d)
    assert "0 to delete, 2 to replace, 0 to update" in text
    assert "Replace (2):" in text
    assert (
        "  +- certificateAuthority  service-connect-ca: "
        "replace (forced by: certificateAuthorityConfiguration)"
    ) in text
    assert "  +- subnet  network-public-0: replace (cascade: network-vpc vpcId)" in text
    # A replaced CA loses its root like a deleted one.
    assert "STATEFUL RESOURCES DELETED" in text
    assert "! certificateAuthority  service-connect-ca " in text
    assert "service-connect-ca (replaced): AWS Private CA" in text
    assert "not checked" not in text

    markdown = plan.diff_markdown(d)
    assert "2 to replace" in markdown and "**Replace** (2)" in markdown
    assert "- +- `subnet` **network-public-0**: replace (cascade: " in markdown
    assert "**service-connect-ca** (replaced): AWS Private CA" in markdown

    doc = json.loads(plan.diff_json(d))
    assert doc["replacementsNote"] is None
    assert doc["replace"][1] == {
        "urn": subnet.urn,
        "forcedBy": [],
        "cascade": [{"resource": "network-vpc", "input": "vpcId"}],
        "reason": "replace (cascade: network-vpc vpcId)",
    }
    assert doc["statefulDeleted"] == [
        {"urn": ca.urn, "note": plan.stateful_note(ca), "replaced": True}
    ]


def test_without_terraform_the_plan_says_replacements_were_not_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    source = plan.load_stack("dev")[1]
    after = plan.against_source(source, ["network.availabilityZones=3"])
    d = plan.diff("dev", source, after, replacements=True)
    assert d.replaced == ()
    assert d.replacements_note.startswith("replacements not checked (terraform not found: ")
    assert "install Terraform" in d.replacements_note
    text = plan.diff_text(d)
    assert f"# {d.replacements_note}" in text
    # The update view stays what it was.
    assert "to create, 0 to delete, 0 to replace" in text and "Update (" in text
    assert json.loads(plan.diff_json(d))["replacementsNote"] == d.replacements_note
    assert d.replacements_note in plan.diff_markdown(d)


def test_a_terraform_failure_is_one_line_without_the_configuration():
    output = (
        "╷\n│ Error: Invalid value\n│\n│   with aws_x.y,\n│   on main.tf.json line 1:\n"
        '│    1: {"secret_string": "s3cr3t -----BEGIN EC PRIVATE KEY-----\\nAAA"}\n'
        "│ bad -----BEGIN CERTIFICATE-----\nQQ\n-----END CERTIFICATE-----\n╵\n"
        "│ Error: Second -----BEGIN EC PRIVATE KEY----- abc\n"
    )
    text = replace.diagnostics(output)
    assert "\n" not in text
    assert text.startswith("Error: Invalid value (with aws_x.y,)")
    assert "s3cr3t" not in text and "AAA" not in text and "abc" not in text
    assert "Error: Second [PEM]" in text
    assert replace.diagnostics("killed") == "no error message"
