"""One JSON-over-HTTP client for OpenAI-compatible endpoints (stdlib only): retries, one-line errors,
keys redacted from every message, and a bounded parallel map that stops at the first failure."""

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
from bench.redact import redact, register_secret

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _delay(backoff: float, attempt: int, retry_after: str | None) -> float:
    delay = backoff * (2**attempt)
    if retry_after:
        try:
            delay = max(delay, float(retry_after))
        except ValueError:
            pass
    return min(delay, 60.0)


def post_json(url: str, payload: dict[str, Any], **options: Any) -> Any:
    """POST ``payload`` and return the parsed JSON answer.

    429 and 5xx answers are retried with doubling backoff (honouring Retry-After); everything else
    becomes a one-line BenchError naming ``what`` (e.g. "embeddings endpoint"), the URL and the fix.
    The API key is read from ``api_key_env`` at call time and never stored. ``options``: those of
    :func:`_request` (what, api_key_env, timeout, max_retries, backoff, hint, timeout_hint, on_request).
    """
    return _request(url, payload, **options)


def get_json(url: str, *, what: str, api_key_env: str, timeout: float, max_retries: int = 0) -> Any:
    """GET ``url`` and return the parsed JSON answer (same errors as :func:`post_json`)."""
    return _request(url, None, what=what, api_key_env=api_key_env, timeout=timeout, max_retries=max_retries)


def _request(
    url: str,
    payload: dict[str, Any] | None,
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
    from bench import __version__

    headers = {"Accept": "application/json", "User-Agent": f"inversion-bench/{__version__}"}
    key = os.environ.get(api_key_env)
    if key:
        register_secret(key)  # from now on it is cut out of every message, log line and record
        headers["Authorization"] = f"Bearer {key}"
    data = None
    if payload is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(payload).encode()
    for attempt in range(max_retries + 1):
        req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
        if on_request:
            on_request()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            try:
                detail = one_line(redact(e.read().decode("utf-8", "replace")))
            except OSError:
                detail = ""
            if e.code in RETRY_STATUS and attempt < max_retries:
                time.sleep(_delay(backoff, attempt, e.headers.get("Retry-After") if e.headers else None))
                continue
            fix = hint
            if e.code in (401, 403):
                fix = (f"the key in ${api_key_env} was sent and refused: check that it is valid for this server" if key
                       else f"${api_key_env} is not set: set it to the server's API key")
            raise BenchError(redact(f"{what} {url} answered HTTP {e.code} {e.reason} ({detail or 'no body'}): {fix}")) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise BenchError(f"{what} {url} did not answer within {timeout:g} s: {timeout_hint}") from None
            why = describe(reason) if isinstance(reason, BaseException) else one_line(reason)
            raise BenchError(redact(f"cannot reach {what} {url} ({why}): start the server or pass base_url=<its /v1 root>")) from None
        try:
            return json.loads(body)
        except ValueError:
            raise BenchError(redact(f"{what} {url} returned non-JSON ({body[:80]!r}): is base_url the /v1 root?")) from None
    raise AssertionError("unreachable")


def served_model_id(body: Any, wanted: str) -> str | None:
    """The id of ``wanted`` in an OpenAI ``/models`` answer, else the only model listed, else None."""
    items = body.get("data") if isinstance(body, dict) else None
    ids = [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")] if isinstance(items, list) else []
    if wanted in ids:
        return wanted
    return ids[0] if len(ids) == 1 else None


def parallel_map(fn: Callable[[Any], Any], items: list[Any], parallel: int, on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` with at most ``parallel`` calls in flight.

    The first failure stops the remaining items (none is started after it); the calls already in
    flight finish, every finished result is handed to ``on_result(index, result)`` (e.g. to cache
    it) as it arrives, and the first error is raised.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    results: list[Any] = [None] * len(items)
    error: BaseException | None = None
    todo = iter(range(len(items)))
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        running = {}
        for i in todo:
            running[pool.submit(fn, items[i])] = i
            if len(running) >= parallel:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                try:
                    results[i] = fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    error = error or e
                    continue
                if on_result:
                    on_result(i, results[i])
            while error is None and len(running) < parallel:
                i = next(todo, None)
                if i is None:
                    break
                running[pool.submit(fn, items[i])] = i
    if error is not None:
        raise error
    return results
