"""The built-in datasets: WordNet example sentences (tiny fixture + the real files) and pii-notes."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from bench.api import DatasetSplits
from bench.errors import BenchError
from bench_plugins import datasets as ds

MINI = Path(__file__).parent / "data" / "wordnet_mini"
REAL = Path("/usr/share/wordnet")
SPLITS = ("attacker", "leaked", "target")

# What tests/data/wordnet_mini holds (real WordNet 3.0 lines): 32 synsets, 25 with examples,
# 41 quoted parts of which one is a bare ';' left by an unbalanced quote in the "Vietnamese"
# gloss, so 40 example sentences; "denizens of the deep" and "keep your cool" occur twice.
MINI_SYNSETS, MINI_WITH_EXAMPLES, MINI_EXAMPLES, MINI_DISTINCT = 32, 25, 40, 38
# WordNet 3.0 (Debian wordnet-base), counted by this parser.
REAL_EXAMPLES, REAL_DISTINCT, REAL_SYNSETS, REAL_WITH_EXAMPLES = 48_337, 48_223, 117_659, 32_923


def wordnet(host, **params):
    return host.make("datasets", "wordnet", {"path": str(MINI), "attacker": 15, "leaked": 3, "target": 5, **params})


def synset_of(text_id: str) -> str:
    return text_id.rsplit(":", 1)[0]


def check_splits(s: DatasetSplits, sizes: dict[str, int]) -> None:
    for name in SPLITS:
        split = getattr(s, name)
        assert len(split) == len(split.ids) == len(split.meta) == sizes[name]
        assert len(set(split.ids)) == len(split.ids)
    ids = [set(getattr(s, n).ids) for n in SPLITS]
    texts = [set(getattr(s, n).texts) for n in SPLITS]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not ids[i] & ids[j]
            assert not texts[i] & texts[j]


# ------------------------------------------------------------------ WordNet parser


def test_plugin_registers_both(host):
    assert {"wordnet", "pii-notes"} <= set(host.registries["datasets"].names())
    assert ds.__doc__.strip().splitlines()[0]
    for name in ("wordnet", "pii-notes"):
        cls = host.entry("datasets", name).cls
        assert cls.describe()
        assert {"attacker", "leaked", "target", "split_seed", "distractors"} <= set(cls.Params.model_fields)
    assert host.entry("datasets", "pii-notes").cls.Params().attacker == 5000


def test_parse_gloss():
    d, ex, dropped = ds.parse_gloss(
        'the act of defending someone; "a good boxer needs a good defense"; "defense against hurricanes"  '
    )
    assert d == "the act of defending someone"
    assert ex == ["a good boxer needs a good defense", "defense against hurricanes"]
    assert dropped == 0
    assert ds.parse_gloss("before noon  ") == ("before noon", [], 0)
    # unbalanced quote: the fragment between two examples is a bare ';' and is dropped
    d, ex, dropped = ds.parse_gloss('of Vietnam ; "the countryside"; the tones"; "boat people"')
    assert (d, ex, dropped) == ("of Vietnam", ["the countryside"], 1)
    # a trailing ';' inside the quotes goes, inner quotes of other kinds stay
    assert ds.parse_gloss('x; "he tensed;" "it\'s `sing\' here"')[1] == ["he tensed", "it's `sing' here"]


def test_parse_mini_fixture():
    data = ds.load_wordnet(str(MINI))
    assert data.version == "WordNet 3.0"
    assert len(data.synsets) == MINI_SYNSETS
    assert sum(1 for s in data.synsets if s.examples) == MINI_WITH_EXAMPLES
    assert data.n_examples == sum(len(s.examples) for s in data.synsets) == MINI_EXAMPLES
    assert data.n_dropped == 1
    by_key = {s.key: s for s in data.synsets}
    slender = by_key["n:05117406"]
    assert slender.pos == "n" and slender.lemmas == ("slenderness",)
    assert slender.definition == "the quality of being slight or inadequate"
    assert slender.examples == (
        "he knew the slenderness of my wallet",
        "the slenderness of the chances that anything would be done",
        "the slenderness of the evidence",
    )
    assert by_key["n:00217014"].examples == ()
    assert by_key["n:00217014"].lemmas == ("destruction", "devastation")
    # a definition with a ';' of its own keeps it; only the trailing one goes
    assert by_key["v:02422681"].definition == "keep under control; keep in check"
    # satellite adjective, position markers stripped, underscores turned into spaces
    asleep = by_key["a:00095873"]
    assert asleep.pos == "s" and asleep.lemmas[:3] == ("asleep", "at peace", "at rest")
    assert by_key["a:00014358"].lemmas == ("abounding", "galore")
    assert by_key["a:03129223"].examples == ("the Vietnamese countryside",)
    assert by_key["r:00098380"].examples == ("drove the nail home", "drove his point home", "his comments hit home")
    for s in data.synsets:
        assert s.definition and not s.definition.endswith(";") and '"' not in s.definition
        assert all('"' not in e and e == e.strip() for e in s.examples)
    # cached: the same object while the files are unchanged
    assert ds.load_wordnet(str(MINI)) is data


def test_wordnet_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("WNHOME", raising=False)
    monkeypatch.delenv("WORDNET_DIR", raising=False)
    assert ds.wordnet_dir() == Path("/usr/share/wordnet")
    monkeypatch.setenv("WORDNET_DIR", str(MINI))
    assert ds.wordnet_dir() == MINI
    monkeypatch.setenv("WNHOME", str(tmp_path))
    assert ds.wordnet_dir() == tmp_path
    (tmp_path / "dict").mkdir()
    for f in MINI.glob("data.*"):
        (tmp_path / "dict" / f.name).write_bytes(f.read_bytes())
    assert ds.wordnet_dir() == tmp_path / "dict"  # a classic $WNHOME keeps its files in dict/
    assert ds.wordnet_dir(str(MINI)) == MINI  # the parameter wins


def test_wordnet_default_path_from_env(host, monkeypatch):
    monkeypatch.delenv("WNHOME", raising=False)
    monkeypatch.setenv("WORDNET_DIR", str(MINI))
    s = host.make("datasets", "wordnet", {"attacker": 15, "leaked": 3, "target": 5}).load()
    assert s.info["source"] == str(MINI.resolve())


def test_missing_directory(host, tmp_path):
    with pytest.raises(BenchError, match="apt-get install wordnet-base") as e:
        wordnet(host, path=str(tmp_path / "nowhere")).load()
    assert "wordnet:path=DIR" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(BenchError, match=r"no data\.verb, data\.adj, data\.adv"):
        wordnet(host, path=str(tmp_path)).load()


def test_malformed_file(host, tmp_path):
    for f in MINI.glob("data.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with (tmp_path / "data.adv").open("a") as f:
        f.write("this is not a wordnet line\n")
    with pytest.raises(BenchError, match=r"data\.adv:9 is not a WordNet data line"):
        wordnet(host, path=str(tmp_path)).load()


# ------------------------------------------------------------------ WordNet splits


def test_wordnet_splits(host):
    s = wordnet(host).load()
    check_splits(s, {"attacker": 15, "leaked": 3, "target": 5})
    synsets = [{synset_of(i) for i in getattr(s, n).ids} for n in SPLITS]
    assert not synsets[0] & synsets[1] and not synsets[0] & synsets[2] and not synsets[1] & synsets[2]
    data = ds.load_wordnet(str(MINI))
    by_key = {x.key: x for x in data.synsets}
    for name in SPLITS:
        split = getattr(s, name)
        for tid, text, meta in zip(split.ids, split.texts, split.meta):
            syn = by_key[synset_of(tid)]
            assert text == syn.examples[int(tid.rsplit(":", 1)[1])]
            assert meta == {"synset": syn.key, "pos": syn.pos, "lemmas": list(syn.lemmas)}
    assert s.info["n_total"] == MINI_EXAMPLES and s.info["n_distinct"] == MINI_DISTINCT
    assert s.info["version"] == "WordNet 3.0" and s.info["split_by"] == "synset"
    assert s.info["source"] == str(MINI.resolve()) and len(s.info["sha256"]) == 64
    dev = {synset_of(i) for i in s.dev.ids}  # the dev split: what remains of the fixture, whole synsets
    assert len(s.dev) and s.dev.groups == [synset_of(i) for i in s.dev.ids]
    assert not dev & set().union(*synsets) and not set(s.dev.texts) & {t for n in SPLITS for t in getattr(s, n).texts}
    assert s.info["synsets"] == {**{k: len(v) for k, v in zip(SPLITS, synsets)}, "dev": len(dev)}


def test_wordnet_synsets_taken_in_order(host):
    """Within a split, a synset's sentences are consecutive and start at its first example."""
    s = wordnet(host).load()
    for name in SPLITS:
        ids = getattr(s, name).ids
        runs = [[ids[0]]]
        for i in ids[1:]:
            (runs[-1].append(i) if synset_of(i) == synset_of(runs[-1][-1]) else runs.append([i]))
        assert len({synset_of(r[0]) for r in runs}) == len(runs)


