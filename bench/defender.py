"""The defender's side of a cell: which data a fitted defense learns from, its cached state, the
defended embeddings, the utility they keep, the ``via=`` alignment, and what the record says of the
defense (fitted on what, calibrated privacy parameters).

``cell_data`` builds all of a cell's data in one step (``CellData``); the attack's context, the
scorer and the record read it and never recompute it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.align import fit_alignment
from bench.api import FIXED_KEY, DatasetSplits, Defense, RetrievalTask, Split
from bench.cache import key_hash, load_arrays, save_arrays, seed_for
from bench.errors import BenchError
from bench.metrics import directions, summarize
from bench.utility import retrieval_scores
from bench.vectors import cosine_rows

if TYPE_CHECKING:
    from bench.grid import Cell
    from bench.victim import Victim


def defender_data(data: DatasetSplits, dataset: str, defense: str) -> tuple[str, list[str]]:
    """(split name, texts) the defender owns for fitting: ``data.defender``, else the retrieval
    corpus (the documents it indexes). Never the targets, which are what the attacker inverts."""
    if data.defender is not None and len(data.defender):
        return "defender", data.defender.texts
    if data.retrieval is not None and data.retrieval.corpus_texts:
        return "corpus", data.retrieval.corpus_texts
    raise BenchError(
        f"defense {defense!r} is fitted on data the defender owns, and dataset {dataset!r} has neither a defender "
        f"split nor a retrieval corpus: give the dataset a corpus (e.g. corpus=FILE) or pick a defense that is not fitted"
    )


class DefenseStates:
    """Fitted states of defenses, keyed by victim fingerprint, data, defense config and seed:
    in memory for the run and as safetensors under ``<cache>/defenses`` across runs (deterministic)."""

    def __init__(self, root: Path):
        self.root = Path(root) / "defenses"
        self._memo: dict[str, dict[str, np.ndarray]] = {}

    def get(self, defense: Defense, fingerprint: dict, dataset_key: str, seed: int, embed) -> dict[str, np.ndarray] | None:
        """The state of a fitted defense (None for others); ``embed()`` -> the defender's embeddings."""
        if not defense.fitted:
            return None
        key = key_hash({"fp": fingerprint, "data": dataset_key, "defense": defense.config(), "seed": seed})
        if key not in self._memo:
            path = self.root / f"{defense.name}-{key}.safetensors"
            state = None
            if path.exists():
                try:
                    state = load_arrays(path)
                except Exception:  # noqa: BLE001 - a damaged entry is refitted, not trusted
                    state = None
            if state is None:
                data = np.asarray(embed(), np.float32)
                state = defense.fit(data, np.random.default_rng(seed_for(seed, "defender", "fit", defense.name)))
                save_arrays(path, {k: np.ascontiguousarray(v) for k, v in state.items()})
            self._memo[key] = state
        return self._memo[key]


class RunSecret:
    """The run's secret, from which each secret defense's key is derived per cell (defense, seed, data).

    Made with ``os.urandom`` when the runner starts and registered with ``bench.redact``, so it never
    reaches a record, a log or an error; it lives only in the harness's memory (an isolated attack's
    worker process never has it). Keys therefore differ per seed and per run; a defense's own fixed
    key (``rotation:key=...``) overrides it for reproduction.
    """

    def __init__(self) -> None:
        from bench.redact import register_secret

        self._secret = os.urandom(32)
        register_secret(self._secret.hex())

    def key(self, defense: Defense, seed: int, dataset_key: str) -> bytes:
        msg = json.dumps([defense.config(), int(seed), dataset_key], sort_keys=True).encode()
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    def state(self, defense: Defense, seed: int, dataset_key: str) -> dict[str, np.ndarray] | None:
        """A secret defense's state for one cell (None for a defense that is not secret)."""
        return defense.keyed(self.key(defense, seed, dataset_key)) if defense.secret else None

    def __repr__(self) -> str:
        return "RunSecret(<hidden>)"

    def __reduce__(self):
        raise TypeError("the run's secret is not pickled: it never leaves the harness")


def key_source(defense: Defense) -> str | None:
    """What the record says of a secret defense's key: a fixed one (given, never written) or a per-run secret."""
    if not defense.secret:
        return None
    return FIXED_KEY if any(v == FIXED_KEY for v in defense.config()["params"].values()) else "per-run secret (per seed, never written)"


