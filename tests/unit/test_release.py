"""The release record: CHANGELOG.md in the Keep a Changelog 1.1.0 form, and the version of
pyproject.toml's [project] table as its latest release.

Keep a Changelog (keepachangelog.com/en/1.1.0): an `## [Unreleased]` section on top, then one
`## [version] - YYYY-MM-DD` heading per release, newest first, with `### Added`, `Changed`,
`Deprecated`, `Removed`, `Fixed` and `Security` sections. This project adds `### Upgrading`
for what replaces or deletes resources of an existing stack. Versions are Semantic
Versioning 2.0.0 (semver.org).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Upgrading", "Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")
# semver.org's grammar for a version without build metadata
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?P<rest>.*)$")
RELEASE = re.compile(r"^ - (?P<date>\d{4}-\d{2}-\d{2})(?: \[YANKED\])?$")
LINK = re.compile(r"^\[(?P<name>[^\]]+)\]: (?P<url>\S+)$")


@dataclass
class Entry:
    name: str
    line: int
    released: date | None = None
    sections: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


@dataclass
class Changelog:
    title: str
    entries: list[Entry]
    links: dict[str, str]

    @property
    def releases(self) -> list[Entry]:
        return [e for e in self.entries if e.name != "Unreleased"]


class ChangelogError(AssertionError):
    pass


def parse(text: str) -> Changelog:
    """The changelog's structure; ChangelogError names the line of anything out of form."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ChangelogError("line 1: the changelog starts with a '# ' title")
    entries: list[Entry] = []
    links: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if m := HEADING.match(line):
            entry = Entry(m["name"], number)
            if entry.name != "Unreleased":
                if not SEMVER.fullmatch(entry.name):
                    raise ChangelogError(f"line {number}: {entry.name!r} is not a semantic version")
                dated = RELEASE.match(m["rest"])
                if not dated:
                    raise ChangelogError(
                        f"line {number}: '## [{entry.name}]' needs ' - YYYY-MM-DD' after it"
                    )
                try:
                    entry.released = date.fromisoformat(dated["date"])
                except ValueError as exc:
                    raise ChangelogError(f"line {number}: {exc}") from None
            elif m["rest"].strip():
                raise ChangelogError(f"line {number}: [Unreleased] has no date")
            entries.append(entry)
        elif line.startswith("### "):
            if not entries:
                raise ChangelogError(f"line {number}: a section outside any version")
            name = line[4:].strip()
            if name not in SECTIONS:
                raise ChangelogError(f"line {number}: section {name!r} is not one of {SECTIONS}")
            if name in entries[-1].sections:
                raise ChangelogError(f"line {number}: {name} twice in {entries[-1].name}")
            entries[-1].sections.append(name)
        elif line.startswith("## "):
            raise ChangelogError(f"line {number}: a version heading is '## [version] - date'")
        elif m := LINK.match(line):
            links[m["name"]] = m["url"]
        elif entries:
            entries[-1].text.append(line)
    return Changelog(lines[0][2:], entries, links)


def key(version: str) -> tuple:
    """semver.org's precedence: numbers, then a release above its pre-releases."""
    m = SEMVER.fullmatch(version)
    assert m, version
    pre = m[4]
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in (pre or "").split("."))
    return (int(m[1]), int(m[2]), int(m[3]), pre is None, ids if pre else ())


