"""Documentation cannot drift: README, docs/ and Pulumi.yaml agree with the program and the tree.

The README is the front door and stays short; docs/ holds the rest. Generated parts (the
configuration table, the plan's diagrams) are checked against their generators, and every
path, stack file and relative link the pages name must exist, so a rename or a deletion
fails here instead of leaving a stale page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import topologies
from scripts.config_reference import END, PAGE, START, render_table
from scripts.plan import shipped
from scripts.stack_config import TYPES, cli_text
from settings import CONFIG_REFERENCE, TOPOLOGIES, parse_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PROJECT = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_LIMIT = 30_000  # bytes: a front door, read in one sitting


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_configuration_table_is_generated_from_the_reference():
    text = PAGE.read_text()
    assert START in text and END in text, f"{_name(PAGE)} lost its generated-table markers"
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
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


def test_readme_is_a_front_door():
    size = len(README.encode())
    assert size <= README_LIMIT, f"README.md is {size} bytes: move detail under docs/"
    which = README.index("\n## Which topology\n")
    assert which < README.index("\n## The two commands\n"), "the topology guide comes first"


STACK_FILES = shipped()


@pytest.mark.parametrize("path", STACK_FILES.values(), ids=list(STACK_FILES))
def test_every_stack_file_is_valid_configuration(path):
    config = yaml.safe_load(path.read_text())["config"]
    values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("ecs-tls:")}
    settings = parse_settings(values)
    assert topologies.REGISTRY[settings.topology] is not None, (
        f"{path.name} selects {settings.topology!r}, which is not built yet"
    )
    where = str(path.relative_to(ROOT))
    assert f"`{where}`" in README, f"{where} is not listed in the README"


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_topology_has_a_page_and_a_day_2_table_both_linked(topology):
    day2 = (ROOT / "docs" / "day-2.md").read_text()
    section = day2.split(f"\n## {topology}\n", 1)
    assert len(section) == 2, f"docs/day-2.md has no section {topology}"
    table = section[1].split("\n## ", 1)[0]
    assert "| Event | What happens | What you see | What to do |" in table, topology
    assert f"(docs/day-2.md#{topology})" in README, topology
    page = ROOT / "docs" / "topologies" / f"{topology}.md"
    assert page.is_file(), f"no page docs/topologies/{topology}.md"
    assert f"(docs/topologies/{topology}.md)" in README, topology
    assert f"(../day-2.md#{topology})" in page.read_text(), topology


# --- nothing stale: what the pages name exists -------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def _layout_entries(readme: str) -> list[str]:
    """The paths README's layout block lists: the first column of each line, items split by
    commas; a line indented by two spaces names files of the directory above it, deeper
    indentation continues the description."""
    block = readme.split("\n## Layout\n", 1)[1].split("```\n", 1)[1].split("\n```", 1)[0]
    entries, folder = [], ""
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent > 2:
            continue
        first = re.split(r" {2,}", line.strip(), maxsplit=1)[0]
        for item in (part.strip() for part in first.split(",")):
            if indent == 0:
                entries.append(item)
                folder = item if item.endswith("/") else folder
            else:
                entries.append(folder + item)
    return entries


def test_layout_entries_exist():
    entries = _layout_entries(README)
    assert len(entries) > 40, entries
    missing = [e for e in entries if not (ROOT / e).exists()]
    assert missing == [], f"README's layout lists what the tree no longer has: {missing}"


def test_layout_lists_every_top_level_directory_and_every_module_it_enumerates():
    entries = set(_layout_entries(README))
    folders = {
        f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    }
    listed = {folder for folder in folders if any(e.startswith(folder) for e in entries)}
    assert folders - listed == set(), "directories missing from README's layout"
    for folder in ("components", "task_contents", "topologies", "functions"):
        files = {
            f"{folder}/{p.name}"
            for p in (ROOT / folder).iterdir()
            if p.is_file() and p.suffix in {".py", ".sh"} and p.name != "__init__.py"
        }
        assert files - entries == set(), f"{folder}/ files missing from README's layout"


# Upper-case names (Pulumi.STACK.yaml) are placeholders of a command line, not files.
STACK_NAME = re.compile(r"(?<![\w/.-])((?:examples/)?Pulumi\.(?![A-Z]+\.)[A-Za-z0-9_-]+\.yaml)")


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_stack_files_the_pages_name_exist(page):
    missing = sorted(
        name for name in set(STACK_NAME.findall(page.read_text())) if not (ROOT / name).is_file()
    )
    assert missing == [], f"{_name(page)} names stack files that do not exist: {missing}"


CODE_PATH = re.compile(
    r"`((?:constants|task_contents|components|topologies|settings|functions|scripts|tests"
    r"|benchmarks|docs|examples|\.github|\.ci)/[^`\s<>*]*)`"
)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_paths_the_pages_name_exist(page):
    # An upper-case part (examples/Pulumi.STACK.yaml) is a placeholder, not a file.
    paths = {p for p in CODE_PATH.findall(page.read_text()) if not re.search(r"[./][A-Z]+[./]", p)}
    missing = sorted(p for p in paths if not (ROOT / p.rstrip(".,:;")).exists())
    assert missing == [], f"{_name(page)} names paths that do not exist: {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except '-' and '_',
    spaces turned into '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in re.finditer(r"^#{1,6} +(.+?) *#*$", _prose(page.read_text()), re.M):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def links(page: Path) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", _prose(page.read_text()))
    return [t for t in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_resolve_to_files_and_anchors(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert broken == [], f"{_name(page)}: {broken}"


def test_slug_follows_github():
    assert slug("Topology `alb-envoy`") == "topology-alb-envoy"
    assert slug("Moving to `service-connect`") == "moving-to-service-connect"
    assert slug("What every stack gets: the foundation") == "what-every-stack-gets-the-foundation"
    assert slug("Security: threat model") == "security-threat-model"
    assert slug("Rollouts without 503s") == "rollouts-without-503s"


def test_link_checker_finds_a_broken_link_and_a_missing_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n")
    page.write_text(
        "[ok](other.md#real-heading) [file](gone.md) [anchor](other.md#not-there)\n"
        "```\n[in code](ignored.md)\n```\n[web](https://example.com/x)\n"
    )
    assert links(page) == ["other.md#real-heading", "gone.md", "other.md#not-there"]
    assert anchors(tmp_path / "other.md") == {"other", "real-heading"}


INTERNAL = re.compile(r"\bseeds?\b|\bissue #?\d+|\bwave \d+", re.I)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_internal_references_a_reader_cannot_follow(page):
    found = sorted({m.group(0) for m in INTERNAL.finditer(page.read_text())})
    assert found == [], f"{_name(page)} refers to {found}: say what is meant instead"