def probe(defense: Defense, dim: int, n_fit: int, victim: str = "the victim") -> None:
    """Check the defense before any work: every defense's ``check(dim, n_fit)`` (impossible
    settings), then its output on two probe vectors, so one that changes the dimension or yields NaN
    fails at once. A fitted defense is not probed (fitting it is real work); ``defend`` checks its
    output when it is first applied. A secret defense is probed with a throwaway key."""
    defense.check(dim, n_fit)
    if defense.fitted:
        return
    vecs = np.ones((2, dim), np.float32) / np.sqrt(dim)
    state = defense.keyed(os.urandom(32)) if defense.secret else None
    shape = np.asarray(out := defense.defend(vecs, np.random.default_rng(0), state)).shape
    if shape != (2, dim):
        raise BenchError(f"defense {defense.name!r} maps {victim!r} vectors of dimension {dim} "
                         f"to shape {shape[1:]}: a defense must keep the victim's dimension")
    if not np.isfinite(out).all():
        raise BenchError(f"defense {defense.short()} produces non-finite values (NaN or inf): check its parameters")


def defense_info(defense: Defense, dim: int, fitted_on: tuple[str, int] | None) -> dict[str, Any]:
    """The record's ``defense_info``: the calibrated privacy parameters and the data a fitted defense learned from."""
    info = dict(defense.privacy(dim))
    if defense.secret:
        info["key"] = key_source(defense)
    if fitted_on is not None:
        info["fitted_on"] = {"split": fitted_on[0], "n": fitted_on[1]}
    return info


# ---------------------------------------------------------------- functions over arrays


def defend(defense: Defense, clean: np.ndarray, seed: int, split: str, state: dict | None = None) -> np.ndarray:
    """The defended vectors of one split (its own noise draw, whatever the limit), checked: same
    shape as the clean ones and finite."""
    rng = np.random.default_rng(seed_for(seed, "defender", split))
    out = np.asarray(defense.defend(clean, rng, state))
    if out.shape != clean.shape:
        raise BenchError(f"defense {defense.name!r} maps {split} vectors of shape {clean.shape} to {out.shape}: a defense must keep the victim's dimension")
    if not np.isfinite(out).all():
        raise BenchError(f"defense {defense.short()} produced non-finite values (NaN or inf) on the {split} split: check its parameters")
    return out


def utility(query_ids: list[str], queries: np.ndarray, corpus: np.ndarray, task: RetrievalTask, seed: int,
            device: str = "cpu", groups: list[str] | None = None) -> dict:
    """Retrieval quality (nDCG@10, recall@10, mean with bootstrap CI, resampling whole ``groups``
    when the targets have them) of the defended target embeddings as queries against the defended corpus."""
    per_query = retrieval_scores(query_ids, queries, corpus, task, k=10, device=device)
    return summarize(per_query, directions(per_query), seed=seed, groups=groups)


def align_via(target: np.ndarray, leaked: np.ndarray, own_leaked: np.ndarray, own_target: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """Map the defended victim vectors into the attacker's own embedder's space (ALGEN's threat model).

    The map is fitted on the leaked pairs: their defended victim vectors against the attacker's own
    embeddings of their texts (its own model: no victim query). Rows are rescaled to the mean norm
    of the attacker's own embeddings, so the attack sees vectors shaped like its own. The harness
    (not the attacker) scores the map per target: the cosine of the mapped target against the
    attacker's own embedding of the target text (held out: no target is a pair).
    Returns (mapped target, mapped leaked, the map's info, per-target cosines).
    """
    w, info = fit_alignment(leaked, own_leaked)
    norm = float(np.mean(np.linalg.norm(own_leaked, axis=1)))

    def mapped(x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float32) @ w
        return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12) * norm).astype(np.float32)

    target_own = mapped(target)
    rows = cosine_rows(target_own, own_target[: len(target)])
    return target_own, mapped(leaked), {**info, "heldout_cosine": round(float(np.mean(rows)), 6), "heldout": "targets"}, rows


# ---------------------------------------------------------------- one cell's data, built once


