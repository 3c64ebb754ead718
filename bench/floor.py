"""The chance floor: the one text an attacker would output knowing only its own data.

A leakage number means something only above what a constant answer scores on the same targets. The
floor's text is chosen on the attacker split alone (never the targets, never a victim query):
candidates are ``POOL`` attacker texts and the lists of the 1..``MAX_WORDS`` most frequent attacker
words (in frequency order, joined by spaces); the chosen one has the highest mean token F1 against
``HELDOUT`` other attacker texts (ties: the first candidate). docs/metrics.md states the rule.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from bench.metrics import tokens, words

ATTACK = "chance"  # the attack plugin that outputs the floor (plugins/attacks/chance.py)
POOL = 500  # attacker texts tried as the constant answer
HELDOUT = 500  # attacker texts the candidates are scored against
MAX_WORDS = 20  # longest most-frequent-words list tried

_CACHE: dict[str, str] = {}


def candidates(texts: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """(candidate answers, held-out texts) drawn from the attacker's ``texts`` with ``seed``."""
    if len(texts) < 2:
        raise ValueError("the chance floor needs at least 2 attacker texts")
    order = np.random.default_rng(seed).permutation(len(texts))
    n_held = min(HELDOUT, len(texts) // 2)
    held = [texts[i] for i in order[:n_held]]
    pool = [texts[i] for i in order[n_held : n_held + POOL]]
    freq = [w for w, _ in Counter(w for t in pool for w in set(words(t))).most_common(MAX_WORDS)]
    lists = [" ".join(freq[:m]) for m in range(1, len(freq) + 1)]
    return list(dict.fromkeys(pool + lists)), held


def chance_text(texts: list[str], seed: int = 0) -> str:
    """The constant answer that scores best (mean token F1) on held-out attacker texts."""
    key = hashlib.sha256("\x00".join([str(seed), *texts]).encode()).hexdigest()
    if key not in _CACHE:
        cands, held = candidates(texts, seed)
        held_sets = [set(tokens(t)) for t in held]
        best, best_score = cands[0], -1.0
        for c in cands:
            cs = set(tokens(c))
            if not cs:
                continue
            score = float(np.mean([2 * len(cs & h) / (len(cs) + len(h)) for h in held_sets]))
            if score > best_score:
                best, best_score = c, score
        _CACHE[key] = best
    return _CACHE[key]
