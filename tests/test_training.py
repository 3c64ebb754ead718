"""Training inverters outside a cell and shipping them: progress log, kill + resume, export, shipped weights.

Tiny random models (a 2-layer Llama built in tests/tiny_models.py, the toy 64-d hashed embedder):
the numbers are not findings. The last tests check the real shipped MiniLM weights in
plugins/weights/ (hash pin, manifest, loading into SmolLM2) when they are present.
"""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TOY_WORDS, tiny_llama

from bench.cache import load_arrays
from bench.errors import BenchError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parent.parent
TOY_DIR = Path(__file__).parent / "toy_plugins"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(TOY_WORDS, size=rng.integers(3, 6), replace=False)) for _ in range(n)]


def _model(tiny, dim: int = 16, prefix_len: int = 2):
    from bench_plugins.attacks import textinv

    lm, tok, _ = textinv.load_lm(str(tiny), "cpu")
    return textinv.build(lm, tok, dim, prefix_len, False, "full", 4, 8, 0), tok


def _data(tok, n: int = 48, dim: int = 16):
    from bench_plugins.attacks import textinv

    texts = _texts(n)
    e = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    return e, textinv.tokenize_targets(tok, texts, 8)


def test_progress_lines_time_checkpoints_and_dev_curve(tiny_lm, tmp_path, caplog):
    from bench_plugins.attacks import textinv

    model, tok = _model(tiny_lm)
    e, ids = _data(tok)
    caplog.set_level(logging.INFO, logger="bench.train")
    evaluate = lambda m: {"loss": textinv.mean_loss(m, e[:16], ids[:16], 8, "cpu")}  # noqa: E731
    out = textinv.train_prefix_lm(model, tmp_path, "hypothesizer", e, ids, steps=6, batch_size=8, lr=1e-2, seed=0, device="cpu",
                                  ckpt_every=1000, ckpt_seconds=0.0, log_every=2, evaluate=evaluate, eval_every=3, stop_after=4)
    assert out["interrupted"] and out["step"] == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "bench.train"]
    steps = [m for m in lines if ": step " in m]
    assert [m.split()[2] for m in steps] == ["2/6", "4/6"]
    assert all("loss" in m and "texts/s" in m and "ETA" in m for m in steps)
    assert sum("checkpoint at step" in m for m in lines) == 4  # ckpt_seconds=0: after every step
    ck = json.loads((tmp_path / "hypothesizer.ckpt.json").read_text())
    assert [d["step"] for d in ck["dev"]] == [0, 3] and ck["wall_s"] > 0 and len(ck["losses"]) == 4

    model2, _ = _model(tiny_lm)
    meta = textinv.train_prefix_lm(model2, tmp_path, "hypothesizer", e, ids, steps=6, batch_size=8, lr=1e-2, seed=0, device="cpu",
                                   ckpt_every=1000, log_every=2, evaluate=evaluate, eval_every=3)
    assert meta["resumed_from"] == 4 and [d["step"] for d in meta["dev"]] == [0, 3, 6]
    assert meta["dev"][-1]["loss"] < meta["dev"][0]["loss"]  # trained: the dev loss went down
    assert meta["wall_s"] >= ck["wall_s"] and len(meta["losses"]) == 6
    assert any("resumed from step 4/6" in r.getMessage() for r in caplog.records)


CHILD = r"""
import logging, os, signal, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_training import _model, _data
from bench_plugins.attacks import textinv

class KillAt(logging.Handler):
    def emit(self, record):
        if os.environ.get("KILL_AT") and record.getMessage().endswith("checkpoint at step " + os.environ["KILL_AT"] + "/8"):
            os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no cleanup, no final files

log = logging.getLogger("bench.train"); log.setLevel(logging.INFO); log.addHandler(KillAt())
model, tok = _model(Path({tiny!r}))
e, ids = _data(tok)
textinv.train_prefix_lm(model, Path(sys.argv[1]), "hypothesizer", e, ids, steps=8, batch_size=8, lr=1e-2, seed=0, device="cpu", ckpt_every=2)
"""


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_weights_of_an_uninterrupted_one(tiny_lm, tmp_path):
    from bench_plugins.attacks import textinv

    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent), tiny=str(tiny_lm)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}

    def run(folder: Path, kill_at: str | None):
        return subprocess.run([sys.executable, str(script), str(folder)], env={**env, "KILL_AT": kill_at or ""},
                              capture_output=True, text=True, timeout=300)

    killed = run(tmp_path / "resumed", "4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "resumed" / "hypothesizer.safetensors").exists()
    assert json.loads((tmp_path / "resumed" / "hypothesizer.ckpt.json").read_text())["step"] == 4
    for folder, kill in ((tmp_path / "resumed", None), (tmp_path / "straight", None)):
        r = run(folder, kill)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = (json.loads((tmp_path / f / "hypothesizer.json").read_text()) for f in ("resumed", "straight"))
    assert a["resumed_from"] == 4 and b["resumed_from"] is None
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-4, atol=1e-4)
    wa, wb = (textinv.load_tensors(tmp_path / f / "hypothesizer.safetensors") for f in ("resumed", "straight"))
    assert set(wa) == set(wb)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    assert not list((tmp_path / "resumed").glob("*.ckpt*"))  # checkpoints removed once done


