"""Publish the mesh's TLS files to EFS: the certificate publisher of topology appmesh-efs.

Invoked at deploy time (`aws.lambda_.Invocation`) whenever a published file, this code or
the file system changes. Every mesh node (the gateway and each service) has its own
directory under CERTIFICATE_DIR, the EFS access point this function mounts; each node's
task mounts only its own directory, through an access point rooted there. For each node
listed in the event, the function reads the node's secret(s) from Secrets Manager and
publishes one set of files, which Envoy reads as `<node>/current/<file>`:

    ca.pem           the root CA(s) Envoys trust for peers (from the event: it is public;
                     during a CA rotation the mesh's root and the other one)
    chain.pem        the node's leaf and its chain, what its Envoy presents
    key.pem          its private key, mode 0400
    client.pem       with a "client" secret: the certificate the node presents as a caller
    client-key.pem   and its key, mode 0400

The files of a node change together: a new set is written into a new directory
`<node>/.set-<random>`, flushed, and `<node>/current` (a relative symlink) is switched to it
by one rename. Rename is atomic on NFSv4 as on local file systems, so whoever resolves
`current` finds the old set or the new one, complete, never a chain from one and a key from
the other. The old set's directory is removed afterwards. A set whose content is already
published is not touched (invocations are idempotent).

What no listed node needs any more is removed: the files of a node that left the mesh,
and those of the earlier layouts (the files directly in `<node>/`, and at the top level
where every node shared one key). Only the names above, `current` and `.set-*`
directories holding only those names are ever removed.

Owner: the EFS access point maps every request to its POSIX user (Envoy's uid), so the
files belong to the user that reads them and 0400 is enough.

Environment: CERTIFICATE_DIR (a path only; no key and no ARN travels through it).
Event (public values only; the keys stay in Secrets Manager):
    {"caPem": "...", "fingerprint": "...",
     "nodes": {"<node>": {"certificate": "<secret ARN>", "client": "<secret ARN>"}}}
"client" is optional. Other keys (the fingerprint of every published file, the identity
of this code and of the file system) are not read: they only make a change re-invoke the
function.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil

CHAIN_KEY = "certificateChain"
PRIVATE_KEY_KEY = "privateKey"
KEY_MODE = 0o400
PUBLIC_MODE = 0o444
# Only Envoy's user (the access point's POSIX user) may list or enter a node's directory.
DIRECTORY_MODE = 0o700
# A node is a directory name: a DNS label, so no path separator and no "." or "..".
NODE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FILE_NAMES = ("ca.pem", "chain.pem", "key.pem", "client.pem", "client-key.pem")
# What Envoy's paths go through (topologies/appmesh_efs.py reads it from here).
CURRENT_LINK = "current"
SET_PREFIX = ".set-"


def _secret_document(client, arn: str) -> dict:
    document = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    for key in (CHAIN_KEY, PRIVATE_KEY_KEY):
        if not isinstance(document.get(key), str) or "-----BEGIN" not in document[key]:
            # The message names the field, never its content.
            raise ValueError(f"secret {arn} has no PEM field {key!r}")
    return document


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_set(node_directory: str) -> str | None:
    """The set directory `current` points to, if it is one of ours."""
    link = os.path.join(node_directory, CURRENT_LINK)
    if not os.path.islink(link):
        return None
    target = os.readlink(link)
    if "/" in target or not target.startswith(SET_PREFIX):
        return None
    return os.path.join(node_directory, target)


def _is_published(set_directory: str | None, files: dict[str, tuple[str, int]]) -> bool:
    if set_directory is None or not os.path.isdir(set_directory):
        return False
    if sorted(os.listdir(set_directory)) != sorted(files):
        return False
    for name, (content, mode) in files.items():
        path = os.path.join(set_directory, name)
        with open(path, "rb") as current:
            if current.read() != content.encode() or (os.stat(path).st_mode & 0o777) != mode:
                return False
    return True


def _write_set(node_directory: str, files: dict[str, tuple[str, int]]) -> str:
    """A new, complete and flushed set directory (not yet visible through `current`)."""
    name = f"{SET_PREFIX}{secrets.token_hex(8)}"
    path = os.path.join(node_directory, name)
    os.mkdir(path, DIRECTORY_MODE)
    try:
        for file_name, (content, mode) in files.items():
            # Created 0600 so a key is never readable by anyone else, even for a moment.
            fd = os.open(os.path.join(path, file_name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(content.encode())
                out.flush()
                os.fsync(out.fileno())
            os.chmod(os.path.join(path, file_name), mode)
        _fsync_directory(path)
    except BaseException:
        # Nothing half-written stays behind; `current` still shows the old set.
        shutil.rmtree(path, ignore_errors=True)
        raise
    return name


def _switch(node_directory: str, set_name: str) -> None:
    """Point `current` at `set_name` in one rename (a rename replaces a symlink itself,
    never what it points to)."""
    temporary = os.path.join(node_directory, f".{CURRENT_LINK}.{secrets.token_hex(8)}.tmp")
    # Relative: the publisher mounts the volume at another path than Envoy does.
    os.symlink(set_name, temporary)
    try:
        os.replace(temporary, os.path.join(node_directory, CURRENT_LINK))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(node_directory)


def _remove_set(path: str) -> bool:
    """Remove a set directory that holds only our file names; False when it held more."""
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        return False
    if set(entries) - set(FILE_NAMES):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def publish_node(node_directory: str, files: dict[str, tuple[str, int]]) -> bool:
    """Make `files` ({name: (content, mode)}) the node's visible set; False when it was."""
    if _is_published(_current_set(node_directory), files):
        return False
    new = _write_set(node_directory, files)
    _switch(node_directory, new)
    # Every other set (the one just replaced, or one a failed run left) goes.
    for entry in os.listdir(node_directory):
        if entry.startswith(SET_PREFIX) and entry != new:
            _remove_set(os.path.join(node_directory, entry))
    return True


