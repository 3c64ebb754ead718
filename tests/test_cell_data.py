"""A cell's data (defense state, defended embeddings, utility, alignment) is computed once and read."""

from collections import Counter

import numpy as np
import pytest

import bench.defender as defender
from bench.defender import align_via, defend
from bench.errors import BenchError
from bench.grid import build_grid
from bench.runner import Runner
from bench.settings import Settings
from bench.victim import Victim


@pytest.fixture
def counts(toy_host, monkeypatch):
    """Counters of the work a cell does: the fitted defense's fit and apply (per call), the
    victim's split embeddings (per split) and the utility's retrieval runs."""
    seen: Counter = Counter()
    pca = toy_host.entry("defenses", "pca").cls
    fit, apply, embed_split, scores = pca.fit, pca.apply, Victim.embed_split, defender.retrieval_scores

    def counted(name, real):
        def call(*a, **k):
            seen[name] += 1
            return real(*a, **k)
        return call

    monkeypatch.setattr(pca, "fit", lambda self, *a, **k: counted("fit", fit)(self, *a, **k))
    monkeypatch.setattr(pca, "apply", lambda self, *a, **k: counted("apply", apply)(self, *a, **k))
    monkeypatch.setattr(Victim, "embed_split", lambda self, split, texts: counted(f"embed:{split}", embed_split)(self, split, texts))
    monkeypatch.setattr(defender, "retrieval_scores", counted("utility", scores))
    return seen


def test_defense_state_defended_embeddings_and_utility_are_computed_once_per_cell(toy_host, tmp_path, counts):
    cells = build_grid(toy_host, ["nearest:adaptive=false"], ["pca:k=16"], ["toy-hash"], ["toy"], [0], baseline=False, limit=10)
    runner = Runner(toy_host, tmp_path / "out", settings=Settings(cache_dir=tmp_path / "cache", progress=False))
    (rec,) = runner.run(runner.prepare(cells))
    assert rec.status == "ok", rec.error
    # one fit, one defended target (whole split, cut to the limit), one leaked, one corpus (utility)
    assert counts["fit"] == 1 and counts["apply"] == 3 and counts["utility"] == 1
    assert counts["embed:target"] == 1 and counts["embed:leaked"] == 1
    assert rec.utility["ndcg@10"].n == 80 and rec.metrics["word_f1"].n == 10  # utility on every target, attack on 10
    assert rec.defense_info["fitted_on"] == {"split": "corpus", "n": 80}


def test_cells_with_the_same_defended_data_share_the_utility(toy_host, tmp_path, counts):
    cells = build_grid(toy_host, ["nearest"], ["pca:k=16"], ["toy-hash"], ["toy"], [0], baseline=False)
    assert len(cells) == 2  # naive and adaptive: the same defended data
    runner = Runner(toy_host, tmp_path / "out", settings=Settings(cache_dir=tmp_path / "cache", progress=False))
    recs = runner.run(runner.prepare(cells))
    assert all(r.status == "ok" for r in recs), [r.error for r in recs]
    assert counts["utility"] == 1 and recs[0].utility == recs[1].utility
    assert counts["fit"] == 1 + 1  # the defender's, once; the adaptive attacker refits on its own data (ctx.train_view)


def test_defend_refuses_a_changed_shape_or_non_finite_values():
    class Bad:
        name = "bad"

        def __init__(self, out):
            self.out = out

        def defend(self, emb, rng, state=None):
            return self.out

        def short(self):
            return self.name

    clean = np.ones((3, 4), np.float32)
    with pytest.raises(BenchError, match="must keep the victim's dimension"):
        defend(Bad(np.ones((3, 2))), clean, 0, "target")
    with pytest.raises(BenchError, match="non-finite"):
        defend(Bad(np.full((3, 4), np.nan)), clean, 0, "target")


def test_align_via_maps_a_rotation_back():
    rng = np.random.default_rng(0)
    own = rng.standard_normal((120, 8)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    victim = (own @ q).astype(np.float32)
    target, leaked, info, rows = align_via(victim[:20], victim[20:], own[20:], own[:20])
    assert info["method"] == "procrustes" and info["heldout_cosine"] > 0.999 and rows.shape == (20,)
    assert np.allclose(target / np.linalg.norm(target, axis=1, keepdims=True), own[:20] / np.linalg.norm(own[:20], axis=1, keepdims=True), atol=1e-4)
