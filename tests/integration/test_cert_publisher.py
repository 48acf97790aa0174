"""The certificate publisher's handler against moto's Secrets Manager, writing into a tmp dir
that stands in for the EFS access point: one directory per node, files, modes, atomic
replacement, idempotence, what is removed."""

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

NS = "mesh.app.example.com"
PKI = {
    "gateway": make_pki("app.example.com", f"gateway.{NS}", label="gateway"),
    "frontend": make_pki(f"frontend.{NS}", label="frontend"),
    "backend": make_pki(f"backend.{NS}", label="backend"),
}
CLIENT = make_pki("gateway", label="client")
ROOT_PEM = PKI["gateway"].root_pem
NODE_FILES = ["ca.pem", "chain.pem", "key.pem"]


def _document(pki) -> str:
    return secret_document(pki.leaf_pem, pki.chain_pem, pki.key_pem)


@pytest.fixture
def secrets(monkeypatch, tmp_path):
    """One secret per node in the shape the topology stores, and the handler's environment."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("CERTIFICATE_DIR", str(tmp_path))
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        arns = {
            node: client.create_secret(Name=f"mesh-{node}", SecretString=_document(pki))["ARN"]
            for node, pki in PKI.items()
        }
        yield client, tmp_path, arns


def event(arns: dict[str, str], **extra) -> dict:
    nodes = {node: {"certificate": arn, **extra} for node, arn in arns.items()}
    return {"caPem": ROOT_PEM, "fingerprint": "0123456789abcdef", "nodes": nodes}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tree(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())


def test_each_node_gets_its_own_directory_key_and_certificate(secrets):
    client, directory, arns = secrets
    result = cert_publisher.handler(event(arns), client=client)
    assert tree(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]
    # The CAs first, then each node's chain and key.
    assert result["written"][:3] == [f"{n}/ca.pem" for n in PKI]
    for node, pki in PKI.items():
        folder = directory / node
        assert mode(folder) == 0o700
        assert (folder / "ca.pem").read_text() == ROOT_PEM
        assert (folder / "chain.pem").read_text() == pki.leaf_pem + pki.chain_pem
        assert (folder / "key.pem").read_text() == pki.key_pem
        assert mode(folder / "key.pem") == 0o400
        assert mode(folder / "chain.pem") == 0o444 and mode(folder / "ca.pem") == 0o444
    keys = {(directory / n / "key.pem").read_text() for n in PKI}
    assert len(keys) == len(PKI)


def test_a_second_run_changes_nothing_and_a_renewed_node_replaces_its_files_only(secrets):
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    inodes = {n: os.stat(directory / n / "key.pem").st_ino for n in PKI}
    assert cert_publisher.handler(event(arns), client=client)["written"] == []
    renewed = make_pki(f"backend.{NS}", label="backend-renewed")
    client.put_secret_value(SecretId=arns["backend"], SecretString=_document(renewed))
    result = cert_publisher.handler(event(arns), client=client)
    assert result["written"] == ["backend/chain.pem", "backend/key.pem"]
    assert (directory / "backend" / "key.pem").read_text() == renewed.key_pem
    assert mode(directory / "backend" / "key.pem") == 0o400
    # Replaced by rename: a reader holding the old file keeps reading the old content.
    assert os.stat(directory / "backend" / "key.pem").st_ino != inodes["backend"]
    assert os.stat(directory / "frontend" / "key.pem").st_ino == inodes["frontend"]


def test_the_client_certificate_when_given_and_its_removal(secrets):
    client, directory, arns = secrets
    shared = client.create_secret(
        Name="mesh-client",
        SecretString=secret_document(CLIENT.leaf_pem, CLIENT.chain_pem, CLIENT.key_pem),
    )["ARN"]
    result = cert_publisher.handler(event(arns, client=shared), client=client)
    for node in PKI:
        assert f"{node}/client-key.pem" in result["written"]
        assert mode(directory / node / "client-key.pem") == 0o400
        assert (directory / node / "client.pem").read_text().startswith(CLIENT.leaf_pem)
    result = cert_publisher.handler(event(arns), client=client)
    assert sorted(result["removed"]) == sorted(
        f"{n}/{f}" for n in PKI for f in ("client.pem", "client-key.pem")
    )
    assert tree(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]


def test_removes_the_old_shared_files_and_the_files_of_a_node_that_left(secrets):
    client, directory, arns = secrets
    for name in ("chain.pem", "key.pem", "ca.pem"):  # the layout where every node shared one
        (directory / name).write_text("old")
    cert_publisher.handler(event(arns), client=client)
    assert not (directory / "key.pem").exists()
    (directory / "frontend" / "notes.txt").write_text("not ours")
    (directory / "lost+found").mkdir()
    del arns["frontend"], arns["backend"]
    result = cert_publisher.handler(event(arns), client=client)
    assert sorted(result["removed"]) == sorted(
        f"{n}/{f}" for n in ("frontend", "backend") for f in NODE_FILES
    )
    # Only the publisher's own file names go; a directory holding anything else stays.
    assert not (directory / "backend").exists()
    assert tree(directory) == ["frontend/notes.txt"] + [f"gateway/{f}" for f in NODE_FILES]
    assert (directory / "lost+found").is_dir()


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(secrets, monkeypatch):
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    old = (directory / "gateway" / "key.pem").read_text()
    renewed = make_pki("app.example.com", label="failing")
    client.put_secret_value(SecretId=arns["gateway"], SecretString=_document(renewed))

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(cert_publisher.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        cert_publisher.handler(event(arns), client=client)
    assert (directory / "gateway" / "key.pem").read_text() == old
    assert tree(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("caPem"), "caPem"),
        (lambda e: e.pop("nodes"), "nodes"),
        (lambda e: e["nodes"].update({"../etc": e["nodes"]["gateway"]}), "not a DNS label"),
        (lambda e: e["nodes"].update({"x": {"key": "arn"}}), "certificate secret ARN"),
    ],
)
def test_refuses_a_bad_event_before_writing(secrets, change, message):
    client, directory, arns = secrets
    bad = event(arns)
    change(bad)
    with pytest.raises(ValueError, match=message):
        cert_publisher.handler(bad, client=client)
    assert list(directory.iterdir()) == []


def test_refuses_a_bad_secret_without_showing_content_or_writing(secrets):
    client, directory, arns = secrets
    client.put_secret_value(
        SecretId=arns["backend"],
        SecretString=json.dumps(
            {"certificateChain": PKI["backend"].leaf_pem, "privateKey": "oops"}
        ),
    )
    with pytest.raises(ValueError) as caught:
        cert_publisher.handler(event(arns), client=client)
    assert "privateKey" in str(caught.value) and "oops" not in str(caught.value)
    # Every secret is read before anything is written: no node got new files.
    assert list(directory.iterdir()) == []


def test_logs_names_only(secrets, capsys):
    client, _, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    logged = capsys.readouterr().out
    assert "BEGIN" not in logged and "gateway/key.pem" in logged
