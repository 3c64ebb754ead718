import json

import pytest

from bench.errors import BenchError
from bench.results import load_records
from bench.runner import Runner, build_grid, parse_spec

BOW = "bow:features=512,holdout=100"


def test_parse_spec():
    assert parse_spec("noise") == ("noise", [])
    assert parse_spec("noise:scale=0.1|0.2,renormalize=false") == (
        "noise",
        [{"scale": "0.1", "renormalize": "false"}, {"scale": "0.2", "renormalize": "false"}],
    )
    for bad in (":scale=1", "noise:scale", "noise:=3"):
        with pytest.raises(BenchError):
            parse_spec(bad)


def test_grid_merges_default_sweeps(host):
    cells = build_grid(host, ["nearest"], ["none", "noise", "noise:scale=0.5", "rotation"], ["minilm"], ["wordnet"], [0])
    labels = [(c.attack.adaptive, c.defense.name, getattr(c.defense.params, "scale", None)) for c in cells]
    # naive x (none + 4 noise levels + 0.5 + rotation); adaptive skips "none"
    assert len(cells) == 7 + 6
    assert (True, "none", None) not in labels
    assert {s for a, n, s in labels if n == "noise"} == {0.001, 0.01, 0.03, 0.1, 0.5}
    one = build_grid(host, ["nearest:adaptive=false"], ["noise:scale=0.1"], ["minilm"], ["wordnet"], [0, 1], baseline=False)
    assert [(c.attack.adaptive, c.seed) for c in one] == [(False, 0), (False, 1)]


def test_clean_baseline_is_added(host):
    cells = build_grid(host, ["nearest:adaptive=false"], ["noise:scale=0.1"], ["minilm"], ["wordnet"], [0])
    assert [c.defense.name for c in cells] == ["none", "noise"]
    cells = build_grid(host, ["nearest:adaptive=false"], ["none", "noise:scale=0.1"], ["minilm"], ["wordnet"], [0])
    assert [c.defense.name for c in cells] == ["none", "noise"]  # not twice


@pytest.mark.slow
def test_limit_evaluates_a_prefix_of_the_same_cell(toy_host, tmp_path):
    def run(limit, out):
        cells = build_grid(toy_host, ["nearest:adaptive=false"], ["noise:scale=0.3"], ["toy-hash"], ["toy"], [0],
                           limit=limit, baseline=False)
        runner = Runner(toy_host, tmp_path / out, "cpu", tmp_path / "cache", progress=False)
        runner.prepare(cells)
        return cells[0], runner.run(cells)[0]

    full_cell, full = run(None, "full")
    cut_cell, cut = run(7, "cut")
    assert full.limit is None and cut.limit == 7 and cut_cell.cell_id != full_cell.cell_id
    assert cut.metrics["word_f1"].n == 7 and full.metrics["word_f1"].n == 80
    def rows(out):
        (path,) = (tmp_path / out).glob("*.samples.jsonl")
        return [json.loads(x) for x in path.read_text().splitlines()]

    # the same noise draw: the limited cell is exactly the first 7 samples of the full one
    assert rows("cut") == rows("full")[:7]
    assert run(0, "all")[1].metrics["word_f1"].n == 80  # 0: every target
    assert "limit" not in full_cell.configs() and cut_cell.configs()["limit"] == 7
    with pytest.raises(BenchError, match="limit"):
        run(-1, "bad")


def _run(host, tmp_path, attacks, defenses, out="out", cache="cache"):
    cells = build_grid(host, attacks, defenses, ["toy-hash"], ["toy"], [0])
    runner = Runner(host, tmp_path / out, "cpu", tmp_path / cache, progress=False)
    runner.prepare(cells)
    return runner.run(cells)


def _m(records, attack, defense, adaptive=False, metric="word_f1"):
    for r in records:
        if r.attack.name == attack and r.defense.name == defense and r.attack.params["adaptive"] == adaptive:
            return r.metrics[metric].value
    raise KeyError((attack, defense, adaptive))


