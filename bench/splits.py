"""Deterministic, disjoint splits of grouped texts (public, for any dataset; ``wordnet``, ``wikipedia``,
``brown`` and the user-data datasets deal theirs here).

Groups (e.g. a synset, a document, a patient: texts that must not straddle splits) are shuffled
with the split seed and dealt out in a fixed order, target first, so a larger attacker split never
changes the targets; a text already dealt is skipped, so no text sits in two splits.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from bench.api import Split
from bench.errors import BenchError

# ``dev`` right after the targets: a larger defender, leaked or attacker split never changes it, and a
# dataset that asks for no dev texts deals exactly as before.
ORDER = ("target", "dev", "defender", "leaked", "attacker")


def default_sizes(n: int, target: int | None, leaked: int | None, attacker: int | None, defender: int) -> dict[str, int]:
    """Split sizes for ``n`` texts: the given ones, and for those left unset a fifth of the texts for
    the targets (at most 1000), a tenth for the leaked pairs (at most 1000), the rest for the attacker."""
    t = target if target is not None else max(1, min(1000, n // 5))
    lk = leaked if leaked is not None else min(1000, n // 10)
    a = attacker if attacker is not None else max(0, n - t - lk - defender)
    return {"target": t, "defender": defender, "leaked": lk, "attacker": a}


class ShortSplit(BenchError):
    """The texts ran out before ``split`` got its size; ``got``: how many texts each split had then."""

    def __init__(self, message: str, split: str, got: dict[str, int]):
        super().__init__(message)
        self.split, self.got = split, got


def deal(
    ids: Sequence[str], texts: Sequence[str], groups: Sequence[str] | None, sizes: dict[str, int], seed: int, what: str,
    order: Sequence[str] = ORDER, partial: Collection[str] = (),
) -> dict[str, Split]:
    """Split ``texts`` into ``sizes`` (keys from ``order``, filled in that order), whole groups at a
    time in a seeded order; a group cut at a split's end loses its remaining texts. ``what`` names
    the data in errors (:class:`ShortSplit`); a split in ``partial`` takes what remains instead.
    Given ``groups`` become each split's ``groups`` (intervals then resample groups); without them
    every text is its own group and the splits have none."""
    given = groups is not None
    groups = list(groups) if groups is not None else list(ids)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = list(members)
    queue = iter(np.random.default_rng(seed).permutation(len(keys)).tolist())
    seen: set[str] = set()
    out: dict[str, list[int]] = {k: [] for k in order}
    for split in order:
        want = sizes.get(split, 0)
        while len(out[split]) < want:
            g = next(queue, None)
            if g is None and split in partial:
                break
            if g is None:
                n_distinct = len(set(texts))
                need = sum(sizes.get(k, 0) for k in order)
                raise ShortSplit(
                    f"{what} has {n_distinct:,} distinct texts; {'+'.join(order)} = {need:,} does not fit "
                    f"(the {split} split got {len(out[split]):,} of {want:,}): lower the split sizes",
                    split, {k: len(v) for k, v in out.items()},
                )
            for i in members[keys[g]]:
                if len(out[split]) == want:
                    break
                if texts[i] in seen:
                    continue
                seen.add(texts[i])
                out[split].append(i)
    return {
        k: Split(ids=[ids[i] for i in v], texts=[texts[i] for i in v], meta=[{"group": groups[i]} for i in v],
                 groups=[groups[i] for i in v] if given else None)
        for k, v in out.items()
    }
