"""Publish the mesh's TLS files to EFS: the certificate publisher of topology appmesh-efs.

Invoked at deploy time (`aws.lambda_.Invocation`) whenever the certificate changes. It
reads the certificate secret(s) from Secrets Manager and writes, into the EFS access
point mounted at CERTIFICATE_DIR:

    chain.pem        the leaf and its chain, what Envoy presents
    key.pem          its private key, mode 0400
    ca.pem           the CA that Envoys trust for peers (from the event: it is public)
    client.pem       with CLIENT_CERTIFICATE_SECRET_ARN: the client certificate for mTLS
    client-key.pem   and its key, mode 0400

Every file is written to a temporary name in the same directory, flushed, given its mode
and renamed over the old one: rename within one directory is atomic on NFSv4 as on local
file systems, so a reader sees the old file or the new one, never a part. A file whose
content is already there is not touched (invocations are idempotent).

Owner: the EFS access point maps every request to its POSIX user (Envoy's uid), so the
files belong to the user that reads them and 0400 is enough.

Environment (ARNs and a path only; the key never travels through it):
    CERTIFICATE_SECRET_ARN, CLIENT_CERTIFICATE_SECRET_ARN (optional), CERTIFICATE_DIR
Event: {"caPem": "...", "fingerprint": "..."} (the fingerprint only makes a new
certificate change the event, which re-invokes the function).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets

CHAIN_KEY = "certificateChain"
PRIVATE_KEY_KEY = "privateKey"
KEY_MODE = 0o400
PUBLIC_MODE = 0o444


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
    written, unchanged = [], []
    for name, content, mode in files:
        (written if write_atomically(directory, name, content, mode) else unchanged).append(name)
    return {"written": written, "unchanged": unchanged}


def handler(event, context=None, client=None):
    directory = os.environ["CERTIFICATE_DIR"]
    ca_pem = event.get("caPem") if isinstance(event, dict) else None
    if not isinstance(ca_pem, str) or "-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise ValueError("the event needs caPem: the CA certificate Envoys trust")
    if client is None:
        import boto3  # the Lambda runtime's; imported here so tests can pass a client

        client = boto3.client("secretsmanager")
    server = _secret_document(client, os.environ["CERTIFICATE_SECRET_ARN"])
    # The CA first: a task that starts mid-way finds a CA that already trusts the new chain.
    files = [
        ("ca.pem", ca_pem, PUBLIC_MODE),
        ("chain.pem", server[CHAIN_KEY], PUBLIC_MODE),
        ("key.pem", server[PRIVATE_KEY_KEY], KEY_MODE),
    ]
    client_arn = os.environ.get("CLIENT_CERTIFICATE_SECRET_ARN")
    if client_arn:
        client_document = _secret_document(client, client_arn)
        files += [
            ("client.pem", client_document[CHAIN_KEY], PUBLIC_MODE),
            ("client-key.pem", client_document[PRIVATE_KEY_KEY], KEY_MODE),
        ]
    result = publish(directory, files)
    result["fingerprint"] = event.get("fingerprint")
    print(json.dumps(result, sort_keys=True))  # names only: no content is logged
    return result
