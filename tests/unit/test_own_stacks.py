"""A user's own stack files beside the shipped ones.

The repository ships Pulumi.dev.yaml beside Pulumi.yaml and one example per topology under
examples/. Whatever other Pulumi.<name>.yaml a user keeps beside Pulumi.yaml (the place the
Pulumi CLI reads it from) is theirs: the plan reads it by name, while snapshots, the plan's
diagrams and every test of "each shipped stack" go through `scripts.plan.shipped` only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts import plan
from settings import TOPOLOGIES

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_is_the_default_stack_and_one_example_per_topology():
    stacks = plan.shipped()
    assert set(stacks) == {"dev", *TOPOLOGIES}
    assert stacks["dev"] == ROOT / "Pulumi.dev.yaml"
    for name in TOPOLOGIES:
        path = stacks[name]
        assert path == ROOT / "examples" / f"Pulumi.{name}.yaml"
        assert yaml.safe_load(path.read_text())["config"]["ecs-tls:topology"] == name
        # The first line is the command that turns the example into a stack of one's own.
        first = path.read_text().splitlines()[0]
        assert f"cp examples/Pulumi.{name}.yaml Pulumi.<your-stack>.yaml" in first, first


def test_the_repository_keeps_only_the_default_stack_beside_pulumi_yaml():
    """Beside Pulumi.yaml, where the CLI reads stack files, the repository tracks only the
    default stack: any other name there is a user's."""
    listed = subprocess.run(
        ["git", "ls-files", "--", "Pulumi.*.yaml"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    tracked = {name for name in listed.stdout.split() if (ROOT / name).is_file()}
    assert tracked == {"Pulumi.dev.yaml"}, "shipped examples belong in examples/"


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A copy of the project's stack files with a user's own beside them, and plan.py
    pointed at it (snapshots and README included)."""
    root = tmp_path / "repo"
    (root / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(ROOT / "Pulumi.dev.yaml", root / "Pulumi.dev.yaml")
    shutil.copy(ROOT / "examples" / "Pulumi.alb-envoy.yaml", root / "examples")
    # A user's stack the program refuses: nothing shipped may ever read it.
    (root / "Pulumi.mine.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  ecs-tls:topology: not-a-topology\n"
        "  ecs-tls:domain: db.example.org\n"
    )
    # A user's stack that takes an example's name, as `pulumi stack init alb-envoy` would.
    (root / "Pulumi.alb-envoy.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  ecs-tls:topology: alb-envoy\n"
        "  ecs-tls:domain: mine.example.org\n"
    )
    (root / "docs").mkdir()
    page = root / "docs" / "plan.md"
    page.write_text(f"# Plans\n\n{plan.DIAGRAMS_START}\n{plan.DIAGRAMS_END}\n")
    monkeypatch.setattr(plan, "ROOT", root)
    monkeypatch.setattr(plan, "SNAPSHOTS", root / "tests" / "snapshots")
    monkeypatch.setattr(plan, "DIAGRAMS", page)
    return root


def test_a_users_stack_is_not_shipped_and_leaves_snapshots_and_diagrams_alone(checkout):
    assert plan.shipped() == {
        "alb-envoy": checkout / "examples" / "Pulumi.alb-envoy.yaml",
        "dev": checkout / "Pulumi.dev.yaml",
    }

    written = plan.update_snapshots()

    assert sorted(p.name for p in (checkout / "tests" / "snapshots").iterdir()) == [
        "alb-envoy.txt",
        "dev.txt",
    ]
    assert not any("mine" in line for line in written), written
    diagrams = (checkout / "docs" / "plan.md").read_text()
    assert re.findall(r"<!-- plan:([\w-]+):start -->", diagrams) == ["alb-envoy", "dev"]
    assert "mine" not in diagrams
    # The snapshot is the shipped example's plan, not that of the user's file of that name.
    snapshot = (checkout / "tests" / "snapshots" / "alb-envoy.txt").read_text()
    assert snapshot.startswith("# Offline plan of stack alb-envoy (examples/Pulumi.alb-envoy.yaml)")
    assert "mine.example.org" not in snapshot and "app.example.com" in snapshot

    assert plan.check_snapshots() == []
    assert plan.main(["--check-snapshots"]) == 0


def test_a_users_stack_plans_by_name_as_the_cli_would_read_it(checkout, capsys):
    # The CLI reads Pulumi.<name>.yaml beside Pulumi.yaml: that file wins over an example.
    name, source = plan.load_stack("alb-envoy")
    assert (name, source.label) == ("alb-envoy", "Pulumi.alb-envoy.yaml")
    assert source.config["ecs-tls:domain"] == "mine.example.org"
    # A name only an example has still plans (after removing the user's file).
    (checkout / "Pulumi.alb-envoy.yaml").unlink()
    name, source = plan.load_stack("alb-envoy")
    assert (name, source.label) == ("alb-envoy", "examples/Pulumi.alb-envoy.yaml")
    # The user's broken stack fails its own plan, with the program's one-line error.
    assert plan.main(["mine"]) == 1
    err = capsys.readouterr().err
    assert "not-a-topology" in err and err.count("\n") == 1, err


def test_no_test_or_tool_lists_stack_files_itself():
    """One list of shipped stacks (scripts/plan.py, shipped): a second glob over
    Pulumi.*.yaml would pick up a user's stack again."""
    allowed = {ROOT / "scripts" / "plan.py", ROOT / "scripts" / "stack_config.py"}
    pattern = re.compile(r"""glob\(\s*f?["'][^"']*Pulumi\.""")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tests", "scripts", "benchmarks", "policy")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path not in allowed and pattern.search(path.read_text())
    ]
    assert offenders == [], f"use scripts.plan.shipped() instead: {offenders}"
