"""Settings of topology `appmesh-efs`: key `mesh` and what `services` means there.

Every check runs before any resource is registered and names the key it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from constants.config import DOMAIN_RE
from settings.errors import ConfigError, invalid, missing
from settings.model import (
    DEMO_HEALTH_PATH,
    DEMO_SERVICES,
    CertificateSettings,
    GatewayRoute,
    MeshSettings,
    ServiceSettings,
    Settings,
)
from settings.readers import (
    read_integer,
    read_object,
    reject_unknown_keys,
    set_command,
)
from settings.redaction import holds_key_material, is_secret
from task_contents.envoy import DEFAULT_HEALTH_PORT

TOPOLOGY = "appmesh-efs"
MESH_KEYS = (
    "namespace",
    "mutualTls",
    "clientCertificate",
    "gatewayRoutes",
    "gatewayDesiredCount",
    "dnsRefreshSeconds",
    "additionalTrustedCaPem",
)
ROUTE_KEYS = ("prefix", "service", "prefixRewrite")
# Service fields of service-connect that have no meaning here, and why.
NOT_IN_MESH = {
    "mode": "every service is a mesh node with a TLS listener",
    "public": "mesh.gatewayRoutes decides what the gateway exposes",
    "clientAlias": "services call each other through their Envoy on 127.0.0.1 (<NAME>_URL)",
    "appProtocol": "Envoy speaks HTTP to the app",
    "healthCheckPath": "the gateway's load balancer checks TCP; Envoy reports its own health",
}

# A Cloud Map MULTIVALUE answer holds at most 8 records (Route 53 multivalue answer
# routing; aws-facts.md): Envoys resolving a service with more tasks would never see
# the rest, which would take no mesh traffic.
MAX_DISCOVERED_TASKS = 8

# A service's Envoy gives the app one loopback listener per service it calls: service i of
# `services` is reached at 127.0.0.1:(EGRESS_BASE_PORT + i), announced to the app as
# <NAME>_URL (App Mesh's sidecar took egress on 15001 through iptables; Fargate has none).
EGRESS_BASE_PORT = 15001


def egress_port(index: int) -> int:
    return EGRESS_BASE_PORT + index


def url_variable(service_name: str) -> str:
    """`BACKEND_URL` for `backend`: where the app reaches that service (plain HTTP)."""
    return service_name.upper().replace("-", "_") + "_URL"


def service_host(service: ServiceSettings, namespace: str) -> str:
    """The Cloud Map name of a service, which its certificate must name (SAN)."""
    return f"{service.discovery_name}.{namespace}"


# The virtual gateway is a mesh node too: its certificate names GATEWAY_NODE.<namespace>,
# which services that the gateway routes to accept as a caller. No Cloud Map service has
# that name (settings refuse it as a service's name or discoveryName).
GATEWAY_NODE = "gateway"


def gateway_host(namespace: str) -> str:
    return f"{GATEWAY_NODE}.{namespace}"


def allowed_callers(
    service: ServiceSettings,
    services: tuple[ServiceSettings, ...],
    routes: tuple[GatewayRoute, ...],
    namespace: str,
) -> tuple[str, ...]:
    """The certificate names `service` accepts as callers: each service whose `calls` lists
    it, and the gateway when a gateway route leads to it. Empty: nobody may call it."""
    callers = [service_host(v, namespace) for v in services if service.name in v.calls]
    if any(r.service == service.name for r in routes):
        callers.append(gateway_host(namespace))
    return tuple(sorted(callers))


# The demo of service-connect, with the frontend's nginx calling the backend through its
# Envoy (BACKEND_URL, a loopback listener that re-encrypts with mutual TLS).
MESH_DEMO_SERVICES = (
    replace(
        DEMO_SERVICES[0],
        command=(
            "/bin/sh",
            "-c",
            "printf 'server { listen 80; "
            f"location = {DEMO_HEALTH_PATH} {{ return 200 ok; }} "
            'location / { proxy_pass %s; } }\\n\' "$BACKEND_URL" '
            "> /etc/nginx/conf.d/default.conf && exec nginx -g 'daemon off;'",
        ),
    ),
    DEMO_SERVICES[1],
)


def check_service_keys(values: Mapping[str, Any], topology: str) -> None:
    """Refuse service-connect's service fields on appmesh-efs, naming the field."""
    if topology != TOPOLOGY or not isinstance(values.get("services"), list):
        return
    for i, item in enumerate(values["services"]):
        if not isinstance(item, dict):
            continue
        for key, why in NOT_IN_MESH.items():
            if key in item:
                raise ConfigError(
                    f"services[{i}].{key}",
                    f"applies to topology 'service-connect' only, not {TOPOLOGY!r}: {why}",
                )


