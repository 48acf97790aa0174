"""Server certificates: a generated private chain, or the user's own, in ACM and Secrets Manager.

The load balancer presents the ACM copy; the task's TLS endpoint (e.g. an Envoy sidecar)
reads the Secrets Manager copy through ECS `secrets`, so no key is ever in an image, a
task definition or an environment variable in plaintext.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

from settings import CertificateSettings, ListenerCertificateSettings

CA_VALIDITY_HOURS = 10 * 365 * 24
LEAF_VALIDITY_HOURS = 365 * 24
# Any `pulumi up` in the leaf's last 60 days issues a new one. The expiry alarm fires at
# most 45 days before expiry (settings: certificateExpiryAlarmDays), so it only fires when
# no `up` ran in the 15 or more days before.
LEAF_EARLY_RENEWAL_HOURS = 60 * 24
# The CA too: its expiry notice (components/expiry_notice.py) also comes at most 45 days
# before, and tells the operator to run `pulumi up`, which must then issue a new CA. Without
# it pulumi-tls re-issues a certificate only once it has expired. Changing it is an update
# in place (no new CA): the provider's schema does not mark it as forcing replacement.
CA_EARLY_RENEWAL_HOURS = 60 * 24
# An ECDSA key signs; it cannot encipher a key, so keyEncipherment does not belong in the
# certificate (RFC 5480, section 3). TLS 1.2 and 1.3 ECDHE suites only need the signature.
LEAF_ALLOWED_USES = ("digital_signature", "server_auth")

# JSON keys of the certificate secret; containers select one with `<arn>:<key>::`.
CHAIN_KEY = "certificateChain"
PRIVATE_KEY_KEY = "privateKey"


def secret_document(leaf_pem: str, chain_pem: str | None, private_key_pem: str) -> str:
    """The secret's JSON: the leaf followed by its chain (what TLS servers send), and the key."""
    chain = leaf_pem.rstrip("\n") + "\n" + (chain_pem.rstrip("\n") + "\n" if chain_pem else "")
    return json.dumps({CHAIN_KEY: chain, PRIVATE_KEY_KEY: private_key_pem}, sort_keys=True)


def fingerprint(pem: str) -> str:
    """A short, public digest of a certificate, to roll tasks when the certificate changes."""
    return hashlib.sha256(pem.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PrivateChainArgs:
    domain: str
    organization: str = "ecs-tls"
    # More DNS names for the leaf (appmesh-efs: every service's Cloud Map name).
    extra_dns_names: tuple[str, ...] = ()
    # Also a TLS client certificate (appmesh-efs: the gateway presents it for mutual TLS).
    client_auth: bool = False


class PrivateChain(pulumi.ComponentResource):
    """An ECDSA P-256 root CA and a server certificate for one DNS name, made by pulumi-tls.

    Clients verify it with the CA certificate (a public stack output). The ALB does not
    validate target certificates, so a private chain also serves ALB -> task encryption.
    """

    ca_certificate_pem: pulumi.Output[str]
    # RFC 3339 times when the CA and the leaf expire, for their expiry notices.
    ca_validity_end_time: pulumi.Output[str]
    validity_end_time: pulumi.Output[str]
    # Secret: appmesh-efs signs one certificate per mesh node with it.
    ca_private_key_pem: pulumi.Output[str]
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self, name: str, args: PrivateChainArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:certificates:PrivateChain", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            subject={
                "common_name": f"{args.organization} private root CA",
                "organization": args.organization,
            },
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        leaf_key = tls.PrivateKey(f"{name}-leaf", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-leaf",
            private_key_pem=leaf_key.private_key_pem,
            subject={"common_name": args.domain, "organization": args.organization},
            dns_names=[args.domain, *args.extra_dns_names],
            opts=child,
        )
        leaf = tls.LocallySignedCert(
            f"{name}-leaf",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=ca.cert_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            validity_period_hours=LEAF_VALIDITY_HOURS,
            early_renewal_hours=LEAF_EARLY_RENEWAL_HOURS,
            allowed_uses=[*LEAF_ALLOWED_USES, *(["client_auth"] if args.client_auth else [])],
            opts=child,
        )
        self.ca_certificate_pem = ca.cert_pem
        self.ca_validity_end_time = ca.validity_end_time
        self.validity_end_time = leaf.validity_end_time
        self.ca_private_key_pem = pulumi.Output.secret(ca_key.private_key_pem)
        self.certificate_pem = leaf.cert_pem
        # The engine marks generated keys secret; mark it here too so nothing depends on that.
        self.private_key_pem = pulumi.Output.secret(leaf_key.private_key_pem)
        self.register_outputs(
            {"caCertificatePem": self.ca_certificate_pem, "certificatePem": self.certificate_pem}
        )


