"""TLS contexts: the sidecar's listener certificate (ECS secrets or SDS files), the mesh
proxies' certificate files, peer validation and upstream TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from task_contents.envoy.api import _DOWNSTREAM_TLS_TYPE, _UPSTREAM_TLS_TYPE

if TYPE_CHECKING:
    from task_contents.envoy.clusters import UpstreamCluster
    from task_contents.envoy.mesh import MeshProxySpec
    from task_contents.envoy.sidecar import EnvoyProxySpec


# Envoy's TlsParameters.TlsProtocol enum names we allow as a floor. Anything older than
# TLS 1.2 is not offered on purpose: it is deprecated (RFC 8996) and fails most compliance
# baselines.
TLS_VERSIONS = ("TLSv1_2", "TLSv1_3")


@dataclass(frozen=True)
class SdsFiles:
    """A listener certificate served through SDS from the file system.

    PathConfigSource (Envoy v3, config/core/v3/config_source.proto): the file at `path` holds
    a DiscoveryResponse with one tls Secret named `secret_name`; with `watched_directory` set,
    Envoy re-reads `path` when an entry is moved into that directory (the atomic swap of a
    symlink), and not on writes. `path` must exist when Envoy loads its bootstrap.
    """

    path: str
    watched_directory: str
    secret_name: str = "listener_certificate"


def _listener_certificate(spec: EnvoyProxySpec) -> dict[str, Any]:
    if spec.sds is not None:
        return {
            "tls_certificate_sds_secret_configs": [
                {
                    "name": spec.sds.secret_name,
                    "sds_config": {
                        "resource_api_version": "V3",
                        "path_config_source": {
                            "path": spec.sds.path,
                            "watched_directory": {"path": spec.sds.watched_directory},
                        },
                    },
                }
            ]
        }
    # Environment-variable data sources (Envoy >= 1.21): ECS injects the PEMs from Secrets
    # Manager / SSM as container env vars, so the stock Envoy image works unchanged and the
    # key never lands on a file system or in the config.
    return {
        "tls_certificates": [
            {
                "certificate_chain": {"environment_variable": spec.certificate_env},
                "private_key": {"environment_variable": spec.private_key_env},
            }
        ]
    }


def _downstream_tls(spec: EnvoyProxySpec) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _DOWNSTREAM_TLS_TYPE,
            "common_tls_context": {
                "tls_params": {
                    "tls_minimum_protocol_version": spec.min_tls_version,
                    "tls_maximum_protocol_version": "TLSv1_3",
                },
                **_listener_certificate(spec),
                "alpn_protocols": ["h2", "http/1.1"],
            },
        },
    }


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain (leaf first) and its private key, as files Envoy reads at start.

    Envoy reads static files once: a new certificate needs a restart (a new task on ECS).
    """

    certificate_chain: str
    private_key: str


@dataclass(frozen=True)
class PeerValidation:
    """How Envoy checks the other side's certificate: its chain must lead to `trusted_ca`.

    ``subject_alt_names`` None checks the chain only; a tuple also needs one of the peer's
    DNS SANs to equal one of its names, and the empty tuple refuses every peer (a mesh
    service that nobody may call). ``spki_sha256`` pins the peer's public key: base64
    SHA-256 digests of its SubjectPublicKeyInfo, one of which must match.
    """

    trusted_ca: str
    subject_alt_names: tuple[str, ...] | None = None
    spki_sha256: tuple[str, ...] = ()


def _tls_params(min_version: str) -> dict[str, str]:
    return {"tls_minimum_protocol_version": min_version, "tls_maximum_protocol_version": "TLSv1_3"}


def _certificate_files(files: TlsFiles) -> dict[str, Any]:
    return {
        "certificate_chain": {"filename": files.certificate_chain},
        "private_key": {"filename": files.private_key},
    }


# A SAN matcher no name satisfies: an RE2 class of no character (neither space nor not).
# Envoy reads an empty match_typed_subject_alt_names as "any name", so refusing every peer
# needs one matcher that never matches.
_NO_NAME_MATCHER = {
    "san_type": "DNS",
    "matcher": {"safe_regex": {"regex": "[^\\s\\S]"}},
}


def _validation_context(validation: PeerValidation) -> dict[str, Any]:
    context: dict[str, Any] = {"trusted_ca": {"filename": validation.trusted_ca}}
    names = validation.subject_alt_names
    if names is not None:
        # Exact DNS SAN match (CertificateValidationContext.match_typed_subject_alt_names):
        # the handshake fails unless one of the peer's DNS SANs is one of `names`.
        context["match_typed_subject_alt_names"] = [
            {"san_type": "DNS", "matcher": {"exact": name}} for name in names
        ] or [_NO_NAME_MATCHER]
    if validation.spki_sha256:
        # CertificateValidationContext.verify_certificate_spki, checked besides the chain.
        context["verify_certificate_spki"] = list(validation.spki_sha256)
    return context


def _mesh_downstream_tls(spec: MeshProxySpec) -> dict[str, Any]:
    common: dict[str, Any] = {
        "tls_params": _tls_params(spec.min_tls_version),
        "tls_certificates": [_certificate_files(spec.server_certificate)],
        "alpn_protocols": ["h2", "http/1.1"],
    }
    if spec.client_validation is not None:
        common["validation_context"] = _validation_context(spec.client_validation)
    typed: dict[str, Any] = {"@type": _DOWNSTREAM_TLS_TYPE, "common_tls_context": common}
    if spec.require_client_certificate:
        # The handshake fails without a client certificate that passes validation_context.
        typed["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed}


def _upstream_tls(upstream: UpstreamCluster, min_version: str) -> dict[str, Any]:
    common: dict[str, Any] = {
        "tls_params": _tls_params(min_version),
        # Without a validation context Envoy accepts any upstream certificate.
        "validation_context": _validation_context(
            PeerValidation(upstream.trusted_ca, (upstream.host,))
        ),
    }
    if upstream.client_certificate is not None:
        common["tls_certificates"] = [_certificate_files(upstream.client_certificate)]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _UPSTREAM_TLS_TYPE,
            "sni": upstream.host,
            "common_tls_context": common,
        },
    }
