"""Typed, frozen settings parsed from the stack configuration (namespace `ecs-tls`).

`load_settings()` reads every key once, before any resource is registered, and raises
`ConfigError` with one message that names the key, the value given and what is accepted.

    constants.py   accepted values and shared defaults
    reference.py   CONFIG_REFERENCE: every key, its type, default and meaning; APPLIES_TO:
                   which topologies read a key
    model.py       the frozen settings objects and per-topology defaults
    readers.py     raw configuration and single-value checks
    redaction.py   what an error may show of a value (never a key or a --secret value)
    secrecy.py     the values of keys set with --secret, made secret in every resource input
                   and stack output that holds one (a stack transform)
    certificate_check.py  a bring-your-own certificate, key and chain, with cryptography
    workloads.py   `app` and `services`
    parse.py       the other keys and the whole configuration
"""

from constants.config import (
    ACME_DIRECTORIES,
    FARGATE_MEMORY,
    NAMESPACE,
    TOPOLOGIES,
)
from settings.errors import ConfigError
from settings.model import (
    APP_DEFAULTS,
    DEMO_SERVICES,
    AcmeSettings,
    AppSettings,
    CertificateLayout,
    CertificateSettings,
    EnvoySettings,
    ListenerCertificateSettings,
    LoadBalancerSettings,
    NetworkSettings,
    PrivateCaSettings,
    ServiceConnectSettings,
    ServiceSettings,
    Settings,
)
from settings.parse import load_settings, parse_settings
from settings.reference import CONFIG_REFERENCE, ConfigKey
from settings.workloads import creation_order

__all__ = [
    "ACME_DIRECTORIES",
    "APP_DEFAULTS",
    "CONFIG_REFERENCE",
    "DEMO_SERVICES",
    "FARGATE_MEMORY",
    "NAMESPACE",
    "TOPOLOGIES",
    "AcmeSettings",
    "AppSettings",
    "CertificateLayout",
    "CertificateSettings",
    "ConfigError",
    "ConfigKey",
    "EnvoySettings",
    "ListenerCertificateSettings",
    "LoadBalancerSettings",
    "NetworkSettings",
    "PrivateCaSettings",
    "ServiceConnectSettings",
    "ServiceSettings",
    "Settings",
    "creation_order",
    "load_settings",
    "parse_settings",
]
