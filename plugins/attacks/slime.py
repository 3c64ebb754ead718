"""SLImE semantic-leakage attack (in progress)."""

from __future__ import annotations

from bench.api import Attack, AttackParams
from bench.hookspecs import hookimpl


class Slime(Attack):
    """SLImE (arXiv 2601.22929): align, retrieve relational tags, caption them with an LLM (in progress)."""

    name = "slime"
    output = "text"
    Params = AttackParams
    default_grid = [{"adaptive": False}]


@hookimpl
def register_attacks(register):
    register(Slime)
