"""Documentation cannot drift: README and Pulumi.yaml agree with settings.CONFIG_REFERENCE."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import topologies
from scripts.config_reference import END, START, render_table
from settings import CONFIG_REFERENCE, TOPOLOGIES, parse_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())


def test_readme_configuration_table_is_generated_from_the_reference():
    table = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render_table(), "run: python -m scripts.config_reference --write"


def test_pulumi_yaml_declares_every_scalar_key_with_its_type_and_description():
    scalar = {k.path: k for k in CONFIG_REFERENCE if "." not in k.path and k.type != "object"}
    scalar.pop("services")  # a list of objects: Pulumi's schema cannot type its items
    declared = PROJECT["config"]
    assert set(declared) == set(scalar)
    for path, key in scalar.items():
        assert declared[path]["type"] == key.type, path
        assert declared[path]["description"] == key.description, path


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
