"""via=<embedder>: attacks through the attacker's own embedder, with no victim query at all."""

import numpy as np
import pytest

from bench.align import fit_alignment, ridge_loo
from bench.errors import BenchError
from bench.runner import Runner, build_grid


def _run(host, tmp_path, attacks, defenses, dataset, embedder="toy-hash:dim=48", out="out"):
    cells = build_grid(host, attacks, defenses, [embedder], [dataset], [0], baseline=False)
    runner = Runner(host, tmp_path / out, "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    return runner.run(cells)


@pytest.mark.slow
def test_via_never_queries_the_victim_and_leakage_grows_with_leaked_pairs(toy_host, tmp_path):
    # victim: 48-d hashed bag of words; the attacker's own embedder: a different 64-d one (ridge map)
    attack = "bow:via=toy-hash,adaptive=false,features=128,holdout=100"
    recs = _run(toy_host, tmp_path, [attack], ["none"], "toy:leaked=5|300")
    assert all(r.status == "ok" for r in recs), [r.error for r in recs]
    few, many = sorted(recs, key=lambda r: r.dataset.params["leaked"])
    for r in (few, many):
        assert r.provenance.victim_queries == 0
        assert r.threat_model.query_access == "none" and r.threat_model.via == "toy-hash"
        assert r.alignment["method"] == "ridge" and r.alignment["pairs"] == r.dataset.params["leaked"]
        assert r.attack.params["via"] == "toy-hash"
        assert "align_cosine" in r.metrics
        assert {m.role for m in r.models} == {"victim", "attacker-embedder"}
    assert many.alignment["heldout_cosine"] > few.alignment["heldout_cosine"] + 0.2
    assert many.metrics["align_cosine"].value == pytest.approx(many.alignment["heldout_cosine"], abs=1e-6)
    assert many.metrics["word_f1"].value > few.metrics["word_f1"].value + 0.1


@pytest.mark.slow
def test_via_with_matching_dimensions_uses_procrustes_and_undoes_a_rotation(toy_host, tmp_path):
    recs = _run(toy_host, tmp_path, ["nearest:via=toy-hash,adaptive=false"], ["rotation"], "toy:leaked=200", embedder="toy-hash")
    rec = recs[0]
    assert rec.status == "ok", rec.error
    assert rec.alignment["method"] == "procrustes" and rec.alignment["heldout_cosine"] > 0.99
    clean = _run(toy_host, tmp_path, ["nearest:adaptive=false"], ["none"], "toy:leaked=200", embedder="toy-hash", out="clean")[0]
    assert rec.provenance.victim_queries == 0 and clean.provenance.victim_queries > 0
    assert rec.metrics["token_f1"].value == pytest.approx(clean.metrics["token_f1"].value, abs=0.02)


def test_cells_without_via_keep_their_ids(toy_host):
    cell = build_grid(toy_host, ["bow:adaptive=false"], ["none"], ["toy-hash"], ["toy"], [0])[0]
    assert "via" not in cell.configs()["attack"]["params"] and cell.via is None


def test_via_is_refused_for_attacks_with_their_own_alignment_and_unknown_embedders(toy_host):
    with pytest.raises(BenchError, match="drop via="):
        build_grid(toy_host, ["slime:via=toy-hash"], ["none"], ["toy-hash"], ["toy"], [0])
    with pytest.raises(BenchError, match="unknown embedder 'nope'"):
        build_grid(toy_host, ["bow:via=nope"], ["none"], ["toy-hash"], ["toy"], [0])


def test_ridge_loo_recovers_a_linear_map_and_shrinks_noise():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((30, 20))
    x = rng.standard_normal((500, 30))
    y = x @ true + 0.01 * rng.standard_normal((500, 20))
    w, alpha = ridge_loo(x, y)
    assert np.abs(w - true).max() < 0.01 and alpha <= 1e-2
    _, alpha_noisy = ridge_loo(x[:40], rng.standard_normal((40, 20)))  # no signal: heavy shrinkage wins
    assert alpha_noisy > 1
    with pytest.raises(BenchError, match="needs leaked pairs"):
        fit_alignment(x[:0], y[:0])
    assert fit_alignment(x, x @ np.linalg.qr(rng.standard_normal((30, 30)))[0])[1]["method"] == "procrustes"
