"""The type token a component registers with: this program's, or its hosting package's.

The package that hosts the components (package/__main__.py) calls `hosted_by_package`. A
hosted component carries the type token of the package's schema, `<package>:index:<Name>`,
which is the token other languages register; in a program it keeps its module's token,
so this program's URNs never change.
"""

_HOSTING_PACKAGE: list[str] = []


def hosted_by_package(package: str) -> None:
    _HOSTING_PACKAGE[:] = [package]


def component_type(module: str, name: str) -> str:
    if _HOSTING_PACKAGE:
        return f"{_HOSTING_PACKAGE[0]}:index:{name}"
    return f"ecs-tls:{module}:{name}"