def test_end_to_end_records_resume_and_determinism(toy_host, tmp_path):
    records = _run(toy_host, tmp_path, [BOW, "nearest"], ["none", "noise:scale=0.3", "rotation"])
    assert all(r.status == "ok" for r in records) and len(records) == 2 * 3 + 2 * 2
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == len(records)
    rec = json.loads(files[0].read_text())
    for key in ("schema_version", "attack", "defense", "embedder", "dataset", "seed", "threat_model", "metrics", "utility", "provenance"):
        assert key in rec
    assert rec["all_pretrained"] is False  # the toy embedder is random
    samples = (tmp_path / "out" / rec["samples_file"]).read_text().splitlines()
    assert len(samples) == 80 and {"target", "reconstruction", "scores"} <= set(json.loads(samples[0]))
    bow = next(r for r in records if r.attack.name == "bow" and r.defense.name == "none")
    assert bow.provenance.victim_queries >= 600 - 100 and bow.metrics["word_f1"].ci_low < bow.metrics["word_f1"].value

    # leakage: the attack learns something real, and utility/leakage fall together with noise
    assert _m(records, "bow", "none") > 0.6
    assert _m(records, "bow", "noise") < _m(records, "bow", "none")
    util = {r.defense.name: r.utility["ndcg@10"].value for r in records if r.attack.name == "bow" and not r.attack.params["adaptive"]}
    assert util["rotation"] == pytest.approx(util["none"]) and util["noise"] < util["none"]
    # rotation stops the naive attacker; the adaptive one aligns through leaked pairs
    assert _m(records, "bow", "rotation", True) > _m(records, "bow", "rotation") + 0.3
    assert _m(records, "nearest", "rotation", True) > _m(records, "nearest", "rotation") + 0.3

    # the same command again: nothing recomputed, nothing rewritten
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    again = _run(toy_host, tmp_path, [BOW, "nearest"], ["none", "noise:scale=0.3", "rotation"])
    assert [r.metrics for r in again] == [r.metrics for r in records]
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes

    # a fresh output folder and cache: same seed, same numbers
    fresh = _run(toy_host, tmp_path, [BOW], ["none"], out="out2", cache="cache2")
    assert fresh[0].metrics == bow.metrics


def test_failing_cell_is_recorded_and_others_finish(tmp_path):
    from pathlib import Path

    from bench.plugins import Host

    TOY_DIR = Path(__file__).parent / "toy_plugins"
    plugdir = tmp_path / "plugs"
    plugdir.mkdir()
    (plugdir / "toy.py").write_text(Path(TOY_DIR, "toy.py").read_text())
    (plugdir / "broken.py").write_text('''
from bench.api import Attack
from bench.hookspecs import hookimpl
class Broken(Attack):
    """Always fails."""
    name = "broken"
    default_grid = [{}]
    def invert(self, emb, ctx):
        raise RuntimeError("kaput")
@hookimpl
def register_attacks(register):
    register(Broken)
''')
    host = Host(plugins_dir=plugdir, load_installed=False)
    records = _run(host, tmp_path, ["broken", "nearest:adaptive=false"], ["none"])
    assert [r.status for r in records] == ["error", "ok"]
    assert "RuntimeError: kaput" in records[0].error
    assert len(list((tmp_path / "out").glob("*__error-*.json"))) == 1
    assert len(load_records([tmp_path / "out"])) == 1  # errors are left out of leaderboards
    # a retry writes a new error record next to the old one
    _run(host, tmp_path, ["broken"], ["none"])
    assert len(list((tmp_path / "out").glob("*__error-*.json"))) == 2


