"""Victim ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint (black-box), fingerprinted
by what the server returns. Conventions of every victim embedder: ``bench_plugins.embedders``."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import Field

from bench.api import Embedder, Params
from bench.errors import BenchError
from bench.http import BaseUrl
from bench.models import describe
from bench.redact import register_secret_env
from bench.vectors import batches, unit


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, TEI, Ollama, ...), black-box.

    The API key is read from the environment variable named by ``api_key_env`` at request time and
    is never stored in the parameters, the fingerprint or any message; when the variable is unset no
    Authorization header is sent (local servers). ``pretrained`` is assumed True.

    Every response is checked: one vector per input, of the requested ``dimensions`` (and the same
    dimension on every call). The fingerprint says what the server *is*, not only what it is
    called: the dimension it returned, the model id it lists under ``{base_url}/models`` (when it
    offers that route) and a SHA-256 of the vectors it returns for a few fixed probe texts
    (:data:`PROBE_TEXTS`), so another model or setting behind the same URL is another victim with
    its own cache entries. ``probe=false`` drops the probe digest (for servers whose vectors vary
    from call to call).
    """

    name = "openai"

    class Params(Params):
        base_url: BaseUrl = Field("http://localhost:8000/v1", min_length=1, description="API root (http or https); requests go to {base_url}/embeddings")
        model: str = Field(..., min_length=1, description='model name sent to the endpoint, e.g. "text-embedding-3-small"')
        api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="environment variable holding the API key (never stored)")
        batch_size: int = Field(128, ge=1, le=2048, description="texts per request")
        dimensions: int | None = Field(None, ge=1, description="ask the endpoint for this many dimensions (models that support it)")
        normalize: bool = Field(True, description="L2-normalise each returned embedding (cosine geometry)")
        prompt: str | None = Field(None, description="prefix added to every text")
        timeout: float = Field(60.0, gt=0, json_schema_extra={"transport": True}, description="seconds per HTTP request")
        max_retries: int = Field(3, ge=0, le=10, json_schema_extra={"transport": True}, description="retries of a request answered 429 or 5xx")
        backoff: float = Field(1.0, ge=0, le=60, json_schema_extra={"transport": True}, description="seconds before the first retry, doubled each time")
        parallel: int = Field(1, ge=1, le=64, json_schema_extra={"transport": True}, description="requests in flight at once (a failure stops the rest)")
        probe: bool = Field(True, description="fingerprint the server by its vectors of fixed probe texts")

    def __init__(self, params=None):
        super().__init__(params)
        self.pretrained = True
        self._dim: int | None = None
        self._identity: dict[str, Any] | None = None
        self.requests = 0  # HTTP requests sent, retries included
        register_secret_env(self.params.api_key_env)

    @property
    def url(self) -> str:
        return self.params.base_url.rstrip("/") + "/embeddings"

    def load(self, device: str) -> None:
        """Nothing to load: the model runs behind the endpoint."""

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        from bench.http import post_json

        def count() -> None:
            self.requests += 1

        p = self.params
        return post_json(
            self.url, payload, what="embeddings endpoint", api_key_env=p.api_key_env, timeout=p.timeout,
            max_retries=p.max_retries, backoff=p.backoff, hint="check base_url, model and dimensions",
            timeout_hint="raise timeout= or lower batch_size=", on_request=count,
        )

    def _request(self, texts: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.params.model, "input": texts, "encoding_format": "float"}
        if self.params.dimensions is not None:
            payload["dimensions"] = self.params.dimensions
        resp = self._post(payload)
        items = resp.get("data") if isinstance(resp, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            got = len(items) if isinstance(items, list) else "no"
            raise BenchError(f"embeddings endpoint {self.url} returned {got} embeddings for {len(texts)} inputs")
        try:
            items = sorted(items, key=lambda d: d["index"])
            emb = np.asarray([d["embedding"] for d in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise BenchError(f"embeddings endpoint {self.url} returned a malformed response ({describe(e)})") from None
        if emb.ndim != 2 or emb.shape[1] == 0:
            raise BenchError(f"embeddings endpoint {self.url} returned vectors of different (or zero) lengths")
        if not np.isfinite(emb).all():
            raise BenchError(f"embeddings endpoint {self.url} returned non-finite values (NaN or inf) for model {self.params.model!r}: check the server")
        want = self.params.dimensions
        if want is not None and emb.shape[1] != want:
            raise BenchError(
                f"embeddings endpoint {self.url} returned {emb.shape[1]}-d vectors although dimensions={want} was asked: "
                f"the model ignores dimensions (drop it) or the server runs another model"
            )
        if self._dim is None:
            self._dim = emb.shape[1]
        elif emb.shape[1] != self._dim:
            raise BenchError(f"embeddings endpoint {self.url} changed dimension from {self._dim} to {emb.shape[1]} between calls")
        return emb

    def embed(self, texts: list[str]) -> np.ndarray:
        from bench.http import parallel_map

        prompt = self.params.prompt or ""
        texts = [prompt + t for t in texts]
        if not texts:
            return np.zeros((0, self._dim or self.params.dimensions or 0), dtype=np.float32)
        chunks = [[texts[i] for i in batch] for batch in batches(len(texts), self.params.batch_size)]
        parts = parallel_map(self._request, chunks, self.params.parallel)
        emb = np.concatenate(parts, axis=0)
        if self.params.normalize:
            emb = unit(emb)
        return np.ascontiguousarray(emb, dtype=np.float32)

    @property
    def dim(self) -> int:
        """The requested ``dimensions``, else the first response's (the identity probe if nothing was embedded yet)."""
        if self.params.dimensions is not None:
            return self.params.dimensions
        if self._dim is None:
            self.identity()
        return int(self._dim)

    def _server_model(self) -> str | None:
        """The id the server lists for ``model`` under ``{base_url}/models`` (or its only model); None if not offered."""
        from bench.http import get_json, served_model_id

        try:
            body = get_json(self.params.base_url.rstrip("/") + "/models", what="models endpoint",
                            api_key_env=self.params.api_key_env, timeout=self.params.timeout)
        except BenchError:
            return None
        return served_model_id(body, self.params.model)

    def identity(self) -> dict[str, Any]:
        """What the server is: returned dimension, listed model id, probe-vector digest (memoised)."""
        if self._identity is None:
            prompt = self.params.prompt or ""
            probe = self._request([prompt + t for t in PROBE_TEXTS])
            self._identity = {
                "dim": int(probe.shape[1]),
                "server_model": self._server_model(),
                "probe_sha256": hashlib.sha256(np.ascontiguousarray(probe, np.float32).tobytes()).hexdigest() if self.params.probe else None,
            }
        return self._identity

    def fingerprint(self) -> dict[str, Any]:
        return {
            "embedder": self.name,
            "model": self.params.model,
            "base_url": self.params.base_url.rstrip("/"),
            "dimensions": self.params.dimensions,
            "weights_sha256": None,
            "pooling": None,
            "normalize": self.params.normalize,
            "max_length": None,
            "prompt": self.params.prompt or None,
            **self.identity(),
        }


PROBE_TEXTS = ("The quick brown fox jumps over the lazy dog.", "inversion-bench identity probe", "A 1 2 3")
