"""Intervals that mean what they say: cluster bootstrap over declared groups, the dev split, and
records that state which split and which interval method they used."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench.metrics import bootstrap_ci, ci_method, summarize
from bench.runner import Runner, build_grid

BOARDS = Path(__file__).resolve().parent.parent / "leaderboards"
REAL = os.path.exists("/usr/share/wordnet/data.noun")


def test_cluster_bootstrap_resamples_groups_not_items():
    # 20 clusters of 50 identical values: 1,000 items but only 20 independent draws
    rng = np.random.default_rng(0)
    level = rng.random(20)
    values = np.repeat(level, 50)
    groups = [f"g{i}" for i in range(20) for _ in range(50)]
    lo_i, hi_i = bootstrap_ci(values, seed=1)
    lo_c, hi_c = bootstrap_ci(values, seed=1, groups=groups)
    lo_g, hi_g = bootstrap_ci(level, seed=1)  # the bootstrap of the 20 cluster means
    assert hi_c - lo_c > 4 * (hi_i - lo_i)  # items as independent overstate certainty
    assert (lo_c, hi_c) == pytest.approx((lo_g, hi_g))  # equal-size clusters: the same draws as their means
    # one item per group is the plain bootstrap, draw for draw
    x = rng.random(40)
    assert bootstrap_ci(x, seed=3, groups=[str(i) for i in range(40)]) == bootstrap_ci(x, seed=3)


def test_cluster_bootstrap_weights_clusters_by_size_and_a_statistic():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    groups = ["a", "a", "a", "b"]
    lo, hi = bootstrap_ci(values, seed=0, groups=groups)
    assert lo == 0.0 and hi == 1.0  # draws are {a,a}, {b,b} or {a,b} (mean 3/4)
    lo_s, hi_s = bootstrap_ci(values, seed=0, groups=groups, statistic=lambda rows: float(rows.mean()))
    assert (lo_s, hi_s) == (0.0, 1.0)
    one = bootstrap_ci(values, seed=0, groups=["a"] * 4)  # a single cluster: no spread can be estimated
    assert one == (0.75, 0.75)


def test_summarize_keeps_group_labels_of_the_scored_samples():
    s = summarize({"m": [1.0, None, 0.0, 1.0]}, {"m": True}, groups=["a", "a", "b", "b"])
    assert s["m"]["n"] == 3 and s["m"]["value"] == pytest.approx(2 / 3)
    assert ci_method(["a", "a", "b"]) == {"ci_method": "cluster-bootstrap", "ci_groups": 2}
    assert ci_method(None) == {"ci_method": "bootstrap", "ci_groups": None}


def test_user_groups_reach_the_splits():
    from bench.splits import deal

    ids = [f"i{k}" for k in range(12)]
    texts = [f"text {k}" for k in range(12)]
    groups = [f"doc{k // 3}" for k in range(12)]
    parts = deal(ids, texts, groups, {"target": 6, "attacker": 6}, 0, "test data")
    assert parts["target"].groups is not None and len(set(parts["target"].groups)) == 2
    assert not set(parts["target"].groups) & set(parts["attacker"].groups)
    assert deal(ids, texts, None, {"target": 6, "attacker": 6}, 0, "test data")["target"].groups is None


def test_records_state_split_and_interval_method(toy_host, tmp_path):
    runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    cells = build_grid(toy_host, ["nearest"], ["none"], ["toy-hash"], ["toy"], [0])
    runner.prepare(cells)
    (rec,) = runner.run(cells)
    assert rec.status == "ok", rec.error
    assert rec.split == "target" and rec.ci_method == "bootstrap" and rec.ci_groups is None


def test_dev_split_is_refused_where_a_dataset_has_none(toy_host, tmp_path):
    from bench.errors import BenchError

    cells = build_grid(toy_host, ["nearest"], ["none"], ["toy-hash"], ["toy"], [0], split="dev")
    assert cells[0].configs()["split"] == "dev"  # a dev cell never shares an id with a target cell
    runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    with pytest.raises(BenchError, match="has no dev split"):
        runner.prepare(cells)
    with pytest.raises(BenchError, match="--split must be"):
        build_grid(toy_host, ["nearest"], ["none"], ["toy-hash"], ["toy"], [0], split="test")


@pytest.mark.slow
@pytest.mark.skipif(not REAL, reason="needs Debian wordnet-base")
def test_wordnet_groups_dev_and_unchanged_targets(host):
    data = host.make("datasets", "wordnet", {}).load()
    for split in (data.attacker, data.leaked, data.target, data.dev):
        assert split.groups == [m["synset"] for m in split.meta]
    assert len(data.dev) == 1000
    syn = {name: set(getattr(data, name).groups) for name in ("attacker", "leaked", "target", "dev")}
    texts = {name: set(getattr(data, name).texts) for name in syn}
    for a in syn:
        for b in syn:
            if a < b:
                assert not syn[a] & syn[b] and not texts[a] & texts[b], (a, b)
    assert len(syn["target"]) < len(data.target)  # synsets hold several examples: clusters are real
    # Every published board's targets are exactly today's (the dev split, filled last, changed nothing)
    checked = 0
    for board in sorted(BOARDS.glob("wordnet-minilm-*/records")):
        if not (found := sorted(board.glob("*.samples.jsonl"))):
            continue  # a board published without its samples files
        samples = found[0]
        record = json.loads(samples.with_name(samples.name.replace(".samples.jsonl", ".json")).read_text())
        today = host.make("datasets", "wordnet", record["dataset"]["params"]).load().target
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
        assert [r["id"] for r in rows] == today.ids[: len(rows)], board
        assert [r["target"] for r in rows] == today.texts[: len(rows)], board
        checked += 1
    assert checked >= 4


@pytest.mark.skipif(not REAL, reason="needs Debian wordnet-base")
def test_wordnet_cell_on_dev_uses_cluster_bootstrap(toy_host, tmp_path):
    spec = "wordnet:attacker=300,leaked=10,target=60,distractors=50"
    cells = build_grid(toy_host, ["nearest"], ["none"], ["toy-hash"], [spec], [0], limit=80, split="dev")
    runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    (rec,) = runner.run(cells)
    assert rec.status == "ok", rec.error
    dev = runner.splits(cells[0].dataset).dev
    assert rec.split == "dev" and rec.ci_method == "cluster-bootstrap"
    assert rec.ci_groups == len(set(dev.groups[:80])) < 80
    (path,) = (tmp_path / "out").glob("*.samples.jsonl")
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["id"] for s in samples] == dev.ids[:80]
