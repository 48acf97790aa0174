"""The certificate publisher's handler against moto's Secrets Manager, writing into a tmp dir
that stands in for the EFS access point: one directory per node, each showing one complete
set of files through `current`, modes, a switch of the whole set at once, idempotence,
what is removed."""

from __future__ import annotations

import json
import os
import stat
import threading

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from moto import mock_aws

from components.certificates import secret_document
from functions import cert_publisher
from scripts.pki import make_pki

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


def visible(directory) -> list[str]:
    """What readers see: each node's files through its `current` link."""
    return sorted(
        f"{node.name}/{f.name}"
        for node in directory.iterdir()
        if (node / "current").is_dir()
        for f in (node / "current").iterdir()
    )


def sets(node_directory) -> list[str]:
    return sorted(p.name for p in node_directory.iterdir() if p.name.startswith(".set-"))


def test_each_node_sees_its_own_complete_set_through_one_link(secrets):
    client, directory, arns = secrets
    result = cert_publisher.handler(event(arns), client=client)
    assert visible(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]
    assert sorted(result["written"]) == visible(directory)
    for node, pki in PKI.items():
        folder = directory / node
        assert mode(folder) == 0o700
        # A relative link, so that it resolves wherever the volume is mounted (the
        # publisher under /mnt, Envoy at /certs), and the set it names is the only one.
        link = os.readlink(folder / "current")
        assert "/" not in link and sets(folder) == [link]
        current = folder / "current"
        assert (current / "ca.pem").read_text() == ROOT_PEM
        assert (current / "chain.pem").read_text() == pki.leaf_pem + pki.chain_pem
        assert (current / "key.pem").read_text() == pki.key_pem
        assert mode(current / "key.pem") == 0o400
        assert mode(current / "chain.pem") == 0o444 and mode(current / "ca.pem") == 0o444
        assert sorted(p.name for p in folder.iterdir()) == sorted(["current", link])
    keys = {(directory / n / "current" / "key.pem").read_text() for n in PKI}
    assert len(keys) == len(PKI)


def test_a_second_run_changes_nothing_and_a_renewed_node_switches_its_set_only(secrets):
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    links = {n: os.readlink(directory / n / "current") for n in PKI}
    again = cert_publisher.handler(event(arns), client=client)
    assert again["written"] == [] and sorted(again["unchanged"]) == sorted(PKI)
    renewed = make_pki(f"backend.{NS}", label="backend-renewed")
    client.put_secret_value(SecretId=arns["backend"], SecretString=_document(renewed))
    result = cert_publisher.handler(event(arns), client=client)
    assert sorted(result["written"]) == [f"backend/{f}" for f in NODE_FILES]
    backend = directory / "backend"
    assert (backend / "current" / "key.pem").read_text() == renewed.key_pem
    assert mode(backend / "current" / "key.pem") == 0o400
    # A new set behind the link; the old set is gone.
    assert os.readlink(backend / "current") != links["backend"]
    assert sets(backend) == [os.readlink(backend / "current")]
    assert os.readlink(directory / "frontend" / "current") == links["frontend"]


def _belong_together(chain_pem: bytes, key_pem: bytes) -> bool:
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    key = load_pem_private_key(key_pem, password=None)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return leaf.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def _read_at(directory_fd: int, name: str) -> bytes:
    with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=directory_fd), "rb") as f:
        return f.read()


def test_a_reader_never_sees_a_chain_and_a_key_of_different_sets(secrets):
    """Envoy starting while the publisher runs: it resolves the node's set and reads the
    chain and the key from it. Whatever moment it picks, the two belong together."""
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    current = directory / "backend" / "current"
    stop = threading.Event()
    seen = {"complete": 0, "mixed": 0, "gone": 0}

    def read() -> None:
        while not stop.is_set():
            try:
                # The set as one lookup: a directory opened through the link.
                fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                seen["gone"] += 1  # `current` never disappears: counted to prove it
                continue
            try:
                chain, key = _read_at(fd, "chain.pem"), _read_at(fd, "key.pem")
            except FileNotFoundError:
                # This set was replaced and removed after the lookup: the next lookup
                # finds the new one. Never a part of a set.
                continue
            finally:
                os.close(fd)
            seen["complete" if _belong_together(chain, key) else "mixed"] += 1

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for i in range(15):
            renewed = make_pki(f"backend.{NS}", label=f"backend-{i}")
            client.put_secret_value(SecretId=arns["backend"], SecretString=_document(renewed))
            assert cert_publisher.handler(event(arns), client=client)["written"]
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert seen["mixed"] == 0 and seen["gone"] == 0, seen
    assert seen["complete"] > 15, seen
    assert sets(directory / "backend") == [os.readlink(current)]