@dataclass(frozen=True)
class CellData:
    """Everything a cell computes before the attack runs, computed once and only read afterwards."""

    targets: Split  # the evaluated targets (the first ``limit`` of the cell's split: target, or dev)
    clean_target: np.ndarray  # the victim's clean embeddings of those targets (the cosine's reference)
    target: np.ndarray  # what the attacker sees of them: defended (and with via, mapped into its own space)
    leaked: np.ndarray  # the leaked pairs' vectors as the attacker sees them (defended; mapped with via)
    state: dict[str, np.ndarray] | None  # a fitted defense's state, or a secret defense's key (never handed to the attack)
    fitted_on: tuple[str, int] | None  # (split, n) the fitted defense learned from
    utility: dict  # retrieval quality of the defended embeddings ({} without a retrieval task)
    alignment: dict | None = None  # via: the map's info for the record
    align_rows: np.ndarray | None = None  # via: per-target held-out cosine of the map


def cell_data(cell: Cell, victim: Victim, data: DatasetSplits, states: DefenseStates, own: Victim | None = None,
              device: str = "cpu", utility_of: Callable[[Callable[[], dict]], dict] | None = None,
              secret: RunSecret | None = None) -> CellData:
    """Build a cell's data in one step: the defense's state (from the defender's own data), the
    clean and defended target (whole split defended, then cut to ``cell.limit``: the same draw
    whatever the limit) and leaked embeddings, the utility, and with ``own`` (the attacker's
    embedder behind ``via``) the alignment into its space. ``utility_of(compute)`` lets the caller
    share the utility between cells that have the same defended data (default: compute it).
    ``secret``: the run's secret, from which a secret defense's key is derived (never the attacker's)."""
    modality = victim.modality
    evaluated = evaluated_split(cell, data)
    inputs = {name: split_inputs(cell, split, modality) for name, split in (("target", evaluated), ("leaked", data.leaked))}
    state, fitted_on = None, None
    if cell.defense.fitted:
        split, texts = defender_data(data, cell.dataset.name, cell.defense.name)
        fitted_on = (split, len(texts))
        state = states.get(cell.defense, victim.fingerprint, victim.dataset_key, cell.seed, lambda: victim.embed_split(split, texts))
    elif cell.defense.secret:
        if secret is None:
            raise BenchError(f"defense {cell.defense.name!r} is secret: its key comes from the run's secret (bench.defender.RunSecret)")
        state = secret.state(cell.defense, cell.seed, victim.dataset_key)
    clean_target = victim.embed_split(cell.split, inputs["target"])
    target_all = defend(cell.defense, clean_target, cell.seed, cell.split, state)
    leaked = defend(cell.defense, victim.embed_split("leaked", inputs["leaked"]), cell.seed, "leaked", state)

    def compute_utility() -> dict:
        task = data.retrieval
        if task is None:
            return {}
        corpus = defend(cell.defense, victim.embed_split("corpus", task.corpus_texts), cell.seed, "corpus", state)
        queries = target_all if cell.split == "target" else defend(
            cell.defense, victim.embed_split("target", split_inputs(cell, data.target, modality)), cell.seed, "target", state)
        return utility(data.target.ids, queries, corpus, task, cell.seed, device, data.target.groups)

    util = utility_of(compute_utility) if utility_of else compute_utility()
    target = target_all[: cell.limit]
    alignment = rows = None
    if own is not None:
        own_leaked = own.embed_split("leaked", inputs["leaked"])
        own_target = own.embed_split(cell.split, inputs["target"])
        target, leaked, info, rows = align_via(target, leaked, own_leaked, own_target)
        alignment = {**info, "own_embedder": cell.via.short() if cell.via else own.embedder.name, "own_fingerprint": own.fingerprint}
    return CellData(targets=evaluated.head(cell.limit), clean_target=clean_target[: cell.limit], target=target, leaked=leaked,
                    state=state, fitted_on=fitted_on, utility=util, alignment=alignment, align_rows=rows)


def evaluated_split(cell: Cell, data: DatasetSplits) -> Split:
    """The split the cell attacks and scores: the targets, or the dev split (where defaults are chosen)."""
    if cell.split == "target":
        return data.target
    if cell.split == "dev" and data.dev is not None:
        return data.dev
    raise BenchError(f"dataset {cell.dataset.name!r} has no {cell.split} split: run on --split target, or use a dataset with one (e.g. wordnet)")


def split_inputs(cell: Cell, split: Split, modality: str) -> list[str]:
    """What the victim embeds of a split: its image paths for an image embedder, else its texts."""
    items = split.inputs(modality)
    if items is None:
        raise BenchError(
            f"embedder {cell.embedder.name!r} embeds images but dataset {cell.dataset.name!r} has none: "
            f"use an image dataset (e.g. coco) or a text embedder"
        )
    return items
