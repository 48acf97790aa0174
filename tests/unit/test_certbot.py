"""Unit tests of the certbot command builders and the copier's environment (no processes)."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import replace

import pytest

from task_contents import certbot
from task_contents.certbot import (
    DEPLOY_HOOK,
    LOCK_FILE_NAME,
    RENEWAL_IMAGE,
    SHELL_ENTRY_POINT,
    CertbotSpec,
    CertificateLayout,
    certbot_args,
    certbot_command,
    certbot_image,
    copier_command,
    copier_environment,
    copy_script,
    hook_program,
    lineage_name,
    live_dir,
    lock_file,
    renewal_command,
    renewal_environment,
    restart_pending_file,
)

STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
SPEC = CertbotSpec(email="ops@example.com", domain="db.example.com", directory_url=STAGING)
CLUSTER_ARN = "arn:aws:ecs:eu-west-1:123456789012:cluster/ecs-tls"


def _value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, (flag, args)
    return args[args.index(flag) + 1]


def test_defaults_ask_for_a_dns01_certificate_non_interactively() -> None:
    args = certbot_args(SPEC)
    assert args[0] == "certonly"
    for flag in ("--non-interactive", "--agree-tos", "--keep-until-expiring", "--no-eff-email"):
        assert args.count(flag) == 1, flag
    assert _value(args, "-m") == "ops@example.com"
    assert _value(args, "-d") == "db.example.com"
    assert _value(args, "--cert-name") == "db.example.com-staging"
    assert _value(args, "--server") == STAGING
    assert _value(args, "--key-type") == "ecdsa"
    assert _value(args, "--elliptic-curve") == "secp256r1"
    assert _value(args, "--preferred-challenges") == "dns-01"
    assert "--dns-route53" in args
    for flag in (
        "--standalone",
        "--http-01-port",
        "--http-01-address",
        "--preferred-profile",
        "--deploy-hook",
        "--force-renewal",
        "--break-my-certs",
    ):
        assert flag not in args
    assert all(isinstance(a, str) for a in args)


def test_state_directories_live_under_config_dir() -> None:
    args = certbot_args(replace(SPEC, config_dir="/mnt/acme/"))
    assert _value(args, "--config-dir") == "/mnt/acme"
    assert _value(args, "--work-dir") == "/mnt/acme/.work"
    assert _value(args, "--logs-dir") == "/mnt/acme/.logs"
    default = certbot_args(SPEC)
    assert _value(default, "--config-dir") == "/etc/letsencrypt"
    assert _value(default, "--work-dir") == "/etc/letsencrypt/.work"


def test_http01_uses_the_standalone_server_on_the_given_port() -> None:
    args = certbot_args(replace(SPEC, challenge="http-01", http_port=8080))
    assert "--standalone" in args
    assert _value(args, "--preferred-challenges") == "http-01"
    assert _value(args, "--http-01-port") == "8080"
    assert "--dns-route53" not in args
    assert "--http-01-address" not in args  # every interface: the NLB reaches the task
    local = certbot_args(replace(SPEC, challenge="http-01", http_address="127.0.0.1"))
    assert _value(local, "--http-01-address") == "127.0.0.1"


def test_profile_is_passed_only_when_set() -> None:
    assert "--preferred-profile" not in certbot_args(SPEC)
    args = certbot_args(replace(SPEC, preferred_profile="tlsserver"))
    assert _value(args, "--preferred-profile") == "tlsserver"
    assert "--required-profile" not in args


def test_rsa_keys_get_no_curve() -> None:
    args = certbot_args(replace(SPEC, key_type="rsa"))
    assert _value(args, "--key-type") == "rsa"
    assert "--elliptic-curve" not in args


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": ""}, "email"),
        ({"email": "ops"}, "email"),
        ({"email": "ops @example.com"}, "email"),
        ({"email": "--help@example.com"}, "email"),
        ({"domain": ""}, "domain"),
        ({"domain": "localhost"}, "domain"),
        ({"domain": "*.example.com"}, "domain"),
        ({"domain": "DB.example.com"}, "domain"),
        ({"domain": "db.example.com."}, "domain"),
        ({"domain": "-db.example.com"}, "domain"),
        ({"domain": "db..example.com"}, "domain"),
        ({"domain": "db/x.example.com"}, "domain"),
        ({"directory_url": "http://acme.example.com/dir"}, "directory_url"),
        ({"directory_url": "staging"}, "directory_url"),
        ({"directory_url": "https://acme.example.com/ dir"}, "directory_url"),
        ({"challenge": "tls-alpn-01"}, "challenge"),
        ({"challenge": "DNS-01"}, "challenge"),
        ({"http_port": 0}, "http_port"),
        ({"http_port": 65536}, "http_port"),
        ({"http_port": "80"}, "http_port"),
        ({"http_port": True}, "http_port"),
        ({"config_dir": "etc/letsencrypt"}, "config_dir"),
        ({"config_dir": "/etc/../tmp"}, "config_dir"),
        ({"config_dir": "/etc/lets encrypt"}, "config_dir"),
        ({"preferred_profile": ""}, "preferred_profile"),
        ({"preferred_profile": "--required-profile"}, "preferred_profile"),
        ({"preferred_profile": "tls server"}, "preferred_profile"),
        ({"key_type": "ed25519"}, "key_type"),
        ({"http_address": "0.0.0.0 --foo"}, "http_address"),
        ({"http_address": ""}, "http_address"),
    ],
)
def test_bad_input_is_refused(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        certbot_args(replace(SPEC, **change))


def test_images_are_pinned_to_the_tested_certbot_version() -> None:
    # The tag names the version; constants/images.py adds the digest.
    assert certbot_image("http-01").startswith(f"certbot/certbot:v{certbot.CERTBOT_VERSION}@")
    assert certbot_image("dns-01").split("@")[0] == (
        f"certbot/dns-route53:v{certbot.CERTBOT_VERSION}"
    )
    assert certbot.CERTBOT_VERSION == "5.8.0"
    with pytest.raises(ValueError, match=r"^challenge: "):
        certbot_image("tls-alpn-01")
    assert ":" in certbot.COPIER_IMAGE and not certbot.COPIER_IMAGE.endswith(":latest")


def test_copier_runs_the_shipped_script_inline() -> None:
    script = copy_script()
    assert copier_command() == ["sh", "-c", script]
    assert script.startswith("#!/bin/sh\n")
    assert "set -eu" in script
    for variable in (
        "DOMAIN",
        "SOURCE_DIR",
        "TARGET_DIR",
        "SCOPES",
        "CERT_FILE",
        "KEY_FILE",
        "OWNER",
    ):
        assert variable in script
    # Plain POSIX sh: no bashisms that busybox ash or dash would reject.
    for bashism in ("[[", "pipefail", "local ", "<<<"):
        assert bashism not in script, bashism
    # bash's "function f {" / "function f() {"; awk's "function f(a, b) {" is fine.
    assert not re.search(r"\bfunction\s+\w+\s*(\(\s*\))?\s*\{", script)


def test_copier_environment_for_neo4j() -> None:
    env = copier_environment(CertificateLayout(), SPEC)
    assert env == {
        "DOMAIN": "db.example.com",
        "SOURCE_DIR": "/etc/letsencrypt/live/db.example.com-staging",
        "TARGET_DIR": "/ssl",
        "SCOPES": "bolt https",
        "CERT_FILE": "public.crt",
        "KEY_FILE": "private.key",
        "OWNER": "7474:7474",
    }
    assert env["SOURCE_DIR"] == live_dir(SPEC)


def test_the_copier_waits_only_when_asked() -> None:
    assert "WAIT_SECONDS" not in copier_environment(CertificateLayout(), SPEC)
    env = copier_environment(CertificateLayout(), SPEC, certbot.COPIER_WAIT_SECONDS)
    assert env["WAIT_SECONDS"] == str(certbot.COPIER_WAIT_SECONDS)
    for bad in (-1, 3601, True, "60"):
        with pytest.raises(ValueError, match="wait_seconds"):
            copier_environment(CertificateLayout(), SPEC, bad)


def test_certbot_runs_as_a_fixed_non_root_user() -> None:
    uid, gid = (int(x) for x in certbot.CERTBOT_USER.split(":"))
    assert (uid, gid) == (certbot.CERTBOT_UID, certbot.CERTBOT_GID)
    assert uid >= 1000 and gid >= 1000, "not a system user, not root"
    assert CertificateLayout().owner != certbot.CERTBOT_USER, "certbot owns none of the app's"


def test_copier_environment_follows_layout_and_config_dir() -> None:
    layout = CertificateLayout(
        scopes=("bolt",), cert_file="tls.crt", key_file="tls.key", target_dir="/certs/", owner=None
    )
    spec = replace(SPEC, config_dir="/mnt/acme", directory_url=PRODUCTION)
    env = copier_environment(layout, spec)
    assert env == {
        "DOMAIN": "db.example.com",
        "SOURCE_DIR": "/mnt/acme/live/db.example.com-production",
        "TARGET_DIR": "/certs",
        "SCOPES": "bolt",
        "CERT_FILE": "tls.crt",
        "KEY_FILE": "tls.key",
    }
    # The live directory is where certbot_args' --cert-name puts the files.
    args = certbot_args(spec)
    assert env["SOURCE_DIR"] == f"{_value(args, '--config-dir')}/live/{_value(args, '--cert-name')}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scopes": ()}, "scopes"),
        ({"scopes": ("bolt", "bolt")}, "scopes"),
        ({"scopes": ("bolt/x",)}, "scopes"),
        ({"scopes": ("..",)}, "scopes"),
        ({"scopes": ("bolt https",)}, "scopes"),
        ({"scopes": ["bolt"]}, "scopes"),
        ({"cert_file": "a/b.crt"}, "cert_file"),
        ({"key_file": ""}, "key_file"),
        ({"key_file": "public.crt"}, "key_file"),
        ({"target_dir": "ssl"}, "target_dir"),
        ({"target_dir": "/"}, "target_dir"),
        ({"owner": "neo4j"}, "owner"),
        ({"owner": "7474:"}, "owner"),
    ],
)
def test_copier_environment_refuses_bad_layouts(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        copier_environment(replace(CertificateLayout(), **change), SPEC)


def test_copier_environment_refuses_a_bad_spec() -> None:
    with pytest.raises(ValueError, match=r"^domain: "):
        copier_environment(CertificateLayout(), replace(SPEC, domain="../etc"))
    with pytest.raises(ValueError, match=r"^config_dir: "):
        copier_environment(CertificateLayout(), replace(SPEC, config_dir="relative"))
    with pytest.raises(ValueError, match=r"^directory_url: "):
        copier_environment(CertificateLayout(), replace(SPEC, directory_url="staging"))


# --------------------------------------------------------------------------- lineage per server


def test_each_acme_server_has_its_own_lineage() -> None:
    assert lineage_name("db.example.com", STAGING) == "db.example.com-staging"
    assert lineage_name("db.example.com", PRODUCTION) == "db.example.com-production"
    custom = lineage_name("db.example.com", "https://acme.example.org/directory")
    assert custom.startswith("db.example.com-") and len(custom) == len("db.example.com-") + 12
    assert custom[len("db.example.com-") :].isalnum()
    # Stable across runs (no salt), distinct per URL, including another port of one host.
    assert custom == lineage_name("db.example.com", "https://acme.example.org/directory")
    names = {
        lineage_name("db.example.com", url)
        for url in (
            STAGING,
            PRODUCTION,
            "https://acme.example.org/directory",
            "https://acme.example.org:8443/directory",
            "https://127.0.0.1:14000/dir",
        )
    }
    assert len(names) == 5


def test_the_cert_name_and_the_copier_follow_the_server() -> None:
    for url, suffix in ((STAGING, "staging"), (PRODUCTION, "production")):
        spec = replace(SPEC, directory_url=url)
        assert _value(certbot_args(spec), "--cert-name") == f"db.example.com-{suffix}"
        env = copier_environment(CertificateLayout(), spec)
        assert env["SOURCE_DIR"] == f"/etc/letsencrypt/live/db.example.com-{suffix}"
        assert env["SOURCE_DIR"] == live_dir(spec)


@pytest.mark.parametrize(
    ("domain", "url", "field"),
    [
        ("DB.example.com", STAGING, "domain"),
        ("db.example.com", "http://acme.example.com/dir", "directory_url"),
        ("db.example.com", "production", "directory_url"),
    ],
)
def test_lineage_name_refuses_bad_input(domain: str, url: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        lineage_name(domain, url)


def test_a_lineage_name_must_fit_in_a_file_name() -> None:
    label = "a" * 63
    longest = ".".join([label, label, label, "a" * 61])  # 253 characters: a valid DNS name
    assert len(longest) == 253
    with pytest.raises(ValueError, match=r"^domain: .*certificate name"):
        lineage_name(longest, PRODUCTION)
    with pytest.raises(ValueError, match=r"^domain: "):
        certbot_args(replace(SPEC, domain=longest))
    fits = ".".join([label, label, "a" * 50, "example"])
    assert len(lineage_name(fits, PRODUCTION)) <= 250


# --------------------------------------------------------------------------- lock and commands


def test_the_issuer_task_runs_certbot_under_the_lock_without_a_hook() -> None:
    command = certbot_command(SPEC)
    script, name, lock, executable, *args = command
    assert SHELL_ENTRY_POINT == ("sh", "-c")
    assert name == "certbot-init"
    assert lock == lock_file() == f"/etc/letsencrypt/{LOCK_FILE_NAME}"
    assert executable == "certbot"
    assert args == certbot_args(SPEC)  # one builder for the request
    assert "--deploy-hook" not in args
    # Locks fd 9 opened for writing (an exclusive lock over NFS needs it) and keeps it open
    # across the exec, with the "flock FD" form busybox and util-linux both accept.
    assert script.splitlines() == [
        'mkdir -p "${1%/*}" || exit 1',
        'exec 9>>"$1" || exit 1',
        "flock 9 || exit 1",
        "shift",
        'exec "$@"',
    ]


def test_the_lock_lives_with_the_state_and_is_not_certbots_own() -> None:
    spec = replace(SPEC, config_dir="/mnt/acme/")
    assert certbot_command(spec)[2] == "/mnt/acme/.certbot-run.lock" == lock_file("/mnt/acme")
    assert LOCK_FILE_NAME != ".certbot.lock"  # certbot's own lock: fcntl, interacts over NFS
    assert restart_pending_file("/mnt/acme") == "/mnt/acme/.restart-pending"
    with pytest.raises(ValueError, match=r"^config_dir: "):
        lock_file("relative")


def test_the_renewal_task_adds_only_the_deploy_hook() -> None:
    command = renewal_command(SPEC)
    script, name, lock, pending, program, executable, *args = command
    assert name == "certbot-renewal"
    assert lock == lock_file()
    assert pending == restart_pending_file()
    assert program == hook_program()
    assert executable == "certbot"
    assert args == [*certbot_args(SPEC), "--deploy-hook", DEPLOY_HOOK]
    assert args == certbot_args(SPEC, deploy_hook=DEPLOY_HOOK)
    # The hook line is short and single-line (certbot saves it in renewal/<name>.conf); the
    # program travels in the environment the wrapper exports.
    assert DEPLOY_HOOK == 'python3 -c "$ECS_RESTART_PROGRAM"'
    lines = script.splitlines()
    assert lines[:6] == [
        "ECS_RESTART_PENDING=$2 ECS_RESTART_PROGRAM=$3",
        "export ECS_RESTART_PENDING ECS_RESTART_PROGRAM",
        'mkdir -p "${1%/*}" || exit 1',
        'exec 9>>"$1" || exit 1',
        "flock 9 || exit 1",
        "shift 3",
    ]
    # After certbot, whatever its status: a restart a failed hook left behind is retried.
    assert lines[6:] == [
        '"$@"',
        "status=$?",
        'python3 -c "$ECS_RESTART_PROGRAM" || status=1',
        'exit "$status"',
    ]
    assert certbot_image("dns-01") == RENEWAL_IMAGE  # ships boto3 for the hook


def test_renewal_keeps_the_spec_for_both_challenges() -> None:
    http = replace(SPEC, challenge="http-01")
    assert renewal_command(http)[6:-2] == certbot_args(http)
    assert "--standalone" in renewal_command(http)


@pytest.mark.parametrize("hook", ["", "  ", "python3 -c 'x'\nrm -rf /", 42])
def test_a_deploy_hook_must_be_one_line(hook: object) -> None:
    with pytest.raises(ValueError, match=r"^deploy_hook: "):
        certbot_args(SPEC, deploy_hook=hook)


def test_the_hook_program_is_standalone() -> None:
    """It runs with the image's python3: the standard library and boto3 only."""
    source = hook_program()
    tree = ast.parse(source)
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore"}
    assert modules <= allowed, modules - allowed
    assert 'if __name__ == "__main__":' in source  # true under python3 -c


