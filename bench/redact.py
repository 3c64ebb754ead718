"""Secrets never leave the process: API keys are cut out of error messages, output lines and records.

What counts as a secret:

* every value registered with :func:`register_secret` / :func:`register_secret_env` (the HTTP
  backends register the key they send), and any stretch of 8 or more of its characters (a server
  that echoes part of the key, or the key inside a longer token);
* the value of every environment variable named like a credential (``*_API_KEY``, ``*_KEY``,
  ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``), 8 characters or longer;
* text shaped like a credential whatever its source: ``Bearer <token>``, ``Authorization: ...``,
  ``sk-...`` keys, ``api_key=...`` / ``"token": "..."`` pairs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from functools import lru_cache
from typing import Any, TypeVar

MASK = "[REDACTED]"
_MIN_SECRET = 4  # shorter values are not treated as secrets (they would mask ordinary words)
_WINDOW = 8  # a leaked stretch of this many characters of a key is masked
_ENV_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?)$", re.IGNORECASE)
_SHAPES = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)(authorization|x-api-key|api-key)(\"?\s*[:=]\s*\"?)[^\s\",}]+(\s+[^\s\",}]+)?"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|secret|password|token)(\"?\s*[:=]\s*\"?)[^\s\"&,}]{6,}"),
]
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]*"
_registered: set[str] = set()

T = TypeVar("T")


def register_secret(value: str | None) -> None:
    """Treat ``value`` as a secret from now on (no-op for None or values under 4 characters)."""
    if value and len(value) >= _MIN_SECRET:
        _registered.add(value)


def register_secret_env(name: str | None) -> str | None:
    """Register the value of environment variable ``name`` (if set) and return it."""
    value = os.environ.get(name) if name else None
    register_secret(value)
    return value


def credential_env_names() -> list[str]:
    """Names of the environment variables that look like credentials (``*_API_KEY``, ``*_SECRET``, ...)."""
    return [name for name in os.environ if _ENV_NAME.search(name)]


def _secrets() -> set[str]:
    found = set(_registered)
    for name, value in os.environ.items():
        if _ENV_NAME.search(name) and len(value) >= _WINDOW:
            found.add(value)
    return found


@lru_cache(maxsize=64)
def _pattern(secret: str) -> re.Pattern:
    if len(secret) <= _WINDOW:
        parts = [re.escape(secret)]
    else:
        parts = sorted({re.escape(secret[i : i + _WINDOW]) for i in range(len(secret) - _WINDOW + 1)}, key=len, reverse=True)
    # the whole token around any leaked stretch goes, not only the stretch
    return re.compile(f"{_TOKEN_CHARS}(?:{'|'.join(parts)}){_TOKEN_CHARS}")


def redact(text: str) -> str:
    """``text`` with every secret (and anything shaped like a credential) replaced by ``[REDACTED]``."""
    if not text:
        return text
    for secret in sorted(_secrets(), key=len, reverse=True):
        text = _pattern(secret).sub(MASK, text)
    text = _SHAPES[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _SHAPES[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SHAPES[2].sub(MASK, text)
    text = _SHAPES[3].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return text


def redact_obj(obj: Any) -> Any:
    """A JSON-like object with every string redacted (keys included)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def redact_record(record: T) -> T:
    """A pydantic record with every string field redacted (the same object when nothing changed)."""
    data = record.model_dump(mode="json")
    clean = redact_obj(data)
    if json.dumps(clean, sort_keys=True) == json.dumps(data, sort_keys=True):
        return record
    return type(record).model_validate(clean)


class RedactingStream:
    """A text stream (stderr, stdout) whose writes are redacted; everything else is delegated."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(redact(text))
        except ValueError:  # the wrapped stream was closed (a caller's capture ended): the process's own stderr
            if sys.__stderr__ is not None and sys.__stderr__ is not self._stream:
                sys.__stderr__.write(redact(text))
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except ValueError:  # closed: nothing left to flush
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
