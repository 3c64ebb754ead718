"""Bag-of-words inversion (Song & Raghunathan, CCS 2020): embedding -> the set of its words."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, AttackParams, DatasetSplits, Inversion
from bench.cache import artifact_lock, atomic_write_bytes, load_arrays, save_arrays, seal, sealed
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.metrics import words

BLENDS = (0.5, 0.6, 0.7, 0.8, 0.9)
FILES = ["bow.json", "bow.safetensors"]  # the trained artifact, sealed by bow.sha256.json
THRESHOLDS = tuple(np.round(np.arange(0.08, 0.42, 0.02), 3))


class BagOfWords(Attack):
    """Multi-label word predictor (random-feature ridge + kNN vote) trained via victim queries.

    The multi-label model maps an embedding to a score per vocabulary word: a multi-output ridge
    regression on random ReLU features (a kernel model, solved in closed form) blended with a
    cosine k-nearest-neighbour vote over the attacker's own sentences. The blend weight and the
    decision threshold are chosen on attacker-held-out sentences, never on targets; the adaptive
    attacker chooses them on held-out sentences defended as the targets are, and against a secret
    rotation maps the targets back through the leaked pairs.
    """

    name = "bow"
    output = "words"

    class Params(AttackParams):
        features: int = Field(4096, ge=0, description="random ReLU features of the ridge model (0: linear)")
        ridge: float = Field(1e-5, gt=0, description="ridge strength, relative to the mean feature energy")
        knn: int = Field(20, ge=1, description="neighbours in the kNN vote")
        temperature: float = Field(0.1, gt=0, description="softmax temperature of the kNN vote weights")
        min_count: int = Field(2, ge=1, description="ridge vocabulary: words in at least this many attacker texts")
        holdout: int = Field(1000, ge=10, description="attacker texts held out to choose blend and threshold (at most a fifth of them)")
        max_train: int | None = Field(None, ge=1, description="use at most this many attacker texts")

    def __init__(self, params=None):
        super().__init__(params)
        self._fitted: dict[Path, dict] = {}  # in-process reuse across the cells of a grid
        self._calibrated: dict[tuple, tuple[float, float, float]] = {}
        self._scored: dict[tuple, tuple] = {}  # the last targets' scores, see _target_scores

    def check_data(self, data: DatasetSplits) -> None:
        """A holdout set above a fifth of the attacker texts would be capped: refused (the default,
        documented as "at most a fifth", is capped as it says)."""
        n = len(data.attacker.texts[: self.params.max_train])
        default = type(self.params).model_fields["holdout"].default
        if self.params.holdout != default and self.params.holdout > n // 5:
            raise BenchError(f"bow: holdout={self.params.holdout} is more than a fifth of the {n} attacker texts: "
                             f"set holdout <= {n // 5} (or leave the default, capped at a fifth)")

    def fit(self, ctx: AttackContext) -> None:
        texts = ctx.attacker.texts[: self.params.max_train]
        holdout = min(self.params.holdout, len(texts) // 5)  # small user corpora keep 4/5 for training
        if holdout < 2:
            raise BenchError(f"bow needs at least 10 attacker texts, the dataset gives {len(texts)}: raise its attacker size")
        clean = ctx.victim.query(texts, split="attacker")  # counted even when cached
        # The split is ordered by synset/group, so a tail holdout shares no group with training.
        cut = len(texts) - holdout
        folder = ctx.artifact_dir(solver="float64")  # float64 normal equations: the same fit on any thread count
        if folder not in self._fitted:
            with artifact_lock(folder, "bow"):  # concurrent runs train it once
                if sealed(folder, FILES, "bow"):  # a damaged artifact is reported, deleted and retrained
                    self._fitted[folder] = _load(folder)
                else:
                    self._fitted[folder] = self._train(clean[:cut], texts[:cut], ctx.seed)
                    _save(folder, self._fitted[folder])
        self.state = self._fitted[folder]
        # The adaptive attacker calibrates on held-out data defended as the targets are: refitting
        # on noised data was tried and did no better (docs/results.md), calibration is what helps.
        key = (folder, json.dumps(ctx.view_key(), sort_keys=True))
        if key not in self._calibrated:
            self._calibrated[key] = self._calibrate(ctx.train_view(clean[cut:]), texts[cut:])
        self.blend, self.threshold, self.holdout_f1 = self._calibrated[key]

    def _train(self, x: np.ndarray, texts: list[str], seed: int) -> dict:
        import scipy.linalg

        counts = Counter(w for t in texts for w in set(words(t)))
        vocab = sorted(counts, key=lambda w: (-counts[w], w))
        y = _labels(texts, {w: i for i, w in enumerate(vocab)})
        n_ridge = sum(1 for w in vocab if counts[w] >= self.params.min_count)

        rng = np.random.default_rng(seed)
        state = {
            "w0": rng.standard_normal((x.shape[1], self.params.features)).astype(np.float32),
            "b0": (rng.standard_normal(self.params.features) * 0.05).astype(np.float32),
        }
        # Normal equations in float64, in row blocks: float32 sums taken in a thread-count-dependent
        # order gave weights differing by ~1e-3 between a 1-thread job and a 2-thread run.
        gram = np.zeros((state["w0"].shape[1] + x.shape[1] + 1,) * 2)
        rhs = np.zeros((gram.shape[0], n_ridge))
        for i in range(0, len(x), 4096):
            f = _features(x[i : i + 4096], state).astype(np.float64)
            gram += f.T @ f
            rhs += np.asarray((y[i : i + 4096, :n_ridge].T @ f).T)
        del f
        scale = np.trace(gram) / len(gram)
        # With fewer texts than features the gram matrix is singular and float32 rounding can
        # make it indefinite: raise the ridge tenfold until the Cholesky factorisation succeeds.
        for ridge in self.params.ridge * 10.0 ** np.arange(6):
            try:
                reg = gram.copy()
                reg[np.diag_indices_from(reg)] += ridge * scale
                chol = scipy.linalg.cho_factor(reg, lower=True, overwrite_a=True, check_finite=False)
                break
            except np.linalg.LinAlgError:
                continue
        else:
            raise BenchError("bow's ridge system stayed singular: raise bow:ridge or the attacker size")
        w = scipy.linalg.cho_solve(chol, rhs, check_finite=False)
        state["w"] = w.astype(np.float16).astype(np.float32)  # as stored: fresh and cached fits agree
        state.update(vocab=vocab, train_x=np.ascontiguousarray(x, np.float32), train_y=y)
        return state

    def _calibrate(self, x: np.ndarray, texts: list[str]) -> tuple[float, float, float]:
        """Blend weight and threshold with the best mean F1 on held-out attacker sentences."""
        ridge_p, knn_p = self._scores(self.state, x)
        knn_p = _dense(knn_p)
        truth = _labels(texts, {w: i for i, w in enumerate(self.state["vocab"])})
        n_true = np.array([len(set(words(t))) for t in texts])
        best = (BLENDS[0], THRESHOLDS[0], -1.0)
        for a in BLENDS:
            for t, f1 in zip(THRESHOLDS, _f1_by_threshold(_blend(ridge_p, knn_p, a), truth, n_true, THRESHOLDS)):
                if f1 > best[2]:
                    best = (a, float(t), f1)
        return best

    def _scores(self, state: dict, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.sparse import csr_matrix

        emb = np.asarray(emb, np.float32)
        ridge_p = np.clip(_features(emb, state) @ state["w"], 0, 1)
        sims = emb @ state["train_x"].T
        k = min(self.params.knn, sims.shape[1] - 1)
        idx = np.argpartition(-sims, k, axis=1)[:, :k]
        s = np.take_along_axis(sims, idx, 1)
        w = np.exp((s - s.max(1, keepdims=True)) / self.params.temperature)
        w /= w.sum(1, keepdims=True)
        n = len(emb)
        weights = csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, len(state["train_x"])))
        return ridge_p, weights @ state["train_y"]  # the kNN vote stays sparse: _dense when it is used

    def word_scores(self, emb: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(vocabulary, [n, |vocabulary|] word probabilities) for embeddings already in the space the
        model was fitted on: the calibrated blend ``invert`` thresholds, for attacks using it as a prior."""
        emb = np.asarray(emb, np.float32)
        parts = []
        for i in range(0, len(emb), 2048):
            ridge_p, knn_p = self._scores(self.state, emb[i : i + 2048])
            parts.append(_blend(ridge_p, _dense(knn_p), self.blend))
        return self.state["vocab"], np.concatenate(parts) if parts else np.zeros((0, len(self.state["vocab"])), np.float32)

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        emb = np.ascontiguousarray(ctx.target_view(emb), np.float32)
        out = []
        for i in range(0, len(emb), 2048):
            ridge_p, knn_p = self._target_scores(emb[i : i + 2048])
            mask = _decide(_blend(ridge_p, _dense(knn_p), self.blend), self.threshold)
            out.extend(Inversion([self.state["vocab"][j] for j in np.flatnonzero(row)]) for row in mask)
        return out

    def _target_scores(self, emb: np.ndarray) -> tuple:
        """``_scores`` of target embeddings, kept for the grid's next cells: the naive and the adaptive
        cell against one defense score the same defended targets, and only their blend and threshold
        differ (a cold demo spent ~6 s scoring them twice). Keyed by the fitted state (kept in
        ``_fitted`` for the process's life) and the embeddings' bytes; the last 8 are kept."""
        key = (id(self.state), hashlib.blake2b(emb.tobytes(), digest_size=16).digest())
        if key not in self._scored:
            self._scored[key] = self._scores(self.state, emb)
            while len(self._scored) > 8:
                self._scored.pop(next(iter(self._scored)))
        return self._scored[key]