# ---------------------------------------------------------------- train_inverter + shipped weights


@pytest.fixture
def toy_host():
    from bench.plugins import Host

    return Host(plugins_dir=TOY_DIR, load_installed=False)


def _train_toy(tiny, host, tmp_path, **kw):
    from bench_plugins.attacks.textinv_ship import train_inverter

    args = dict(embedder="toy-hash", dataset="toy", dataset_params={"attacker": 120, "leaked": 20, "target": 10},
                out=tmp_path / "out", work=tmp_path / "work", lm=str(tiny), finetune="full", prefix_len=2, max_length=8,
                n_dev=20, dev_eval=20, epochs=3, batch_size=16, lr=1e-2, log_every=5, eval_every=10, command="test", host=host)
    args.update(kw)
    return train_inverter(**args)


def test_train_inverter_exports_fp16_weights_and_a_manifest(tiny_lm, toy_host, tmp_path):
    from bench_plugins.attacks import textinv, textinv_ship

    m = _train_toy(tiny_lm, toy_host, tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train_text_ids.npy", "weights.safetensors"]
    assert json.loads((out / "manifest.json").read_text()) == m
    assert m["data"]["n_train"] == 100 and m["data"]["n_dev"] == 20 and len(m["data"]["train_texts_sha256"]) == 64
    assert m["training"]["steps"] == 19 and m["training"]["complete"] and m["training"]["epochs"] > 2.9 and len(m["training"]["loss_curve"]) == 19
    assert [d["step"] for d in m["training"]["dev_curve"]] == [0, 10, 19]
    assert m["training"]["dev_curve"][-1]["loss"] < m["training"]["dev_curve"][0]["loss"]
    assert m["params"]["prefix_len"] == 2 and m["command"] == "test" and m["lm"]["pretrained"] is False
    state, _ = textinv_ship.load_weights(out, m["weights_sha256"])
    assert all(v.dtype == torch.float16 for v in state.values())
    # dev texts are whole groups held out of the attacker split, never trained on
    splits = toy_host.make("datasets", "toy", {"attacker": 120, "leaked": 20, "target": 10}).load()
    tr, dv, _ = textinv_ship.training_texts(splits, 20, None)
    assert not set(tr) & set(dv) and textinv_ship.text_ids(tr).size == np.load(out / "train_text_ids.npy").size

    # the exported (fp16) weights give the outputs of the trained (fp32) checkpoint
    lm, tok, _ = textinv.load_lm(str(tiny_lm), "cpu")
    trained = textinv.build(lm, tok, 64, 2, False, "full", 16, 32, 0)
    textinv.load_trainable(trained, textinv.load_tensors(tmp_path / "work" / "hypothesizer.safetensors"))
    lm2, tok2, _ = textinv.load_lm(str(tiny_lm), "cpu")
    shipped = textinv.build(lm2, tok2, 64, 2, False, "full", 16, 32, 1)
    textinv.load_trainable(shipped, state)
    e = load_arrays(next((tmp_path / "work").glob("emb-dev-*.safetensors")))["embeddings"]
    assert textinv.generate_batched(shipped, e, 6, 32, "cpu") == textinv.generate_batched(trained, e, 6, 32, "cpu")
    ids = textinv.tokenize_targets(tok, dv, 8)
    assert abs(textinv.mean_loss(shipped, e, ids, 8, "cpu") - textinv.mean_loss(trained, e, ids, 8, "cpu")) < 1e-2


def test_wrong_hash_and_missing_files_are_refused(tiny_lm, toy_host, tmp_path):
    from bench_plugins.attacks import textinv_ship

    m = _train_toy(tiny_lm, toy_host, tmp_path, epochs=1)
    with pytest.raises(BenchError, match="sha256 .* expected"):
        textinv_ship.load_weights(tmp_path / "out", "0" * 64)
    (tmp_path / "out" / "manifest.json").unlink()
    with pytest.raises(BenchError, match="missing"):
        textinv_ship.load_weights(tmp_path / "out", m["weights_sha256"])


def test_an_unfinished_run_exports_its_last_checkpoint_and_says_so(tiny_lm, toy_host, tmp_path):
    part = _train_toy(tiny_lm, toy_host, tmp_path, stop_after=5)
    assert part["interrupted"] and not (tmp_path / "out").exists()
    m = _train_toy(tiny_lm, toy_host, tmp_path, from_checkpoint=True)
    assert m["training"]["steps"] == 5 and m["training"]["planned_steps"] == 19 and m["training"]["complete"] is False
    assert len(m["training"]["loss_curve"]) == 5 and m["training"]["dev_curve"][0]["step"] == 0
    with pytest.raises(BenchError, match="another run"):
        _train_toy(tiny_lm, toy_host, tmp_path, from_checkpoint=True, epochs=1, out=tmp_path / "out2")


def _ship_toy(tiny, host, tmp_path, monkeypatch, **kw):
    """Train a toy inverter and register it as shipped for the toy embedder."""
    from bench_plugins.attacks import textinv_ship

    m = _train_toy(tiny, host, tmp_path, out=tmp_path / "weights" / "toy-inverter", **kw)
    monkeypatch.setattr(textinv_ship, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(textinv_ship, "SHIPPED", {"toy-inverter": {"embedder": "toy-hash", "sha256": m["weights_sha256"]}})
    return m


@pytest.mark.slow
def test_geia_uses_shipped_weights_by_default_and_the_record_says_so(tiny_lm, toy_host, tmp_path, monkeypatch):
    from bench.runner import Runner, build_grid
    from bench_plugins.attacks import textinv_ship

    m = _ship_toy(tiny_lm, toy_host, tmp_path, monkeypatch)
    common = f"lm={tiny_lm},finetune=full,max_new_tokens=6,epochs=1,batch_size=16,max_length=8"
    cells = build_grid(toy_host, [f"geia:{common}", f"geia:{common},pretrained=none"], ["none"], ["toy-hash"],
                       ["toy:attacker=120,leaked=20,target=10"], [0])
    runner = Runner(toy_host, tmp_path / "res", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    shipped, trained = runner.run(cells)
    assert shipped.status == "ok" and trained.status == "ok", (shipped.error, trained.error)
    dec = next(x for x in shipped.models if x.role == "decoder LM")
    assert dec.weights == "shipped" and dec.weights_sha256 == m["weights_sha256"]
    assert dec.training["n_train"] == 100 and dec.training["steps"] == m["training"]["steps"]
    # the architecture the weights were built with, not geia's defaults (prefix_len 1), is what ran
    assert dec.training["architecture"] == m["params"] and m["params"]["prefix_len"] == 2 != shipped.attack.params["prefix_len"]
    # the shipped decoder embeds no attacker texts to train; pretrained=none embeds all 120
    assert trained.provenance.victim_queries - shipped.provenance.victim_queries == 120
    dec2 = next(x for x in trained.models if x.role == "decoder LM")
    assert dec2.weights is None and dec2.training is None
    assert list((tmp_path / "cache").rglob("hypothesizer.json"))  # pretrained=none trained in the cell

    # a damaged shipped file is refused (hash), not used
    monkeypatch.setattr(textinv_ship, "SHIPPED", {"toy-inverter": {"embedder": "toy-hash", "sha256": "f" * 64}})
    from bench_plugins.attacks.geia import GEIA

    ctx = _ctx(toy_host, tmp_path)
    with pytest.raises(BenchError, match="expected"):
        GEIA({"lm": str(tiny_lm), "finetune": "full"}).fit(ctx)


def _ctx(host, tmp_path, leaked=None, ledger=None):
    from bench.api import AttackContext
    from bench.cache import EmbeddingCache
    from bench.oracle import QueryLedger, victim_oracle
    from bench.settings import Settings
    from bench.victim import Victim

    emb = host.make("embedders", "toy-hash", {})
    victim = Victim(emb, EmbeddingCache(tmp_path / "c2"), "toy")
    data = host.make("datasets", "toy", {"attacker": 120, "leaked": 20, "target": 10}).load()
    lk = leaked or data.leaked
    oracle = victim_oracle(victim, ledger if ledger is not None else QueryLedger(), list(lk.texts))
    return AttackContext(oracle=oracle, attacker=data.attacker, leaked=lk, leaked_embeddings=victim.embed_split("leaked", lk.texts),
                         defense=None, seed=0, settings=Settings(cache_dir=tmp_path / "c2", device="cpu"),
                         artifact_root=tmp_path / "c2" / "artifacts", artifact_key={"victim": victim.fingerprint, "attack": {}})


def test_vec2text_uses_the_shipped_hypothesizer_as_step_0(tiny_lm, toy_host, tmp_path, monkeypatch):
    from bench_plugins.attacks.vec2text import Vec2Text

    m = _ship_toy(tiny_lm, toy_host, tmp_path, monkeypatch)
    ctx = _ctx(toy_host, tmp_path)
    v = Vec2Text({"lm": str(tiny_lm), "finetune": "full", "prefix_len": 2, "corrector_epochs": 1, "batch_size": 16,
                  "max_length": 8, "max_new_tokens": 6, "num_steps": 1, "report_steps": "0+1"})
    models = v.fit(ctx)
    hyp = next(x for x in models if x["role"] == "hypothesizer LM")
    assert hyp["weights"] == "shipped" and hyp["weights_sha256"] == m["weights_sha256"]
    assert not list((tmp_path / "c2").rglob("hypothesizer.json"))  # no hypothesizer trained in the cell
    assert len(list((tmp_path / "c2").rglob("corrector.json"))) == 1  # the corrector is, on the shipped one's outputs
    e = ctx.victim.query(["a cat runs", "the dog eats"], split="target")
    out = v.invert(e, ctx)
    from bench_plugins.attacks.textinv import generate_batched

    geia_like = [c[0] for c in generate_batched(v.hyp, e, 6, 32, "cpu")]
    assert [o.extras["step_outputs"][0] for o in out] == geia_like


def test_vec2text_uses_a_shipped_corrector_and_trains_nothing(tiny_lm, toy_host, tmp_path, monkeypatch):
    """A corrector trained outside a cell on the shipped hypothesizer's outputs is shipped beside it: a
    vec2text cell then trains nothing and embeds no attacker text, and the record names both weights."""
    from bench_plugins.attacks import textinv_ship
    from bench_plugins.attacks.vec2text import Vec2Text

    m = _ship_toy(tiny_lm, toy_host, tmp_path, monkeypatch)
    mc = _train_toy(tiny_lm, toy_host, tmp_path, out=tmp_path / "weights" / "toy-corrector", work=tmp_path / "work-c",
                    hypothesizer="toy-inverter", max_new_tokens=6)
    assert mc["role"] == "corrector" and mc["hypothesizer"]["name"] == "toy-inverter"
    assert mc["hypothesizer"]["weights_sha256"] == m["weights_sha256"] and len(mc["hypothesizer"]["train_hypotheses_sha256"]) == 64
    assert mc["training"]["dev_curve"][-1]["loss"] < mc["training"]["dev_curve"][0]["loss"]
    assert len(list((tmp_path / "work-c").glob("hyp-*.safetensors"))) == 2  # train and dev hypotheses, cached for a resume
    with pytest.raises(BenchError, match="not shipped for victim"):
        _train_toy(tiny_lm, toy_host, tmp_path, out=tmp_path / "x", hypothesizer="nope")
    monkeypatch.setitem(textinv_ship.SHIPPED, "toy-corrector",
                        {"embedder": "toy-hash", "hypothesizer": "toy-inverter", "sha256": mc["weights_sha256"]})
    assert textinv_ship.shipped("toy-hash")[0] == "toy-inverter"  # a corrector is never taken for a hypothesizer

    from bench.oracle import QueryLedger

    ledger = QueryLedger()
    ctx = _ctx(toy_host, tmp_path, ledger=ledger)
    v = Vec2Text({"lm": str(tiny_lm), "finetune": "full", "max_length": 8, "max_new_tokens": 6, "num_steps": 1, "report_steps": "0+1"})
    models = v.fit(ctx)
    corr = next(x for x in models if x["role"] == "corrector LM")
    assert corr["weights"] == "shipped" and corr["weights_sha256"] == mc["weights_sha256"]
    assert corr["training"]["n_train"] == 100
    assert not list((tmp_path / "c2").rglob("corrector.json")) and ledger.counts["fit"] == 0
    out = v.invert(ctx.victim.query(["a cat runs", "the dog eats"], split="target"), ctx)
    assert all(len(o.extras["step_outputs"]) == 2 for o in out)
    # an architecture the user sets that differs from the shipped corrector's: trained in the cell
    v2 = Vec2Text({"lm": str(tiny_lm), "finetune": "full", "max_length": 8, "max_new_tokens": 6, "num_steps": 1, "lora_r": 4})
    assert v2._shipped_corrector(ctx, "toy-inverter") is None


def test_shipped_is_refused_when_its_training_texts_leak_into_the_cell(tiny_lm, toy_host, tmp_path, monkeypatch):
    from bench.api import Split
    from bench_plugins.attacks.geia import GEIA

    _ship_toy(tiny_lm, toy_host, tmp_path, monkeypatch)
    data = toy_host.make("datasets", "toy", {"attacker": 120, "leaked": 20, "target": 10}).load()
    leak = Split(["x0", "x1"], list(data.attacker.texts[:2]))  # another split: training texts among the leaked ones
    ctx = _ctx(toy_host, tmp_path, leaked=leak)
    with pytest.raises(BenchError, match="pretrained=none"):
        GEIA({"lm": str(tiny_lm), "finetune": "full"}).fit(ctx)
    # another architecture than the shipped one: trained in the cell, no error
    assert GEIA({"lm": str(tiny_lm), "finetune": "full", "prefix_len": 3})._shipped(ctx) is None
    # every parameter given, as `bench reproduce` rebuilds a cell: the plugin's defaults are no request
    every = GEIA({"lm": str(tiny_lm), "finetune": "full"}).params.model_dump(mode="json")
    clean = Split(list(data.leaked.ids), list(data.leaked.texts))
    assert GEIA(every)._shipped(_ctx(toy_host, tmp_path, leaked=clean)) is not None


@pytest.mark.slow
def test_zsinvert_seeded_by_the_shipped_geia_decoder(tiny_lm, toy_host, tmp_path, monkeypatch):
    from bench.runner import Runner, build_grid

    pytest.importorskip("peft")
    m = _ship_toy(tiny_lm, toy_host, tmp_path, monkeypatch, finetune="lora", prefix_len=1, max_length=32)
    common = f"lm={tiny_lm},beam=2,top_k=4,max_tokens=5,rounds=2,edit_steps=4,prior=false,query_budget=40"
    cells = build_grid(toy_host, [f"zsinvert:{common},seed=geia", f"geia:lm={tiny_lm},max_new_tokens=32"], ["none"], ["toy-hash"],
                       ["toy:attacker=120,leaked=20,target=6"], [0])
    runner = Runner(toy_host, tmp_path / "res", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    hybrid, geia = runner.run(cells)
    assert hybrid.status == "ok" and geia.status == "ok", (hybrid.error, geia.error)
    seed = next(x for x in hybrid.models if x.role == "seed decoder LM")
    assert seed.weights == "shipped" and seed.weights_sha256 == m["weights_sha256"]
    # round 0 of the hybrid is GEIA's own output for the target, asked once; later rounds only improve the victim cosine
    assert hybrid.metrics["queries"].value <= 40
    assert hybrid.metrics["victim_cos@round1"].value >= hybrid.metrics["victim_cos@round0"].value - 1e-9
    rows = {f.name.split("__")[0]: [json.loads(x) for x in f.read_text().splitlines()] for f in (tmp_path / "res").rglob("*.samples.jsonl")}
    seeds = [r["extras"]["seed"] for r in rows["zsinvert"]]
    assert seeds == [r["reconstruction"] for r in rows["geia"]] and any(seeds)
    for r in rows["zsinvert"]:  # an empty guess falls back to guided decoding
        assert (r["extras"]["rounds"][0]["text"] == r["extras"]["seed"]) == bool(r["extras"]["seed"].strip())


def test_train_script_refuses_an_existing_out_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "weights.safetensors").write_text("x")
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "train_inverter.py"), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "never overwritten" in r.stderr


# ---------------------------------------------------------------- the real shipped weights


@pytest.mark.slow
def test_shipped_minilm_weights_are_pinned_and_load_into_smollm2():
    from bench_plugins.attacks import textinv, textinv_ship

    found = textinv_ship.shipped("minilm")
    if found is None:
        pytest.skip("no shipped minilm inverter in this checkout")
    name, entry = found
    from bench.cache import file_digest

    folder = textinv_ship.WEIGHTS_DIR / name
    assert file_digest(folder / "weights.safetensors") == entry["sha256"]
    m = textinv_ship.manifest(name)
    assert m["weights_sha256"] == entry["sha256"] and m["victim"]["embedder"] == "minilm" and m["lm"]["pretrained"] is True
    assert m["data"]["dataset"] == "wordnet" and m["training"]["steps"] > 0 and m["training"]["dev_curve"]
    assert (folder / "weights.safetensors").stat().st_size < 20 * 2**20
    pytest.importorskip("peft")
    try:
        lm, tok, ident = textinv.load_lm(m["lm"]["ref"], "cpu")
    except BenchError as e:
        pytest.skip(f"SmolLM2 not installed here: {e}")
    a = m["params"]
    model = textinv.build(lm, tok, m["victim"]["fingerprint"]["dim"], a["prefix_len"], False, a["finetune"], a["lora_r"], a["lora_alpha"], 0)
    got = textinv_ship.load_shipped(model, name)
    assert got == m and ident["sha256"] == m["lm"]["sha256"]
    work = Path(m["data"].get("work", "/nonexistent"))
    ckpt = work / ("hypothesizer.safetensors" if m["training"].get("complete", True) else "hypothesizer.ckpt.safetensors")
    if not ckpt.is_file():
        return  # not the training machine: the pin and the loading are what can be checked
    # the training machine: the shipped fp16 weights are the trained ones, rounded, and decode the same
    trained_state = textinv.load_tensors(ckpt)
    for k, v in textinv.trainable_state(model).items():
        torch.testing.assert_close(v, trained_state[k].half().float())
    lm2, tok2, _ = textinv.load_lm(m["lm"]["ref"], "cpu")
    trained = textinv.build(lm2, tok2, m["victim"]["fingerprint"]["dim"], a["prefix_len"], False, a["finetune"], a["lora_r"], a["lora_alpha"], 0)
    textinv.load_trainable(trained, trained_state)
    e = load_arrays(next(work.glob("emb-dev-*.safetensors")))["embeddings"][:4]
    assert textinv.generate_batched(model, e, 16, 4, "cpu") == textinv.generate_batched(trained, e, 16, 4, "cpu")


@pytest.mark.slow
def test_shipped_minilm_corrector_is_pinned_and_names_its_hypothesizer():
    from bench_plugins.attacks import textinv_ship

    hyp = textinv_ship.shipped("minilm")
    found = textinv_ship.shipped_corrector(hyp[0]) if hyp else None
    if found is None:
        pytest.skip("no shipped minilm corrector in this checkout")
    name, entry = found
    from bench.cache import file_digest

    folder = textinv_ship.WEIGHTS_DIR / name
    assert file_digest(folder / "weights.safetensors") == entry["sha256"] and entry["embedder"] == "minilm"
    m = textinv_ship.manifest(name)
    assert m["role"] == "corrector" and m["weights_sha256"] == entry["sha256"]
    assert m["hypothesizer"]["name"] == hyp[0] and m["hypothesizer"]["weights_sha256"] == hyp[1]["sha256"]
    assert m["training"]["complete"] and m["training"]["dev_curve"][-1]["loss"] < m["training"]["dev_curve"][0]["loss"]
    assert (folder / "weights.safetensors").stat().st_size < 20 * 2**20
    pytest.importorskip("peft")
    try:
        model = textinv_ship.shipped_model(name, "cpu")
    except BenchError as e:
        pytest.skip(f"SmolLM2 not installed here: {e}")
    assert model.corrector and len(model.proj) == 3
