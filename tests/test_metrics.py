import numpy as np
import pytest

from bench.api import RetrievalTask
from bench.metrics import bootstrap_ci, pii_recovery, reconstruction_scores, set_prf, summarize, token_f1, words
from bench.utility import retrieval_scores


def test_word_sets_and_token_f1():
    assert words("The cat's hat, 2 times!") == ["the", "cat", "s", "hat", "2", "times"]
    assert set_prf({"a", "b"}, {"a", "c", "d", "e"}) == pytest.approx((0.5, 0.25, 1 / 3))
    assert set_prf(set(), {"a"}) == (0.0, 0.0, 0.0)
    assert token_f1("the the cat", "the cat sat") == pytest.approx(2 / 3)
    assert token_f1("x", "y") == 0.0


def test_text_scores_reward_exact_and_punish_wrong():
    rows = reconstruction_scores(["he ate an apple", "zebra quantum"], ["he ate an apple", "she sold a car"], "text")
    assert rows[0]["bleu"] == pytest.approx(100) and rows[0]["exact_match"] == 1 and rows[0]["rouge_l"] == 1
    assert rows[1]["bleu"] < 10 and rows[1]["exact_match"] == 0 and rows[1]["token_f1"] == 0
    words_rows = reconstruction_scores([["he", "apple", "zebra"]], ["he ate an apple"], "words")
    assert words_rows[0]["word_precision"] == pytest.approx(2 / 3) and words_rows[0]["word_recall"] == 0.5
    assert "bleu" not in words_rows[0]


def test_pii_recovery_needs_every_word_of_an_entity():
    ents = [{"label": "full_name", "text": "Jane Smith"}, {"label": "first_name", "text": "Jane"}]
    assert pii_recovery({"jane"}, ents) == {"full_name": 0.0, "first_name": 1.0}
    rows = reconstruction_scores(["patient jane smith"], ["Patient Jane Smith"], "text", [{"entities": ents}])
    assert rows[0]["pii_full_name"] == 1.0


def test_bootstrap_ci_covers_mean_and_narrows():
    rng = np.random.default_rng(0)
    small, large = rng.random(50), rng.random(5000)
    lo_s, hi_s = bootstrap_ci(small, seed=1)
    lo_l, hi_l = bootstrap_ci(large, seed=1)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3
    assert bootstrap_ci(small, seed=1) == (lo_s, hi_s)  # seeded
    s = summarize({"m": list(small)}, {"m": False})
    assert s["m"]["higher_is_better"] is False and s["m"]["n"] == 50


def test_retrieval_ndcg_matches_sklearn():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((30, 16)).astype(np.float32), rng.standard_normal((50, 16)).astype(np.float32)
    qrels = {f"q{i}": {f"d{i}", f"d{(i * 7) % 50}"} for i in range(30)}
    task = RetrievalTask([f"d{j}" for j in range(50)], [""] * 50, qrels)
    got = retrieval_scores([f"q{i}" for i in range(30)], q, c, task, k=10)
    qn, cn = q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
    rel = np.array([[float(f"d{j}" in qrels[f"q{i}"]) for j in range(50)] for i in range(30)])
    expected = [ndcg_score(rel[i : i + 1], (qn @ cn.T)[i : i + 1], k=10) for i in range(30)]
    assert np.allclose(got["ndcg@10"], expected, atol=1e-5)
    assert all(0 <= r <= 1 for r in got["recall@10"])
