"""Adaptive SLImE (slime-adaptive): answer parsing, the generator, the VLM backends, and the whole
attack through the CLI on a text victim (toy) and an image victim (tiny CLIP on tiny COCO).

Every model is tiny, random and built here in tmp (marked ``bench_random_init.json``): an unCLIP
image-variation pipeline (the component layout of diffusers' own unCLIP tests, smaller), a Llava VLM
(CLIP vision tower + 2-layer Llama), the writer LM of tests/tiny_models.py and the CLIPs of
tests/test_images.py. Records say ``all_pretrained: false``; no number from them is a finding.
"""

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from stub_server import chat_server
from test_images import WORDS, tiny_clip, tiny_coco
from tiny_models import TOY_WORDS, tiny_llama

from bench.cli import main
from bench.errors import BenchError

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("spacy")

TOY_DIR = Path(__file__).parent / "toy_plugins"
MARKER = "bench_random_init.json"


# ---------------------------------------------------------------- tiny models


def tiny_unclip(folder: Path, dim: int = 16, seed: int = 0) -> Path:
    """A random UnCLIPImageVariationPipeline taking `dim`-dim image embeddings: 8x8 decoder, 16x16
    super-resolution, saved as safetensors; text_proj declared ["unclip", ...] as in karlo's repos."""
    from diffusers import (
        UnCLIPImageVariationPipeline,
        UnCLIPScheduler,
        UNet2DConditionModel,
        UNet2DModel,
    )
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    letters = [chr(c) for c in range(97, 123)]
    vocab = {t: i for i, t in enumerate(["<|startoftext|>", "<|endoftext|>", *letters, *(x + "</w>" for x in letters)])}
    torch.manual_seed(seed)
    towers = {"hidden_size": dim, "projection_dim": dim, "intermediate_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}
    text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**towers, bos_token_id=0, eos_token_id=1, pad_token_id=1,
                                                              vocab_size=len(vocab), max_position_embeddings=8))
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**towers, image_size=32, patch_size=8))
    t = 16  # time input dim = first block width
    decoder = UNet2DConditionModel(
        sample_size=8, in_channels=3, out_channels=6, layers_per_block=1, block_out_channels=(t, 2 * t), norm_num_groups=8,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"), up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=16, attention_head_dim=4,
        resnet_time_scale_shift="scale_shift", class_embed_type="identity",
    )
    super_res = {"sample_size": 16, "layers_per_block": 1, "block_out_channels": (t, 2 * t), "in_channels": 6, "out_channels": 3, "norm_num_groups": 8,
                 "down_block_types": ("ResnetDownsampleBlock2D",) * 2, "up_block_types": ("ResnetUpsampleBlock2D",) * 2}
    pipe = UnCLIPImageVariationPipeline(
        decoder=decoder, text_encoder=text_encoder, tokenizer=CLIPTokenizer(vocab=vocab, merges=[], model_max_length=8),
        text_proj=UnCLIPTextProjModel(clip_embeddings_dim=dim, time_embed_dim=4 * t, cross_attention_dim=16),
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), image_encoder=image_encoder,
        super_res_first=UNet2DModel(**super_res), super_res_last=UNet2DModel(**super_res),
        decoder_scheduler=UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon", num_train_timesteps=1000),
        super_res_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon", num_train_timesteps=1000),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "text_proj": ["unclip", "UnCLIPTextProjModel"]}))
    (folder / MARKER).write_text(json.dumps({"seed": seed}))
    return folder


