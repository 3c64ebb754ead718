"""One JSON-over-HTTP client for OpenAI-compatible endpoints (stdlib only): retries, one-line errors."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from bench.errors import BenchError, one_line
from bench.models import describe

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _delay(backoff: float, attempt: int, retry_after: str | None) -> float:
    delay = backoff * (2**attempt)
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass
    return min(delay, 60.0)


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    what: str,
    api_key_env: str,
    timeout: float,
    max_retries: int,
    backoff: float = 1.0,
    hint: str = "check base_url and model",
    timeout_hint: str = "raise timeout=",
    on_request: Callable[[], None] | None = None,
) -> Any:
    """POST ``payload`` and return the parsed JSON answer.

    429 and 5xx answers are retried with doubling backoff (honouring Retry-After); everything else
    becomes a one-line BenchError naming ``what`` (e.g. "embeddings endpoint"), the URL and the fix.
    The API key is read from ``api_key_env`` at call time and never stored.
    """
    from bench import __version__

    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": f"inversion-bench/{__version__}"}
    key = os.environ.get(api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(payload).encode()
    for attempt in range(max_retries + 1):
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        if on_request:
            on_request()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            try:
                detail = one_line(e.read().decode("utf-8", "replace"))
            except OSError:
                detail = ""
            if e.code in RETRY_STATUS and attempt < max_retries:
                time.sleep(_delay(backoff, attempt, e.headers.get("Retry-After") if e.headers else None))
                continue
            fix = f"set ${api_key_env}" if e.code in (401, 403) else hint
            raise BenchError(f"{what} {url} answered HTTP {e.code} {e.reason} ({detail or 'no body'}): {fix}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise BenchError(f"{what} {url} did not answer within {timeout:g} s: {timeout_hint}") from None
            why = describe(reason) if isinstance(reason, BaseException) else one_line(reason)
            raise BenchError(f"cannot reach {what} {url} ({why}): start the server or pass base_url=<its /v1 root>") from None
        try:
            return json.loads(body)
        except ValueError:
            raise BenchError(f"{what} {url} returned non-JSON ({body[:80]!r}): is base_url the /v1 root?") from None
    raise AssertionError("unreachable")
