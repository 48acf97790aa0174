"""The one error type of bad configuration: it names the key, the value and what is accepted."""

from __future__ import annotations

import re
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


def renamed(error: ConfigError, prefix: str, argument: str = "") -> ConfigError:
    """`error` naming an argument instead of a configuration key: `prefix` (e.g.
    `network.`) becomes `argument`, in the key and where the message names a key.

    For a component whose arguments are one configuration object's fields: they are
    parsed as that object, and its errors then speak of the arguments the caller gave.
    """
    if not error.key.startswith(prefix):
        return error
    head = f"{NAMESPACE}:{error.key}: "
    text = str(error)
    message = text[len(head) :] if text.startswith(head) else text
    message = re.sub(rf"(?<![\w.]){re.escape(prefix)}(?=\w)", argument, message)
    return ConfigError(argument + error.key[len(prefix) :], message)