def tiny_vlm(folder: Path, seed: int = 0) -> Path:
    """A random Llava: 2-layer CLIP vision tower (32x32 images, 8x8 patches) + 2-layer Llama over a
    word-level tokenizer, LlavaProcessor with a chat template; AutoModelForImageTextToText loads it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = [*TOY_WORDS, *WORDS, "objects", "relations", "scene", ":", ";", ","]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(["<unk>", "<pad>", "<s>", "</s>", "<image>", *words]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   extra_special_tokens={"image_token": "<image>"})
    template = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}"
                "{% endif %}{% endfor %}\n{% endfor %}")
    torch.manual_seed(seed)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=2, max_position_embeddings=256, pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=vocab["<image>"], image_seq_length=16, vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(cfg).save_pretrained(folder, safe_serialization=True)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=processor, tokenizer=fast, patch_size=8, vision_feature_select_strategy="default",
                   chat_template=template, num_additional_image_tokens=1).save_pretrained(folder)
    (folder / MARKER).write_text(json.dumps({"seed": seed}))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive-models")
    extra = ["keywords", "write", "one", "short", "sentence", "describing", "image", "using", "these", "objects", "relations",
             "scene", "you", "plain", "english", ",", ".", ":", *WORDS]
    return {
        "victim": tiny_clip(root / "clip-victim", seed=0),
        "attacker": tiny_clip(root / "clip-attacker", seed=1),
        "lm": tiny_llama(root / "tiny-llama", 0, extra_words=tuple(dict.fromkeys(extra))),
        "generator": tiny_unclip(root / "unclip", dim=16),
        "vlm": tiny_vlm(root / "llava"),
    }


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """tests/test_images.py's tiny COCO, its first captions given a relation and a scene
    ("A red circle touches a blue square on the table."), so every per-kind F1 has ground truth."""
    path = tiny_coco(tmp_path_factory.mktemp("coco"), n=40)
    data = json.loads(path.read_text())
    for a in data["annotations"]:
        a["caption"] = a["caption"].replace(" next to ", " touches ").replace(".", " on the table.")
    path.write_text(json.dumps(data))
    return path


def _attack(models, **kw) -> str:
    params = {"encoder": models["lm"], "llm": models["lm"], "encoder_layers": 0, "max_train": 200, "epochs": 3, "ranker_epochs": 1,
              "proj_dim": 16, "max_new_tokens": 4, "pairs": 10, "k": 5, "candidates": 20, "image_encoder": models["attacker"],
              "generator": models["generator"], "gen_steps": 2, "vlm": models["vlm"], "vlm_max_new_tokens": 12}
    params.update(kw)
    return "slime-adaptive:" + ",".join(f"{k}={v}" for k, v in params.items())


def _cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    return e.value.code or 0, capsys.readouterr().err


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


TOY_DATA = "toy:attacker=200,leaked=20,target=4"
VLM_METRICS = ("vlm_object_f1", "vlm_relation_f1", "vlm_scene_f1")


def _check_records(recs: list[dict], n: int, image: bool) -> None:
    assert [r["status"] for r in recs] == ["ok"] * len(recs), [r.get("error") for r in recs]
    for rec in recs:
        assert rec["all_pretrained"] is False
        roles = {m["role"]: m for m in rec["models"]}
        assert {"victim", "attack-encoder", "tagger", "tag-ranker", "caption-llm", "image-generator", "vlm"} <= set(roles)
        assert "UnCLIPImageVariationPipeline, 2 steps" in roles["image-generator"]["name"] and roles["image-generator"]["pretrained"] is False
        assert roles["vlm"]["pretrained"] is False and ("generator-encoder" in roles) is not image
        assert rec["threat_model"]["query_access"] == "none" and rec["provenance"]["victim_queries"] == 0
        metrics = rec["metrics"]
        for m in ("vlm_object_f1", "object_f1", "rouge_l", "vlm_objects", "vlm_relations", "vlm_scene", *(VLM_METRICS if image else ())):
            assert m in metrics, m
        for kind in ("object", "relation", "scene"):  # both absent only when no target has a tag of that kind
            assert (f"vlm_{kind}_f1" in metrics) == (f"{kind}_f1" in metrics)
            if f"vlm_{kind}_f1" in metrics:
                assert 0 <= metrics[f"vlm_{kind}_f1"]["value"] <= 1 and 0 < metrics[f"vlm_{kind}_f1"]["n"] <= n
        assert rec["metrics"]["rouge_l"]["n"] == n


# ---------------------------------------------------------------- units


def test_parse_vlm_answer_is_lenient():
    from bench_plugins.attacks.slime_adaptive import parse_vlm_answer, vlm_tag_texts

    exact = parse_vlm_answer("objects: dog, red ball; relations: dog chasing ball; scene: a park")
    assert exact == {"objects": ["dog", "red ball"], "relations": ["dog chasing ball"], "scene": ["a park"]}
    messy = parse_vlm_answer("**Objects:** A dog and a frisbee.\n**Relationships**: - dog catches frisbee\n- man throws it\nSetting = On the beach.")
    assert messy == {"objects": ["a dog", "a frisbee"], "relations": ["dog catches frisbee", "man throws it"], "scene": ["on the beach"]}
    assert parse_vlm_answer("scene: kitchen; objects: none") == {"objects": [], "relations": [], "scene": ["kitchen"]}
    assert parse_vlm_answer("a cat on a sofa") == {"objects": ["a cat on a sofa"], "relations": [], "scene": []}  # no label: objects
    assert parse_vlm_answer("") == {"objects": [], "relations": [], "scene": []}
    assert vlm_tag_texts(exact) == ["There is dog.", "There is red ball.", "dog chasing ball", "Seen in a park."]
    assert vlm_tag_texts(messy)[-1] == "Seen on the beach."


def test_params_need_the_adaptive_models():
    from pydantic import ValidationError

    from bench_plugins.attacks.slime import Slime
    from bench_plugins.attacks.slime_adaptive import SlimeAdaptive

    ok = {"image_encoder": "clip", "generator": "gen", "vlm": "vlm"}
    SlimeAdaptive(ok)
    for drop, msg in (("image_encoder", "needs image_encoder="), ("generator", "needs generator="), ("vlm", "needs vlm=")):
        with pytest.raises(ValidationError, match=msg):
            SlimeAdaptive({k: v for k, v in ok.items() if k != drop})
    with pytest.raises(ValidationError, match="needs vlm_model="):
        SlimeAdaptive({**ok, "vlm_backend": "openai"})
    with pytest.raises(ValidationError, match="is the attack slime-adaptive"):
        Slime({"adaptive": True})


def test_generator_images_are_seeded_and_cached(models, monkeypatch):
    from bench_plugins import diffusion

    gen = diffusion.ImageGenerator(str(models["generator"]))
    assert gen.dim == 16 and gen.identity["pretrained"] is False and gen.identity["class"] == "UnCLIPImageVariationPipeline"
    emb = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    settings = {"steps": 2, "size": 0, "seed": 0}
    paths = diffusion.cached_images(gen, emb, settings, batch_size=2)
    assert len({p.name for p in paths}) == 3 and all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    from PIL import Image

    assert Image.open(paths[0]).size == (16, 16)  # the super-resolution stage's size
    seed = diffusion.seed_for(0, "slime-adaptive", hashlib.sha256(emb[1].tobytes()).hexdigest())
    assert np.array_equal(np.asarray(gen.generate(emb[1:2], [seed], 2, 0)[0]), np.asarray(Image.open(paths[1])))  # batching changes nothing
    with pytest.raises(BenchError, match="has a fixed image size: leave gen_size unset"):
        gen.generate(emb[:1], [0], 2, 64)
    monkeypatch.setattr(diffusion.ImageGenerator, "generate", lambda *a, **k: pytest.fail("regenerated a cached image"))
    assert diffusion.cached_images(gen, emb, settings, batch_size=3) == paths


@pytest.mark.slow
def test_openai_vlm_backend_and_the_vlm_metrics(capsys, tmp_path, models, coco):
    """An OpenAI-compatible VLM (a local stub) that names the first target's objects, relation and
    scene exactly: that target's VLM F1s are 1; the endpoint got the generated PNG as a data URL."""
    from bench_plugins.datasets import Coco

    data = f"coco:annotations={coco},attacker=24,leaked=10,target=6"
    texts = Coco({"annotations": str(coco), "attacker": 24, "leaked": 10, "target": 6}).load().target.texts
    first = next(i for i, t in enumerate(texts) if t.split()[2] != t.split()[6])  # "A red circle touches a blue square on the table."
    w = texts[first].split()
    answer = f"Objects: a {w[1]} {w[2]}, a {w[5]} {w[6]}, a table; Relations: a {w[2]} touches a {w[6]}; Scene: on the table"
    with chat_server(lambda body: answer) as (url, seen):
        attack = _attack(models, vlm_backend="openai", vlm_model="tiny-vlm", vlm_base_url=url, vlm="")
        out = tmp_path / "out"
        code, err = _cli(capsys, "run", "-a", attack, "-d", "none", "-e", f"clip:model={models['victim']}", "-D", data,
                         "--out", out, "--cache-dir", tmp_path / "cache", "-q")
        assert code == 0, err
    (rec,) = _records(out)
    assert rec["status"] == "ok", rec.get("error")
    assert {m["role"]: m["name"] for m in rec["models"]}["vlm"] == f"tiny-vlm @ {url}" and rec["all_pretrained"] is False
    from bench_plugins.llm import CHAT_PROBE

    assert seen[0][1]["messages"] == CHAT_PROBE  # the VLM's identity probe (for its reply cache), then the 6 images
    seen = seen[1:]
    assert len(seen) == 6 and all(p == "/v1/chat/completions" and b["model"] == "tiny-vlm" and b["temperature"] == 0 for p, b, _ in seen)
    image, question = seen[0][1]["messages"][0]["content"]
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(image["image_url"]["url"].split(",", 1)[1]).startswith(b"\x89PNG") and "objects:" in question["text"]
    metrics = rec["metrics"]
    assert metrics["vlm_objects"]["value"] == 3 and metrics["vlm_relations"]["value"] == 1 and metrics["vlm_scene"]["value"] == 1
    (samples,) = out.glob("*.samples.jsonl")
    scores = [json.loads(x)["scores"] for x in samples.read_text().splitlines()]
    assert [scores[first][f"vlm_{k}_f1"] for k in ("object", "relation", "scene")] == [1.0, 1.0, 1.0]
    assert all(metrics[m]["n"] == 6 for m in VLM_METRICS)
    assert not (tmp_path / "cache" / "adaptive" / "outputs").exists()  # per-target outputs go to the samples file
    rows = [json.loads(x)["extras"] for x in samples.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["scene"] == ["on the table"] and rows[0]["vlm_reply"] == answer and Path(rows[0]["image"]).is_file()


# ---------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_text_victim_end_to_end_and_cached(capsys, tmp_path, models, monkeypatch):
    from bench_plugins.diffusion import ImageGenerator
    from bench_plugins.vlm import LocalVLM

    args = ["--plugins-dir", TOY_DIR, "run", "-a", _attack(models), "-d", "none", "-d", "noise:scale=0.3", "-e", "toy-hash", "-D", TOY_DATA,
            "--cache-dir", tmp_path / "cache", "-q", "--no-floor"]
    code, err = _cli(capsys, *args, "--out", tmp_path / "out")
    assert code == 0, err
    recs = _records(tmp_path / "out")
    assert len(recs) == 2
    _check_records(recs, 4, image=False)
    roles = {m["role"]: m for m in recs[0]["models"]}
    assert "text tower" in roles["generator-encoder"]["name"] and str(models["attacker"]) in roles["generator-encoder"]["name"]
    pngs = sorted((tmp_path / "cache" / "adaptive" / "images").glob("*.png"))
    assert len(pngs) == 8  # 4 targets x 2 defenses
    # again into a fresh output folder: images and VLM replies come from the cache, nothing is loaded
    monkeypatch.setattr(ImageGenerator, "load", lambda self: pytest.fail("generator loaded"))
    monkeypatch.setattr(LocalVLM, "__init__", lambda *a, **k: pytest.fail("VLM loaded"))
    code, err = _cli(capsys, *args, "--out", tmp_path / "out2")
    assert code == 0, err
    again = _records(tmp_path / "out2")
    assert [r["status"] for r in again] == ["ok", "ok"], [r.get("error") for r in again]
    assert [r["metrics"] for r in again] == [r["metrics"] for r in recs]
    assert sorted((tmp_path / "cache" / "adaptive" / "images").glob("*.png")) == pngs


@pytest.mark.slow
def test_image_victim_end_to_end(capsys, tmp_path, models, coco):
    out = tmp_path / "out"
    code, err = _cli(
        capsys, "run", "-a", _attack(models), "-d", "none", "-d", "noise:scale=0.05", "-e", f"clip:model={models['victim']}",
        "-D", f"coco:annotations={coco},attacker=24,leaked=10,target=4", "--out", out, "--cache-dir", tmp_path / "cache", "-q",
    )
    assert code == 0, err
    recs = _records(out)
    assert len(recs) == 2
    _check_records(recs, 4, image=True)
    (samples,) = [p for p in out.glob("*.samples.jsonl") if "noise" in p.name]
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(rows) == 4 and all(isinstance(r["reconstruction"], str) and r["reconstruction"] for r in rows)
    assert {"vlm_object_f1", "vlm_objects"} <= set().union(*(r["scores"] for r in rows))


def test_mistakes_are_one_line(capsys, tmp_path, models):
    wrong = tiny_unclip(tmp_path / "unclip-24", dim=24)
    out = tmp_path / "out"
    code, _ = _cli(capsys, "--plugins-dir", TOY_DIR, "run", "-a", _attack(models, generator=wrong), "-a", _attack(models, generator=tmp_path / "nope"),
                   "-d", "none", "-e", "toy-hash", "-D", TOY_DATA, "--out", out, "--cache-dir", tmp_path / "cache", "-q", "--no-floor")
    assert code == 1
    errors = sorted(r["error"] for r in _records(out))
    assert "takes 24-dim image embeddings but image_encoder" in errors[1] and "gives 16-dim ones" in errors[1]
    assert "is not a folder: pass the folder of a diffusers pipeline" in errors[0]
    assert all("\n" not in e for e in errors)
