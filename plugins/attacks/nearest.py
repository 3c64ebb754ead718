"""Nearest-neighbour baseline: answer with the attacker's own sentence closest to the target."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, AttackParams, Inversion
from bench.hookspecs import hookimpl
from bench.retrieval import search


class Nearest(Attack):
    """Retrieval baseline: the attacker-split sentence whose embedding is nearest to the target."""

    name = "nearest"
    output = "text"

    class Params(AttackParams):
        max_train: int | None = Field(None, ge=1, description="use at most this many attacker texts")

    def fit(self, ctx: AttackContext) -> None:
        texts = ctx.attacker.texts[: self.params.max_train]
        self.texts = texts
        self.index = ctx.train_view(ctx.victim.query(texts, split="attacker"))

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        emb = ctx.target_view(emb)
        idx = search(emb, self.index, 1, ctx.device)[:, 0]
        return [Inversion(self.texts[i]) for i in idx]


@hookimpl
def register_attacks(register):
    register(Nearest)
