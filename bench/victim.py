"""The victim: an embedder behind a cache (harness side; attacks get ``bench.oracle.QueryOracle``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from bench.cache import EmbeddingCache
from bench.errors import BenchError
from bench.oracle import QueryBudgetExceeded

if TYPE_CHECKING:
    from bench.api import Embedder

__all__ = ["QueryBudgetExceeded", "Victim", "check_vectors"]


class Victim:
    """Embeds dataset splits (cached) for the harness: the defender's data, the targets, scoring.

    It counts nothing and enforces nothing: an attack never holds it. Its queries reach the victim
    through the oracle (``bench.oracle.victim_oracle``), which charges every text to the cell's one
    ``QueryLedger`` by phase and refuses what a budget does not allow before anything is embedded.
    """

    def __init__(self, embedder: Embedder, cache: EmbeddingCache, dataset_key: str, progress: bool = True):
        self.embedder = embedder
        self.cache = cache
        self.dataset_key = dataset_key
        self.progress = progress
        self.embed_seconds = 0.0
        self._fingerprint: dict | None = None

    @property
    def fingerprint(self) -> dict:
        if self._fingerprint is None:
            self._fingerprint = self.embedder.fingerprint()
        return self._fingerprint

    @property
    def dim(self) -> int:
        return self.embedder.dim

    @property
    def modality(self) -> str:
        """What ``embed_split`` takes: "text", or "image" (image file paths)."""
        return getattr(self.embedder, "modality", "text")

    def embed_split(self, split: str, texts: list[str]) -> np.ndarray:
        """Embeddings of a dataset split (texts, or image paths for an image victim), from the cache when they are there."""
        return self._cached(self.fingerprint, split, texts, self.embedder.embed)

    def embed_text_split(self, split: str, texts: list[str]) -> np.ndarray:
        """An image victim's text-tower embeddings (``embedder.embed_text``), cached."""
        return self._cached({**self.fingerprint, "tower": "text"}, split, texts, self.embedder.embed_text)

    def embed_fresh(self, texts: list[str]) -> np.ndarray:
        """Embeddings without the on-disk cache (many small search queries would each write a file)."""
        n = len(texts)
        if not n:
            return np.zeros((0, self.dim), np.float32)
        t0 = time.perf_counter()
        emb = check_vectors(self.embedder.name, self.embedder.embed(list(texts)), n, self.dim)
        self.embed_seconds += time.perf_counter() - t0
        return emb

    def _cached(self, fingerprint: dict, split: str, texts: list[str], embed) -> np.ndarray:
        path = self.cache.path(fingerprint, self.dataset_key, split, texts)
        emb = self.cache.get(path, len(texts), self.dim if texts else None)
        if emb is None:
            with self.cache.lock(path):  # concurrent jobs: one embeds, the others wait and read
                emb = self.cache.get(path, len(texts), self.dim if texts else None)
                if emb is None:
                    emb = self._embed(texts, split, embed=embed)
                    self.cache.put(path, emb)
        return emb

    def _embed(self, texts: list[str], split: str, embed, chunk: int = 2048) -> np.ndarray:
        from bench.progress import bar

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        t0 = time.perf_counter()
        parts = []
        with bar(len(texts), f"embedding {split}", "text", enabled=self.progress) as counter:
            for i in range(0, len(texts), chunk):
                batch = texts[i : i + chunk]
                parts.append(check_vectors(self.embedder.name, embed(batch), len(batch), self.dim))
                counter.update(len(parts[-1]))
        emb = np.concatenate(parts)
        self.embed_seconds += time.perf_counter() - t0
        return emb


def check_vectors(name: str, emb, n: int, dim: int) -> np.ndarray:
    """``emb`` as float32 [n, dim] when it is one finite vector of the declared dimension per input;
    otherwise a one-line BenchError naming the embedder and what it returned (nothing is cached)."""
    try:
        arr = np.asarray(emb, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise BenchError(f"embedder {name!r} returned something that is not an array of vectors ({type(e).__name__}): fix the embedder") from None
    if arr.ndim != 2 or arr.shape[0] != n:
        raise BenchError(f"embedder {name!r} returned an array of shape {arr.shape} for {n} inputs: it must return one vector per input")
    if arr.shape[1] != dim:
        raise BenchError(
            f"embedder {name!r} returned {arr.shape[1]}-d vectors but declares dimension {dim}: "
            f"check the model (or the endpoint's dimensions setting)"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = int(bad.any(axis=1).sum())
        raise BenchError(f"embedder {name!r} returned non-finite values (NaN or inf) in {rows} of {n} vectors: check the model or endpoint")
    return arr
