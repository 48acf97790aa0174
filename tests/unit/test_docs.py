"""Documentation cannot drift: README and Pulumi.yaml agree with settings.CONFIG_REFERENCE."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import topologies
from scripts.config_reference import END, START, render_table
from scripts.stack_config import TYPES, cli_text
from settings import CONFIG_REFERENCE, TOPOLOGIES, parse_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_readme_configuration_table_is_generated_from_the_reference():
    table = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render_table(), "run: python -m scripts.config_reference --write"


def test_pulumi_yaml_declares_the_project_schema_keys_with_their_type_and_description():
    # The CLI requires every declared key without default in every stack and merges every
    # declared default into every stack (tests/unit/test_cli_config.py), so Pulumi.yaml
    # declares only the keys the reference marks; all others live in README's table.
    marked = {k.path: k for k in CONFIG_REFERENCE if k.project_schema}
    declared = PROJECT["config"]
    assert set(declared) == set(marked)
    for path, key in marked.items():
        assert "." not in path and key.type in TYPES, f"{path}: Pulumi.yaml cannot type it"
        assert declared[path]["type"] == key.type, path
        assert declared[path]["description"] == key.description, path
        assert "value" not in declared[path], f"{path}: use `default`, which README documents"
        if "default" in declared[path]:
            # Compared as the text the program receives, which is what README documents.
            assert cli_text(declared[path]["default"]) == key.default, path
        else:
            assert key.default == "", f"{path}: required in Pulumi.yaml, defaulted in README"
    required = {path for path, decl in declared.items() if "default" not in decl}
    assert required == {"topology", "domain"}


def test_pulumi_yaml_installs_dependencies_by_itself():
    options = PROJECT["runtime"]["options"]
    assert options["toolchain"] == "pip" and options["virtualenv"] == ".venv"


def test_readme_lists_every_topology_and_the_two_commands():
    for name in TOPOLOGIES:
        assert f"`{name}`" in README
    assert "./scripts/test" in README
    assert "pulumi up" in README


STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("path", STACK_FILES, ids=[p.name for p in STACK_FILES])
def test_every_stack_file_is_valid_configuration(path):
    config = yaml.safe_load(path.read_text())["config"]
    values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("ecs-tls:")}
    settings = parse_settings(values)
    assert topologies.REGISTRY[settings.topology] is not None, (
        f"{path.name} selects {settings.topology!r}, which is not built yet"
    )
    assert path.name in README, f"{path.name} is not listed in the README"


def test_every_topology_has_a_day_2_table_the_readme_links_to():
    day2 = (ROOT / "docs" / "day-2.md").read_text()
    for topology in TOPOLOGIES:
        section = day2.split(f"\n## {topology}\n", 1)
        assert len(section) == 2, f"docs/day-2.md has no section {topology}"
        table = section[1].split("\n## ", 1)[0]
        assert "| Event | What happens | What you see | What to do |" in table, topology
        assert f"(docs/day-2.md#{topology})" in README, topology