def test_wordnet_every_sentence_used_when_it_fits(host):
    """Duplicated texts never land in two splits, even when every sentence is needed."""
    fitted = 0
    for seed in range(10):
        try:
            s = wordnet(host, attacker=MINI_DISTINCT - 8 - 4, leaked=4, target=4, split_seed=seed).load()
        except BenchError as e:  # a synset cut at a split's end can make the exact total not fit
            assert "lower --dataset wordnet:attacker=" in str(e)
            continue
        check_splits(s, {"attacker": MINI_DISTINCT - 12, "leaked": 4, "target": 4})
        fitted += 1
    assert fitted


def test_wordnet_zero_leaked(host):
    s = wordnet(host, leaked=0).load()
    assert len(s.leaked) == 0 and s.leaked.ids == [] and len(s.target) == 5


def test_wordnet_determinism(host):
    a, b = wordnet(host, split_seed=3).load(), wordnet(host, split_seed=3).load()
    for name in SPLITS:
        assert getattr(a, name) == getattr(b, name)
    assert a.retrieval == b.retrieval and a.info == b.info
    c = wordnet(host, split_seed=4).load()
    assert [a.target.ids, a.leaked.ids, a.attacker.ids] != [c.target.ids, c.leaked.ids, c.attacker.ids]


def test_wordnet_target_stable_when_attacker_changes(host):
    a, b = wordnet(host, attacker=5).load(), wordnet(host, attacker=20).load()
    assert a.target == b.target and a.leaked == b.leaked
    assert b.attacker.ids[: len(a.attacker)] == a.attacker.ids


