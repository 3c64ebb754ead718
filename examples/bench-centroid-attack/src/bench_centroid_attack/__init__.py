"""Centroid baseline: the words shared by the attacker sentences nearest to the target."""

from __future__ import annotations

from collections import Counter

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, AttackParams, Inversion
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.metrics import words
from bench.retrieval import search

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("bench-centroid-attack")
except PackageNotFoundError:  # loaded as a loose file (--plugins-dir) or from an uninstalled tree
    __version__ = "0.1.0"

# Share thresholds such as 0.3 * 10 are not exact in floating point; compare with a little slack.
_EPS = 1e-9


class Centroid(Attack):
    """Bag-of-words baseline: words found in at least min_share of the k nearest attacker sentences."""

    name = "centroid"
    output = "words"

    class Params(AttackParams):
        k: int = Field(10, ge=1, description="attacker sentences nearest to each target to vote")
        min_share: float = Field(0.3, gt=0, le=1, description="fraction of the k neighbours a word must appear in")
        max_train: int | None = Field(None, ge=1, description="use at most this many attacker texts")

    def fit(self, ctx: AttackContext) -> None:
        texts = ctx.attacker.texts[: self.params.max_train]
        if not texts:
            raise BenchError("attack 'centroid' needs attacker texts: the dataset's attacker split is empty")
        self.bags = [frozenset(words(t)) for t in texts]
        # The index lives in the space the targets will be compared in: a known defense is
        # simulated on the attacker's own embeddings (train_view), a secret one is undone on the
        # targets (ctx.target_view in invert); a naive attacker indexes clean embeddings.
        self.index = ctx.train_view(ctx.oracle.query(texts, split="attacker"))

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        if len(emb) == 0:
            return []
        emb = ctx.target_view(emb)
        neighbours = search(emb, self.index, self.params.k, ctx.device)
        out = []
        for row in neighbours:
            row = [int(i) for i in row if i >= 0]  # faiss pads with -1 when k > index size
            votes = Counter(w for i in row for w in self.bags[i])
            need = self.params.min_share * len(row) - _EPS
            out.append(Inversion(sorted(w for w, n in votes.items() if n >= need)))
        return out


@hookimpl
def register_attacks(register):
    register(Centroid)
