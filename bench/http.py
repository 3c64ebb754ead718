"""One JSON-over-HTTP client for OpenAI-compatible endpoints, on httpx: retries, one-line errors,
keys redacted from every message, redirects followed without ever carrying the API key to another
host (httpx drops ``Authorization`` when a redirect leaves the origin), base URLs checked for a
scheme it speaks, and a bounded parallel map that stops at the first failure."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator

from bench.errors import BenchError, one_line
from bench.models import describe
from bench.redact import redact, register_secret

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_REDIRECTS = 5


def check_base_url(url: str) -> str:
    """An http(s) URL with a host, else a ValueError naming the fix (pydantic makes it one line)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"base URL {url!r} has scheme {parts.scheme or 'none'!r}: give an http:// or https:// URL, e.g. http://localhost:8000/v1")
    if not parts.hostname:
        raise ValueError(f"base URL {url!r} names no host: give e.g. http://localhost:8000/v1")
    return url


# A plugin parameter holding an OpenAI-compatible API root: refused when the plugin is configured
# (before any work), not after a request times out.
BaseUrl = Annotated[str, AfterValidator(check_base_url)]


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
    import httpx

    from bench import __version__

    try:
        check_base_url(url)
    except ValueError as e:
        raise BenchError(f"{what}: {e}") from None
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
        if on_request:
            on_request()
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS) as client:
                resp = client.request("POST" if data is not None else "GET", url, content=data, headers=headers)
        except httpx.TimeoutException:
            raise BenchError(f"{what} {url} did not answer within {timeout:g} s: {timeout_hint}") from None
        except httpx.TooManyRedirects:
            raise BenchError(f"{what} {url} redirected more than {MAX_REDIRECTS} times: pass base_url= the server's final /v1 root") from None
        except httpx.HTTPError as e:
            why = describe(e.__cause__ or e)
            raise BenchError(redact(f"cannot reach {what} {url} ({why}): start the server or pass base_url=<its /v1 root>")) from None
        if resp.status_code >= 300:
            detail = one_line(redact(resp.text)) if resp.status_code >= 400 else f"redirect to {resp.headers.get('Location') or 'nowhere'}"
            if resp.status_code in RETRY_STATUS and attempt < max_retries:
                time.sleep(_delay(backoff, attempt, resp.headers.get("Retry-After")))
                continue
            fix = hint
            if resp.status_code in (401, 403):
                fix = (f"the key in ${api_key_env} was sent and refused: check that it is valid for this server" if key
                       else f"${api_key_env} is not set: set it to the server's API key")
            raise BenchError(redact(f"{what} {url} answered HTTP {resp.status_code} {resp.reason_phrase} ({detail or 'no body'}): {fix}"))
        try:
            return json.loads(resp.content)
        except ValueError:
            raise BenchError(redact(f"{what} {url} returned non-JSON ({resp.content[:80]!r}): is base_url the /v1 root?")) from None
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
