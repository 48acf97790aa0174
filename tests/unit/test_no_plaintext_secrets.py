"""No key or password appears outside a Pulumi secret, in any topology or mode.

The mocks give generated keys PEM text and the generated password a recognisable value,
and do not mark them secret as the engine would: finding either in plaintext means the
program forgot to mark it.
"""

from __future__ import annotations

import re

import pytest

import topologies
from scripts.mock_runtime import plaintext
from scripts.pki import make_pki
from tests.conftest import MINIMAL_CONFIG

KEY = make_pki("app.example.com").key_pem
BRING_YOUR_OWN = {"certificate": make_pki("app.example.com").certificate_config(chain=False)}
# appmesh-efs: your certificate names every service and its chain ends with the root.
_MESH_PKI = make_pki("app.example.com", "*.mesh.app.example.com")
MESH_OWN = {
    "certificate": {
        **_MESH_PKI.certificate_config(),
        "chainPem": _MESH_PKI.chain_pem + _MESH_PKI.root_pem,
    },
    "mesh": {"mutualTls": False},
}
# A PEM key block with its body (the copier's script names the header, not a key), or the
# password the mocks generate.
SENSITIVE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=]{8}|mock-password")

CASES = {
    "alb-envoy": MINIMAL_CONFIG["alb-envoy"],
    "alb-envoy-own-certificate": {**MINIMAL_CONFIG["alb-envoy"], **BRING_YOUR_OWN},
    "service-connect": MINIMAL_CONFIG["service-connect"],
    "service-connect-own-certificate": {**MINIMAL_CONFIG["service-connect"], **BRING_YOUR_OWN},
    "service-connect-nlb": {**MINIMAL_CONFIG["service-connect"], "ingress": "nlb"},
    "appmesh-efs": MINIMAL_CONFIG["appmesh-efs"],
    "appmesh-efs-own-certificate": {**MINIMAL_CONFIG["appmesh-efs"], **MESH_OWN},
    "nlb-certbot-dns-01": MINIMAL_CONFIG["nlb-certbot"],
    "direct-task": MINIMAL_CONFIG["direct-task"],
    "nlb-certbot-http-01": {
        **MINIMAL_CONFIG["nlb-certbot"],
        "acme": {"email": "ops@example.com", "challenge": "http-01"},
    },
}
BUILT = {k: v for k, v in CASES.items() if topologies.REGISTRY[v["topology"]] is not None}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_no_secret_in_plaintext(program, case):
    # As the engine does once privateKeyPem is set with --path --secret.
    graph = program(BUILT[case], secret_keys=("certificate",) if "-own-" in case else ())
    leaks = [
        (r.type, r.name, path)
        for r in graph
        # pulumi-tls resources hold the keys they generate; the engine keeps those secret.
        if not r.type.startswith("tls:")
        for path, text in plaintext(r.inputs)
        if SENSITIVE.search(text)
    ]
    leaks += [
        ("stack", "outputs", path)
        for path, text in plaintext(graph.stack_outputs)
        if SENSITIVE.search(text)
    ]
    assert leaks == []


def test_the_check_finds_a_leak():
    assert plaintext({"a": {"b": [KEY]}}) == [(".a.b[0]", KEY)]
    assert SENSITIVE.search(KEY)
    assert not SENSITIVE.search("grep -q '^-----BEGIN PRIVATE KEY-----$' key.pem")
