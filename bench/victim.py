"""The victim: an embedder behind a cache and a counted, budgeted query interface."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from bench.api import Embedder
from bench.cache import EmbeddingCache
from bench.errors import BenchError


class QueryBudgetExceeded(BenchError):
    """An attack asked the victim for more texts than its threat model's query budget allows."""


class Victim:
    """Embeds dataset splits (cached) and answers the attacker's black-box queries (counted).

    ``queries`` counts every text the attacker asked the victim about, whether or not the answer
    came from the cache: it is the cost the attacker would pay against a real API.

    Budgets are enforced here, before anything is embedded: ``budget`` caps ``queries`` in total
    and ``target_budget`` caps the queries made inside each ``for_target()`` block (one target's
    inversion). A request that would pass either raises :class:`QueryBudgetExceeded`; ``remaining()``
    tells an attack how much it may still ask, so a careful one stops with its best so far.
    """

    def __init__(self, embedder: Embedder, cache: EmbeddingCache, dataset_key: str, progress: bool = True):
        self.embedder = embedder
        self.cache = cache
        self.dataset_key = dataset_key
        self.progress = progress
        self.queries = 0
        self.budget: int | None = None
        self.target_budget: int | None = None
        self._scope_used: int | None = None  # queries inside the current for_target() block
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
        """What ``embed_split`` and ``query`` take: "text", or "image" (image file paths)."""
        return getattr(self.embedder, "modality", "text")

    def embed_split(self, split: str, texts: list[str]) -> np.ndarray:
        """Embeddings of a dataset split (texts, or image paths for an image victim), from the cache when they are there."""
        return self._cached(self.fingerprint, split, texts, self.embedder.embed)

    def embed_text_split(self, split: str, texts: list[str]) -> np.ndarray:
        """An image victim's text-tower embeddings (``embedder.embed_text``), cached; not attacker queries."""
        return self._cached({**self.fingerprint, "tower": "text"}, split, texts, self.embedder.embed_text)

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

    def remaining(self) -> int | None:
        """Queries still allowed now (the tighter of the total and the per-target budget); None: no limit."""
        left = [self.budget - self.queries] if self.budget is not None else []
        if self.target_budget is not None and self._scope_used is not None:
            left.append(self.target_budget - self._scope_used)
        return max(min(left), 0) if left else None

    @contextmanager
    def for_target(self) -> Iterator[Victim]:
        """One target's inversion: its queries count against ``target_budget`` (when set)."""
        outer = self._scope_used
        self._scope_used = 0
        try:
            yield self
        finally:
            self._scope_used = outer

    def query(self, texts: list[str], split: str = "queries", cache: bool = True) -> np.ndarray:
        """The attacker's black-box access: counted, and refused past the threat model's budget.

        ``cache`` False embeds without the on-disk cache (many small search queries would each
        write a file); the answer and the count are the same.
        """
        n = len(texts)
        if self.budget is not None and self.queries + n > self.budget:
            raise QueryBudgetExceeded(
                f"the attack asked for {self.queries + n} victim queries but the threat model "
                f"allows {self.budget}: raise the budget or lower the attack's data size"
            )
        if self.target_budget is not None and self._scope_used is not None and self._scope_used + n > self.target_budget:
            raise QueryBudgetExceeded(
                f"the attack asked for {self._scope_used + n} victim queries for one target but the query "
                f"budget is {self.target_budget} per target: raise --query-budget"
            )
        self.queries += n
        if self._scope_used is not None:
            self._scope_used += n
        if cache:
            return self.embed_split(split, texts)
        t0 = time.perf_counter()
        emb = check_vectors(self.embedder.name, self.embedder.embed(list(texts)), n, self.dim) if n else np.zeros((0, self.dim), np.float32)
        self.embed_seconds += time.perf_counter() - t0
        return emb

    def _embed(self, texts: list[str], split: str, embed, chunk: int = 2048) -> np.ndarray:
        from tqdm.auto import tqdm

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        t0 = time.perf_counter()
        parts = []
        with tqdm(total=len(texts), desc=f"embedding {split}", unit="text", disable=None if self.progress else True, leave=False) as bar:
            for i in range(0, len(texts), chunk):
                batch = texts[i : i + chunk]
                parts.append(check_vectors(self.embedder.name, embed(batch), len(batch), self.dim))
                bar.update(len(parts[-1]))
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
