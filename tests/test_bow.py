import os

import numpy as np
import pytest

from bench.metrics import set_prf, words
from bench.runner import Runner, build_grid


def _run(host, tmp_path, attacks, defenses, embedder, dataset, out="out"):
    cells = build_grid(host, attacks, defenses, [embedder], [dataset], [0], baseline=False)
    runner = Runner(host, tmp_path / out, "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    return runner, runner.run(cells)


def test_artifacts_are_safetensors_and_reused(toy_host, tmp_path):
    _, first = _run(toy_host, tmp_path, ["bow:adaptive=false,features=256,holdout=100"], ["none"], "toy-hash", "toy")
    files = sorted(p.name for p in (tmp_path / "cache" / "artifacts" / "bow").rglob("*") if p.is_file())
    assert files == ["bow.json", "bow.safetensors", "bow.sha256.json"]
    # a new process-level attack instance (new output folder) loads the artifact: same numbers
    _, again = _run(toy_host, tmp_path, ["bow:adaptive=false,features=256,holdout=100"], ["none"], "toy-hash", "toy", out="o2")
    assert again[0].metrics == first[0].metrics


def test_a_holdout_beyond_a_fifth_is_refused_and_tiny_data_is_a_clear_error(toy_host, tmp_path):
    from bench.errors import BenchError

    # 600 attacker texts: at most 120 held out; a larger holdout given is refused before any work,
    # never capped and recorded as given
    with pytest.raises(BenchError, match="holdout=5000 is more than a fifth of the 600 attacker texts: set holdout <= 120"):
        _run(toy_host, tmp_path, ["bow:adaptive=false,features=64,holdout=5000"], ["none"], "toy-hash", "toy")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.json"))
    _, recs = _run(toy_host, tmp_path, ["bow:adaptive=false,features=64,holdout=120"], ["none"], "toy-hash", "toy")
    assert recs[0].status == "ok", recs[0].error
    _, recs = _run(toy_host, tmp_path, ["bow:adaptive=false"], ["none"], "toy-hash", "toy:attacker=8", out="o2")
    assert recs[0].status == "error" and "needs at least 10 attacker texts" in recs[0].error


def test_adaptive_calibrates_on_defended_holdout(toy_host, tmp_path):
    _, recs = _run(toy_host, tmp_path, ["bow:features=256,holdout=100"], ["noise:scale=0.2,renormalize=false"], "toy-hash", "toy")
    naive, adaptive = sorted(recs, key=lambda r: r.attack.params["adaptive"])
    assert adaptive.threat_model.knows_defense and not naive.threat_model.knows_defense
    assert adaptive.metrics["word_f1"].value > naive.metrics["word_f1"].value


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/share/wordnet/data.noun"), reason="needs Debian wordnet-base")
def test_real_minilm_on_wordnet_beats_a_constant_guess(host, tmp_path):
    ds = "wordnet:attacker=3000,leaked=200,target=300,distractors=500"
    runner, recs = _run(host, tmp_path, ["bow:adaptive=false,holdout=500"], ["none"], "minilm", ds)
    rec = recs[0]
    assert rec.status == "ok", rec.error
    assert rec.all_pretrained
    f1 = rec.metrics["word_f1"].value
    # The best constant answer in hindsight: the m most frequent attacker words, for any m.
    data = runner.splits(host.make("datasets", "wordnet", {"attacker": 3000, "leaked": 200, "target": 300, "distractors": 500}))
    from collections import Counter

    freq = [w for w, _ in Counter(w for t in data.attacker.texts for w in set(words(t))).most_common(15)]
    const = max(np.mean([set_prf(set(freq[:m]), set(words(t)))[2] for t in data.target.texts]) for m in range(1, 16))
    assert f1 > const + 0.08, (f1, const)
    assert rec.provenance.victim_queries == 3000 and rec.utility["ndcg@10"].value > 0.2


def test_threshold_sweep_equals_the_mask_route():
    """Calibration's fast sweep scores exactly what thresholding a dense mask scores, forced top words included."""
    from scipy.sparse import csr_matrix

    from bench_plugins.attacks.bow import THRESHOLDS, _decide, _f1_by_threshold

    rng = np.random.default_rng(3)
    p = (rng.random((60, 300), dtype=np.float32) ** 12).astype(np.float32)
    p[::4] *= 0.05  # rows whose best word is below every threshold: only the forced top word is chosen
    dense_truth = rng.random((60, 300)) < 0.02
    dense_truth[np.arange(0, 60, 3), p[::3].argmax(1)] = True  # some forced top words are right
    n_true = dense_truth.sum(1) + 2  # true words outside the vocabulary count as misses
    expected = []
    for t in THRESHOLDS:
        mask = _decide(p, t)
        hits = (mask & dense_truth).sum(1)
        expected.append(float(np.mean(2 * hits / np.maximum(mask.sum(1) + n_true, 1))))
    assert _f1_by_threshold(p, csr_matrix(dense_truth.astype(np.float32)), n_true, THRESHOLDS) == expected
    assert len(set(expected)) > 3  # the thresholds do change the score here