@dataclass(frozen=True)
class ServerCertificateArgs:
    domain: str
    # The user's own certificate; None generates a private chain.
    provided: CertificateSettings | None = None
    # False when only a load balancer presents it and no task needs the key.
    store_in_secrets_manager: bool = True
    # False when only a task presents it (the load balancer has a certificate from ACM).
    import_to_acm: bool = True
    # Generated chain only: see PrivateChainArgs.
    extra_dns_names: tuple[str, ...] = ()
    client_auth: bool = False


class ServerCertificate(pulumi.ComponentResource):
    """One certificate for `domain`, imported into ACM and stored in Secrets Manager."""

    acm_certificate_arn: pulumi.Output[str] | None  # None: not imported
    certificate_pem: pulumi.Output[str]
    # The generated CA (public), None when the user brought the certificate.
    ca_certificate_pem: pulumi.Output[str] | None
    # The generated CA's key (secret), None when the user brought the certificate.
    ca_private_key_pem: pulumi.Output[str] | None
    # When the generated CA expires (RFC 3339), None when the user brought the certificate.
    # The leaf needs no notice of its own while ACM holds it: its DaysToExpiry alarm watches.
    ca_validity_end_time: pulumi.Output[str] | None
    # When a generated leaf that ACM does not hold expires, for its notice; else None.
    unwatched_leaf_end_time: pulumi.Output[str] | None
    fingerprint: pulumi.Output[str]
    # Tasks that read the secret must start after its value exists (None: not stored).
    secret_arn: pulumi.Output[str] | None
    secret_version: aws.secretsmanager.SecretVersion | None

    def __init__(
        self, name: str, args: ServerCertificateArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:certificates:ServerCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.provided is None:
            chain = PrivateChain(
                f"{name}-chain",
                PrivateChainArgs(
                    domain=args.domain,
                    extra_dns_names=args.extra_dns_names,
                    client_auth=args.client_auth,
                ),
                opts=child,
            )
            leaf_pem = chain.certificate_pem
            chain_pem: pulumi.Input[str] | None = chain.ca_certificate_pem
            key_pem = chain.private_key_pem
            self.ca_certificate_pem = chain.ca_certificate_pem
            self.ca_private_key_pem = chain.ca_private_key_pem
            self.ca_validity_end_time = chain.ca_validity_end_time
            leaf_end: pulumi.Output[str] | None = chain.validity_end_time
        else:
            leaf_end = None
            leaf_pem = pulumi.Output.from_input(args.provided.certificate_pem)
            chain_pem = args.provided.chain_pem
            key_pem = args.provided.secret_private_key()
            self.ca_certificate_pem = None
            self.ca_private_key_pem = None
            self.ca_validity_end_time = None

        self.acm_certificate_arn = None
        self.unwatched_leaf_end_time = leaf_end
        if args.import_to_acm:
            # ACM never renews an imported certificate; re-importing keeps the ARN, which is
            # what an update of this resource does.
            imported = aws.acm.Certificate(
                name,
                certificate_body=leaf_pem,
                certificate_chain=chain_pem,
                private_key=key_pem,
                tags={"Name": args.domain},
                opts=child,
            )
            self.acm_certificate_arn = imported.arn
            self.unwatched_leaf_end_time = None
        self.secret_arn = None
        self.secret_version = None
        if args.store_in_secrets_manager:
            self._store(name, args.domain, leaf_pem, chain_pem, key_pem)
        self.certificate_pem = leaf_pem
        self.fingerprint = leaf_pem.apply(fingerprint)
        self.register_outputs(
            {
                "acmCertificateArn": self.acm_certificate_arn,
                "secretArn": self.secret_arn,
                "fingerprint": self.fingerprint,
            }
        )

    def _store(
        self,
        name: str,
        domain: str,
        leaf_pem: pulumi.Input[str],
        chain_pem: pulumi.Input[str] | None,
        key_pem: pulumi.Input[str],
    ) -> None:
        child = pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            name,
            description=f"TLS certificate chain and private key of {domain} (ecs-tls)",
            opts=child,
        )
        self.secret_version = aws.secretsmanager.SecretVersion(
            name,
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(leaf_pem, chain_pem, key_pem).apply(
                    lambda v: secret_document(v[0], v[1], v[2])
                )
            ),
            opts=child,
        )
        self.secret_arn = secret.arn

    def value_from(self, json_key: str) -> pulumi.Output[str]:
        """The ECS `valueFrom` that injects one key of the secret as an environment variable."""
        if self.secret_arn is None:
            raise ValueError("this certificate is not stored in Secrets Manager")
        return self.secret_arn.apply(lambda arn: f"{arn}:{json_key}::")