def with_mesh(s: Settings, values: Mapping[str, Any]) -> Settings:
    """Parse `mesh` for appmesh-efs (elsewhere settings/reference.py APPLIES_TO refuses it)."""
    if s.topology != TOPOLOGY:
        return s
    raw = read_object(values, "mesh")
    reject_unknown_keys(raw, "mesh", MESH_KEYS)
    services = s.services if "services" in values else MESH_DEMO_SERVICES
    _check_node_names(services)
    _check_discovered_counts(services)
    namespace = raw.get("namespace", f"mesh.{s.domain}")
    if not isinstance(namespace, str) or not DOMAIN_RE.match(namespace):
        raise invalid("mesh.namespace", namespace, "a DNS name such as mesh.app.example.com")
    mutual = raw.get("mutualTls", True)
    if not isinstance(mutual, bool):
        raise invalid("mesh.mutualTls", mutual, "true or false")
    gateways = read_integer(raw.get("gatewayDesiredCount", 2), "mesh.gatewayDesiredCount", 0, 100)
    refresh = read_integer(raw.get("dnsRefreshSeconds", 5), "mesh.dnsRefreshSeconds", 1, 60)
    routes = _routes(raw.get("gatewayRoutes"), services)
    _check_envoy_port(s.envoy.port, len(services))
    _check_ports(services, s.envoy.port)
    client = _client_certificate(raw, s, mutual)
    if s.certificate is not None:
        _check_own_certificate(s.certificate, [service_host(v, namespace) for v in services])
    mesh = MeshSettings(
        namespace=namespace,
        mutual_tls=mutual,
        client_certificate=client,
        gateway_routes=routes,
        gateway_desired_count=gateways,
        dns_refresh_seconds=refresh,
        additional_trusted_ca_pem=_additional_roots(raw.get("additionalTrustedCaPem")),
    )
    return replace(s, services=services, mesh=mesh)


def _check_node_names(services: tuple[ServiceSettings, ...]) -> None:
    """The gateway's name is its directory on the certificate volume, its resources' names
    and its certificate name: a service may not take it."""
    for i, service in enumerate(services):
        for key, value in (("name", service.name), ("discoveryName", service.discovery_name)):
            if value == GATEWAY_NODE:
                raise ConfigError(
                    f"services[{i}].{key}",
                    f"{value!r} is the virtual gateway's name in topology {TOPOLOGY!r} (its "
                    "files, resources and certificate name); choose another",
                )


def _check_discovered_counts(services: tuple[ServiceSettings, ...]) -> None:
    """Every service is found through Cloud Map (the gateway is not: its NLB finds it)."""
    for i, service in enumerate(services):
        # The scaler may run as many tasks as autoscaling.max.
        scaling = service.autoscaling
        for key, count in (("desiredCount", service.desired_count),) + (
            (("autoscaling.max", scaling.max),) if scaling else ()
        ):
            if count <= MAX_DISCOVERED_TASKS:
                continue
            raise invalid(
                f"services[{i}].{key}",
                count,
                f"at most {MAX_DISCOVERED_TASKS} in topology {TOPOLOGY!r}: Cloud Map answers "
                f"with at most {MAX_DISCOVERED_TASKS} addresses, so further tasks would get "
                "no traffic",
            )


