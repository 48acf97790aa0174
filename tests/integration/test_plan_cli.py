"""The offline plan as a user runs it: `./scripts/plan` and `python -m scripts.plan` in a
new process, so import errors, the wrapper and the exit codes are what a user gets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from settings import TOPOLOGIES

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The plan as a user runs it: a new interpreter, so import errors would show too."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.plan", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_stack_files_give_the_programs_and_the_clis_one_line_errors(tmp_path):
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text(
        "config:\n  aws:region: eu-west-1\n  ecs-tls:topology: alb\n"
        "  ecs-tls:domain: app.example.com\n"
    )
    assert _one_error_line(cli(str(bad))) == (
        "error: ecs-tls:topology: 'alb' is not one of: " + ", ".join(TOPOLOGIES)
    )
    missing = tmp_path / "Pulumi.missing.yaml"
    missing.write_text("config:\n  aws:region: eu-west-1\n  ecs-tls:topology: alb-envoy\n")
    assert _one_error_line(cli(str(missing), "--format", "json")) == (
        "error: validating stack config: Stack 'missing' is missing configuration value 'domain'"
    )


def test_the_wrapper_says_how_to_create_the_venv(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "plan", tmp_path / "scripts" / "plan")
    result = subprocess.run(
        [str(tmp_path / "scripts" / "plan"), "dev"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "./scripts/test" in result.stderr


def test_the_cli_plans_dev_in_a_few_seconds():
    start = time.monotonic()
    result = cli("dev", "--format", "markdown")
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### Offline plan of stack `dev`")
    assert elapsed < 10, f"./scripts/plan dev took {elapsed:.1f} s"
