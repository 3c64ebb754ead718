"""Passages of the length inversion papers evaluate on (~32 tokens): text cut at sentence ends and
consecutive sentences grouped into 20-40-word passages (used by the ``wikipedia`` and ``brown`` datasets)."""

from __future__ import annotations

import re

MIN_WORDS, MAX_WORDS = 20, 40
# A sentence ends at . ! or ? (optionally closed by a quote or bracket) followed by white space and
# a capital, digit or opening quote; "U.S. Army" splits wrongly, which only moves a passage border.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(\u201c])")


def sentences(text: str) -> list[str]:
    """The sentences of a text, white space folded."""
    text = " ".join(text.split())
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def group_sentences(sents: list[str], lo: int = MIN_WORDS, hi: int = MAX_WORDS) -> list[str]:
    """Consecutive sentences grouped into passages of ``lo``-``hi`` words, cut only at sentence ends.

    A sentence longer than ``hi`` words is dropped (no cut mid-sentence); a run of sentences that
    cannot reach ``lo`` words before the next would pass ``hi`` is dropped too.
    """
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for s in sents:
        w = len(s.split())
        if w > hi or n + w > hi:
            if n >= lo:
                out.append(" ".join(cur))
            cur, n = [], 0
            if w > hi:
                continue
        cur.append(s)
        n += w
    if n >= lo:
        out.append(" ".join(cur))
    return out


def passages(text: str, lo: int = MIN_WORDS, hi: int = MAX_WORDS) -> list[str]:
    """``group_sentences(sentences(text))``."""
    return group_sentences(sentences(text), lo, hi)