def _features(x: np.ndarray, state: dict) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.hstack([np.maximum(x @ state["w0"] + state["b0"], 0), x, np.ones((len(x), 1), np.float32)])


def _dense(knn_p) -> np.ndarray:
    return np.asarray(knn_p.todense(), np.float32)


def _labels(texts: list[str], index: dict[str, int]):
    """Sparse [n, |vocab|] 0/1 word-presence matrix."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for i, t in enumerate(texts):
        for w in set(words(t)):
            if w in index:
                rows.append(i)
                cols.append(index[w])
    return csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(index)))


def _blend(ridge_p: np.ndarray, knn_p: np.ndarray, a: float) -> np.ndarray:
    p = (1 - a) * knn_p
    p[:, : ridge_p.shape[1]] += a * ridge_p  # the ridge vocabulary is the frequent prefix
    return p


def _decide(p: np.ndarray, threshold: float) -> np.ndarray:
    """Words at or above the threshold, and always the single most likely word."""
    mask = p >= threshold
    mask[np.arange(len(p)), p.argmax(1)] = True
    return mask


def _f1_by_threshold(p: np.ndarray, truth, n_true: np.ndarray, thresholds) -> list[float]:
    """Mean set F1 of ``_decide(p, t)`` against each row's true words (0/1 sparse ``truth``) for
    every t in ascending ``thresholds``, without a dense mask per threshold: only entries at or
    above the lowest threshold can be chosen, and a row's forced top word counts where it falls
    below t. Equal to the mask route (test); the cold demo's calibration went from ~55 s to a few."""
    n = len(p)
    rows, cols = np.nonzero(p >= thresholds[0])
    vals = p[rows, cols]
    top = p.argmax(1)
    top_p = p[np.arange(n), top]
    t = truth.tocoo()
    true_p = p[t.row, t.col]
    top_true = np.zeros(n, bool)
    top_true[t.row[t.col == top[t.row]]] = True
    out = []
    for th in thresholds:
        forced = top_p < th
        chosen = np.bincount(rows[vals >= th], minlength=n) + forced
        hits = np.bincount(t.row, weights=true_p >= th, minlength=n) + (forced & top_true)
        out.append(float(np.mean(2 * hits / np.maximum(chosen + n_true, 1))))
    return out


def _save(folder: Path, st: dict) -> None:
    y = st["train_y"]
    arrays = {
        "w0": st["w0"], "b0": st["b0"], "w": st["w"].astype(np.float16), "train_x": st["train_x"],
        "y_data": y.data, "y_indices": y.indices.astype(np.int64), "y_indptr": y.indptr.astype(np.int64),
    }
    meta = {"vocab": st["vocab"], "y_shape": list(y.shape)}
    atomic_write_bytes(folder / "bow.json", json.dumps(meta).encode(), overwrite=True)
    save_arrays(folder / "bow.safetensors", arrays)
    seal(folder, FILES, "bow")  # written last: marks the artifact done and intact


def _load(folder: Path) -> dict:
    from scipy.sparse import csr_matrix

    meta = json.loads((folder / "bow.json").read_text())
    a = load_arrays(folder / "bow.safetensors")
    y = csr_matrix((a["y_data"], a["y_indices"], a["y_indptr"]), shape=tuple(meta.pop("y_shape")))
    return {"w0": a["w0"], "b0": a["b0"], "w": a["w"].astype(np.float32), "train_x": a["train_x"], "train_y": y, **meta}


@hookimpl
def register_attacks(register):
    register(BagOfWords)