def test_wordnet_retrieval(host):
    s = wordnet(host, distractors=4).load()
    r = s.retrieval
    assert set(r.qrels) == set(s.target.ids)
    assert len(r.corpus_ids) == len(set(r.corpus_ids)) == len(r.corpus_texts)
    docs = dict(zip(r.corpus_ids, r.corpus_texts))
    by_key = {x.key: x for x in ds.load_wordnet(str(MINI)).synsets}
    target_synsets = {synset_of(i) for i in s.target.ids}
    for tid, rel in r.qrels.items():
        assert rel == {f"def:{synset_of(tid)}"} and rel <= set(docs)
        assert docs[f"def:{synset_of(tid)}"] == by_key[synset_of(tid)].definition
    distractors = [i for i in r.corpus_ids if i[4:] not in target_synsets]
    assert len(distractors) == 4 == s.info["n_distractors"]
    assert len(r.corpus_ids) == len(target_synsets) + 4
    # distractors may come from synsets without examples or from other splits, never the target's
    assert all(i.startswith("def:") and i[4:] in by_key for i in distractors)
    # more distractors than other synsets: all of them (deduplicated by text), and info says so
    s = wordnet(host, distractors=10_000).load()
    assert s.info["n_distractors"] == MINI_SYNSETS - s.info["synsets"]["target"]
    assert len(set(s.retrieval.corpus_texts)) == len(s.retrieval.corpus_texts)


