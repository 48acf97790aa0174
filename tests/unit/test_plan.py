"""The offline plan (scripts/plan.py): snapshots, switch differences, errors, diagrams, secrets.

Snapshots make every pull request show its infrastructure change in the diff, so the tests
here prove both directions: the shipped snapshots are the program's plan, and a change of
the program (or of a stack's configuration) without a snapshot update is caught.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import rpc

import topologies
from scripts import plan
from scripts.mock_runtime import Graph, Resource, _run
from scripts.pki import make_pki

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(plan.shipped())


def source_of(stack: str) -> plan.Source:
    return plan.load_stack(str(plan.shipped()[stack]))[1]


# --- snapshots ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_matches_its_snapshot(stack):
    problem = plan.snapshot_drift(stack)
    assert problem is None, problem


def test_every_snapshot_belongs_to_a_shipped_stack():
    orphans = sorted(p.name for p in plan.SNAPSHOTS.glob("*.txt") if p.stem not in STACKS)
    assert orphans == [], f"snapshots without a stack file: {orphans}: {plan.UPDATE_HINT}"


def test_docs_diagrams_are_the_tools_output():
    page = plan.DIAGRAMS.read_text()
    for stack in STACKS:
        assert f"<!-- plan:{stack}:start -->" in page, f"no diagram of {stack}: {plan.UPDATE_HINT}"
    assert plan.page_with_diagrams(page) == page, (
        f"docs/plan.md's diagrams differ from ./scripts/plan STACK --format mermaid: "
        f"{plan.UPDATE_HINT}"
    )


def test_update_snapshots_never_writes_the_readme(tmp_path, monkeypatch):
    # The README is hand-written and short; only docs/plan.md carries generated diagrams.
    readme = ROOT / "README.md"
    before = readme.read_text()
    monkeypatch.setattr(plan, "SNAPSHOTS", tmp_path / "snapshots")
    monkeypatch.setattr(plan, "DIAGRAMS", tmp_path / "plan.md")
    (tmp_path / "plan.md").write_text(f"x\n{plan.DIAGRAMS_START}\n{plan.DIAGRAMS_END}\n")
    monkeypatch.setattr(plan, "snapshot_text", lambda stack: f"{stack}\n")
    monkeypatch.setattr(plan, "diagrams_block", lambda: "diagrams")
    written = plan.update_snapshots()
    assert readme.read_text() == before
    assert not any("README" in line for line in written), written
    assert "diagrams" in (tmp_path / "plan.md").read_text()


def _with_extra_resource(build):
    """A program change: the topology also registers one more resource."""

    def builder(settings, foundation):
        result = build(settings, foundation)
        aws.ssm.Parameter(
            "unreviewed-change",
            type="String",
            value="x",
            opts=pulumi.ResourceOptions(parent=result.component),
        )
        return result

    return builder


# Made once: the harness caches graphs by the builders' id(), so a builder must live as
# long as the session for its id never to name another test's builder.
CHANGED_ALB_ENVOY = _with_extra_resource(topologies.REGISTRY["alb-envoy"])


def test_a_program_change_without_a_snapshot_update_fails(monkeypatch, capsys):
    monkeypatch.setitem(topologies.REGISTRY, "alb-envoy", CHANGED_ALB_ENVOY)

    problem = plan.snapshot_drift("dev")

    assert problem is not None
    assert "./scripts/plan --update-snapshots" in problem
    assert "+  parameter  unreviewed-change" in problem, problem
    # --check-snapshots, as CI or a developer runs it, exits 1 and says the same.
    assert plan.main(["--check-snapshots"]) == 1
    err = capsys.readouterr().err
    assert "stack dev changed without its snapshot" in err
    assert "stack service-connect" not in err  # stacks of another topology did not change


def test_a_stack_config_change_without_a_snapshot_update_fails():
    changed = plan.with_overrides(
        source_of("dev"), ["sslPolicy=ELBSecurityPolicy-TLS13-1-3-2021-06"]
    )
    text = plan.plan_text("dev", changed, plan.run(changed, "dev"))

    problem = plan.snapshot_drift("dev", text)

    assert problem is not None and plan.UPDATE_HINT in problem
    diff_lines = problem.splitlines()[1:]
    assert "-        sslPolicy: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09" in diff_lines
    assert "+        sslPolicy: ELBSecurityPolicy-TLS13-1-3-2021-06" in diff_lines
    assert len(diff_lines) < 45, "the diff in the message stays short"


def test_a_stack_without_a_snapshot_fails_with_the_command_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(plan, "SNAPSHOTS", tmp_path)
    monkeypatch.setattr(plan, "ROOT", tmp_path.parent)
    problem = plan.snapshot_drift("dev")
    assert problem is not None
    assert problem.startswith("no snapshot of stack dev") and plan.UPDATE_HINT in problem


def test_plans_are_deterministic():
    # Same configuration, same graph (the harness's cache), and a fresh run too.
    source = source_of("service-connect")
    first = plan.plan_json("service-connect", source, plan.run(source, "service-connect"))
    fresh = _run(source.config, "service-connect")
    assert plan.plan_json("service-connect", source, fresh) == first
    resources = json.loads(first)["resources"]
    assert [r["urn"] for r in resources] == sorted(r["urn"] for r in resources)


# --- the plan of one stack ---------------------------------------------------------------


def test_text_plan_shows_the_inputs_that_matter():
    text = plan.snapshot_text("dev")
    lines = text.splitlines()
    assert lines[0].startswith("# Offline plan of stack dev (Pulumi.dev.yaml): topology alb-envoy")
    for expected in (
        "albEnvoy  alb-envoy",
        "    listener  alb-envoy-https",
        "        sslPolicy: ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "        certificateArn: <certificate:alb-envoy-certificate>",
        "        action: forward <targetGroup:alb-envoy>",
        "        healthCheck.protocol: HTTPS",
        "        source: imported (certificate body and key given)",
        "      loadBalancer: <targetGroup:alb-envoy> -> envoy:8443",
        "  endpoint: https://app.example.com",
    ):
        assert expected in lines, expected
    assert any("container envoy image=docker.io/envoyproxy/envoy:" in line for line in lines)


def test_retained_resources_are_flagged():
    text = plan.snapshot_text("nlb-certbot")
    assert "volume  nlb-certbot-data  [retainOnDelete]" in text


# --- --against ---------------------------------------------------------------------------


def test_switching_alb_envoy_to_service_connect(capsys):
    assert plan.main(["alb-envoy", "--against", "service-connect"]) == 0
    out = capsys.readouterr().out

    d = plan.diff("alb-envoy", source_of("alb-envoy"), source_of("service-connect"))
    created = {(r.type, r.name) for r in d.created}
    deleted = {(r.type, r.name) for r in d.deleted}
    kept = {r.urn for r in d.kept}
    assert ("aws:acmpca/certificateAuthority:CertificateAuthority", "service-connect-ca") in created
    assert ("aws:lb/loadBalancer:LoadBalancer", "alb-envoy") in deleted
    # The foundation stays: both configurations run as the one stack.
    assert (
        "urn:pulumi:alb-envoy::ecs-tls::ecs-tls:network:Network$aws:ec2/vpc:Vpc::network-vpc"
        in kept
    )
    # The cluster stays; the alb-envoy example turns ECS Exec on, so the switch drops the
    # cluster's exec configuration in place and changes nothing else of it.
    cluster = [(r, f) for r, f in d.changed if r.type == "aws:ecs/cluster:Cluster"]
    assert cluster and all(f == ["configuration"] for _, f in cluster)
    assert not any(d.is_replaced(r) for r, _ in cluster)
    assert d.collisions == []
    stateful = {(r.type, r.name) for r, _ in d.stateful}
    assert ("aws:secretsmanager/secret:Secret", "alb-envoy-certificate") in stateful

    assert "STATEFUL RESOURCES DELETED" in out
    assert "! secret  alb-envoy-certificate: Secrets Manager" in out
    assert f"Create ({len(d.created)}):" in out and f"Delete ({len(d.deleted)}):" in out
    assert "  + certificateAuthority  service-connect-ca" in out
    assert "  - loadBalancer  alb-envoy" in out
    assert f"Keep ({len(d.kept)}):" in out and "  = logGroup  cluster" in out
    # Short type names in every section, as in the plan of one stack.
    assert not re.search(r"[a-z0-9-]+:[A-Za-z0-9_/]+:[A-Z]\w*", out)


def test_switching_back_names_the_private_ca_and_retained_volumes():
    back = plan.diff("s", source_of("service-connect"), source_of("alb-envoy"))
    notes = {r.name: note for r, note in back.stateful}
    assert "AWS Private CA" in notes["service-connect-ca"]

    leave = plan.diff("s", source_of("nlb-certbot"), source_of("alb-envoy"))
    notes = {r.type: note for r, note in leave.stateful}
    assert "stays in AWS" in notes["aws:ebs/volume:Volume"]
    assert notes["aws:efs/fileSystem:FileSystem"].startswith("EFS file system")
    assert "snapshots already taken stay" in notes["aws:dlm/lifecyclePolicy:LifecyclePolicy"]


def test_overrides_show_updates_by_input_name():
    source = source_of("dev")
    after = plan.against_source(
        source, ["sslPolicy=ELBSecurityPolicy-TLS13-1-3-2021-06", "app.desiredCount=3"]
    )
    d = plan.diff("dev", source, after)
    assert (d.created, d.deleted) == ([], [])
    changed = {r.name + "/" + r.type.rsplit(":", 1)[-1]: keys for r, keys in d.changed}
    assert changed == {
        "alb-envoy-https/Listener": ["sslPolicy"],
        "alb-envoy/Service": ["desiredCount"],
        # The alarm on healthy targets follows the desired count.
        "alb-envoy-healthy-targets/MetricAlarm": ["alarmDescription", "threshold"],
    }
    doc = json.loads(plan.diff_json(d))
    assert sorted(u["keys"] for u in doc["update"]) == [
        ["alarmDescription", "threshold"],
        ["desiredCount"],
        ["sslPolicy"],
    ]


def _resource(
    type_: str, name: str, inputs: dict, outputs: dict | None = None, id_: str | None = None
) -> Resource:
    """A custom resource of the dev stack, as the mocks record it."""
    urn = f"urn:pulumi:dev::ecs-tls::{type_}::{name}"
    return Resource(
        type_, name, urn, f"{name}-1" if id_ is None else id_, None, inputs, outputs or {}, [], True
    )


def test_physical_name_collisions_are_reported():
    def record(name: str) -> Resource:
        inputs = {"zoneId": "Z1", "name": "app.example.com", "type": "A"}
        return _resource("aws:route53/record:Record", name, inputs, id_="")

    source = source_of("dev")
    d = plan.Diff("dev", source, source, [], [], [], [], [(record("b"), record("a"))], {})
    assert "PHYSICAL-NAME COLLISIONS" in plan.diff_text(d)
    assert json.loads(plan.diff_json(d))["collisions"][0]["create"].endswith("::b")


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-stack"], "error: no stack named 'no-such-stack' found"),
        (["dev", "--against", "acme=x"], "error: ecs-tls:acme:"),
        (["dev", "--against", "topology=alb"], "error: ecs-tls:topology: 'alb' is not one of"),
        (["dev", "--against", "dev", "--against", "x=1"], "error: --against takes one"),
        (["dev", "--format", "mermaid", "--against", "dev"], "error: --format mermaid"),
    ],
)
def test_other_errors_are_one_line(capsys, args, expected):
    assert plan.main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith(expected), captured.err


def test_broken_yaml_is_one_line(tmp_path, capsys):
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config:\n  ecs-tls:topology: [alb-envoy\n")
    assert plan.main([str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not read Pulumi.broken.yaml") and err.count("\n") == 1


# --- mermaid -----------------------------------------------------------------------------

_NODE = re.compile(r'^\s+([A-Za-z0-9_]+)(\(\[|\[\[|\[\(|\[)"([^"]*)"(\]\)|\]\]|\)\]|\])$')
_EDGE = re.compile(
    r'^\s+([A-Za-z0-9_]+) (?:(?:--|-\.) "([^"]*)" (?:-->|\.->)|-->) ([A-Za-z0-9_]+)$'
)


def _check_flowchart(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Every line a node, an edge or a subgraph; edges join declared nodes."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes, edges, depth = {}, [], 0
    for line in lines[1:]:
        if m := re.match(r'^\s+subgraph ([A-Za-z0-9_]+) \["[^"]*"\]$', line):
            depth += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0
        elif m := _NODE.match(line):
            nodes[m.group(1)] = m.group(3)
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2) or "", m.group(3)))
        else:
            raise AssertionError(f"not a flowchart line: {line!r}")
    assert depth == 0
    for a, _, b in edges:
        assert a in nodes and b in nodes, (a, b)
    return nodes, edges


def test_mermaid_of_alb_envoy_shows_the_listener_and_envoy_ending_tls():
    source = source_of("dev")
    nodes, edges = _check_flowchart(plan.mermaid(plan.run(source, "dev")))
    listener = nodes["listener_alb_envoy_https"]
    assert "HTTPS :443" in listener and "ELBSecurityPolicy-TLS13" in listener
    assert "TLS ends here" in listener
    assert "Envoy sidecar: TLS ends here" in nodes["c_alb_envoy_envoy"]
    assert ("client", "TLS starts: HTTPS :443", "listener_alb_envoy_https") in edges
    assert ("tg_alb_envoy", "TLS starts again: HTTPS :8443", "c_alb_envoy_envoy") in edges


def test_mermaid_of_service_connect_and_nlb_certbot():
    nodes, edges = _check_flowchart(
        plan.mermaid(plan.run(source_of("service-connect"), "service-connect"))
    )
    assert "TLS ends here" in nodes["scproxy_service_connect_backend"]
    assert any(b == "scproxy_service_connect_backend" and "TLS starts" in t for _, t, b in edges)
    assert "AWS Private CA" in nodes["pca_service_connect_ca"]

    nodes, edges = _check_flowchart(plan.mermaid(plan.run(source_of("nlb-certbot"), "nlb-certbot")))
    assert "TLS ends here (the app)" in nodes["c_nlb_certbot_app"]
    assert any("passes through" in t for _, t, _ in edges)


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_draws_a_valid_flowchart(stack):
    nodes, edges = _check_flowchart(plan.mermaid(plan.run(source_of(stack), stack)))
    assert any(a == "client" for a, _, _ in edges), "no traffic path from the client"
    assert any("TLS ends here" in label for label in nodes.values())


# --- secrets -----------------------------------------------------------------------------


def _key_body(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_no_secret_in_any_format():
    pki = make_pki("app.example.com")
    config = {
        "aws:region": "eu-west-1",
        "ecs-tls:topology": "alb-envoy",
        "ecs-tls:domain": "app.example.com",
        "ecs-tls:certificate": json.dumps(pki.certificate_config()),
    }
    byo = plan.Source("byo", config, ("ecs-tls:certificate",))
    graph = plan.run(byo, "dev")
    outputs = [
        plan.plan_text("dev", byo, graph),
        plan.plan_markdown("dev", byo, graph),
        plan.plan_json("dev", byo, graph),
        plan.mermaid(graph),
    ]
    for before, after in ((byo, source_of("dev")), (source_of("dev"), byo)):
        d = plan.diff("dev", before, after)
        outputs += [plan.diff_text(d), plan.diff_markdown(d), plan.diff_json(d)]
    body = _key_body(pki.key_pem)
    assert body
    for text in outputs:
        for line in body:
            assert line not in text


def test_values_marked_secret_print_as_secret_in_every_format():
    """Whatever the program marks secret (an input shown, containers, an output) is masked."""
    hidden = "hunter2-do-not-print"
    listener = _resource(
        "aws:lb/listener:Listener",
        "l",
        {"port": 443.0, "protocol": "HTTPS", "sslPolicy": rpc.wrap_rpc_secret(hidden)},
        {"arn": "arn:l"},
    )
    task = _resource(
        "aws:ecs/taskDefinition:TaskDefinition",
        "t",
        {"containerDefinitions": rpc.wrap_rpc_secret(json.dumps([{"image": hidden}]))},
    )
    graph = Graph([listener, task], {"token": rpc.wrap_rpc_secret(hidden), "password": "x"})
    source = source_of("dev")
    for text in (
        plan.plan_text("dev", source, graph),
        plan.plan_markdown("dev", source, graph),
        plan.plan_json("dev", source, graph),
        plan.mermaid(graph),
    ):
        assert hidden not in text
    text = plan.plan_text("dev", source, graph)
    assert "sslPolicy: [secret]" in text and "containers: [secret]" in text
    assert "  token: [secret]" in text and "  password: [secret]" in text


# --- plan fidelity: what `pulumi preview` would see ----------------------------------------


def _stack_file(tmp_path: Path, config: dict, name: str = "mine", **top) -> Path:
    import yaml

    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({**top, "config": config}, sort_keys=False))
    return path


_BASE = {
    "aws:region": "eu-west-1",
    "ecs-tls:topology": "alb-envoy",
    "ecs-tls:domain": "app.example.com",
}


def test_an_encrypted_certificate_key_plans_with_a_stand_in(tmp_path, capsys):
    from scripts.stack_config import merged_config
    from settings import ConfigError

    pki = make_pki("app.example.com")
    mine = _stack_file(
        tmp_path,
        {
            **_BASE,
            "ecs-tls:certificate": {
                "certificatePem": pki.leaf_pem,
                "chainPem": pki.chain_pem,
                "privateKeyPem": {"secure": "v1:c3RhbmQtaW4="},
            },
        },
    )
    # Before: the ciphertext reached the program as "[secret]", which it refused as a key.
    with pytest.raises(ConfigError, match=r"certificate\.privateKeyPem"):
        _run(merged_config(plan.PROJECT_FILE, mine), "mine", ("ecs-tls:certificate",))

    _, source = plan.load_stack(str(mine))
    assert source.notes == (
        "ecs-tls:certificate.privateKeyPem: encrypted, planned with a stand-in (a generated "
        "EC secp256r1 key and a certificate with the names, dates and key type of your "
        "certificatePem, issued by a generated CA named as your certificate's issuer)",
    )
    assert plan.main([str(mine)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2] == f"# Note: {source.notes[0]}"
    assert "source: imported (certificate body and key given)" in out
    # The stand-in is made once per value: two plans of the stack are one graph.
    assert plan.load_stack(str(mine))[1].config == source.config
    # The key is generated, never the ciphertext or the user's, and never printed.
    assert _key_body(pki.key_pem)[0] not in json.dumps(source.config)
    assert "PRIVATE KEY" not in out


def test_a_stand_in_keeps_the_checks_of_the_users_certificate(tmp_path, capsys):
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    expired = make_pki(
        "app.example.com", not_before=now - timedelta(days=400), not_after=now - timedelta(days=2)
    )
    other_name = make_pki("other.example.org")
    for pki, expected in (
        (expired, "error: ecs-tls:certificate.certificatePem: expired on"),
        (other_name, "error: ecs-tls:certificate.certificatePem: covers other.example.org"),
    ):
        mine = _stack_file(
            tmp_path,
            {
                **_BASE,
                "ecs-tls:certificate": {
                    "certificatePem": pki.leaf_pem,
                    "privateKeyPem": {"secure": "v1:a2V5"},
                },
            },
        )
        assert plan.main([str(mine)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err


def test_an_encrypted_mesh_client_key_plans_with_a_stand_in_under_the_same_ca(tmp_path):
    from tests.unit.test_appmesh_efs import own_pki

    certificate, client = own_pki()
    mine = _stack_file(
        tmp_path,
        {
            **_BASE,
            "ecs-tls:topology": "appmesh-efs",
            "ecs-tls:certificate": {**certificate, "privateKeyPem": {"secure": "v1:c2VydmVy"}},
            "ecs-tls:mesh": {
                "clientCertificate": {**client, "privateKeyPem": {"secure": "v1:Y2xpZW50"}}
            },
        },
    )
    _, source = plan.load_stack(str(mine))
    assert [n.split(":")[1].split(" ")[0] for n in source.notes] == [
        "certificate.privateKeyPem",
        "mesh.clientCertificate.privateKeyPem",
    ]
    graph = plan.run(source, "mine")
    assert graph.one("aws:secretsmanager/secret:Secret", "appmesh-efs-client-certificate")


def test_an_encrypted_value_no_stand_in_fits_is_refused_in_one_line(tmp_path, capsys):
    for key in ("ecs-tls:domain", "aws:region"):
        mine = _stack_file(tmp_path, {**_BASE, key: {"secure": "v1:eA=="}})
        assert plan.main([str(mine)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {key}: encrypted, and no stand-in passes"), err
        assert err.count("\n") == 1


def test_an_encrypted_provider_value_is_not_read_by_the_program(tmp_path):
    mine = _stack_file(tmp_path, {**_BASE, "aws:secretKey": {"secure": "v1:eA=="}})
    _, source = plan.load_stack(str(mine))
    assert source.notes == (
        "aws:secretKey: encrypted, planned with a stand-in ([secret]: read by the provider, "
        "not by the program)",
    )
    assert len(plan.run(source, "mine")) > 0


def test_the_stacks_region_is_honoured(tmp_path):
    for region, partition in (("us-east-1", "aws"), ("cn-north-1", "aws-cn")):
        mine = _stack_file(tmp_path, {**_BASE, "aws:region": region})
        _, source = plan.load_stack(str(mine))
        graph = plan.run(source, "mine")
        everything = json.dumps(
            [r.inputs for r in graph] + [r.outputs for r in graph] + [graph.stack_outputs],
            default=str,
        )
        assert "eu-west-1" not in everything
        zones = {r.inputs["availabilityZone"] for r in graph.of_type("aws:ec2/subnet:Subnet")}
        assert zones == {f"{region}a", f"{region}b"}
        assert f"arn:{partition}:ecs:{region}:" in everything
        assert f".{region}.elb." in graph.stack_outputs["albDnsName"]
    text = plan.plan_text("mine", source, graph)
    assert "availabilityZone: cn-north-1a" in text


def test_an_unknown_or_missing_region_is_refused_in_one_line(tmp_path, capsys):
    for config, expected in (
        ({**_BASE, "aws:region": "eu-west-9"}, "error: aws:region: 'eu-west-9' is not a region"),
        ({k: v for k, v in _BASE.items() if k != "aws:region"}, "error: aws:region: not set"),
    ):
        assert plan.main([str(_stack_file(tmp_path, config))]) == 1
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err
    # --against key=value goes through the same check.
    assert plan.main(["dev", "--against", "aws:region=mars-1"]) == 1
    assert capsys.readouterr().err.startswith("error: aws:region: 'mars-1'")


def test_leading_zeros_stay_text_as_the_cli_keeps_them(tmp_path):
    mine = tmp_path / "Pulumi.mine.yaml"
    mine.write_text(
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  ecs-tls:topology: alb-envoy\n"
        "  ecs-tls:domain: app.example.com\n"
        "  ecs-tls:logRetentionDays: 030\n"
    )
    _, source = plan.load_stack(str(mine))
    assert source.config["ecs-tls:logRetentionDays"] == "030"  # not 24 (octal) nor 30
    # `pulumi config set --path x.y 0123` keeps the text too (pulumi/pulumi#4393).
    over = plan.with_overrides(source, ["app.image=0123", "app.desiredCount=3"])
    assert json.loads(over.config["ecs-tls:app"]) == {"image": "0123", "desiredCount": 3}


def test_an_esc_environment_is_reported_not_evaluated(tmp_path, capsys):
    mine = _stack_file(tmp_path, _BASE, environment=["team/prod", "team/shared"])
    _, source = plan.load_stack(str(mine))
    note = (
        "environment: team/prod, team/shared (Pulumi ESC) not evaluated offline: values it "
        "would set are missing from this plan"
    )
    assert source.notes == (note,)
    graph = plan.run(source, "mine")
    assert plan.plan_text("mine", source, graph).splitlines()[2] == f"# Note: {note}"
    assert f"> Note: {note}" in plan.plan_markdown("mine", source, graph)
    assert json.loads(plan.plan_json("mine", source, graph))["notes"] == [note]
    # A key the environment may set and the stack file does not: the error says so.
    missing = _stack_file(
        tmp_path,
        {"aws:region": "eu-west-1", "ecs-tls:domain": "a.example.com"},
        environment=["team/prod"],
    )
    assert plan.main([str(missing)]) == 1
    err = capsys.readouterr().err
    assert "(environment: team/prod is not evaluated offline)" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("policy", "versions"),
    [
        ("ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09", "TLS 1.2-1.3"),
        ("ELBSecurityPolicy-TLS13-1-3-2021-06", "TLS 1.3 only"),
        ("ELBSecurityPolicy-TLS13-1-0-2021-06", "TLS 1.0-1.3"),
        ("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "TLS 1.2 only"),
        ("ELBSecurityPolicy-TLS-1-1-2017-01", "TLS 1.1-1.2"),
        ("ELBSecurityPolicy-FS-1-2-Res-2020-10", "TLS 1.2 only"),
        ("ELBSecurityPolicy-2016-08", "TLS 1.0-1.2"),
        ("ELBSecurityPolicy-FS-2018-06", "TLS 1.0-1.2"),
        ("my-policy", "versions not known offline"),
    ],
)
def test_tls_versions_of_elb_policies(policy, versions):
    assert plan.policy_versions(policy) == versions


def test_the_plan_shows_tls_per_listener_target_and_container():
    dev = plan.snapshot_text("dev").splitlines()
    for expected in (
        "        tls: ends here, TLS 1.2-1.3 (ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09), "
        "certificate ACM imported",
        "        tls: none: redirect only",
        "        tls: to the target, its certificate not verified by the load balancer",
        "        tls :8443 ends here, TLS 1.2-1.3, certificate ECS secret "
        "ENVOY_TLS_CERTIFICATE_CHAIN",
    ):
        assert expected in dev, expected
    nlb = plan.snapshot_text("nlb-certbot")
    assert "tls: passes through: the target ends the client's TLS" in nlb
    assert "tls bolt ends here (Neo4j)" in nlb
    mesh = plan.snapshot_text("appmesh-efs")
    assert "clients need a certificate" in mesh and "tls to service_backend starts here" in mesh
    assert "certificate SDS /etc/envoy-tls/sds.json" in plan.snapshot_text("direct-task")


def test_a_listener_without_a_policy_shows_the_apis_default():
    listener = _resource(
        "aws:lb/listener:Listener",
        "l",
        {"port": 443.0, "protocol": "HTTPS", "certificateArn": "arn:aws:acm:x:1:certificate/y"},
        {"arn": "arn:l"},
    )
    text = dict(plan.details(listener, plan.Refs(Graph([listener]))))["tls"]
    assert text == (
        "ends here, TLS 1.0-1.2 (ELBSecurityPolicy-2016-08), certificate yours "
        "(arn:aws:acm:x:1:certificate/y)"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_section_uses_short_names(stack):
    text = plan.snapshot_text(stack)
    long_type = re.compile(r"[a-z0-9-]+:[A-Za-z0-9_/]+:[A-Z]\w*")
    assert not long_type.search(text), long_type.search(text)
    assert "urn:pulumi:" not in text


def test_short_names_that_two_types_share_carry_their_module():
    text = plan.snapshot_text("service-connect").splitlines()
    assert "ecs-tls.cluster  cluster" in text and "  ecs.cluster  cluster" in text
    assert plan.qualified_type("aws:acmpca/certificate:Certificate") == "acmpca.certificate"
    assert plan.qualified_type("tls:index/privateKey:PrivateKey") == "tls.privateKey"
