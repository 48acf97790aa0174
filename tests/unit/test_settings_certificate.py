"""A bring-your-own certificate is checked before anything is registered.

Real certificates (scripts/pki.py): ECDSA P-256 and RSA, a wrong key, a wrong name, expired,
not yet valid, a chain out of order. Each failure is one ConfigError naming the key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scripts.mock_runtime import config_error
from scripts.pki import make_pki
from settings import ConfigError, parse_settings
from settings.certificate_check import covers
from settings.parse import certificate_expiry_warning
from tests.conftest import MINIMAL_CONFIG

BASE = MINIMAL_CONFIG["alb-envoy"]
SECRET = ["certificate"]  # as the engine lists it once privateKeyPem is set with --secret
PKI = make_pki("app.example.com")
OTHER = make_pki("app.example.com", label="other")


def parse(certificate: dict, config: dict = BASE):
    return parse_settings({**config, "certificate": certificate}, SECRET)


def error(certificate: dict, config: dict = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(certificate, config)
    return str(caught.value)


@pytest.mark.parametrize("key_type", ["ec", "p384", "rsa"])
def test_a_matching_certificate_key_and_chain_are_accepted(key_type):
    pki = make_pki("app.example.com", "www.example.com", key_type=key_type)
    s = parse(pki.certificate_config())
    assert s.certificate is not None
    assert (s.certificate.certificate_pem, s.certificate.chain_pem) == (pki.leaf_pem, pki.chain_pem)
    assert s.certificate.private_key_pem == pki.key_pem


def test_a_wildcard_certificate_serves_a_name_one_label_below():
    pki = make_pki("*.example.com")
    assert parse(pki.certificate_config()).certificate is not None


def test_the_chain_may_end_with_the_root_and_may_be_left_out():
    pki = make_pki("app.example.com", intermediates=2)
    assert parse({**pki.certificate_config(), "chainPem": pki.chain_pem + pki.root_pem})
    assert parse(pki.certificate_config(chain=False)).certificate.chain_pem is None


def test_service_connect_checks_it_against_its_domain_too():
    config = MINIMAL_CONFIG["service-connect"]
    assert parse(PKI.certificate_config(), config).certificate is not None
    pki = make_pki("other.example.com")
    assert error(pki.certificate_config(), config).startswith(
        "ecs-tls:certificate.certificatePem: covers other.example.com,"
    )


@pytest.mark.parametrize(
    ("name", "domain", "expected"),
    [
        ("app.example.com", "app.example.com", True),
        ("APP.example.com.", "app.example.com", True),
        ("*.example.com", "app.example.com", True),
        ("*.example.com", "example.com", False),  # a wildcard needs a label to stand for
        ("*.example.com", "a.b.example.com", False),  # and stands for one label only
        ("*.*.example.com", "a.b.example.com", False),
        ("a*.example.com", "ab.example.com", False),  # only a whole left-most label
        ("app.*.com", "app.example.com", False),
        ("example.com", "app.example.com", False),
    ],
)
def test_name_matching_follows_rfc_6125(name, domain, expected):
    assert covers(name, domain) is expected


# --- each failure: the exact message --------------------------------------------------------


def test_a_private_key_must_be_set_as_a_secret():
    # Through the program under mocks: nothing is registered, and no secret key is listed.
    assert config_error({**BASE, "certificate": PKI.certificate_config()}) == (
        "ecs-tls:certificate.privateKeyPem: must be set as a secret: "
        "pulumi config set --path --secret ecs-tls:certificate.privateKeyPem < key.pem"
    )


def test_a_certificate_for_another_name_fails_before_anything_is_registered():
    pki = make_pki("other.example.com", "*.other.example.com")
    assert config_error({**BASE, "certificate": pki.certificate_config()}, SECRET) == (
        "ecs-tls:certificate.certificatePem: covers other.example.com, *.other.example.com, "
        "not 'app.example.com' (ecs-tls:domain)"
    )


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_the_key_of_another_certificate(key_type):
    pki = make_pki("app.example.com", key_type=key_type)
    assert error({**pki.certificate_config(), "privateKeyPem": OTHER.key_pem}) == (
        "ecs-tls:certificate.privateKeyPem: is not the key of certificate.certificatePem "
        "(their public keys differ)"
    )


def test_a_wildcard_one_level_too_high():
    pki = make_pki("*.example.com")
    config = {**BASE, "domain": "a.b.example.com"}
    assert error(pki.certificate_config(), config) == (
        "ecs-tls:certificate.certificatePem: covers *.example.com, not 'a.b.example.com' "
        "(ecs-tls:domain)"
    )


def test_a_certificate_that_names_the_domain_only_in_its_common_name():
    pki = make_pki("app.example.com", san=False)
    assert error(pki.certificate_config()) == (
        "ecs-tls:certificate.certificatePem: names no DNS name (no subjectAltName); clients "
        "ignore the subject's common name, so it cannot serve 'app.example.com' "
        "(ecs-tls:domain)"
    )


def test_an_expired_certificate():
    pki = make_pki(
        "app.example.com",
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2021, 1, 1, 12, 30, tzinfo=UTC),
    )
    assert error(pki.certificate_config()) == (
        "ecs-tls:certificate.certificatePem: expired on 2021-01-01 12:30 UTC; ACM imports "
        "only a certificate that is valid now"
    )


def test_a_certificate_not_valid_yet():
    # ACM refuses to import it (the current time must lie between Not Before and Not
    # After), so it is refused here rather than halfway through `pulumi up`.
    pki = make_pki(
        "app.example.com",
        not_before=datetime(2099, 1, 1, tzinfo=UTC),
        not_after=datetime(2100, 1, 1, tzinfo=UTC),
    )
    assert error(pki.certificate_config()) == (
        "ecs-tls:certificate.certificatePem: is not valid before 2099-01-01 00:00 UTC; ACM "
        "imports only a certificate that is valid now, so run `pulumi up` after that time"
    )


def test_a_chain_in_reverse_order():
    pki = make_pki("app.example.com", intermediates=2)
    first, second = pki.chain_pem.split("-----END CERTIFICATE-----\n")[:2]
    reversed_chain = f"{second}-----END CERTIFICATE-----\n{first}-----END CERTIFICATE-----\n"
    assert error({**pki.certificate_config(), "chainPem": reversed_chain}) == (
        "ecs-tls:certificate.chainPem: certificate 1 (CN=Test Intermediate CA 1,O=ecs-tls "
        "tests) did not sign certificate.certificatePem (CN=app.example.com,O=ecs-tls tests); "
        "list the chain from the leaf's issuer upwards, each certificate followed by the one "
        "that signed it"
    )


def test_a_chain_with_a_certificate_out_of_place():
    pki = make_pki("app.example.com", intermediates=2)
    issuer = pki.chain_pem.split("-----END CERTIFICATE-----\n")[0] + "-----END CERTIFICATE-----\n"
    assert error({**pki.certificate_config(), "chainPem": issuer + pki.root_pem}) == (
        "ecs-tls:certificate.chainPem: certificate 2 (CN=Test Root CA,O=ecs-tls tests) did not "
        "sign certificate 1 (CN=Test Intermediate CA 2,O=ecs-tls tests); list the chain from "
        "the leaf's issuer upwards, each certificate followed by the one that signed it"
    )


def test_the_chain_of_another_certificate():
    message = error({**PKI.certificate_config(), "chainPem": OTHER.chain_pem})
    assert message.startswith("ecs-tls:certificate.chainPem: certificate 1 (")


def test_a_full_chain_where_the_leaf_goes():
    assert error({**PKI.certificate_config(), "certificatePem": PKI.leaf_pem + PKI.chain_pem}) == (
        "ecs-tls:certificate.certificatePem: holds 2 certificates; it takes the leaf only, the "
        "certificates that sign it go in certificate.chainPem"
    )


@pytest.mark.parametrize("field", ["certificatePem", "chainPem"])
def test_a_key_where_a_certificate_goes(field):
    pem = PKI.leaf_pem + PKI.key_pem if field == "certificatePem" else PKI.key_pem
    expected = {
        "certificatePem": "holds a private key; it takes the certificate (the key: "
        "certificate.privateKeyPem)",
        "chainPem": "holds a private key; it takes certificates (the key: "
        "certificate.privateKeyPem)",
    }[field]
    assert (
        error({**PKI.certificate_config(), field: pem})
        == f"ecs-tls:certificate.{field}: {expected}"
    )


def test_text_that_is_not_a_certificate():
    assert error({**PKI.certificate_config(), "certificatePem": "app.example.com"}) == (
        "ecs-tls:certificate.certificatePem: is not PEM text with a -----BEGIN CERTIFICATE----- "
        "block"
    )
    broken = "-----BEGIN CERTIFICATE-----\nTUlJQnVzZXJjZXJ0\n-----END CERTIFICATE-----\n"
    assert error({**PKI.certificate_config(), "certificatePem": broken}) == (
        "ecs-tls:certificate.certificatePem: holds a CERTIFICATE block that is not a valid "
        "X.509 certificate"
    )


def test_an_encrypted_key():
    assert error({**PKI.certificate_config(), "privateKeyPem": PKI.encrypted_key_pem()}) == (
        "ecs-tls:certificate.privateKeyPem: is encrypted; ACM imports unencrypted keys only "
        "(openssl pkey -in key.pem -out key-plain.pem)"
    )


@pytest.mark.parametrize(
    ("pki", "expected"),
    [
        (
            make_pki("app.example.com", key_type="k256"),
            "is an ECDSA key on curve secp256k1; ACM imports P-256, P-384, P-521",
        ),
        (
            make_pki("app.example.com", key_type="rsa", key_size=1536),
            "is a 1536-bit RSA key; ACM imports RSA keys of 1024, 2048, 3072, 4096 bits",
        ),
        (
            make_pki("app.example.com", key_type="ed25519"),
            "holds a key of type Ed25519; ACM imports RSA and ECDSA keys",
        ),
    ],
    ids=["secp256k1", "rsa-1536", "ed25519"],
)
def test_a_key_acm_cannot_import(pki, expected):
    assert error(pki.certificate_config()) == f"ecs-tls:certificate.privateKeyPem: {expected}"


def test_a_missing_certificate_says_how_to_set_it():
    assert error({"privateKeyPem": PKI.key_pem}) == (
        "ecs-tls:certificate.certificatePem: missing; a certificate needs both its PEM and its "
        "key: pulumi config set --path --secret ecs-tls:certificate.certificatePem < cert.pem"
    )
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "certificate": {"certificatePem": PKI.leaf_pem}})
    assert str(caught.value) == (
        "ecs-tls:certificate.privateKeyPem: missing; a certificate needs both its PEM and its "
        "key: pulumi config set --path --secret ecs-tls:certificate.privateKeyPem < key.pem"
    )


def test_a_certificate_inside_the_alarm_window_gets_a_warning():
    soon = make_pki("app.example.com", not_after=datetime.now(UTC) + timedelta(days=10))
    s = parse(soon.certificate_config())
    expires = s.certificate.not_valid_after
    now = expires - timedelta(days=9, hours=12)
    assert certificate_expiry_warning(s, now) == (
        f"ecs-tls:certificate.certificatePem: expires on {expires:%Y-%m-%d} UTC, in 9 days "
        "(certificateExpiryAlarmDays is 30); ACM does not renew an imported certificate, so "
        "import a renewed one soon"
    )
    assert certificate_expiry_warning(parse(PKI.certificate_config()), now) is None
    assert certificate_expiry_warning(parse_settings(BASE), now) is None
