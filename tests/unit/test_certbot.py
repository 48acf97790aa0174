"""Unit tests of the certbot argv builder and the copier's environment (no processes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components import certbot
from components.certbot import (
    CertbotSpec,
    CertificateLayout,
    certbot_args,
    certbot_image,
    copier_command,
    copier_environment,
    copy_script,
    live_dir,
)

STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
SPEC = CertbotSpec(email="ops@example.com", domain="db.example.com", directory_url=STAGING)


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
    assert _value(args, "--cert-name") == "db.example.com"
    assert _value(args, "--server") == STAGING
    assert _value(args, "--key-type") == "ecdsa"
    assert _value(args, "--elliptic-curve") == "secp256r1"
    assert _value(args, "--preferred-challenges") == "dns-01"
    assert "--dns-route53" in args
    for flag in ("--standalone", "--http-01-port", "--http-01-address", "--preferred-profile"):
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
    assert certbot_image("http-01") == f"certbot/certbot:v{certbot.CERTBOT_VERSION}"
    assert certbot_image("dns-01") == f"certbot/dns-route53:v{certbot.CERTBOT_VERSION}"
    assert certbot.CERTBOT_VERSION == "5.8.0"
    with pytest.raises(ValueError, match=r"^challenge: "):
        certbot_image("tls-alpn-01")
    assert ":" in certbot.COPIER_IMAGE and not certbot.COPIER_IMAGE.endswith(":latest")


def test_copier_runs_the_shipped_script_inline() -> None:
    script = copy_script()
    assert copier_command() == ["sh", "-c", script]
    assert script.startswith("#!/bin/sh\n")
    assert "set -eu" in script
    for variable in ("SOURCE_DIR", "TARGET_DIR", "SCOPES", "CERT_FILE", "KEY_FILE", "OWNER"):
        assert variable in script
    # Plain POSIX sh: no bashisms that busybox ash or dash would reject.
    for bashism in ("[[", "function ", "pipefail", "local ", "<<<"):
        assert bashism not in script, bashism


def test_copier_environment_for_neo4j() -> None:
    env = copier_environment(CertificateLayout(), "db.example.com")
    assert env == {
        "SOURCE_DIR": "/etc/letsencrypt/live/db.example.com",
        "TARGET_DIR": "/ssl",
        "SCOPES": "bolt https",
        "CERT_FILE": "public.crt",
        "KEY_FILE": "private.key",
        "OWNER": "7474:7474",
    }
    assert env["SOURCE_DIR"] == live_dir("db.example.com")


def test_copier_environment_follows_layout_and_config_dir() -> None:
    layout = CertificateLayout(
        scopes=("bolt",), cert_file="tls.crt", key_file="tls.key", target_dir="/certs/", owner=None
    )
    env = copier_environment(layout, "db.example.com", config_dir="/mnt/acme")
    assert env == {
        "SOURCE_DIR": "/mnt/acme/live/db.example.com",
        "TARGET_DIR": "/certs",
        "SCOPES": "bolt",
        "CERT_FILE": "tls.crt",
        "KEY_FILE": "tls.key",
    }
    # The live directory is where certbot_args' --cert-name puts the files.
    spec = replace(SPEC, config_dir="/mnt/acme")
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
        copier_environment(replace(CertificateLayout(), **change), "db.example.com")


def test_copier_environment_refuses_bad_domain() -> None:
    with pytest.raises(ValueError, match=r"^domain: "):
        copier_environment(CertificateLayout(), "../etc")
    with pytest.raises(ValueError, match=r"^config_dir: "):
        copier_environment(CertificateLayout(), "db.example.com", config_dir="relative")