DECLARING = '''
from bench.api import Attack, Inversion
from bench.hookspecs import hookimpl
from bench.metrics import Metric

class Echo(Attack):
    """Answers with the attacker's first sentence; keeps per-target extras and scores them."""
    name = "echo"
    default_grid = [{}]
    metrics = (Metric("extra_len", True, "words in the extras"), Metric("chance", None, "a reference level"))
    headline = ("word_f1", "extra_len@1")

    def fit(self, ctx):
        return [{"role": "echo", "name": "none", "pretrained": True}]

    def invert(self, emb, ctx):
        text = ctx.attacker.texts[0]
        return [Inversion(text, {"row": i, "words": text.split()}) for i in range(len(emb))]

    def extra_scores(self, inversions, target, ctx):
        return [{"extra_len@1": float(len(inv.extras["words"])), "chance": 0.5, "queries": 2.0} for inv in inversions]

class Undeclared(Echo):
    """Reports a metric it does not declare."""
    name = "undeclared"
    headline = None

    def extra_scores(self, inversions, target, ctx):
        return [{"mystery": 1.0} for _ in inversions]

@hookimpl
def register_attacks(register):
    register(Echo)
    register(Undeclared)
'''


def _declaring_host(tmp_path, body=DECLARING):
    from pathlib import Path

    from bench.plugins import Host

    plugdir = tmp_path / "plugs"
    plugdir.mkdir(exist_ok=True)
    (plugdir / "toy.py").write_text((Path(__file__).parent / "toy_plugins" / "toy.py").read_text())
    (plugdir / "echo.py").write_text(body)
    return Host(plugins_dir=plugdir, load_installed=False)


def test_extras_reach_the_samples_and_metrics_carry_their_declared_direction(tmp_path):
    host = _declaring_host(tmp_path)
    records = _run(host, tmp_path, ["echo", "undeclared"], ["none"])
    echo, undeclared = records
    assert echo.status == "ok" and echo.headline == ["word_f1", "extra_len@1"]
    assert [m.role for m in echo.models] == ["victim", "echo"]
    hib = {k: m.higher_is_better for k, m in echo.metrics.items()}
    assert hib["word_f1"] is True and hib["extra_len@1"] is True and hib["chance"] is None and hib["queries"] is False
    assert all(m.higher_is_better is True for m in echo.utility.values())
    (samples,) = (tmp_path / "out").glob("echo__*.samples.jsonl")
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert [r["extras"]["row"] for r in rows] == list(range(len(rows))) and rows[0]["scores"]["extra_len@1"] == len(rows[0]["extras"]["words"])
    # an undeclared metric fails the cell with a message naming the fix
    assert undeclared.status == "error" and "metric 'mystery' is not declared" in undeclared.error


def test_headline_must_name_declared_metrics(tmp_path):
    body = DECLARING.replace('headline = ("word_f1", "extra_len@1")', 'headline = ("word_f1", "nope")')
    with pytest.raises(BenchError, match="headline names 'nope', which is not declared"):
        _declaring_host(tmp_path, body)


def test_library_caller_gets_one_cache_root(tmp_path, monkeypatch):
    """Runner(settings=...) puts every cache under settings.cache_dir, plugin caches included,
    whatever BENCH_CACHE_DIR says."""
    from bench.settings import Settings

    body = DECLARING + '''
import numpy as np
from bench.cache import cached_features
from bench.models import file_sha256

class Caching(Echo):
    """Uses the plugin-side caches without being told where they are."""
    name = "caching"
    headline = None

    def fit(self, ctx):
        cached_features({"probe": 1}, 2, lambda: np.zeros((2, 3), np.float32))
        file_sha256(__file__)
        assert ctx.settings.cache_dir == ctx.artifact_root.parents[1]
        return []
'''
    body = body.replace("    register(Undeclared)\n", "    register(Undeclared)\n    register(Caching)\n")
    host = _declaring_host(tmp_path, body)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "env-cache"))
    cells = build_grid(host, ["caching"], ["none"], ["toy-hash"], ["toy"], [0])
    runner = Runner(host, tmp_path / "out", settings=Settings(cache_dir=tmp_path / "root", progress=False))
    runner.prepare(cells)
    (rec,) = runner.run(cells)
    assert rec.status == "ok", rec.error
    assert {p.name for p in (tmp_path / "root").iterdir()} >= {"embeddings", "features", "fingerprints"}
    assert not (tmp_path / "env-cache").exists()