def check(log: Changelog, version: str) -> list[str]:
    """What is wrong with `log` as the record of a project at `version`."""
    problems = []
    names = [e.name for e in log.entries]
    if not names or names[0] != "Unreleased":
        problems.append("the first section is '## [Unreleased]'")
    if names.count("Unreleased") > 1:
        problems.append("one [Unreleased] section only")
    releases = log.releases
    if not releases:
        return [*problems, "no release: add '## [x.y.z] - YYYY-MM-DD'"]
    if releases[0].name != version:
        problems.append(
            f"the latest release in CHANGELOG.md is {releases[0].name}, "
            f"pyproject.toml says {version}: they must agree"
        )
    seen = [e.name for e in releases]
    if len(set(seen)) != len(seen):
        problems.append(f"a version appears twice: {seen}")
    for newer, older in pairwise(releases):
        if key(newer.name) <= key(older.name):
            problems.append(f"{newer.name} is listed above {older.name}: newest first")
        if newer.released < older.released:
            problems.append(f"{newer.name} ({newer.released}) is dated before {older.name}")
    for entry in releases:
        if not entry.sections:
            problems.append(f"{entry.name} has no section (### Added, Changed, ...)")
        if entry.released > date.today():
            problems.append(f"{entry.name} is dated in the future ({entry.released})")
    if log.links:
        missing = [n for n in names if n not in log.links]
        if missing:
            problems.append(f"the link footer lacks {missing}")
    return problems


def project_version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["version"]


def test_pyproject_has_a_semantic_version():
    version = project_version()
    assert SEMVER.fullmatch(version), f"pyproject.toml [project] version {version!r}"


def test_the_changelogs_latest_release_is_pyprojects_version():
    log = parse((ROOT / "CHANGELOG.md").read_text())
    assert check(log, project_version()) == []


def test_a_release_that_replaces_or_deletes_says_how_to_upgrade():
    """Every release after the first changes an existing stack somewhere, so each carries
    its Upgrading notes; the first release has nothing to upgrade from."""
    log = parse((ROOT / "CHANGELOG.md").read_text())
    for entry in log.releases[:-1]:
        assert "Upgrading" in entry.sections, f"{entry.name} has no ### Upgrading section"
        assert entry.sections[0] == "Upgrading", f"{entry.name}: Upgrading comes first"


GOOD = """# Changelog

## [Unreleased]

## [1.10.0] - 2026-01-02
### Upgrading
- x
### Fixed
- y

## [1.9.0] - 2026-01-01
### Added
- z

[Unreleased]: https://example.com/compare/v1.10.0...HEAD
[1.10.0]: https://example.com/compare/v1.9.0...v1.10.0
[1.9.0]: https://example.com/releases/tag/v1.9.0
"""


def test_a_well_formed_changelog_passes():
    log = parse(GOOD)
    assert [e.name for e in log.entries] == ["Unreleased", "1.10.0", "1.9.0"]
    assert log.releases[0].sections == ["Upgrading", "Fixed"]
    assert check(log, "1.10.0") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("1.10.0] - 2026-01-02", "1.10.0]"), "needs ' - YYYY-MM-DD'"),
        (("2026-01-02", "2026-02-30"), "day is out of range"),
        (("### Fixed", "### Fixes"), "section 'Fixes' is not one of"),
        (("## [Unreleased]\n", ""), None),
        (("[1.9.0]: https://example.com/releases/tag/v1.9.0\n", ""), None),
        (("1.10.0] - 2026-01-02", "1.10] - 2026-01-02"), "is not a semantic version"),
    ],
)
def test_each_fault_is_named(change, expected):
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if expected:
        with pytest.raises(ChangelogError, match=re.escape(expected)):
            parse(text)
        return
    problems = check(parse(text), "1.10.0")
    assert problems, text


def test_a_version_out_of_step_with_pyproject_is_named():
    assert check(parse(GOOD), "1.11.0") == [
        "the latest release in CHANGELOG.md is 1.10.0, pyproject.toml says 1.11.0: they must agree"
    ]


def test_releases_go_newest_first_by_semantic_precedence():
    swapped = GOOD.replace("[1.10.0] - 2026-01-02", "[1.8.0] - 2026-01-02").replace(
        "[1.10.0]:", "[1.8.0]:"
    )
    assert "1.8.0 is listed above 1.9.0: newest first" in check(parse(swapped), "1.8.0")
    assert key("1.0.0-rc.1") < key("1.0.0") < key("1.0.1") < key("1.10.0")