@dataclass(frozen=True)
class AcmIssuedCertificateArgs:
    domain: str
    hosted_zone_id: str


class AcmIssuedCertificate(pulumi.ComponentResource):
    """A public certificate issued and renewed by ACM, validated through Route53 (DNS)."""

    acm_certificate_arn: pulumi.Output[str]
    ca_certificate_pem = None  # publicly trusted: clients need no CA file
    ca_validity_end_time = None  # and no generated CA to watch

    def __init__(
        self, name: str, args: AcmIssuedCertificateArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("ecs-tls:certificates:AcmIssuedCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        certificate = aws.acm.Certificate(
            name,
            domain_name=args.domain,
            validation_method="DNS",
            key_algorithm="EC_prime256v1",
            opts=child,
        )
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-validation",
            zone_id=args.hosted_zone_id,
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,  # the same record validates every certificate for the name
            opts=child,
        )
        # Waits until ACM has issued the certificate, so listeners never get a pending one.
        validation = aws.acm.CertificateValidation(
            name,
            certificate_arn=certificate.arn,
            validation_record_fqdns=[record.fqdn],
            opts=child,
        )
        self.acm_certificate_arn = validation.certificate_arn
        self.register_outputs({"acmCertificateArn": self.acm_certificate_arn})


@dataclass(frozen=True)
class ExistingCertificate:
    """A certificate already in ACM (`certificate.arn`): its owner renews it or ACM does."""

    acm_certificate_arn: pulumi.Output[str]
    ca_certificate_pem = None  # whoever issued it tells clients what to trust
    ca_validity_end_time = None


def load_balancer_certificate(
    name: str,
    domain: str,
    hosted_zone_id: str | None,
    listener: ListenerCertificateSettings,
    provided: CertificateSettings | None,
    parent: pulumi.Resource,
    store_in_secrets_manager: bool = False,
) -> ServerCertificate | AcmIssuedCertificate | ExistingCertificate:
    """The certificate a load balancer presents, from `certificate.source` / `.arn`.

    `store_in_secrets_manager`: a generated or imported one is also the task's (alb-envoy).
    """
    opts = pulumi.ResourceOptions(parent=parent)
    if listener.source == "existing":
        assert listener.arn is not None
        return ExistingCertificate(pulumi.Output.from_input(listener.arn))
    if listener.source == "acm":
        assert hosted_zone_id is not None  # settings refuse `acm` without a zone
        return AcmIssuedCertificate(name, AcmIssuedCertificateArgs(domain, hosted_zone_id), opts)
    return ServerCertificate(
        name,
        ServerCertificateArgs(
            domain=domain, provided=provided, store_in_secrets_manager=store_in_secrets_manager
        ),
        opts,
    )
