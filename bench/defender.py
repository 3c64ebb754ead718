"""The defender's side of a cell: which data a fitted defense learns from, its cached state, and
what the record says of the defense (fitted on what, calibrated privacy parameters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.api import DatasetSplits, Defense
from bench.cache import key_hash, load_arrays, save_arrays, seed_for
from bench.errors import BenchError


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


def probe(defense: Defense, dim: int, n_fit: int) -> np.ndarray | None:
    """The defense's output on two probe vectors, so a defense that changes the dimension or yields
    NaN fails before any work; every defense's ``check(dim, n_fit)`` runs first. A fitted defense is
    not probed (fitting it is real work); the runner checks its output when it first applies it. None: not probed."""
    defense.check(dim, n_fit)  # impossible settings, for every defense
    if defense.fitted:
        return None
    vecs = np.ones((2, dim), np.float32) / np.sqrt(dim)
    return np.asarray(defense.defend(vecs, np.random.default_rng(0)))


def defense_info(defense: Defense, dim: int, fitted_on: tuple[str, int] | None) -> dict[str, Any]:
    """The record's ``defense_info``: the calibrated privacy parameters and the data a fitted defense learned from."""
    info = dict(defense.privacy(dim))
    if fitted_on is not None:
        info["fitted_on"] = {"split": fitted_on[0], "n": fitted_on[1]}
    return info
