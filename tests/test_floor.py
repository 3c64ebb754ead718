"""The chance floor: the chance attack, the floor on every text record, cells at chance."""

import json

import numpy as np
import pytest

from bench.api import Attack, Inversion
from bench.floor import candidates, chance_text
from bench.metrics import at_chance, token_f1
from bench.runner import Runner, build_grid
from tests.cli_helpers import run_cli
from tests.conftest import TOY_DIR


def test_chance_text_is_the_best_candidate_on_heldout_attacker_texts():
    rng = np.random.default_rng(0)
    vocab = "the a of cat dog sat ran on in mat".split()
    texts = [" ".join(rng.choice(vocab, size=5, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.04, 0.03, 0.03])) for _ in range(300)]
    cands, held = candidates(texts, seed=1)
    assert len(held) == 150 and len(cands) <= 150 + 20  # half held out; the other half and 20 word lists tried
    best = max(cands, key=lambda c: np.mean([token_f1(c, h) for h in held]))  # first maximum, as the rule says
    assert chance_text(texts, seed=1) == best
    assert chance_text(texts, seed=1) == chance_text(list(texts), seed=1)  # deterministic
    with pytest.raises(ValueError):
        chance_text(["one text"])


def test_at_chance_is_the_paired_difference_reaching_zero():
    rng = np.random.default_rng(0)
    floor = list(rng.random(200) * 0.3)
    same = [f + rng.normal(0, 0.01) for f in floor]
    better = [f + 0.2 + rng.normal(0, 0.05) for f in floor]
    worse = [f - 0.1 for f in floor]
    got = at_chance({"a": same, "b": better, "c": worse, "q": same}, {"a": floor, "b": floor, "c": floor, "q": floor},
                    {"a": True, "b": True, "c": True, "q": False})
    assert got == ["a", "c"]  # costs (q) are never "at chance"; below the floor is at chance too


def _run(host, tmp_path, attacks, defenses=("none",), floor=True, limit=None):
    runner = Runner(host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    cells = build_grid(host, list(attacks), list(defenses), ["toy-hash"], ["toy"], [0], floor=floor, limit=limit)
    runner.prepare(cells)
    return cells, runner.run(cells)


def test_floor_cell_and_floor_on_every_text_record(toy_host, tmp_path):
    cells, recs = _run(toy_host, tmp_path, ["nearest:adaptive=false", "bow:adaptive=false,features=512,holdout=100"],
                       ["none", "noise:scale=2.0"], limit=40)
    by = {(r.attack.name, r.defense.name): r for r in recs}
    assert all(r.status == "ok" for r in recs), [r.error for r in recs]
    chance = by[("chance", "none")]
    assert [c.attack.name for c in cells].count("chance") == 1  # one floor per embedder, dataset, seed, limit
    assert chance.provenance.victim_queries == 0 and chance.threat_model.query_access == "none"
    assert chance.floor == {} and chance.at_chance == [] and chance.limit == 40
    for name in ("nearest",):
        for defense in ("none", "noise"):
            rec = by[(name, defense)]
            for m in ("word_f1", "token_f1", "bleu", "cosine", "corpus_bleu"):  # the floor is the chance cell, same targets
                assert rec.floor[m].value == pytest.approx(chance.metrics[m].value), (defense, m)
    bow = by[("bow", "none")].floor  # a bag of words gets the floor's word set: the same word scores, no text metrics
    assert bow["word_f1"].value == pytest.approx(chance.metrics["word_f1"].value) and "bleu" not in bow
    clean, noisy = by[("nearest", "none")], by[("nearest", "noise")]
    assert "word_f1" not in clean.at_chance  # the toy victim leaks: nearest beats the floor clean
    assert "word_f1" in noisy.at_chance  # noise 2.0 leaves it at chance
    samples = [json.loads(s) for s in (tmp_path / "out" / next(p.name for p in (tmp_path / "out").glob("chance__*.samples.jsonl"))).read_text().splitlines()]
    assert len({s["reconstruction"] for s in samples}) == 1  # one constant text


class EchoFloor(Attack):
    """Outputs the floor's own text without looking at anything else: it must be at chance everywhere."""

    name = "echo-floor"
    output = "text"
    query_access = "none"

    def fit(self, ctx):
        return None

    def invert(self, emb, ctx):
        return [Inversion(chance_text(ctx.attacker.texts, seed=ctx.seed)) for _ in range(len(emb))]


def test_an_attack_that_outputs_the_floor_is_at_chance_on_every_metric(toy_host, tmp_path):
    toy_host.registries["attacks"].add(EchoFloor, "test", "0")
    _, recs = _run(toy_host, tmp_path, ["echo-floor"], floor=False)
    (rec,) = recs
    assert rec.status == "ok", rec.error
    leak = [m for m, v in rec.metrics.items() if v.higher_is_better and m != "corpus_bleu"]
    assert sorted(rec.at_chance) == sorted(leak)


def test_cli_runs_the_floor_by_default_and_no_floor_drops_it(capsys, tmp_path):
    args = ["--plugins-dir", TOY_DIR, "run", "-a", "nearest", "-e", "toy-hash", "-D", "toy:target=30", "--limit", "30",
            "--cache-dir", str(tmp_path / "cache"), "-q"]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "| chance" in out and len(list((tmp_path / "a").glob("chance__*.json"))) == 1
    cell_row = next(line for line in out.splitlines() if line.startswith("| chance"))
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "b"), "--no-floor")
    assert code == 0, err
    assert not list((tmp_path / "b").glob("chance__*.json"))  # no chance cell is run
    # the table still shows the floor, drawn from the records: the chance cell's values, no utility
    floor_row = next(line for line in out.splitlines() if line.startswith("| chance"))
    assert floor_row.split("|")[4:8] == cell_row.split("|")[4:8]
    code, out, err = run_cli(capsys, *args, "--out", str(tmp_path / "c"), "--split", "dev")
    assert code == 2 and "has no dev split" in err and "Traceback" not in err
