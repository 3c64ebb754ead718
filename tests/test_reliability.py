"""Nothing lost, nothing silently wrong: locks, preflight checks, integrity of cache entries and
artifacts, validated victim outputs, redaction of secrets, HTTP backends.
The end-to-end fault injection (kill -9, concurrent runs) is in test_faults.py."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from stub_server import chat_server, embeddings_server

from bench.errors import BenchError

TOY = str(Path(__file__).parent / "toy_plugins")
TOY_RUN = ["--plugins-dir", TOY, "run", "--no-floor", "-a", "nearest:adaptive=false", "-d", "none", "-e", "toy-hash", "-D", "toy", "--device", "cpu", "-q"]



def assert_one_line_exit_2(code, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


# ---------------------------------------------------------------- locks


def test_lock_waits_for_a_live_holder_and_breaks_a_dead_ones(tmp_path):
    from bench.locks import file_lock

    lock = tmp_path / "cell.lock"
    order, waited = [], []

    def holder():
        with file_lock(lock):
            order.append("a-in")
            time.sleep(0.6)
            order.append("a-out")

    t = threading.Thread(target=holder)
    t.start()
    while not lock.exists():
        time.sleep(0.01)
    with file_lock(lock, on_wait=waited.append):
        order.append("b-in")
    t.join()
    assert order == ["a-in", "a-out", "b-in"] and waited[0]["pid"] == os.getpid()
    assert not lock.exists()  # released

    # kill -9 of a holder on this host: its pid is gone, so the lock is stale at once
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "token": "dead"}))
    t0 = time.monotonic()
    with file_lock(lock):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert time.monotonic() - t0 < 2


def test_lock_of_another_host_is_stale_when_its_heartbeat_stops(tmp_path):
    from bench.locks import file_lock

    lock = tmp_path / "cell.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "some-other-node", "token": "remote"}))
    with pytest.raises(BenchError, match="held by pid 1 on some-other-node"), file_lock(lock, stale_after=5, timeout=0.5):
        pass
    t0 = time.monotonic()
    with file_lock(lock, stale_after=0.5):  # nobody touches it for 0.5 s: the holder is gone
        pass
    assert 0.4 < time.monotonic() - t0 < 3


def test_samples_without_a_record_are_debris_and_replaced(toy_host, tmp_path):
    from bench.runner import Runner, build_grid

    cells = build_grid(toy_host, ["nearest:adaptive=false"], ["none"], ["toy-hash"], ["toy"], [0])
    runner = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    (rec,) = runner.run(cells)
    record = next((tmp_path / "out").glob("*__*.json"))
    (samples,) = list((tmp_path / "out").glob("*.samples.jsonl"))
    good = samples.read_text()
    record.unlink()  # as after kill -9 between the two writes
    samples.write_text("half a line")
    (again,) = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False).run(cells)
    assert again.metrics == rec.metrics and samples.read_text() == good


# ---------------------------------------------------------------- preflight: user mistakes


@pytest.mark.parametrize(
    "body, needle",
    [
        ('seeds = "zero"', "`seeds` must be an integer"),
        ("seeds = [0, -1]", "`seeds` must be between 0 and"),
        ("seeds = [true]", "`seeds` must be an integer"),
        ("out = 5", "`out` must be a folder path"),
        ('baseline = "no"', "`baseline` must be true or false"),
        ('limit = "10"', "`limit` must be an integer"),
        ("limit = -1", "`limit` must be an integer >= 0"),
        ('device = "gpu"', "`device` must be"),
        ("defenses = 3", "`defenses` must be a spec string"),
        ("defenses = [1]", "every entry of `defenses`"),
        ('[[defenses]]\nscale = 0.1', "needs name"),
    ],
)
def test_config_types_are_strict(capsys, tmp_path, monkeypatch, body, needle):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "grid.toml"
    cfg.write_text(('attacks = ["nearest"]\n' if not body.startswith("attacks") else "") + body + "\n")
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", "--config", str(cfg))
    assert_one_line_exit_2(code, err, needle, str(cfg))
    assert not (tmp_path / "results").exists()


def test_a_config_spec_string_is_one_spec_not_its_characters(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "grid.toml"
    cfg.write_text('attacks = "bwo"\n')
    code, _, err = run_cli(capsys, "run", "--config", str(cfg))
    assert_one_line_exit_2(code, err, "unknown attack 'bwo'")
    cfg.write_text('attacks = "nearest:adaptive=false"\nembedders = "toy-hash"\ndatasets = "toy"\nseeds = 3\nbaseline = false\nfloor = false\n')
    code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", "--config", str(cfg), "--cache-dir", str(tmp_path / "c"), "--device", "cpu")
    assert code == 0, err
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert rec["attack"]["name"] == "nearest" and rec["seed"] == 3


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_bad_seed_is_caught_before_any_work(capsys, tmp_path, monkeypatch, seed):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *TOY_RUN, "--seed", seed, "--cache-dir", str(tmp_path / "c"))
    assert_one_line_exit_2(code, err, "--seed must be between 0 and 4294967295")
    assert not (tmp_path / "results").exists() and not (tmp_path / "c").exists()


def test_out_and_cache_dir_must_be_writable_folders(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for flag, value, needle in [
        ("--out", a_file, "--out"), ("--out", a_file / "sub", "is a file, not a folder"),
        ("--cache-dir", a_file, "--cache-dir"), ("--cache-dir", a_file / "sub", "--cache-dir"),
    ]:
        other = ["--cache-dir", str(tmp_path / "c")] if flag == "--out" else ["--out", str(tmp_path / "o")]
        code, _, err = run_cli(capsys, *TOY_RUN, flag, str(value), *other)
        assert_one_line_exit_2(code, err, needle, str(value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing written anywhere


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_out_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    code, _, err = run_cli(capsys, *TOY_RUN, "--out", str(ro / "res"), "--cache-dir", str(tmp_path / "c"))
    assert_one_line_exit_2(code, err, "is not writable")


def test_non_finite_parameters_are_rejected(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("noise:scale=inf", "noise:scale=nan", "noise:scale=-inf"):
        code, _, err = run_cli(capsys, "--plugins-dir", TOY, "run", "-a", "nearest", "-d", spec, "-e", "toy-hash", "-D", "toy")
        assert_one_line_exit_2(code, err, "bad value for defense 'noise' parameter 'scale'")
    assert not (tmp_path / "results").exists()


def test_damaged_record_names_its_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [*TOY_RUN, "--cache-dir", str(tmp_path / "c")]
    assert run_cli(capsys, *args)[0] == 0
    (rec,) = list((tmp_path / "results").glob("*.json"))
    rec.write_text(rec.read_text()[:200])  # truncated
    code, _, err = run_cli(capsys, *args)
    assert_one_line_exit_2(code, err, str(Path("results") / rec.name), "restore it, or delete it")
    code, _, err = run_cli(capsys, "leaderboard", "build", "results", "--name", "x")
    assert_one_line_exit_2(code, err, str(Path("results") / rec.name))
    assert not (tmp_path / "leaderboards" / "x").exists()


def test_ctrl_c_says_how_to_resume(capsys, tmp_path, monkeypatch):
    from bench.runner import Runner

    def interrupted(self, cells, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "run", interrupted)
    code, _, err = run_cli(capsys, *TOY_RUN, "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"))
    assert code == 130 and "run the same command again to resume" in err and "aborted" not in err


# ---------------------------------------------------------------- integrity of caches and artifacts


def test_cache_entry_digest_is_checked_on_load(tmp_path, capsys):
    from bench.cache import load_arrays, load_entry, save_arrays

    path = tmp_path / "e.safetensors"
    arr = np.arange(4096, dtype=np.float32).reshape(64, 64)
    save_arrays(path, {"x": arr}, {"note": "n"})
    got, meta = load_entry(path)
    assert np.array_equal(got["x"], arr) and meta["note"] == "n"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(BenchError, match=f"{path} is damaged .content does not match its digest"):
        load_arrays(path)
    assert load_entry(path) is None and not path.exists()  # reported, deleted: the caller recomputes
    assert capsys.readouterr().err.count(str(path)) == 1
    # an entry without a digest (an older version, or written by hand) is not trusted either
    from safetensors.numpy import save_file

    save_file({"x": arr}, str(path))
    assert load_entry(path) is None


def test_embedding_cache_rejects_non_finite_or_wrong_sized_entries(tmp_path, capsys):
    from bench.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    path = cache.path({"fp": 1}, "d", "target", ["a", "b"])
    cache.put(path, np.array([[1.0, np.nan], [0.0, 1.0]], np.float32))  # as cached by an older version
    assert cache.get(path, 2, 2) is None and "non-finite" in capsys.readouterr().err
    cache.put(path, np.ones((2, 3), np.float32))
    assert cache.get(path, 2, 2) is None  # not the victim's dimension
    cache.put(path, np.ones((2, 2), np.float32))
    assert cache.get(path, 2, 2).shape == (2, 2)


def _features_users():
    """The caches built on ``bench.cache.cached_features``: the call itself, SLImE's LM encoder
    (``bench_plugins.llm.cached_embed``) and the dual encoders (``bench_plugins.clip.cached_encode``)."""
    from types import SimpleNamespace

    from bench.cache import cached_features
    from bench_plugins.clip import cached_encode
    from bench_plugins.llm import cached_embed

    def direct(compute):
        return cached_features("k", 3, compute)

    def lm(compute):
        encoder = SimpleNamespace(info=lambda: {"name": "lm"}, embed=lambda texts, **kw: compute())
        return cached_embed(encoder, ["a", "b", "c"], {"max_length": 8})

    def dual(compute):
        encoder = SimpleNamespace(identity={"name": "clip", "backend": "test", "sha256": "0"}, dim=4, preprocess={},
                                  encode_texts=lambda texts: compute())
        return cached_encode(encoder, "text", ["a", "b", "c"])

    return {"cached_features": direct, "llm.cached_embed": lm, "clip.cached_encode": dual}


@pytest.mark.parametrize("user", list(_features_users()))
def test_features_cache_recomputes_a_damaged_entry(tmp_path, capsys, user):
    from bench.cache import default_cache_dir

    cached = _features_users()[user]
    calls = []

    def compute():
        calls.append(1)
        return np.ones((3, 4), np.float32) * len(calls)

    assert cached(compute)[0, 0] == 1
    assert cached(compute)[0, 0] == 1 and len(calls) == 1
    (entry,) = list((default_cache_dir() / "features").glob("*.safetensors"))
    entry.write_bytes(entry.read_bytes()[:-8])
    assert cached(compute)[0, 0] == 2 and "warning" in capsys.readouterr().err


def test_json_cache_entries_carry_a_digest(tmp_path, capsys):
    from bench.cache import read_json_entry, write_json_entry

    path = tmp_path / "entry.json"
    assert read_json_entry(path) is None  # missing: nothing reported
    write_json_entry(path, {"a": ["é", 1]}, "replies")
    assert read_json_entry(path, "replies") == {"a": ["é", 1]} and not capsys.readouterr().err
    data = json.loads(path.read_text())
    data["replies"]["a"] = ["edited"]
    path.write_text(json.dumps(data))
    assert read_json_entry(path, "replies") is None and not path.exists()
    assert "entry.json is damaged (content does not match its digest)" in capsys.readouterr().err
    old = tmp_path / "old.json"  # as an older version wrote it: no digest
    old.write_text(json.dumps([["a tag"]]))
    assert read_json_entry(old, "tags") is None and "no content digest" in capsys.readouterr().err
    cut = tmp_path / "cut.json"
    cut.write_text('{"sha256": "0", "tags": [')  # truncated
    assert read_json_entry(cut, "tags") is None and "unreadable" in capsys.readouterr().err


def test_the_dequantized_model_copy_is_checked_against_its_digest(tmp_path, capsys):
    from bench.cache import file_digest
    from bench_plugins.llm import _intact

    (tmp_path / "model.safetensors").write_bytes(b"weights" * 10)
    (tmp_path / "source.json").write_text(json.dumps({"model_sha256": file_digest(tmp_path / "model.safetensors")}))
    assert _intact(tmp_path) and not capsys.readouterr().err
    (tmp_path / "model.safetensors").write_bytes(b"weights" * 5)  # truncated
    assert not _intact(tmp_path) and "model.safetensors is damaged" in capsys.readouterr().err
    (tmp_path / "source.json").write_text("{}")
    assert not _intact(tmp_path)  # no digest: rebuilt, never trusted (reported once per file)


def test_sealed_artifacts(tmp_path, capsys):
    from bench.cache import seal, sealed

    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a.bin").write_bytes(b"x" * 100)
    assert not sealed(tmp_path, ["a.json", "a.bin"], "a")  # not sealed yet: unfinished
    seal(tmp_path, ["a.json", "a.bin"], "a")
    assert sealed(tmp_path, ["a.json", "a.bin"], "a")
    (tmp_path / "a.bin").write_bytes(b"x" * 50)
    assert not sealed(tmp_path, ["a.json", "a.bin"], "a")
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "a.sha256.json").exists()  # cleared for retraining
    assert "a.bin is damaged" in capsys.readouterr().err


def test_generation_cache_carries_a_digest(tmp_path, capsys):
    from bench.cache import default_cache_dir
    from bench_plugins.llm import cached_chat

    class Writer:
        calls = 0

        def info(self):
            return {"name": "w"}

        def chat(self, convs, **kw):
            Writer.calls += len(convs)
            return [f"reply {Writer.calls}" for _ in convs]

    convs = [[{"role": "user", "content": "hi"}]]
    assert cached_chat(Writer(), convs, {}) == ["reply 1"]
    assert cached_chat(Writer(), convs, {}) == ["reply 1"]
    (path,) = list((default_cache_dir() / "generations").glob("*.json"))
    data = json.loads(path.read_text())
    data["replies"] = {k: "edited" for k in data["replies"]}
    path.write_text(json.dumps(data))
    assert cached_chat(Writer(), convs, {}) == ["reply 2"] and "damaged" in capsys.readouterr().err


# ---------------------------------------------------------------- victim outputs


BAD_EMBEDDER = '''
import numpy as np
from pydantic import Field
from bench.api import Embedder, Params
from bench.hookspecs import hookimpl

class Bad(Embedder):
    """Returns what its mode says."""
    name = "bad"
    pretrained = False

    class Params(Params):
        mode: str = "nan"

    def embed(self, texts):
        n = len(texts)
        if self.params.mode == "nan":
            out = np.ones((n, 8), np.float32); out[0, 0] = np.nan; return out
        if self.params.mode == "dim":
            return np.ones((n, 4), np.float32)
        if self.params.mode == "count":
            return np.ones((n - 1, 8), np.float32)
        return np.ones((n, 8), np.float32)

    @property
    def dim(self):
        return 8

    def fingerprint(self):
        return {"embedder": "bad", "mode": self.params.mode}

@hookimpl
def register_embedders(register):
    register(Bad)
'''


@pytest.mark.parametrize(
    "mode, needle",
    [("nan", "non-finite values (NaN or inf) in 1 of"), ("dim", "returned 4-d vectors but declares dimension 8"),
     ("count", "for 80 inputs: it must return one vector per input")],
)
def test_victim_outputs_are_validated_and_never_cached(capsys, tmp_path, mode, needle):
    plugs = tmp_path / "plugs"
    plugs.mkdir()
    (plugs / "toy.py").write_text(Path(TOY, "toy.py").read_text())
    (plugs / "bad.py").write_text(BAD_EMBEDDER)
    code, _, _ = run_cli(capsys, "--plugins-dir", str(plugs), "run", "--no-floor", "-a", "nearest:adaptive=false", "-d", "none",
                           "-e", f"bad:mode={mode}", "-D", "toy", "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"),
                           "--device", "cpu", "-q")
    assert code == 1
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "o").glob("*.json")]
    assert rec["status"] == "error" and "embedder 'bad'" in rec["error"] and needle in rec["error"], rec["error"]
    assert not list((tmp_path / "c").rglob("*.safetensors"))  # nothing cached


# ---------------------------------------------------------------- secrets


def test_redaction(monkeypatch):
    from bench.redact import redact, redact_record, register_secret
    from bench.results import ComponentConfig, Provenance, ResultRecord

    monkeypatch.setenv("SOME_SERVICE_API_KEY", "sk-live-abcdefghijklmnopqrstuvwx")
    text = "401: key sk-live-abcdefghijklmnopqrstuvwx refused; prefix sk-live-abcdefgh; Authorization: Bearer tok123456789"
    clean = redact(text)
    assert "abcdefgh" not in clean and "tok123456789" not in clean and clean.count("[REDACTED]") >= 3
    register_secret("custom-secret-value-42")
    assert redact("echo: {'k': 'custom-secret-value-42'}") == "echo: {'k': '[REDACTED]'}"
    assert redact("token_f1 0.3, max_tokens 24, key=bench-secret") == "token_f1 0.3, max_tokens 24, key=bench-secret"
    c = ComponentConfig(name="x")
    rec = ResultRecord(cell_id="a", status="error", error="server said custom-secret-value-42", attack=c, defense=c, embedder=c,
                       dataset=c, seed=0, threat_model={}, provenance=Provenance(package_version="0"))
    assert "custom-secret" not in redact_record(rec).model_dump_json()


def test_every_cli_output_line_is_redacted(capsys, tmp_path, monkeypatch):
    from bench.runner import Runner

    monkeypatch.setenv("MY_TOKEN", "zz-very-secret-token-value")

    def leaky(self, cells, **kw):
        print("debug: sending zz-very-secret-token-value")
        raise BenchError("server echoed zz-very-secret-token-value")

    monkeypatch.setattr(Runner, "run", leaky)
    code, out, err = run_cli(capsys, *TOY_RUN, "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "zz-very-secret" not in out + err and "[REDACTED]" in err


# ---------------------------------------------------------------- HTTP backends


def test_401_with_a_key_set_does_not_claim_it_is_unset(host, monkeypatch):
    monkeypatch.setenv("EMB_TEST_KEY", "sk-wrong-0000000000")
    with embeddings_server(echo_key=401) as server:
        e = host.make("embedders", "openai", {"base_url": server.base_url, "model": "m", "api_key_env": "EMB_TEST_KEY"})
        with pytest.raises(BenchError) as ei:
            e.embed(["x"])
    msg = str(ei.value)
    assert "was sent and refused" in msg and "not set" not in msg and "sk-wrong" not in msg
    monkeypatch.delenv("EMB_TEST_KEY")
    with embeddings_server(echo_key=401) as server:
        e = host.make("embedders", "openai", {"base_url": server.base_url, "model": "m", "api_key_env": "EMB_TEST_KEY"})
        with pytest.raises(BenchError, match=r"\$EMB_TEST_KEY is not set"):
            e.embed(["x"])


def test_openai_fingerprint_is_what_the_server_runs(host):
    with embeddings_server(salt="a", models=["served-id"]) as server:
        e = host.make("embedders", "openai", {"base_url": server.base_url, "model": "m"})
        fp = e.fingerprint()
        assert fp["dim"] == 16 and fp["server_model"] == "served-id" and len(fp["probe_sha256"]) == 64
        server.behaviour.update(salt="b", models=None)  # another model, no /models route
        fp2 = host.make("embedders", "openai", {"base_url": server.base_url, "model": "m"}).fingerprint()
    assert fp2["server_model"] is None and fp2["probe_sha256"] != fp["probe_sha256"]


def test_parallel_map_stops_at_the_first_failure_and_keeps_finished_results():
    from bench.http import parallel_map

    started, kept = [], {}

    def work(i):
        started.append(i)
        if i == 3:
            raise BenchError("boom")
        return i * 10

    with pytest.raises(BenchError, match="boom"):
        parallel_map(work, list(range(20)), 2, on_result=kept.__setitem__)
    assert max(started) <= 5  # nothing is started after the failure but what was in flight
    assert {0, 1, 2} <= set(kept) and kept[2] == 20
    assert parallel_map(lambda x: x + 1, [1, 2, 3], 3) == [2, 3, 4]


def test_chat_failure_stops_requests_and_keeps_finished_replies(tmp_path):
    from bench_plugins.llm import CHAT_PROBE, OpenAIChat, cached_chat

    def reply(body):
        content = body["messages"][-1]["content"]
        if content == "c3":
            raise RuntimeError("server error")  # the stub answers with a dropped connection
        return "ok" if body["messages"] == CHAT_PROBE else f"re {content}"

    convs = [[{"role": "user", "content": f"c{i}"}] for i in range(10)]
    with chat_server(reply) as (url, seen):
        chat = OpenAIChat(url, "m", timeout=5, max_retries=0, parallel=1)
        with pytest.raises(BenchError):
            cached_chat(chat, convs, {"s": 1})
        asked = [b["messages"][-1]["content"] for _, b, _ in seen[1:]]
        assert asked == ["c0", "c1", "c2", "c3"]  # one at a time, nothing after the failure
        seen.clear()
        with pytest.raises(BenchError):
            cached_chat(chat, convs, {"s": 1})
        assert [b["messages"][-1]["content"] for _, b, _ in seen] == ["c3"]  # c0-c2 came from the cache


def test_slime_http_settings_are_parameters(host):
    from bench_plugins.llm import OpenAIChat

    a = host.make("attacks", "slime", {"llm_backend": "openai", "model": "m", "timeout": 5, "max_retries": 1, "parallel": 1})
    writer = a._load_writer(None)
    assert isinstance(writer, OpenAIChat) and (writer.timeout, writer.max_retries, writer.parallel) == (5, 1, 1)


# ---------------------------------------------------------------- weights


def test_pickle_only_sub_folder_is_refused(tmp_path):
    from bench.models import check_no_pickle_only

    model = tmp_path / "st-model"
    (model / "2_Dense").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"")
    (model / "2_Dense" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(BenchError, match="only pickle weights in 2_Dense/"):
        check_no_pickle_only("st-model", model)
    (model / "2_Dense" / "model.safetensors").write_bytes(b"")
    check_no_pickle_only("st-model", model)  # both: safetensors is what loads


def test_vec2text_pretrained_path_refuses_pickle_only_checkpoints(tmp_path):
    from bench_plugins.attacks.vec2text_compat import load_vec2text_corrector

    ckpt = tmp_path / "corrector"
    ckpt.mkdir()
    (ckpt / "pytorch_model.bin").write_bytes(b"")
    (ckpt / "config.json").write_text("{}")
    with pytest.raises(BenchError, match="only pickle weights"):
        load_vec2text_corrector(str(ckpt), str(ckpt), None, "cpu", 768)


def test_cached_images_carry_their_digest_in_the_name(tmp_path, capsys):
    import hashlib

    from bench_plugins.diffusion import _cached_png

    data = b"\x89PNG fake image bytes"
    good = tmp_path / f"k1.{hashlib.sha256(data).hexdigest()[:16]}.png"
    good.write_bytes(data)
    assert _cached_png(tmp_path, "k1") == good and _cached_png(tmp_path, "k2") is None
    good.write_bytes(data[:5])  # truncated
    assert _cached_png(tmp_path, "k1") is None and not good.exists() and "damaged" in capsys.readouterr().err


def test_a_record_written_meanwhile_by_a_lock_breaker_is_read_not_a_crash(toy_host, tmp_path, monkeypatch):
    """A run stopped for longer than the stale-lock delay (Ctrl-Z) finds the cell written by the
    run that broke its lock: it reads that record instead of failing on the existing file."""
    from bench.results import write_record
    from bench.runner import Runner, build_grid

    real = Runner.run_cell

    def run_cell_raced(self, cell):
        rec, samples = real(self, cell)
        write_record(self.out_dir, rec, samples)  # the other run's write lands first
        return rec, samples

    monkeypatch.setattr(Runner, "run_cell", run_cell_raced)
    cells = build_grid(toy_host, ["nearest:adaptive=false"], ["none"], ["toy-hash"], ["toy"], [0])
    statuses = []
    (rec,) = Runner(toy_host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False).run(
        cells, on_done=lambda i, n, c, s: statuses.append(s))
    assert statuses == ["cached"] and rec.status == "ok" and len(list((tmp_path / "out").glob("*.json"))) == 1
