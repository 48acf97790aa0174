"""The one error type of bad configuration: it names the key, the value and what is accepted."""

from __future__ import annotations

from typing import Any

import pulumi

from constants.config import NAMESPACE
from settings.redaction import scrub, shown


class ConfigError(pulumi.RunError):
    """A configuration problem, reported by Pulumi without a stack trace.

    The text goes through `scrub()`: a message composed without `shown()` still cannot
    print a private key.
    """

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(scrub(f"{NAMESPACE}:{key}: {message}"))


def invalid(key: str, value: Any, accepted: str) -> ConfigError:
    return ConfigError(key, f"{shown(key, value)} is not {accepted}")


def missing(key: str, why: str) -> ConfigError:
    return ConfigError(key, f"missing; {why}")
