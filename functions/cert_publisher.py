"""Publish the mesh's TLS files to EFS: the certificate publisher of topology appmesh-efs.

Invoked at deploy time (`aws.lambda_.Invocation`) whenever a certificate changes. Every
mesh node (the gateway and each service) has its own directory under CERTIFICATE_DIR, the
EFS access point this function mounts; each node's task mounts only its own directory,
through an access point rooted there. For each node listed in the event, the function
reads the node's secret(s) from Secrets Manager and writes into `<node>/`:

    ca.pem           the CA that Envoys trust for peers (from the event: it is public)
    chain.pem        the node's leaf and its chain, what its Envoy presents
    key.pem          its private key, mode 0400
    client.pem       with a "client" secret: the certificate the node presents as a caller
    client-key.pem   and its key, mode 0400

Every file is written to a temporary name in the same directory, flushed, given its mode
and renamed over the old one: rename within one directory is atomic on NFSv4 as on local
file systems, so a reader sees the old file or the new one, never a part. A file whose
content is already there is not touched (invocations are idempotent).

What no listed node needs any more is removed: the files of a node that left the mesh,
and those of the earlier layout where every node shared one key at the top level. Only
the file names above are ever removed.

Owner: the EFS access point maps every request to its POSIX user (Envoy's uid), so the
files belong to the user that reads them and 0400 is enough.

Environment: CERTIFICATE_DIR (a path only; no key and no ARN travels through it).
Event (public values only; the keys stay in Secrets Manager):
    {"caPem": "...", "fingerprint": "...",
     "nodes": {"<node>": {"certificate": "<secret ARN>", "client": "<secret ARN>"}}}
"client" is optional; the fingerprint only makes a new certificate change the event,
which re-invokes the function.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets

CHAIN_KEY = "certificateChain"
PRIVATE_KEY_KEY = "privateKey"
KEY_MODE = 0o400
PUBLIC_MODE = 0o444
# Only Envoy's user (the access point's POSIX user) may list or enter a node's directory.
DIRECTORY_MODE = 0o700
# A node is a directory name: a DNS label, so no path separator and no "." or "..".
NODE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FILE_NAMES = ("ca.pem", "chain.pem", "key.pem", "client.pem", "client-key.pem")


def _secret_document(client, arn: str) -> dict:
    document = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    for key in (CHAIN_KEY, PRIVATE_KEY_KEY):
        if not isinstance(document.get(key), str) or "-----BEGIN" not in document[key]:
            # The message names the field, never its content.
            raise ValueError(f"secret {arn} has no PEM field {key!r}")
    return document


def write_atomically(directory: str, name: str, content: str, mode: int) -> bool:
    """Write `content` to `directory/name` with `mode`; False when it was already there."""
    path = os.path.join(directory, name)
    data = content.encode()
    try:
        with open(path, "rb") as current:
            if current.read() == data and (os.stat(path).st_mode & 0o777) == mode:
                return False
    except FileNotFoundError:
        pass
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    # Created 0600 so the key is never readable by anyone else, even for a moment.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        # No partial file is left behind: the old file (if any) is still in place.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def publish(directory: str, files: list[tuple[str, str, int]]) -> dict:
    """Write `files` (relative name, content, mode) under `directory`."""
    written, unchanged = [], []
    for name, content, mode in files:
        folder, base = os.path.split(os.path.join(directory, name))
        (written if write_atomically(folder, base, content, mode) else unchanged).append(name)
    return {"written": written, "unchanged": unchanged}


def _node_directory(directory: str, node: str) -> str:
    path = os.path.join(directory, node)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIRECTORY_MODE)
    os.chmod(path, DIRECTORY_MODE)
    return path


def prune(directory: str, expected: set[str]) -> list[str]:
    """Remove the known files that are not `expected` (relative names such as
    `frontend/key.pem`): the old shared top-level files, a client certificate no longer
    used, every file of a node that left the mesh (and its then empty directory)."""
    removed = []
    for name in FILE_NAMES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    nodes = {name.split("/", 1)[0] for name in expected}
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if not NODE_RE.match(entry) or not os.path.isdir(path):
            continue
        for name in FILE_NAMES:
            if f"{entry}/{name}" in expected:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, name))
                removed.append(f"{entry}/{name}")
        if entry not in nodes:
            with contextlib.suppress(OSError):  # not empty: something else lives there
                os.rmdir(path)
    return removed


def _nodes(event: dict) -> dict[str, dict[str, str]]:
    nodes = event.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        raise ValueError("the event needs nodes: {node: {certificate: ARN, client: ARN}}")
    for node, arns in nodes.items():
        if not isinstance(node, str) or not NODE_RE.match(node):
            raise ValueError(f"node name {node!r} is not a DNS label")
        if not isinstance(arns, dict) or not isinstance(arns.get("certificate"), str):
            raise ValueError(f"node {node!r} needs a certificate secret ARN")
        if set(arns) - {"certificate", "client"}:
            raise ValueError(f"node {node!r} has unknown keys: {sorted(set(arns))}")
    return nodes


def handler(event, context=None, client=None):
    directory = os.environ["CERTIFICATE_DIR"]
    if not isinstance(event, dict):
        raise ValueError("the event must be an object")
    ca_pem = event.get("caPem")
    if not isinstance(ca_pem, str) or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("the event needs caPem: the CA certificate Envoys trust")
    nodes = _nodes(event)
    if client is None:
        import boto3  # the Lambda runtime's; imported here so tests can pass a client

        client = boto3.client("secretsmanager")
    # Every secret is read (and checked) before anything is written: a bad secret leaves
    # every node's files as they were.
    documents: dict[str, dict] = {}
    for arns in nodes.values():
        for arn in arns.values():
            if arn not in documents:
                documents[arn] = _secret_document(client, arn)
    for node in nodes:
        _node_directory(directory, node)
    # The CA first, in every node: a task that starts mid-way finds a CA that already
    # trusts the new chains.
    files = [(f"{node}/ca.pem", ca_pem, PUBLIC_MODE) for node in nodes]
    for node, arns in nodes.items():
        own = documents[arns["certificate"]]
        files += [
            (f"{node}/chain.pem", own[CHAIN_KEY], PUBLIC_MODE),
            (f"{node}/key.pem", own[PRIVATE_KEY_KEY], KEY_MODE),
        ]
        if "client" in arns:
            caller = documents[arns["client"]]
            files += [
                (f"{node}/client.pem", caller[CHAIN_KEY], PUBLIC_MODE),
                (f"{node}/client-key.pem", caller[PRIVATE_KEY_KEY], KEY_MODE),
            ]
    result = publish(directory, files)
    result["removed"] = prune(directory, {name for name, _, _ in files})
    result["fingerprint"] = event.get("fingerprint")
    print(json.dumps(result, sort_keys=True))  # names only: no content is logged
    return result