def test_wordnet_sizes_too_large(host):
    with pytest.raises(BenchError, match=r"wordnet has 40 example sentences .*\(38 distinct\); "
                       r"attacker\+leaked\+target = 1,010 does not fit") as e:
        wordnet(host, attacker=1000, leaked=5, target=5).load()
    assert "lower --dataset wordnet:attacker=" in str(e.value) and "\n" not in str(e.value)
    suggested = int(str(e.value).split("attacker=")[1].split()[0])
    assert len(wordnet(host, attacker=suggested, leaked=5, target=5).load().attacker) == suggested
    with pytest.raises(BenchError, match="wordnet:target=...,leaked=..."):
        wordnet(host, attacker=1, leaked=30, target=30).load()


def test_wordnet_bad_params(host):
    with pytest.raises(BenchError, match="attacker"):
        wordnet(host, attacker=0)
    with pytest.raises(BenchError, match="split_seed"):
        wordnet(host, split_seed=-1)
    with pytest.raises(BenchError, match="no parameter 'pth'"):
        host.make("datasets", "wordnet", {"pth": "x"})


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "data.noun").is_file(), reason="WordNet not installed (apt-get install wordnet-base)")
def test_real_wordnet(host):
    data = ds.load_wordnet(str(REAL))
    assert data.version == "WordNet 3.0"
    assert len(data.synsets) == REAL_SYNSETS
    assert sum(1 for s in data.synsets if s.examples) == REAL_WITH_EXAMPLES
    assert data.n_examples == REAL_EXAMPLES and data.n_dropped == 2  # 48,339 quoted parts in all
    s = host.make("datasets", "wordnet", {"path": str(REAL)}).load()  # default sizes
    check_splits(s, {"attacker": 20_000, "leaked": 1000, "target": 1000})
    assert s.info["n_total"] == REAL_EXAMPLES and s.info["n_distinct"] == REAL_DISTINCT
    assert s.info["n_synsets_with_examples"] == REAL_WITH_EXAMPLES and s.info["n_distractors"] == 4000
    r = s.retrieval
    assert set(r.qrels) == set(s.target.ids) and all(v <= set(r.corpus_ids) for v in r.qrels.values())
    assert len(r.corpus_ids) == s.info["synsets"]["target"] + 4000
    with pytest.raises(BenchError, match=r"wordnet has 48,337 example sentences .* = 60,000"):
        host.make("datasets", "wordnet", {"path": str(REAL), "attacker": 58_000}).load()
    # the published boards' cells depend on these splits: pinned (ids, texts and synsets of every split,
    # as dealt before wordnet used bench.splits.deal)
    blob = json.dumps([[getattr(s, k).ids, getattr(s, k).texts, getattr(s, k).groups] for k in ("target", "leaked", "attacker", "dev")])
    assert hashlib.sha256(blob.encode()).hexdigest() == "edcba8ac6e277be83bd19b9e368f5f549e511bcf7527411551f7166d2f81d910"


# ------------------------------------------------------------------ pii-notes


def pii(host, **params):
    return host.make("datasets", "pii-notes", {"attacker": 300, "leaked": 50, "target": 100, **params}).load()


def test_pii_spans_match_text(host):
    s = pii(host)
    check_splits(s, {"attacker": 300, "leaked": 50, "target": 100})
    labels = set()
    templates = set()
    for name in SPLITS:
        split = getattr(s, name)
        for text, meta in zip(split.texts, split.meta):
            assert 10 <= len(text.split()) <= 40, text
            ents = meta["entities"]
            for e in ents:
                assert text[e["start"] : e["end"]] == e["text"], (text, e)
                assert e["label"] in ds.PII_LABELS
                labels.add(e["label"])
            patient = meta["patient"]
            assert any(e["label"] == "mrn" and e["text"] == patient["mrn"] for e in ents)
            assert any(e["label"] == "last_name" and e["text"] == patient["last_name"] for e in ents)
            assert any(e["label"] == "date" for e in ents)
            assert meta["condition"] in text and meta["medication"] in text
            for e in ents:
                if e["label"] == "full_name":
                    assert e["text"] == f"{patient['first_name']} {patient['last_name']}"
            templates.add(meta["template"])
    assert labels == set(ds.PII_LABELS)
    assert templates == set(range(len(ds.NOTE_TEMPLATES))) and len(ds.NOTE_TEMPLATES) >= 8
    assert s.info["faker_version"] and s.info["n_total"] == 450