def _node_directory(directory: str, node: str) -> str:
    path = os.path.join(directory, node)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, DIRECTORY_MODE)
    os.chmod(path, DIRECTORY_MODE)
    return path


def prune(directory: str, nodes: set[str]) -> list[str]:
    """Remove what the listed `nodes` do not use: the old shared top-level files, the files
    directly in a node's directory (the layout before sets), every file of a node that left
    the mesh (and its then empty directory). Returns the relative names removed."""
    removed = []
    for name in FILE_NAMES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if not NODE_RE.match(entry) or os.path.islink(path) or not os.path.isdir(path):
            continue
        for name in FILE_NAMES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, name))
                removed.append(f"{entry}/{name}")
        if entry in nodes:
            continue
        link = os.path.join(path, CURRENT_LINK)
        if _current_set(path) is not None:
            os.unlink(link)
            removed.append(f"{entry}/{CURRENT_LINK}")
        for child in sorted(os.listdir(path)):
            if child.startswith(SET_PREFIX) and _remove_set(os.path.join(path, child)):
                removed.append(f"{entry}/{child}")
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


def node_files(ca_pem: str, own: dict, caller: dict | None) -> dict[str, tuple[str, int]]:
    """One node's set: {file name: (content, mode)}."""
    files = {
        "ca.pem": (ca_pem, PUBLIC_MODE),
        "chain.pem": (own[CHAIN_KEY], PUBLIC_MODE),
        "key.pem": (own[PRIVATE_KEY_KEY], KEY_MODE),
    }
    if caller is not None:
        files["client.pem"] = (caller[CHAIN_KEY], PUBLIC_MODE)
        files["client-key.pem"] = (caller[PRIVATE_KEY_KEY], KEY_MODE)
    return files


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
    written, unchanged = [], []
    for node, arns in nodes.items():
        caller = documents[arns["client"]] if "client" in arns else None
        files = node_files(ca_pem, documents[arns["certificate"]], caller)
        if publish_node(_node_directory(directory, node), files):
            written += [f"{node}/{name}" for name in files]
        else:
            unchanged.append(node)
    result = {"written": written, "unchanged": unchanged}
    result["removed"] = prune(directory, set(nodes))
    result["fingerprint"] = event.get("fingerprint")
    print(json.dumps(result, sort_keys=True))  # names only: no content is logged
    return result