def test_renewal_environment_names_the_service() -> None:
    env = renewal_environment(CLUSTER_ARN, "nlb-certbot-1a2b3c4")
    assert env == {"ECS_CLUSTER": CLUSTER_ARN, "ECS_SERVICE": "nlb-certbot-1a2b3c4"}
    gov = "arn:aws-us-gov:ecs:us-gov-west-1:123456789012:cluster/x"
    assert renewal_environment(gov, "db")["ECS_CLUSTER"] == gov


@pytest.mark.parametrize(
    ("cluster", "service", "field"),
    [
        ("ecs-tls", "db", "cluster_arn"),  # the hook takes the region from the ARN
        ("arn:aws:ecs:eu-west-1:123456789012:service/ecs-tls/db", "db", "cluster_arn"),
        (CLUSTER_ARN, "", "service_name"),
        (CLUSTER_ARN, "db service", "service_name"),
        (CLUSTER_ARN, "arn:aws:ecs:eu-west-1:123456789012:service/ecs-tls/db", "service_name"),
    ],
)
def test_renewal_environment_refuses_bad_values(cluster: str, service: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        renewal_environment(cluster, service)


def test_the_copier_checks_the_expiry_without_openssl() -> None:
    script = copy_script()
    assert "DOMAIN" in script
    # busybox/alpine has no openssl: only comments may name it.
    assert all(line.lstrip().startswith("#") for line in script.splitlines() if "openssl" in line)
    for tool in ("base64 -d", "od -An -v -tu1", "date -u +%Y%m%d%H%M%S"):
        assert tool in script, tool