def _routes(raw: Any, services: tuple[ServiceSettings, ...]) -> tuple[GatewayRoute, ...]:
    key = "mesh.gatewayRoutes"
    if raw is None:
        return (GatewayRoute("/", services[0].name),)
    if not isinstance(raw, list) or not raw:
        raise invalid(key, raw, "a non-empty list of {prefix, service} objects")
    names = [v.name for v in services]
    routes, seen = [], {}
    for i, item in enumerate(raw):
        at = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise invalid(at, item, "an object with prefix and service")
        reject_unknown_keys(item, at, ROUTE_KEYS)
        prefix = item.get("prefix")
        if prefix is None:
            raise missing(f"{at}.prefix", "every route needs a path prefix such as /api/")
        if not isinstance(prefix, str) or not prefix.startswith("/") or " " in prefix:
            raise invalid(f"{at}.prefix", prefix, "a path prefix starting with / such as /api/")
        if prefix in seen:
            raise ConfigError(
                f"{at}.prefix", f"{prefix!r} is already routed by {key}[{seen[prefix]}]"
            )
        seen[prefix] = i
        service = item.get("service")
        if service is None:
            raise missing(f"{at}.service", "the name of the service the prefix goes to")
        if service not in names:
            raise invalid(f"{at}.service", service, f"a service name: {', '.join(names)}")
        rewrite = item.get("prefixRewrite")
        if rewrite is not None and (not isinstance(rewrite, str) or not rewrite.startswith("/")):
            raise invalid(f"{at}.prefixRewrite", rewrite, "a path starting with / such as /")
        routes.append(GatewayRoute(prefix, service, rewrite))
    return tuple(routes)


def _check_envoy_port(port: int, count: int) -> None:
    egress = range(egress_port(0), egress_port(count))
    if port == DEFAULT_HEALTH_PORT or port in egress:
        raise invalid(
            "envoy.port",
            port,
            f"free of {DEFAULT_HEALTH_PORT} (health) and {egress.start}-{egress.stop - 1} "
            "(calls to the services), which Envoy binds in each task",
        )


def _check_ports(services: tuple[ServiceSettings, ...], envoy_port: int) -> None:
    """The app shares its task's network with Envoy: it may not bind Envoy's ports."""
    egress = range(egress_port(0), egress_port(len(services)))
    for i, service in enumerate(services):
        key = f"services[{i}].port"
        taken = {envoy_port: "envoy.port", DEFAULT_HEALTH_PORT: "Envoy's health listener"}
        if service.port in taken:
            raise invalid(key, service.port, f"free: {taken[service.port]} binds it in the task")
        if service.port in egress:
            raise invalid(
                key,
                service.port,
                f"outside {egress.start}-{egress.stop - 1}, where Envoy listens for calls "
                "to the other services",
            )


