"""The certificate publisher's handler against moto's Secrets Manager, writing into a tmp dir
that stands in for the EFS access point: files, modes, atomic replacement, idempotence."""

from __future__ import annotations

import json
import os
import stat

import boto3
import pytest
from moto import mock_aws

from components.certificates import secret_document
from functions import cert_publisher
from tests.pki import make_pki

PKI = make_pki("app.example.com", "*.mesh.app.example.com")
CLIENT = make_pki("gateway", label="client")


@pytest.fixture
def secrets(monkeypatch, tmp_path):
    """Two secrets in the shape ServerCertificate stores, and the handler's environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        server = client.create_secret(
            Name="mesh-certificate",
            SecretString=secret_document(PKI.leaf_pem, PKI.chain_pem, PKI.key_pem),
        )["ARN"]
        monkeypatch.setenv("CERTIFICATE_SECRET_ARN", server)
        monkeypatch.setenv("CERTIFICATE_DIR", str(tmp_path))
        monkeypatch.delenv("CLIENT_CERTIFICATE_SECRET_ARN", raising=False)
        yield client, tmp_path


EVENT = {"caPem": PKI.root_pem, "fingerprint": "0123456789abcdef"}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_the_three_files_with_their_modes(secrets):
    client, directory = secrets
    result = cert_publisher.handler(EVENT, client=client)
    assert result["written"] == ["ca.pem", "chain.pem", "key.pem"]
    assert (directory / "ca.pem").read_text() == PKI.root_pem
    assert (directory / "chain.pem").read_text() == PKI.leaf_pem + PKI.chain_pem
    assert (directory / "key.pem").read_text() == PKI.key_pem
    assert mode(directory / "key.pem") == 0o400
    assert mode(directory / "chain.pem") == 0o444 and mode(directory / "ca.pem") == 0o444
    # No temporary file is left behind.
    assert sorted(p.name for p in directory.iterdir()) == ["ca.pem", "chain.pem", "key.pem"]


def test_a_second_run_changes_nothing_and_a_new_certificate_replaces_the_files(secrets):
    client, directory = secrets
    cert_publisher.handler(EVENT, client=client)
    before = os.stat(directory / "key.pem").st_ino
    assert cert_publisher.handler(EVENT, client=client)["written"] == []
    assert os.stat(directory / "key.pem").st_ino == before
    renewed = make_pki("app.example.com", "*.mesh.app.example.com", label="renewed")
    client.put_secret_value(
        SecretId=os.environ["CERTIFICATE_SECRET_ARN"],
        SecretString=secret_document(renewed.leaf_pem, renewed.chain_pem, renewed.key_pem),
    )
    result = cert_publisher.handler({**EVENT, "caPem": renewed.root_pem}, client=client)
    assert result["written"] == ["ca.pem", "chain.pem", "key.pem"]
    assert (directory / "key.pem").read_text() == renewed.key_pem
    assert mode(directory / "key.pem") == 0o400
    # Replaced by rename: a reader holding the old file keeps reading the old content.
    assert os.stat(directory / "key.pem").st_ino != before


def test_the_client_certificate_when_given(secrets, monkeypatch):
    client, directory = secrets
    arn = client.create_secret(
        Name="mesh-client",
        SecretString=secret_document(CLIENT.leaf_pem, PKI.chain_pem, CLIENT.key_pem),
    )["ARN"]
    monkeypatch.setenv("CLIENT_CERTIFICATE_SECRET_ARN", arn)
    result = cert_publisher.handler(EVENT, client=client)
    assert result["written"][-2:] == ["client.pem", "client-key.pem"]
    assert mode(directory / "client-key.pem") == 0o400
    assert (directory / "client.pem").read_text().startswith(CLIENT.leaf_pem)


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(secrets, monkeypatch):
    client, directory = secrets
    cert_publisher.handler(EVENT, client=client)
    old = (directory / "key.pem").read_text()
    renewed = make_pki("app.example.com", label="failing")
    client.put_secret_value(
        SecretId=os.environ["CERTIFICATE_SECRET_ARN"],
        SecretString=secret_document(renewed.leaf_pem, renewed.chain_pem, renewed.key_pem),
    )

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(cert_publisher.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        cert_publisher.handler(EVENT, client=client)
    assert (directory / "key.pem").read_text() == old
    assert sorted(p.name for p in directory.iterdir()) == ["ca.pem", "chain.pem", "key.pem"]


def test_refuses_a_bad_event_or_secret_without_showing_content(secrets):
    client, directory = secrets
    with pytest.raises(ValueError, match="caPem"):
        cert_publisher.handler({"fingerprint": "x"}, client=client)
    client.put_secret_value(
        SecretId=os.environ["CERTIFICATE_SECRET_ARN"],
        SecretString=json.dumps({"certificateChain": PKI.leaf_pem, "privateKey": "oops"}),
    )
    with pytest.raises(ValueError) as caught:
        cert_publisher.handler(EVENT, client=client)
    assert "privateKey" in str(caught.value) and "oops" not in str(caught.value)
    assert list(directory.iterdir()) == []


def test_logs_names_only(secrets, capsys):
    client, _ = secrets
    cert_publisher.handler(EVENT, client=client)
    logged = capsys.readouterr().out
    assert "BEGIN" not in logged and "key.pem" in logged
