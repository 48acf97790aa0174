"""The instance drains its ECS tasks when its Auto Scaling group terminates it.

task_contents/drain_on_terminate.sh runs for real under bash, with the rendered cluster
name; on PATH, `curl` answers for the instance metadata service and the ECS agent's
introspection API from files the test controls, and `aws` records its arguments (and, like
ECS after DRAINING, stops the tasks). The script's own logic, python3 and the shell are
the real ones.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from components.ec2_capacity import drain_script
from tests.tools import require_binary

ARN = "arn:aws:ecs:eu-west-1:123456789012:container-instance/ecs-tls-dev/0123456789abcdef"

CURL = """#!/bin/bash
# Fake curl: the last argument is the URL.
state=__STATE__
url=${@: -1}
case "$url" in
  */latest/api/token) echo token ;;
  */meta-data/autoscaling/target-lifecycle-state)
    n=$(cat "$state/polls" 2>/dev/null || echo 0); echo $((n + 1)) >"$state/polls"
    if [ "$n" -ge 2 ]; then echo Terminated; else echo InService; fi ;;
  */v1/metadata) cat "$state/metadata" ;;
  */v1/tasks) cat "$state/tasks" ;;
  *) exit 22 ;;
esac
"""

AWS = """#!/bin/bash
state=__STATE__
printf '%s\\n' "$*" >>"$state/aws.log"
[ -e "$state/aws-fails" ] && exit 254
[ -e "$state/keep-running" ] && exit 0
# ECS stops the drained instance's tasks.
echo '{"Tasks": [{"KnownStatus": "STOPPED"}]}' >"$state/tasks"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "curl", CURL.replace("__STATE__", str(state)))
    _executable(bin_dir / "aws", AWS.replace("__STATE__", str(state)))
    (state / "metadata").write_text(
        json.dumps({"Cluster": "ecs-tls-dev", "ContainerInstanceArn": ARN})
    )
    (state / "tasks").write_text(json.dumps({"Tasks": [{"KnownStatus": "RUNNING"}]}))
    _executable(tmp_path / "drain.sh", drain_script("ecs-tls-dev"))
    return tmp_path


def run(box: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(box / "drain.sh")],
        env={
            **os.environ,
            "PATH": f"{box / 'bin'}:{os.environ['PATH']}",
            "DRAIN_POLL": "0",
            "DRAIN_WAIT": "5",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_waits_for_termination_then_drains_until_no_task_runs(box: Path) -> None:
    done = run(box)
    assert done.returncode == 0, done.stderr
    state = box / "state"
    # It polled until the group said Terminated, and only then acted.
    assert int((state / "polls").read_text()) == 3
    (call,) = (state / "aws.log").read_text().splitlines()
    assert call == (
        "ecs update-container-instances-state --region eu-west-1 --cluster ecs-tls-dev "
        f"--container-instances {ARN} --status DRAINING"
    )
    assert "every task stopped" in done.stderr


def test_a_refused_drain_is_one_clear_error(box: Path) -> None:
    (box / "state" / "aws-fails").touch()
    done = run(box)
    assert done.returncode == 1
    assert f"UpdateContainerInstancesState {ARN} failed" in done.stderr


def test_tasks_that_do_not_stop_are_reported_in_bounded_time(box: Path) -> None:
    (box / "state" / "keep-running").touch()
    done = run(box, DRAIN_WAIT="3")
    assert done.returncode == 1
    assert "tasks still running after 3s" in done.stderr


def test_no_container_instance_is_one_clear_error(box: Path) -> None:
    (box / "state" / "metadata").write_text("{}")
    done = run(box, DRAIN_WAIT="2")
    assert done.returncode == 1
    assert "no container instance ARN from the agent" in done.stderr
    assert not (box / "state" / "aws.log").exists()


def test_the_rendered_cluster_name_is_checked() -> None:
    with pytest.raises(ValueError):
        drain_script("ecs-tls; reboot")


def test_the_rendered_script_passes_shellcheck() -> None:
    shellcheck = require_binary("shellcheck", "apt-get install shellcheck")
    done = subprocess.run(
        [shellcheck, "-s", "bash", "-"],
        input=drain_script("ecs-tls-dev"),
        text=True,
        capture_output=True,
    )
    assert done.returncode == 0, done.stdout
