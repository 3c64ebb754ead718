"""The centroid attack end to end: a real bench Runner against a toy victim, offline, in seconds.

The attack's module and the toy plugin (tests/toy_plugin.py) are copied into a temporary
folder and loaded by the bench's own plugin loader, as ``bench --plugins-dir`` would load them,
so this runs whether or not the package is installed.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.metrics import set_prf, words
from bench.plugins import Host
from bench.runner import Runner, build_grid

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src" / "bench_centroid_attack" / "__init__.py"


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Host:
    plugins = tmp_path_factory.mktemp("plugins")
    shutil.copy(SOURCE, plugins / "centroid.py")  # plugin name = file stem, as with the entry point
    shutil.copy(HERE / "toy_plugin.py", plugins / "toy.py")
    return Host(plugins_dir=plugins, load_installed=False)


@pytest.fixture(scope="module")
def runner(host, tmp_path_factory) -> Runner:
    tmp = tmp_path_factory.mktemp("run")
    return Runner(host, tmp / "results", device="cpu", cache_dir=tmp / "cache", progress=False)


def run(host, runner, attack: str, defense: str = "none"):
    """Run every cell of one attack spec against one defense; return (record, samples) pairs."""
    cells = build_grid(host, [attack], [defense], ["toy-hash"], ["toy-topics"], [0])
    out = [runner.run_cell(cell) for cell in cells]
    for rec, _ in out:
        assert rec.status == "ok", rec.error
    return out


def f1(rec) -> float:
    return rec.metrics["word_f1"].value


def best_constant_f1(host) -> float:
    """The trivial baseline: one fixed guess for every target, the m most frequent attacker words
    (best m in hindsight, so it is an upper bound on any constant guess of that kind)."""
    data = host.make("datasets", "toy-topics").load()
    freq = Counter(w for t in data.attacker.texts for w in set(words(t)))
    truths = [set(words(t)) for t in data.target.texts]
    best = 0.0
    for m in range(1, 21):
        guess = {w for w, _ in freq.most_common(m)}
        best = max(best, float(np.mean([set_prf(guess, t)[2] for t in truths])))
    return best


def test_registered_through_the_plugin_loader(host):
    entry = host.entry("attacks", "centroid")
    assert entry.plugin == "centroid"
    assert entry.cls.output == "words"
    row = next(r for r in host.listing("attacks") if r["name"] == "centroid")
    assert row["params"]["k"]["default"] == 10
    assert row["params"]["min_share"]["default"] == 0.3
    assert row["params"]["max_train"]["default"] is None
    assert "adaptive" in row["params"]


@pytest.mark.parametrize(
    "params, field",
    [({"k": 0}, "k"), ({"min_share": 0}, "min_share"), ({"min_share": 1.5}, "min_share"), ({"max_train": 0}, "max_train")],
)
def test_bad_params_name_the_field(host, params, field):
    with pytest.raises(BenchError, match=field):
        host.make("attacks", "centroid", params)
    with pytest.raises(BenchError, match="no parameter 'topk'"):
        host.make("attacks", "centroid", {"topk": 3})


def test_beats_the_best_constant_guess(host, runner):
    [(rec, samples)] = run(host, runner, "centroid")
    baseline = best_constant_f1(host)
    assert 0.2 < baseline < 0.35  # sanity: the toy data has shared stop words, so this is not zero
    assert f1(rec) > baseline + 0.1, (f1(rec), baseline)
    assert rec.attack.name == "centroid" and rec.attack.plugin == "centroid"
    assert rec.attack.params == {"adaptive": False, "k": 10, "min_share": 0.3, "max_train": None}
    assert rec.provenance.victim_queries == 36  # the attacker split, embedded once through the victim
    assert rec.metrics["word_f1"].n == 12
    # Outputs are bags of words, each word from the attacker's vocabulary.
    vocab = {w for t in host.make("datasets", "toy-topics").load().attacker.texts for w in words(t)}
    for s in samples:
        assert s["reconstruction"] and set(s["reconstruction"]) <= vocab


def test_topic_words_come_from_the_right_topic(host, runner):
    """Content words in an output mostly belong to the target's own topic (not just 'the', 'and').

    By chance about a quarter would (four topics); 64 hashed dimensions collide a lot, so the
    attack is far from perfect, but it must be well above chance.
    """
    data = host.make("datasets", "toy-topics").load()
    topic_words: dict[str, set[str]] = {}
    for split in (data.attacker, data.leaked, data.target):
        for id_, text in zip(split.ids, split.texts):
            topic_words.setdefault(id_.rsplit("-", 1)[0], set()).update(words(text))
    common = set.intersection(*topic_words.values()) | {"a", "and", "in", "on", "as", "after"}
    [(_, samples)] = run(host, runner, "centroid")
    on, off = 0, 0
    for s in samples:
        topic = s["id"].rsplit("-", 1)[0]
        for w in set(s["reconstruction"]) - common:
            on += w in topic_words[topic]
            off += w not in topic_words[topic]
    assert on >= 10 and on / (on + off) > 0.5, (on, off)


def test_k_and_min_share_shape_the_output(host, runner):
    cells = run(host, runner, "centroid:k=10,min_share=0.1|0.3|0.9")
    sizes = [np.mean([len(s["reconstruction"]) for s in samples]) for _, samples in cells]
    assert sizes[0] > sizes[1] > sizes[2]  # a higher bar keeps fewer words
    # k=1 with min_share=1: exactly the words of the single nearest attacker sentence.
    [(rec, samples)] = run(host, runner, "centroid:k=1,min_share=1")
    [(near, near_samples)] = run(host, runner, "nearest")
    for s, n in zip(samples, near_samples):
        assert s["reconstruction"] == sorted(set(words(n["reconstruction"])))


def test_max_train_limits_victim_queries(host, runner):
    [(rec, _)] = run(host, runner, "centroid:max_train=8")
    assert rec.provenance.victim_queries == 8


def test_adaptive_reproduces_a_public_defense(host, runner):
    # a defense alone also runs the clean baseline cell, first
    clean, naive, adaptive = (rec for rec, _ in run(host, runner, "centroid", "toy-shuffle"))
    assert clean.defense.name == "none"
    assert not naive.threat_model.knows_defense and adaptive.threat_model.knows_defense
    assert f1(naive) < f1(clean) - 0.1  # the shuffled targets no longer match the clean index
    assert f1(adaptive) == pytest.approx(f1(clean), abs=1e-6)  # simulating it undoes it exactly


def test_adaptive_learns_a_secret_defense_from_leaked_pairs(host, runner):
    # How much 12 leaked pairs buy depends on the key drawn (with per-run keys the gain fell below
    # 0.05 in 3 of 12 runs), so five fixed keys, the same on every run: the mean gain is the claim.
    gains = []
    for key in ("k0", "k1", "k2", "k3", "k4"):
        _, naive, adaptive = (rec for rec, _ in run(host, runner, "centroid", f"toy-secret-shuffle:key={key}"))
        gains.append(f1(adaptive) - f1(naive))
    assert np.mean(gains) > 0.05, gains
    _, naive, adaptive = (rec for rec, _ in run(host, runner, "centroid", "toy-secret-shuffle"))
    # The leaked texts were re-embedded through the victim to learn the map: counted queries.
    assert naive.provenance.victim_queries == 36
    assert adaptive.provenance.victim_queries == 36 + 12
