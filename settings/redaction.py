"""What an error message may show of a configuration value.

An error shows the value it refuses, so the user can find it; but a stack's output is read
by more people and tools (CI logs, `pulumi up` in a shared terminal) than its encrypted
configuration. So a value that holds key material, or that belongs to a key the user set
with `--secret`, is shown as `<redacted>`. Every message that shows a value gets it from
`shown()`; `ConfigError` passes its whole text through `scrub()` as a last line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

REDACTED = "<redacted>"

# "PRIVATE KEY" is in every PEM key header (PKCS#1, PKCS#8, SEC1, encrypted, OpenSSH);
# matched in any case so a header lower-cased by some tool still counts.
_KEY_MARKER = re.compile(r"PRIVATE\s+KEY", re.IGNORECASE)

# A PEM private key in running text, from its header to its footer or the end of the text.
_KEY_BLOCK = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE\s+KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE\s+KEY-----|\Z)",
    re.IGNORECASE | re.DOTALL,
)

# Top-level keys (without namespace) whose values the engine marks secret, for the parse
# under way. A context variable, so parses in other threads or tasks keep their own.
_SECRET_KEYS: ContextVar[frozenset[str]] = ContextVar("ecs_tls_secret_keys", default=frozenset())


@contextmanager
def treating_as_secret(names: Iterable[str]) -> Iterator[None]:
    """Within the block, redact every value under the top-level keys `names`."""
    token = _SECRET_KEYS.set(frozenset(names))
    try:
        yield
    finally:
        _SECRET_KEYS.reset(token)


def top_level(key: str) -> str:
    """`certificate` for `certificate.privateKeyPem`, `services` for `services[0].name`."""
    return re.split(r"[.\[]", key, maxsplit=1)[0]


def is_secret(key: str) -> bool:
    """True when `key` is, or is inside, a top-level key the user set with `--secret`.

    A top-level name may itself hold a dot (`ecs-tls:app.port` set without `--path`).
    """
    return any(
        key == name or key.startswith((f"{name}.", f"{name}[")) for name in _SECRET_KEYS.get()
    )


def holds_key_material(value: Any) -> bool:
    """True when `value`, or anything inside it (keys included), names a private key."""
    if isinstance(value, str):
        return _KEY_MARKER.search(value) is not None
    if isinstance(value, Mapping):
        return any(holds_key_material(k) or holds_key_material(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds_key_material(v) for v in value)
    return False


def shown(key: str, value: Any, limit: int | None = None) -> str:
    """How an error shows `value` of `key`: its repr, cut to `limit`, or `<redacted>`."""
    if is_secret(key) or holds_key_material(value):
        return REDACTED
    text = repr(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def scrub(text: str) -> str:
    """`text` with every PEM private key block in it replaced by `<redacted>`."""
    return _KEY_BLOCK.sub(REDACTED, text)
