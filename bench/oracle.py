"""The attacker's one handle on the victim: a counted, budgeted query oracle over one query ledger.

The harness owns a :class:`QueryLedger` (every victim query of a cell, by phase: ``fit``,
``alignment``, ``inference`` per target, and ``scoring`` for what an attack's ``extra_scores``
re-embeds after its outputs are fixed) and hands the attack a :class:`QueryOracle`: texts in,
embeddings out. The oracle holds no attribute an attack can reach the embedder, the embedding cache,
the budgets or the ledger through (they live in closures; setting an attribute is refused), and
every request is checked against the budgets *before* anything is embedded:

* ``fit``: ``fit_budget`` in total, shared with ``alignment`` (an adaptive attacker's re-embedding of
  the leaked pairs is part of what it pays to get ready, not of any target's inversion);
* ``inference``: ``target_budget`` per target. A query is charged to the target it names
  (``targets=``) or to the target of the enclosing ``for_target()`` block; indices run over the
  targets and a target's count never resets, so at most ``target_budget`` x targets are asked in
  all (a query naming no target still counts toward that total).

In-process these checks stop honest mistakes; a plugin that tries can still walk the interpreter
(``gc``, frames, closures). ``bench.isolate`` runs an attack in a worker process that holds only a
:class:`RemoteOracle`, so the victim and the budgets are out of its reach (docs/threat-model.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from bench.errors import BenchError

PHASES = ("fit", "alignment", "inference", "scoring")


class QueryBudgetExceeded(BenchError):
    """An attack asked the victim for more texts than its threat model's query budget allows."""


def as_texts(texts: Any) -> list[str]:
    """``texts`` as a list of strings, counted by what is actually in it (never by a ``__len__`` an
    object reports: an iterable that under-reports its length is counted item by item)."""
    if isinstance(texts, str | bytes):
        raise BenchError("oracle.query takes a list of texts, not one string: wrap it in a list")
    try:
        out = [t for t in texts]
    except TypeError:
        raise BenchError(f"oracle.query takes a list of texts, got {type(texts).__name__}") from None
    for t in out:
        if not isinstance(t, str):
            raise BenchError(f"oracle.query takes texts (str), got an item of type {type(t).__name__}")
    return [str(t) for t in out]


class QueryLedger:
    """Every victim query of one cell, by phase, and the budgets that bind them (harness side)."""

    def __init__(self, fit_budget: int | None = None, target_budget: int | None = None):
        self.fit_budget = fit_budget
        self.target_budget = target_budget
        self.phase = "fit"
        self.n_targets = 0
        self.counts = dict.fromkeys(PHASES, 0)
        self.per_target: list[int] = []
        self.unattributed = 0  # inference queries that named no target

    def start_inference(self, n_targets: int) -> None:
        self.phase = "inference"
        self.n_targets = n_targets
        self.per_target = [0] * n_targets

    def remaining(self, target: int | None = None) -> int | None:
        """Queries still allowed now (for ``target`` at inference); None: no limit."""
        if self.phase in ("fit", "alignment"):
            return None if self.fit_budget is None else max(self.fit_budget - self.counts["fit"] - self.counts["alignment"], 0)
        if self.phase == "inference" and self.target_budget is not None:
            total_left = self.target_budget * self.n_targets - self.counts["inference"]
            if target is None:
                return max(total_left, 0)
            return max(min(self.target_budget - self.per_target[target], total_left), 0)
        return None

    def check_target(self, target: int) -> int:
        if not isinstance(target, int | np.integer) or isinstance(target, bool) or not 0 <= int(target) < self.n_targets:
            raise BenchError(f"target index {target!r} is not one of the {self.n_targets} targets being inverted (0..{self.n_targets - 1})")
        return int(target)

    def charge(self, n: int, targets: list[int] | None = None, phase: str | None = None) -> None:
        """Count ``n`` queries (``targets``: the target of each, at inference) or refuse them all."""
        phase = phase or self.phase
        if phase in ("fit", "alignment"):
            used = self.counts["fit"] + self.counts["alignment"]
            if self.fit_budget is not None and used + n > self.fit_budget:
                raise QueryBudgetExceeded(
                    f"the attack asked for {used + n} victim queries to fit and align but the fit query budget is "
                    f"{self.fit_budget}: raise --fit-query-budget or lower the attack's data size"
                )
        elif phase == "inference" and self.target_budget is not None:
            total = self.counts["inference"] + n
            if total > self.target_budget * self.n_targets:
                raise QueryBudgetExceeded(
                    f"the attack asked for {total} victim queries at inference but the budget is {self.target_budget} per target "
                    f"x {self.n_targets} targets: raise --query-budget"
                )
            if targets is not None:
                need = np.bincount(np.asarray(targets, dtype=np.int64), minlength=self.n_targets)
                over = [i for i in np.flatnonzero(need) if self.per_target[i] + need[i] > self.target_budget]
                if over:
                    i = int(over[0])
                    raise QueryBudgetExceeded(
                        f"the attack asked for {self.per_target[i] + int(need[i])} victim queries for target {i} but the "
                        f"query budget is {self.target_budget} per target: raise --query-budget"
                    )
        self.counts[phase] += n
        if phase == "inference":
            if targets is None:
                self.unattributed += n
            else:
                for i in targets:
                    self.per_target[i] += 1

    @property
    def attacker_total(self) -> int:
        """Queries the attacker paid for: fit + alignment + inference (scoring re-embeds are the harness's)."""
        return self.counts["fit"] + self.counts["alignment"] + self.counts["inference"]

    def summary(self) -> dict[str, Any]:
        """The record's ``queries``: by phase, and per target at inference (mean over the targets, max)."""
        per = self.per_target
        n = self.n_targets
        out: dict[str, Any] = {
            "fit": self.counts["fit"],
            "alignment": self.counts["alignment"],
            "inference": self.counts["inference"],
            "inference_per_target_mean": round(self.counts["inference"] / n, 3) if n else 0.0,
            "inference_per_target_max": (max(per) if per else 0) if not self.unattributed else None,
            "inference_unattributed": self.unattributed,
            "scoring": self.counts["scoring"],
            "total": self.attacker_total,
        }
        return out


