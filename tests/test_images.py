"""Image victims: the coco dataset, the clip / open_clip embedders and SLImE's image path, end to end.

Everything here is built in tmp: tiny randomly initialised CLIP models (transformers; open_clip when
it imports) marked ``bench_random_init.json``, and a tiny COCO-format dataset of generated 32x32
PNG shapes with synthetic captions. Their numbers are not findings; the records say so.
"""

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_llama

from bench.cli import main
from bench.errors import BenchError
from bench.runner import Runner, build_grid

torch = pytest.importorskip("torch")
pytest.importorskip("PIL")
pytest.importorskip("spacy")

COLORS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle")
WORDS = COLORS + SHAPES + ("a", "an", "next", "to", "and", "the", "of", "left", "right", "with", "on")
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


# ---------------------------------------------------------------- tiny models and data


def tiny_clip(folder: Path, seed: int) -> Path:
    """A random transformers CLIP: 2-layer towers of width 32, 32x32 images in 8x8 patches, a
    word-level tokenizer over the caption words; safetensors, marked not pretrained."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<|startoftext|>", "<|endoftext|>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<unk>", model_max_length=16)
    torch.manual_seed(seed)
    towers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    cfg = CLIPConfig(
        text_config={**towers, "vocab_size": len(vocab), "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={**towers, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    folder.mkdir(parents=True, exist_ok=True)
    CLIPModel(cfg).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": MEAN, "image_std": STD, "do_convert_rgb": True, "resample": 3,
    }))
    (folder / "bench_random_init.json").write_text(json.dumps({"seed": seed}))
    return folder


def _draw(draw, shape: str, color: str, box: tuple[int, int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:
        x0, y0, x1, y1 = box
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=color)


def tiny_coco(root: Path, n: int = 60, seed: int = 0) -> Path:
    """COCO layout: root/annotations/captions_val2017.json and root/val2017/*.png (two captions each,
    the lower annotation id being "a <color> <shape> next to a <color> <shape>")."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for i in range(n):
        (c1, c2), s1, s2 = rng.sample(COLORS, 2), rng.choice(SHAPES), rng.choice(SHAPES)
        img = Image.new("RGB", (32, 32), "white")
        draw = ImageDraw.Draw(img)
        _draw(draw, s1, c1, (1, 9, 14, 22))
        _draw(draw, s2, c2, (17, 9, 30, 22))
        name = f"{i + 1:012d}.png"
        img.save(root / "val2017" / name)
        images.append({"id": 100 + i, "file_name": name, "height": 32, "width": 32})
        anns.append({"id": 9000 + i, "image_id": 100 + i, "caption": f"the {s1} on the left and the {s2} on the right"})
        anns.append({"id": 1000 + i, "image_id": 100 + i, "caption": f"A {c1} {s1} next to a {c2} {s2}."})
    rng.shuffle(anns)
    path = root / "annotations" / "captions_val2017.json"
    path.write_text(json.dumps({"info": {"description": "tiny synthetic COCO"}, "images": images, "annotations": anns}))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-models")
    extra = ["keywords", "write", "one", "short", "sentence", "using", "these", "you", "plain", "english", ",", ".", ":"] + list(WORDS)
    return {
        "victim": tiny_clip(root / "clip-victim", seed=0),
        "attacker": tiny_clip(root / "clip-attacker", seed=1),
        "lm": tiny_llama(root / "tiny-llama", 0, extra_words=tuple(dict.fromkeys(extra))),
    }


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return tiny_coco(tmp_path_factory.mktemp("coco"))


def _slime(models, **kw) -> str:
    params = {"encoder": models["lm"], "llm": models["lm"], "encoder_layers": 0, "epochs": 5, "ranker_epochs": 2,
              "proj_dim": 16, "max_new_tokens": 4, "pairs": 10, "k": 5, "candidates": 20, "image_encoder": models["attacker"]}
    params.update(kw)
    return "slime:" + ",".join(f"{k}={v}" for k, v in params.items())


def _cli(capsys, *args, stdout: list | None = None) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    if stdout is not None:
        stdout.append(captured.out)
    return e.value.code or 0, captured.err


def _run_slime(capsys, tmp_path, models, coco, victim: str, out: Path) -> list[dict]:
    """The same slime command on any image victim, clean + noised, through the CLI; its records."""
    code, err = _cli(
        capsys, "run", "-a", _slime(models), "-d", "none", "-d", "noise:scale=0.05", "-e", victim,
        "-D", f"coco:annotations={coco},attacker=40,leaked=10,target=10", "--out", out, "--cache-dir", tmp_path / "cache", "-q",
        stdout=(printed := []),
    )
    assert code == 0, err
    header = printed[0].splitlines()[2]  # the printed table shows slime's headline metrics only
    assert "nbr_f1@50" in header and "tag_f1" in header and "rouge_l" in header and "nbr_f1@5 " not in header
    code, err = _cli(capsys, "leaderboard", "build", out, "--name", "b", "--out", out.parent / f"{out.name}-boards", stdout=(built := []))
    assert code == 0 and built[0] == printed[0], err  # records alone give the same headline table
    return _records(out)


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


# ---------------------------------------------------------------- the coco dataset


def test_coco_splits_captions_and_info(coco):
    from bench_plugins.datasets import Coco

    data = Coco({"annotations": str(coco), "attacker": 1000, "leaked": 10, "target": 10}).load()
    assert [len(data.target), len(data.leaked), len(data.attacker)] == [10, 10, 40]  # attacker capped by what exists
    ids = [set(s.ids) for s in (data.target, data.leaked, data.attacker)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert all(Path(p).is_file() and Path(p).parent.name == "val2017" for p in data.attacker.images)  # found beside annotations/
    assert all(t.startswith("A ") and " next to a " in t for t in data.target.texts)  # the first caption by id
    assert all(len(m["captions"]) == 2 and m["captions"][0] == t for m, t in zip(data.target.meta, data.target.texts))
    assert data.retrieval is None
    assert data.info["annotations_sha256"] == hashlib.sha256(coco.read_bytes()).hexdigest()
    assert data.info["counts"] == {"target": 10, "leaked": 10, "attacker": 40} and data.info["n_captions"] == 120
    again = Coco({"annotations": str(coco), "attacker": 5, "leaked": 10, "target": 10}).load()
    assert again.target.ids == data.target.ids and again.attacker.ids == data.attacker.ids[:5]  # deterministic, target first
    other = Coco({"annotations": str(coco), "leaked": 10, "target": 10, "split_seed": 1}).load()
    assert other.target.ids != data.target.ids
    head = data.target.head(3)
    assert head.images == data.target.images[:3] and head.texts == data.target.texts[:3]


def test_coco_errors_are_one_line(tmp_path, coco):
    from bench_plugins.datasets import Coco

    def load(**kw):
        return Coco({"leaked": 5, "target": 5, **kw}).load()

    with pytest.raises(BenchError, match="does not exist: pass coco:annotations"):
        load(annotations=str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BenchError, match="is not valid JSON"):
        load(annotations=str(bad))
    bad.write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(BenchError, match=r"is not a COCO captions file \(KeyError"):
        load(annotations=str(bad))
    with pytest.raises(BenchError, match="image folder .* does not exist"):
        load(annotations=str(coco), images=str(tmp_path / "no-images"))
    with pytest.raises(BenchError, match="leave none for the attacker"):
        load(annotations=str(coco), target=50, leaked=10)
    # an image listed but missing on disk is named
    copy = tmp_path / "copy"
    ann = tiny_coco(copy, n=12)
    (copy / "val2017" / "000000000007.png").unlink()
    with pytest.raises(BenchError, match=r"image .*000000000007\.png of captions_val2017\.json is missing"):
        Coco({"annotations": str(ann), "leaked": 2, "target": 2}).load()


# ---------------------------------------------------------------- the dual encoder and embedders


def test_clip_dual_encoder_and_embedder(models, coco):
    from bench_plugins.clip import load_dual_encoder
    from bench_plugins.embedders import CLIPEmbedder

    paths = sorted(str(p) for p in (coco.parent.parent / "val2017").glob("*.png"))[:5]
    enc = load_dual_encoder(str(models["victim"]), "cpu", batch_size=2)
    img, txt = enc.encode_images(paths), enc.encode_texts(["a red circle", "a blue square", "a red circle"])
    assert img.shape == (5, 16) and txt.shape == (3, 16) and img.dtype == np.float32 and enc.dim == 16
    assert np.allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5) and np.allclose(txt[0], txt[2], atol=1e-5)
    assert np.allclose(enc.encode_images(paths[:1]), img[:1], atol=1e-5)  # batching does not change vectors
    assert enc.identity["pretrained"] is False and len(enc.identity["sha256"]) == 64

    emb = CLIPEmbedder({"model": str(models["victim"])})
    assert emb.modality == "image" and emb.pretrained is False  # known from the marker before loading
    emb.load("cpu")
    fp = emb.fingerprint()
    assert fp["weights_sha256"] == enc.identity["sha256"] and fp["dim"] == 16
    assert fp["preprocess"]["mean"] == pytest.approx(MEAN) and fp["preprocess"]["size"] == {"height": 32, "width": 32}
    assert np.allclose(emb.embed(paths), img, atol=1e-5) and emb.embed_text(["a red circle"]).shape == (1, 16)
    other = CLIPEmbedder({"model": str(models["attacker"])})
    assert other.fingerprint()["weights_sha256"] != fp["weights_sha256"]
    with pytest.raises(BenchError, match="cannot read image"):
        enc.encode_images([str(coco)])
    with pytest.raises(BenchError, match="cannot load CLIP model"):
        load_dual_encoder(str(models["lm"]), "cpu")  # a folder that is not a CLIP model


# ---------------------------------------------------------------- SLImE on image victims, through the CLI


def test_slime_on_a_clip_victim_end_to_end(capsys, tmp_path, models, coco):
    out = tmp_path / "out"
    recs = _run_slime(capsys, tmp_path, models, coco, f"clip:model={models['victim']}", out)
    assert len(recs) == 2 and [r["status"] for r in recs] == ["ok", "ok"], [r.get("error") for r in recs]
    for rec in recs:
        assert rec["all_pretrained"] is False
        for m in ("nbr_f1@5", "nbr_f1@50", "nbr_f1_ref@10", "tag_f1", "tag_f1_ref", "rouge_l", "bleu", "cosine"):
            assert m in rec["metrics"], m
            assert rec["metrics"][m]["n"] <= 10
        assert rec["metrics"]["rouge_l"]["n"] == 10 and -1 <= rec["metrics"]["cosine"]["value"] <= 1
        assert rec["utility"] == {}  # image datasets have no retrieval task
        roles = {m["role"]: m for m in rec["models"]}
        assert roles["victim"]["pretrained"] is False
        assert str(models["attacker"]) in roles["attack-encoder"]["name"] and "dual encoder" in roles["attack-encoder"]["name"]
        assert roles["attack-encoder"]["pretrained"] is False
        assert rec["threat_model"]["query_access"] == "none" and rec["provenance"]["victim_queries"] == 0
        assert rec["dataset_info"]["annotations_sha256"] == hashlib.sha256(coco.read_bytes()).hexdigest()
        assert rec["victim_fingerprint"]["embedder"] == "clip"
    (samples,) = [p for p in out.glob("*.samples.jsonl") if "noise" in p.name]
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert len(rows) == 10 and all(isinstance(r["reconstruction"], str) and r["reconstruction"] for r in rows)


def test_image_victim_mistakes(capsys, tmp_path, models, coco, toy_host):
    data = f"coco:annotations={coco},attacker=40,leaked=10,target=10"
    victim = f"clip:model={models['victim']}"
    # a text-only attack on an image victim: one line, exit 2, nothing written
    code, err = _cli(capsys, "run", "-a", "bow", "-d", "none", "-e", victim, "-D", data, "--out", tmp_path / "o1", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "attack 'bow' works on text victims only; embedder 'clip' embeds images" in err
    assert not (tmp_path / "o1").exists()
    # the victim as the attacker's image encoder, and no image encoder at all: error records
    out = tmp_path / "o2"
    code, err = _cli(capsys, "run", "-a", _slime(models, image_encoder=models["victim"]), "-a", _slime(models, image_encoder=""),
                     "-d", "none", "-e", victim, "-D", data, "--out", out, "-q")
    assert code == 1
    errors = sorted(r["error"] for r in _records(out))
    assert "slime's image_encoder" in errors[1] and "is the victim model" in errors[1]
    assert "slime on an image victim ('clip') needs image_encoder=" in errors[0]
    # an image embedder on a text dataset
    cells = build_grid(toy_host, [_slime(models)], ["none"], [victim], ["toy"], [0])
    with pytest.raises(BenchError, match="embedder 'clip' embeds images but dataset 'toy' has none"):
        Runner(toy_host, tmp_path / "o3", "cpu", tmp_path / "cache", progress=False).prepare(cells)


# ---------------------------------------------------------------- open_clip (needs a working torchvision)


OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def tiny_open_clip(folder: Path, seed: int, marker: bool = True) -> Path:
    """A random open_clip model as a local checkpoint directory (open_clip_config.json +
    open_clip_model.safetensors, the layout open_clip's push_to_hf_hub writes)."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": {"size": 32, "mean": MEAN, "std": STD}}
    ))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    if marker:
        (folder / "bench_random_init.json").write_text(json.dumps({"seed": seed}))
    return folder


def test_open_clip_local_checkpoint_directory_end_to_end(capsys, tmp_path, models, coco):
    pytest.importorskip("open_clip")  # needs a torchvision matching torch (CI's CPU torch has none)
    from bench_plugins.clip import load_dual_encoder

    folder = tiny_open_clip(tmp_path / "oc-victim", seed=3)
    enc = load_dual_encoder(f"local-dir:{folder}", "cpu")
    paths = sorted(str(p) for p in (coco.parent.parent / "val2017").glob("*.png"))[:3]
    assert enc.encode_images(paths).shape == (3, 16) and enc.encode_texts(["a red circle"]).shape == (1, 16)
    assert enc.identity["pretrained"] is False and enc.identity["backend"] == "open_clip"
    assert load_dual_encoder(str(folder), "cpu").identity["sha256"] == enc.identity["sha256"]  # a bare folder works too
    # an architecture with a local safetensors checkpoint; pickles are refused
    import open_clip

    cfg_dir = tmp_path / "cfgs"
    cfg_dir.mkdir()
    (cfg_dir / "bench-tiny-clip.json").write_text(json.dumps(OPEN_CLIP_CFG))
    open_clip.add_model_config(cfg_dir)
    arch = load_dual_encoder(f"open_clip:bench-tiny-clip@{folder / 'open_clip_model.safetensors'}", "cpu")
    assert arch.identity["sha256"] == enc.identity["sha256"] and arch.identity["pretrained"] is False
    assert np.allclose(arch.encode_texts(["a red circle"]), enc.encode_texts(["a red circle"]), atol=1e-5)
    rand = [load_dual_encoder("open_clip:bench-tiny-clip", "cpu").identity for _ in range(2)]
    assert rand[0]["pretrained"] is False and rand[0]["sha256"] == rand[1]["sha256"]  # random init, the same every load
    with pytest.raises(BenchError, match="is not a folder"):
        load_dual_encoder(f"local-dir:{tmp_path / 'missing'}", "cpu")
    pickle = tmp_path / "pickled"
    pickle.mkdir()
    (pickle / "open_clip_config.json").write_text((folder / "open_clip_config.json").read_text())
    (pickle / "open_clip_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(BenchError, match="only pickle weights"):
        load_dual_encoder(f"local-dir:{pickle}", "cpu")
    with pytest.raises(BenchError, match="not safetensors"):
        load_dual_encoder(f"open_clip:bench-tiny-clip@{pickle / 'open_clip_pytorch_model.bin'}", "cpu")

    # the same slime command, unchanged but for the victim: a local open_clip checkpoint directory
    out = tmp_path / "out"
    recs = _run_slime(capsys, tmp_path, models, coco, f"open_clip:model=local-dir:{folder}", out)
    assert [r["status"] for r in recs] == ["ok", "ok"], [r.get("error") for r in recs]
    for rec in recs:
        assert rec["all_pretrained"] is False and rec["victim_fingerprint"]["embedder"] == "open_clip"
        assert {"nbr_f1@10", "tag_f1", "rouge_l", "cosine"} <= set(rec["metrics"])
