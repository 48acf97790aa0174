"""The rooms of the code and which way their imports run.

    constants <- task_contents <- settings <- components <- topologies <- __main__.py

Each room imports only from the rooms to its left (and from itself). functions/ (Lambda
handlers, deployed as single files) imports nothing of the project; components and above may
read its constants. scripts/ never imports tests/. The imports are read from the source with
`ast`, so an import inside a function or under `if TYPE_CHECKING:` counts as much as one at
the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each room and the rooms of the project it may import from (itself included).
LAYERS = ("constants", "task_contents", "settings", "components", "topologies", "__main__")
ALLOWED = {room: set(LAYERS[: i + 1]) for i, room in enumerate(LAYERS)}
for room in ("components", "topologies", "__main__"):
    ALLOWED[room].add("functions")
ALLOWED["functions"] = {"functions"}
# Every top-level package or module of the project an import may name.
PROJECT = {*LAYERS, "functions", "scripts", "tests", "benchmarks", "policy", "examples"}
# Where the program's rooms live: a package, or __main__.py.
SOURCES = {room: ROOT / room for room in ALLOWED if room != "__main__"} | {
    "__main__": ROOT / "__main__.py"
}


def _python_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import of `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            # `from components import envoy` names a module of the package too.
            if module in PROJECT:
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"


def _is_pulumi(top: str) -> bool:
    return top == "pulumi" or top.startswith("pulumi_")


def _violations(
    path: Path, allowed: set[str], no_pulumi: bool = False, root: Path = ROOT
) -> list[str]:
    found = []
    for line, module in _imports(path, root):
        top = module.split(".")[0]
        if (top in PROJECT and top not in allowed) or (no_pulumi and _is_pulumi(top)):
            found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("room", list(ALLOWED))
def test_each_room_imports_only_the_rooms_below_it(room: str) -> None:
    files = _python_files(SOURCES[room])
    assert files, f"{room}: no Python files found"
    found = [v for f in files for v in _violations(f, ALLOWED[room])]
    assert found == [], f"{room} may import only {sorted(ALLOWED[room])}:\n" + "\n".join(found)


def test_task_contents_and_constants_import_no_pulumi() -> None:
    # Pure builders: what runs inside a task is built from plain values, testable without
    # the Pulumi runtime.
    files = _python_files(ROOT / "task_contents") + _python_files(ROOT / "constants")
    found = [v for f in files for v in _violations(f, set(LAYERS), no_pulumi=True)]
    assert found == [], "\n".join(found)


# benchmarks/ still borrows tests/tools.py's stop_process (a process helper of the tests).
@pytest.mark.parametrize("room", ["scripts", "policy", *ALLOWED])
def test_nothing_outside_tests_imports_tests(room: str) -> None:
    path = SOURCES.get(room, ROOT / room)
    found = [v for f in _python_files(path) for v in _violations(f, PROJECT - {"tests"})]
    assert found == [], "\n".join(found)


def test_the_checker_sees_a_backwards_import(tmp_path: Path) -> None:
    # The checks above pass on an empty list: show that a violation is reported, with the
    # file, line and module, for a plain, a nested and a `from package import module` form.
    room = tmp_path / "settings"
    room.mkdir()
    source = room / "parse.py"
    source.write_text(
        "import json\n"
        "from components.naming import physical_name\n"
        "def f():\n"
        "    from topologies import alb_envoy\n"
        "    import pulumi_random\n"
        "from . import model\n"
    )
    assert _violations(source, ALLOWED["settings"], no_pulumi=True, root=tmp_path) == [
        "settings/parse.py:2 imports components.naming",
        "settings/parse.py:4 imports topologies",
        "settings/parse.py:4 imports topologies.alb_envoy",
        "settings/parse.py:5 imports pulumi_random",
    ]
    assert _violations(source, ALLOWED["topologies"], root=tmp_path) == []