class QueryOracle:
    """Texts in, embeddings out: the attack's only access to the victim (see the module docstring).

    ``query(texts, targets=None)``: embeddings of ``texts`` (float32 [n, dim]), counted and budgeted.
    ``for_target(i=None)``: a block whose queries are charged to target ``i`` (the next one when None).
    ``remaining(target=None)``: how many queries are still allowed (None: no limit), so a careful attack
    stops with its best so far. ``leaked_clean()``: the victim's embeddings of the leaked texts (an
    adaptive attacker's alignment data), charged once to the ``alignment`` phase.
    ``dim``, ``modality``, ``name``, ``fingerprint``: the victim's public description.
    """

    __slots__ = ("_query", "_remaining", "_leaked", "_scope", "dim", "modality", "name", "fingerprint")

    def __init__(self, embed: Callable[[list[str], str, bool], np.ndarray], ledger: QueryLedger, *, dim: int, modality: str,
                 name: str, fingerprint: dict, leaked: Callable[[], list[str]] | None = None):
        scope: list[int | None] = [None, 0]  # [current target, next auto index]
        leaked_memo: list[np.ndarray] = []

        def query(texts, split: str = "queries", cache: bool = True, targets=None) -> np.ndarray:
            items = as_texts(texts)
            n = len(items)
            charged: list[int] | None = None
            if ledger.phase == "inference":
                if targets is not None:
                    charged = [ledger.check_target(t) for t in (targets if not isinstance(targets, int | np.integer) else [targets] * n)]
                    if len(charged) != n:
                        raise BenchError(f"oracle.query got {n} texts but {len(charged)} target indices: give one per text (or one int)")
                elif scope[0] is not None:
                    charged = [scope[0]] * n
            ledger.charge(n, charged)
            if n == 0:
                return np.zeros((0, dim), np.float32)
            return np.array(embed(items, str(split), bool(cache)), dtype=np.float32, copy=True)

        def remaining(target: int | None = None) -> int | None:
            if ledger.phase != "inference":
                return ledger.remaining()
            target = scope[0] if target is None else target
            return ledger.remaining(None if target is None else ledger.check_target(target))

        def leaked_clean() -> np.ndarray:
            if leaked is None:
                raise BenchError("this cell has no leaked pairs to re-embed: set the dataset's leaked > 0")
            if not leaked_memo:
                items = leaked()
                ledger.charge(len(items), phase="alignment")
                leaked_memo.append(np.asarray(embed(items, "leaked", True), np.float32))
            return leaked_memo[0].copy()

        @contextmanager
        def for_target(i: int | None = None) -> Iterator[None]:
            if ledger.phase != "inference":
                yield None
                return
            if i is None:
                i = scope[1]
            i = ledger.check_target(i)
            outer = scope[0]
            scope[0], scope[1] = i, max(scope[1], i + 1)
            try:
                yield None
            finally:
                scope[0] = outer

        object.__setattr__(self, "_query", query)
        object.__setattr__(self, "_remaining", remaining)
        object.__setattr__(self, "_leaked", leaked_clean)
        object.__setattr__(self, "_scope", for_target)
        for k, v in (("dim", int(dim)), ("modality", modality), ("name", name), ("fingerprint", dict(fingerprint))):
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the query oracle is read-only (tried to set {name!r}): budgets belong to the harness")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"the query oracle has no {name!r}: an attack reaches the victim only through oracle.query(texts) "
            f"(counted and budgeted; see docs/threat-model.md)"
        )

    def __reduce__(self):
        raise TypeError("the query oracle cannot be pickled: an isolated attack gets a RemoteOracle")

    def query(self, texts, split: str = "queries", cache: bool = True, targets=None) -> np.ndarray:
        """Embeddings of ``texts``; ``targets`` (an int or one index per text) charges them to those targets at inference."""
        return self._query(texts, split, cache, targets)

    def remaining(self, target: int | None = None) -> int | None:
        return self._remaining(target)

    def leaked_clean(self) -> np.ndarray:
        return self._leaked()

    def for_target(self, i: int | None = None):
        return self._scope(i)


def victim_oracle(victim, ledger: QueryLedger, leaked_inputs: list[str] | None) -> QueryOracle:
    """The oracle of a harness-side ``bench.victim.Victim``: cached embeddings by split, or fresh
    ones (``cache=False``) for many small search queries."""

    def embed(items: list[str], split: str, cache: bool) -> np.ndarray:
        return victim.embed_split(split, items) if cache else victim.embed_fresh(items)

    leaked = (lambda: list(leaked_inputs)) if leaked_inputs else None
    return QueryOracle(embed, ledger, dim=victim.dim, modality=victim.modality, name=victim.embedder.name,
                       fingerprint=victim.fingerprint, leaked=leaked)
