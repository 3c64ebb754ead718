"""The chance floor as an attack: one constant text, chosen on the attacker's own data alone.

It never queries the victim and never looks at the target embeddings, so whatever it scores is what
any text attack gets for free on those targets (``bench.floor`` holds the rule).
"""

from __future__ import annotations

import numpy as np

from bench.api import Attack, AttackContext, Inversion
from bench.floor import chance_text
from bench.hookspecs import hookimpl


class Chance(Attack):
    """Chance floor: the attacker-split text (or frequent-word list) with the best held-out token F1."""

    name = "chance"
    output = "text"
    query_access = "none"
    default_grid = [{"adaptive": False}]  # it reads no embedding: knowing the defense changes nothing

    def fit(self, ctx: AttackContext) -> None:
        return None  # nothing to learn beyond the choice invert makes from the attacker split

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        text = chance_text(ctx.attacker.texts, seed=ctx.seed)
        return [Inversion(text) for _ in range(len(emb))]


@hookimpl
def register_attacks(register):
    register(Chance)