def test_pii_distinct_patients(host):
    s = pii(host)
    patients = [
        {(m["patient"]["first_name"], m["patient"]["last_name"]) for m in getattr(s, n).meta} for n in SPLITS
    ]
    mrns = [{m["patient"]["mrn"] for m in getattr(s, n).meta} for n in SPLITS]
    assert sum(map(len, patients)) == sum(map(len, mrns)) == 450  # distinct within every split, too
    for i in range(3):
        for j in range(i + 1, 3):
            assert not patients[i] & patients[j] and not mrns[i] & mrns[j]


def test_pii_determinism(host):
    a, b = pii(host, split_seed=5), pii(host, split_seed=5)
    for name in SPLITS:
        assert getattr(a, name) == getattr(b, name)
    assert a.retrieval == b.retrieval and a.info == b.info
    c = pii(host, split_seed=6)
    assert not set(a.target.texts) & set(c.target.texts)
    d = pii(host, split_seed=5, attacker=10)  # the target split does not move with the attacker size
    assert d.target == a.target and d.leaked == a.leaked and d.attacker.texts == a.attacker.texts[:10]


def test_pii_determinism_across_processes(host):
    import os
    import subprocess
    import sys

    code = (
        "from bench.plugins import Host\n"
        "s = Host(load_installed=False).make('datasets', 'pii-notes', "
        "{'attacker': 5, 'leaked': 0, 'target': 5, 'split_seed': 9}).load()\n"
        "print(repr(s.target.texts + s.attacker.texts + s.retrieval.corpus_texts))"
    )
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1
    s = pii(host, attacker=5, leaked=0, target=5, split_seed=9)
    assert outs.pop().strip() == repr(s.target.texts + s.attacker.texts + s.retrieval.corpus_texts)


def test_pii_retrieval(host):
    s = pii(host, distractors=200)
    r = s.retrieval
    assert set(r.qrels) == set(s.target.ids)
    assert len(r.corpus_ids) == len(set(r.corpus_ids)) == len(r.corpus_texts)
    assert len(set(r.corpus_texts)) == len(r.corpus_texts)  # identical summaries share a document
    docs = dict(zip(r.corpus_ids, r.corpus_texts))
    for tid, meta in zip(s.target.ids, s.target.meta):
        (doc,) = r.qrels[tid]
        assert docs[doc] == (
            f"Visit summary: {meta['condition']} treated with {meta['medication']} "
            f"for patient {meta['patient']['last_name']}."
        )
    relevant = set().union(*r.qrels.values())
    assert len(r.corpus_ids) - len(relevant) == 200 == s.info["n_distractors"]
    assert pii(host, distractors=0).retrieval.corpus_ids == sorted(relevant)


def test_pii_bad_sizes(host):
    with pytest.raises(BenchError, match="target"):
        host.make("datasets", "pii-notes", {"target": 0})
    with pytest.raises(BenchError, match="leaked"):
        host.make("datasets", "pii-notes", {"leaked": -1})
    with pytest.raises(BenchError, match="distractors"):
        host.make("datasets", "pii-notes", {"distractors": -5})
    with pytest.raises(BenchError, match="split_seed"):
        host.make("datasets", "pii-notes", {"split_seed": -1})
    with pytest.raises(BenchError, match=r"at most 100,000 notes .* = 150,000: lower --dataset pii-notes:attacker=98000"):
        host.make("datasets", "pii-notes", {"attacker": 148_000}).load()
    with pytest.raises(BenchError, match="pii-notes:target=...,leaked=..."):
        host.make("datasets", "pii-notes", {"attacker": 1, "target": 100_000}).load()


def test_pii_generation_speed():
    ds.generate_notes.cache_clear()
    t = time.perf_counter()
    notes = ds.generate_notes(12345, 20_000)
    assert time.perf_counter() - t < 5.0
    assert len({n.text for n in notes}) == 20_000
    assert all(10 <= len(n.text.split()) <= 40 for n in notes)
