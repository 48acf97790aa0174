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
from scripts.stack_config import stack_files
from tests.harness import Graph, Resource, _run
from tests.pki import make_pki

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(stack_files(ROOT))


def source_of(stack: str) -> plan.Source:
    return plan.load_stack(stack)[1]


# --- snapshots ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_matches_its_snapshot(stack):
    problem = plan.snapshot_drift(stack)
    assert problem is None, problem


def test_every_snapshot_belongs_to_a_shipped_stack():
    orphans = sorted(p.name for p in plan.SNAPSHOTS.glob("*.txt") if p.stem not in STACKS)
    assert orphans == [], f"snapshots without a stack file: {orphans}: {plan.UPDATE_HINT}"


def test_readme_diagrams_are_the_tools_output():
    readme = plan.README.read_text()
    for stack in STACKS:
        assert f"<!-- plan:{stack}:start -->" in readme, (
            f"no diagram of {stack}: {plan.UPDATE_HINT}"
        )
    assert plan.readme_with_diagrams(readme) == readme, (
        f"README.md's diagrams differ from ./scripts/plan STACK --format mermaid: "
        f"{plan.UPDATE_HINT}"
    )


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
    assert "+  aws:ssm/parameter:Parameter  unreviewed-change" in problem, problem
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
        "ecs-tls:alb_envoy:AlbEnvoy  alb-envoy",
        "    aws:lb/listener:Listener  alb-envoy-https",
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
    assert "aws:ebs/volume:Volume  nlb-certbot-data  [retainOnDelete]" in text


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
    assert any(r.type == "aws:ecs/cluster:Cluster" for r in d.kept)
    assert d.collisions == []
    stateful = {(r.type, r.name) for r, _ in d.stateful}
    assert ("aws:secretsmanager/secret:Secret", "alb-envoy-certificate") in stateful

    assert "STATEFUL RESOURCES DELETED" in out
    assert "! aws:secretsmanager/secret:Secret  alb-envoy-certificate: Secrets Manager" in out
    assert f"Create ({len(d.created)}):" in out and f"Delete ({len(d.deleted)}):" in out
    assert "  + aws:acmpca/certificateAuthority:CertificateAuthority  service-connect-ca" in out
    assert "  - aws:lb/loadBalancer:LoadBalancer  alb-envoy" in out
    assert f"Keep ({len(d.kept)}):" in out and "  = urn:pulumi:alb-envoy::" in out


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


def test_physical_name_collisions_are_reported():
    def record(name: str) -> Resource:
        inputs = {"zoneId": "Z1", "name": "app.example.com", "type": "A"}
        urn = f"urn:pulumi:dev::ecs-tls::aws:route53/record:Record::{name}"
        return Resource("aws:route53/record:Record", name, urn, "", None, inputs, {}, [], True)

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
    listener = Resource(
        "aws:lb/listener:Listener",
        "l",
        "urn:pulumi:dev::ecs-tls::aws:lb/listener:Listener::l",
        "l-1",
        None,
        {"port": 443.0, "protocol": "HTTPS", "sslPolicy": rpc.wrap_rpc_secret(hidden)},
        {"arn": "arn:l"},
        [],
        True,
    )
    task = Resource(
        "aws:ecs/taskDefinition:TaskDefinition",
        "t",
        "urn:pulumi:dev::ecs-tls::aws:ecs/taskDefinition:TaskDefinition::t",
        "t-1",
        None,
        {"containerDefinitions": rpc.wrap_rpc_secret(json.dumps([{"image": hidden}]))},
        {},
        [],
        True,
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