def test_the_link_only_ever_names_a_complete_set(secrets):
    """Whoever lists the node's set during switches finds every file of it: a set is
    complete before the link names it."""
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    node = directory / "gateway"
    stop = threading.Event()
    incomplete: list[list[str]] = []

    def watch() -> None:
        while not stop.is_set():
            try:
                names = sorted(os.listdir(node / "current"))
            except FileNotFoundError:
                continue  # resolved to the set just removed: the next lookup finds the new
            if names and names != NODE_FILES:
                incomplete.append(names)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(15):
            renewed = make_pki("app.example.com", label=f"gateway-{i}")
            client.put_secret_value(SecretId=arns["gateway"], SecretString=_document(renewed))
            cert_publisher.handler(event(arns), client=client)
    finally:
        stop.set()
        watcher.join()
    assert incomplete == []


def test_the_client_certificate_when_given_and_its_removal(secrets):
    client, directory, arns = secrets
    shared = client.create_secret(
        Name="mesh-client",
        SecretString=secret_document(CLIENT.leaf_pem, CLIENT.chain_pem, CLIENT.key_pem),
    )["ARN"]
    result = cert_publisher.handler(event(arns, client=shared), client=client)
    for node in PKI:
        assert f"{node}/client-key.pem" in result["written"]
        current = directory / node / "current"
        assert mode(current / "client-key.pem") == 0o400
        assert (current / "client.pem").read_text().startswith(CLIENT.leaf_pem)
    # Without the client certificate, each node's next set has no client files.
    cert_publisher.handler(event(arns), client=client)
    assert visible(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]
    for node in PKI:
        assert sets(directory / node) == [os.readlink(directory / node / "current")]


def test_removes_the_earlier_layouts_and_the_files_of_a_node_that_left(secrets):
    client, directory, arns = secrets
    for name in ("chain.pem", "key.pem", "ca.pem"):  # the layout where every node shared one
        (directory / name).write_text("old")
    (directory / "gateway").mkdir(mode=0o700)
    for name in NODE_FILES:  # the layout before sets: files in the node's directory
        (directory / "gateway" / name).write_text("old")
    result = cert_publisher.handler(event(arns), client=client)
    assert sorted(result["removed"]) == sorted(NODE_FILES + [f"gateway/{f}" for f in NODE_FILES])
    assert not (directory / "key.pem").exists()
    (directory / "frontend" / "notes.txt").write_text("not ours")
    (directory / "lost+found").mkdir()
    left = {n: os.readlink(directory / n / "current") for n in ("frontend", "backend")}
    del arns["frontend"], arns["backend"]
    result = cert_publisher.handler(event(arns), client=client)
    assert sorted(result["removed"]) == sorted(
        f"{n}/{name}" for n in ("frontend", "backend") for name in ("current", left[n])
    )
    # Only the publisher's own names go; a directory holding anything else stays.
    assert not (directory / "backend").exists()
    assert sorted(p.name for p in (directory / "frontend").iterdir()) == ["notes.txt"]
    assert visible(directory) == [f"gateway/{f}" for f in NODE_FILES]
    assert (directory / "lost+found").is_dir()


def test_a_failed_write_leaves_the_old_set_visible_and_no_partial_one(secrets, monkeypatch):
    client, directory, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    gateway = directory / "gateway"
    old, link = (gateway / "current" / "key.pem").read_text(), os.readlink(gateway / "current")
    renewed = make_pki("app.example.com", label="failing")
    client.put_secret_value(SecretId=arns["gateway"], SecretString=_document(renewed))

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(cert_publisher.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        cert_publisher.handler(event(arns), client=client)
    assert (gateway / "current" / "key.pem").read_text() == old
    assert os.readlink(gateway / "current") == link
    assert sorted(p.name for p in gateway.iterdir()) == sorted(["current", link])


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


def test_the_identities_that_only_re_invoke_it_are_accepted(secrets):
    client, directory, arns = secrets
    extra = {"code": "0" * 64, "fileSystem": "fs-1", "accessPoint": "arn:aws:x"}
    cert_publisher.handler({**event(arns), **extra}, client=client)
    assert visible(directory) == [f"{n}/{f}" for n in sorted(PKI) for f in NODE_FILES]


def test_logs_names_only(secrets, capsys):
    client, _, arns = secrets
    cert_publisher.handler(event(arns), client=client)
    logged = capsys.readouterr().out
    assert "BEGIN" not in logged and "gateway/key.pem" in logged