def _client_certificate(
    raw: Mapping[str, Any], s: Settings, mutual: bool
) -> CertificateSettings | None:
    key = "mesh.clientCertificate"
    given = raw.get("clientCertificate")
    if given is not None:
        # The shape first, so a wrong value is reported at its own key.
        if not isinstance(given, dict):
            raise invalid(key, given, "an object with certificatePem and privateKeyPem")
        for name in given:
            if name not in ("certificatePem", "privateKeyPem"):
                raise ConfigError(f"{key}.{name}", "is not a known key")
        for name in ("certificatePem", "privateKeyPem"):
            value = given.get(name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise invalid(f"{key}.{name}", value, f"PEM text: {set_command(f'{key}.{name}')}")
        if given.get("privateKeyPem") is not None and not is_secret("mesh"):
            raise ConfigError(
                f"{key}.privateKeyPem",
                "must be set as a secret: " + set_command(f"{key}.privateKeyPem"),
            )
        if not mutual:
            raise ConfigError(key, "is only used with mesh.mutualTls true")
        if s.certificate is None:
            raise ConfigError(
                key,
                "is only used with your own certificate (certificate); the generated "
                "certificate is also the mesh's client certificate",
            )
    if s.certificate is not None and mutual and given is None:
        raise ConfigError(
            "mesh.mutualTls",
            "is true (the default) and certificate is your own: set mesh.clientCertificate "
            "(a client certificate from the CA that ends certificate.chainPem) or set "
            "mesh.mutualTls to false",
        )
    if given is None:
        return None
    for name in ("certificatePem", "privateKeyPem"):
        if given.get(name) is None:
            raise missing(f"{key}.{name}", f"PEM text: {set_command(f'{key}.{name}')}")
    certificate_pem, key_pem = given["certificatePem"], given["privateKeyPem"]
    if holds_key_material(certificate_pem):
        raise ConfigError(f"{key}.certificatePem", "holds a private key; it takes the certificate")
    try:
        leaf = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise ConfigError(f"{key}.certificatePem", "is not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except Exception:  # its text is never shown
        raise ConfigError(f"{key}.privateKeyPem", "is not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if leaf.public_key().public_bytes(der, public) != private.public_key().public_bytes(
        der, public
    ):
        raise ConfigError(
            f"{key}.privateKeyPem", f"is not the key of {key}.certificatePem (public keys differ)"
        )
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise ConfigError(
            f"{key}.certificatePem", "does not allow client authentication (extendedKeyUsage)"
        )
    chain = x509.load_pem_x509_certificates((s.certificate.chain_pem or "").encode())
    if leaf.issuer not in {c.subject for c in chain}:
        raise ConfigError(
            f"{key}.certificatePem",
            f"is issued by {leaf.issuer.rfc4514_string()!r}, which is not in "
            "certificate.chainPem: the services trust that chain's root only",
        )
    return CertificateSettings(certificate_pem=certificate_pem, private_key_pem=key_pem)


def _additional_roots(value: Any) -> str | None:
    """Root CAs trusted besides the mesh's own while it changes CA (topologies/appmesh_efs.py
    says how): self-issued CA certificates only, re-encoded so only certificates travel."""
    key = "mesh.additionalTrustedCaPem"
    if value is None:
        return None
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise invalid(key, value, "PEM text of one or more root CA certificates")
    if holds_key_material(value):
        raise ConfigError(key, "holds a private key; it takes CA certificates only")
    try:
        roots = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise ConfigError(key, "is not PEM certificates") from None
    for root in roots:
        try:
            is_ca = root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if root.subject != root.issuer or not is_ca:
            raise ConfigError(
                key,
                f"holds {root.subject.rfc4514_string()!r}, which is not a root CA (self-issued,"
                " basicConstraints CA): only roots are trusted here",
            )
    return "".join(r.public_bytes(serialization.Encoding.PEM).decode() for r in roots)


def _covers(names: list[str], host: str) -> bool:
    for name in names:
        name = name.lower().rstrip(".")
        if name == host:
            return True
        if name.startswith("*.") and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _check_own_certificate(certificate: CertificateSettings, hosts: list[str]) -> None:
    """Your certificate is every Envoy's: it must name every service and carry its root."""
    chain_pem = certificate.chain_pem
    if not chain_pem:
        raise missing(
            "certificate.chainPem",
            f"topology {TOPOLOGY!r} needs the chain up to its root CA: the gateway "
            "validates the services' certificates against that root (ca.pem)",
        )
    root = x509.load_pem_x509_certificates(chain_pem.encode())[-1]
    if root.subject != root.issuer:
        raise ConfigError(
            "certificate.chainPem",
            f"must end with the root CA (its last certificate, {root.subject.rfc4514_string()!r},"
            " is not self-issued): the gateway validates the services against it",
        )
    leaf = x509.load_pem_x509_certificate(certificate.certificate_pem.encode())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    for host in hosts:
        if not _covers(names, host):
            raise ConfigError(
                "certificate.certificatePem",
                f"does not name {host!r}: every service's "
                "Envoy presents it and the gateway checks that name; add it (or a wildcard "
                "for mesh.namespace) as a subject alternative name, or change mesh.namespace",
            )
