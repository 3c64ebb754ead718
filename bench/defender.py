"""The defender's side of a cell: which data a fitted defense learns from, its cached state, and
what the record says of the defense (fitted on what, calibrated privacy parameters)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.api import FIXED_KEY, DatasetSplits, Defense
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


def probe(defense: Defense, dim: int, n_fit: int) -> np.ndarray | None:
    """The defense's output on two probe vectors, so a defense that changes the dimension or yields
    NaN fails before any work; every defense's ``check(dim, n_fit)`` runs first. A fitted defense is
    not probed (fitting it is real work); the runner checks its output when it first applies it. None: not probed."""
    defense.check(dim, n_fit)  # impossible settings, for every defense
    if defense.fitted:
        return None
    vecs = np.ones((2, dim), np.float32) / np.sqrt(dim)
    state = defense.keyed(os.urandom(32)) if defense.secret else None  # a throwaway key: the probe checks shapes only
    return np.asarray(defense.defend(vecs, np.random.default_rng(0), state))


def defense_info(defense: Defense, dim: int, fitted_on: tuple[str, int] | None) -> dict[str, Any]:
    """The record's ``defense_info``: the calibrated privacy parameters and the data a fitted defense learned from."""
    info = dict(defense.privacy(dim))
    if defense.secret:
        info["key"] = key_source(defense)
    if fitted_on is not None:
        info["fitted_on"] = {"split": fitted_on[0], "n": fitted_on[1]}
    return info
