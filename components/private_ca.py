"""AWS Private CA for ECS Service Connect TLS, optionally shared with other accounts via RAM."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.naming import physical_name

CA_VALIDITY_YEARS = "10"


def root_certificate_template_arn(partition: str) -> str:
    """The template that makes a CA's own self-signed root certificate."""
    return f"arn:{partition}:acm-pca:::template/RootCACertificate/V1"


def ram_permission_arn(partition: str) -> str:
    return f"arn:{partition}:ram::aws:permission/AWSRAMDefaultPermissionCertificateAuthority"


@dataclass(frozen=True)
class PrivateCertificateAuthorityArgs:
    common_name: str
    key_algorithm: str = "EC_prime256v1"
    signing_algorithm: str = "SHA256WITHECDSA"
    permanent_deletion_days: int = 7
    share_with: Sequence[str] = ()
    allow_external_principals: bool = False


class PrivateCertificateAuthority(pulumi.ComponentResource):
    """A ROOT CA in short-lived certificate mode (~50 USD/month instead of ~400).

    Service Connect issues 7-day certificates from it and rotates them every 5 days, so
    revocation is off. `installed` is the resource anything issuing from the CA must wait
    for: the CA stays PENDING_CERTIFICATE until its root certificate is installed.
    """

    arn: pulumi.Output[str]
    installed: aws.acmpca.CertificateAuthorityCertificate

    def __init__(
        self,
        name: str,
        args: PrivateCertificateAuthorityArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("ecs-tls:private_ca:PrivateCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        ca = aws.acmpca.CertificateAuthority(
            name,
            type="ROOT",
            usage_mode="SHORT_LIVED_CERTIFICATE",
            certificate_authority_configuration={
                "key_algorithm": args.key_algorithm,
                "signing_algorithm": args.signing_algorithm,
                "subject": {"common_name": args.common_name, "organization": "ecs-tls"},
            },
            permanent_deletion_time_in_days=args.permanent_deletion_days,
            # ECS only issues from CAs carrying this tag.
            tags={"AmazonECSManaged": "true"},
            opts=child,
        )
        root = aws.acmpca.Certificate(
            name,
            certificate_authority_arn=ca.arn,
            certificate_signing_request=ca.certificate_signing_request,
            signing_algorithm=args.signing_algorithm,
            template_arn=partition.apply(root_certificate_template_arn),
            validity={"type": "YEARS", "value": CA_VALIDITY_YEARS},
            opts=child,
        )
        # A root CA's certificate has no chain.
        self.installed = aws.acmpca.CertificateAuthorityCertificate(
            name,
            certificate_authority_arn=ca.arn,
            certificate=root.certificate,
            opts=child,
        )
        self.arn = ca.arn
        self.certificate_pem = root.certificate
        if args.share_with:
            self._share(name, args, partition, self.installed)
        self.register_outputs({"arn": ca.arn, "certificatePem": root.certificate})

    def _share(
        self,
        name: str,
        args: PrivateCertificateAuthorityArgs,
        partition: pulumi.Output[str],
        installed: pulumi.Resource,
    ) -> None:
        child = pulumi.ResourceOptions(parent=self)
        share = aws.ram.ResourceShare(
            name,
            name=physical_name(name),
            allow_external_principals=args.allow_external_principals,
            permission_arns=[partition.apply(ram_permission_arn)],
            opts=child,
        )
        # Shared only once its root certificate is installed: an account that receives a CA
        # still PENDING_CERTIFICATE cannot issue from it, and ECS there would fail to start.
        aws.ram.ResourceAssociation(
            name,
            resource_arn=self.arn,
            resource_share_arn=share.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[installed]),
        )
        for principal in args.share_with:
            # Named by a digest of the principal, so reordering the list replaces nothing.
            digest = hashlib.sha256(principal.encode()).hexdigest()[:10]
            aws.ram.PrincipalAssociation(
                f"{name}-principal-{digest}",
                principal=principal,
                resource_share_arn=share.arn,
                opts=child,
            )
