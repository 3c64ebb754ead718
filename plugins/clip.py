"""One loader for CLIP-style dual encoders (an image tower and a text tower in one space).

Used by the image victims (``clip``, ``open_clip`` embedders) and by attacks that need an image
encoder of their own (``slime:image_encoder=...``). A reference is one of:

* a transformers ``CLIPModel`` folder or hub id (``CLIPModel`` + image processor + tokenizer;
  safetensors only, ``trust_remote_code`` False);
* ``open_clip:ARCH`` (a built-in open_clip architecture, e.g. ``open_clip:ViT-B-32``) with a
  ``pretrained`` tag (its ``open_clip_model.safetensors`` from the hub cache) or a local
  ``.safetensors`` checkpoint, either as the ``pretrained`` argument or after ``@``
  (``open_clip:ViT-B-32@/ckpt/model.safetensors``); none: random initialisation;
* ``local-dir:/path`` or a folder holding ``open_clip_config.json`` + ``open_clip_model.safetensors``
  (what open_clip's ``push_to_hf_hub`` writes), or ``hf-hub:org/repo`` (from the local hub cache).

open_clip (PyPI ``open_clip_torch``, with a torchvision matching torch) is imported only when an
open_clip reference is loaded. A folder (or a checkpoint's folder) holding ``bench_random_init.json``
is an untrained model: ``pretrained`` False. Outputs are L2-normalised float32.

The image victims ``clip`` and ``open_clip`` (:class:`CLIPEmbedder`, :class:`OpenCLIPEmbedder`) are
these towers too: registered by ``bench_plugins.embedders`` with the other victims.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bench.api import Embedder, Params
from bench.errors import BenchError, one_line
from bench.models import describe, is_random_init, local_dir, torch_device
from bench.vectors import unit

OPEN_CLIP = "open_clip:"
OPEN_CLIP_CONFIG = "open_clip_config.json"


def load_images(paths: list[str]):
    """PIL images (RGB) of ``paths``; a missing or unreadable file is a one-line BenchError."""
    from PIL import Image

    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(im.convert("RGB"))
        except (OSError, ValueError) as e:
            raise BenchError(f"cannot read image {p}: {one_line(e)}") from None
    return out


def is_open_clip_ref(ref: str) -> bool:
    if ref.startswith((OPEN_CLIP, "local-dir:", "hf-hub:")):
        return True
    p = Path(ref).expanduser()
    return p.is_dir() and (p / OPEN_CLIP_CONFIG).is_file()


class DualEncoder:
    """``encode_images(paths)`` and ``encode_texts(texts)``: L2-normalised float32 [n, dim]."""

    def __init__(self, model, encode_image, encode_text, dim: int, identity: dict[str, Any], preprocess: dict[str, Any],
                 device: str, batch_size: int):
        self.model, self._image, self._text = model, encode_image, encode_text
        self.dim, self.identity, self.preprocess = dim, identity, preprocess
        self.device, self.batch_size = device, batch_size

    def _run(self, fn, items: list) -> np.ndarray:
        import torch

        if not items:
            return np.zeros((0, self.dim), np.float32)
        parts = []
        with torch.inference_mode():
            for s in range(0, len(items), self.batch_size):
                parts.append(fn(items[s : s + self.batch_size]).float().cpu().numpy())
        return np.ascontiguousarray(unit(np.concatenate(parts), np.float32))

    def encode_images(self, paths: list[str]) -> np.ndarray:
        return self._run(lambda batch: self._image(load_images(batch)), list(paths))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self._run(self._text, [str(t) for t in texts])

    def raw_features(self, kind: str, items: list[str]):
        """The image (``kind`` "image": paths) or text tower's features before L2 normalisation, as a
        float torch tensor: their norm is the scale an image generator expects."""
        import torch

        with torch.inference_mode():
            if kind == "image":
                return self._image(load_images(list(items))).float()
            return self._text([str(t) for t in items]).float()


def load_dual_encoder(ref: str, device: str = "cpu", pretrained: str | None = None, batch_size: int = 64) -> DualEncoder:
    """The dual encoder named by ``ref`` (see the module docstring), in eval mode on ``device``."""
    from bench.models import torch_device

    dev = str(torch_device(device))
    if is_open_clip_ref(ref):
        return _load_open_clip(ref, dev, pretrained, batch_size)
    if pretrained:
        raise BenchError(f"pretrained={pretrained!r} is for open_clip models; {ref!r} is a transformers CLIP folder or hub id")
    return _load_transformers(ref, dev, batch_size)


def _output(out):
    """transformers 4 returns the projected features, 5 a model output holding them as pooler_output."""
    return out if hasattr(out, "dim") else out.pooler_output


def _load_transformers(ref: str, device: str, batch_size: int) -> DualEncoder:
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    from bench.models import is_random_init, locate, quiet_loading, weights_digest

    model_dir = locate(ref)
    source = str(model_dir) if model_dir is not None else ref
    try:
        with quiet_loading():
            model = CLIPModel.from_pretrained(source, use_safetensors=True, trust_remote_code=False, dtype=torch.float32)
            processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - any load failure becomes a one-line BenchError
        where = f" from {model_dir}" if model_dir is not None else ""
        raise BenchError(f"cannot load CLIP model {ref!r}{where} (a transformers CLIPModel with safetensors weights): {describe(e)}") from None
    model.eval().to(device)
    max_len = int(model.config.text_config.max_position_embeddings)

    def image(imgs):
        px = processor(images=imgs, return_tensors="pt")["pixel_values"].to(device)
        return _output(model.get_image_features(pixel_values=px))

    def text(texts):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt").to(device)
        return _output(model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]))

    size = getattr(processor, "crop_size", None) or getattr(processor, "size", None)
    preprocess = {"size": dict(size) if size else None, "mean": list(getattr(processor, "image_mean", []) or []),
                  "std": list(getattr(processor, "image_std", []) or []), "max_length": max_len}
    identity = {"name": ref, "sha256": weights_digest(model_dir, model), "pretrained": not is_random_init(model_dir),
                "path": str(model_dir) if model_dir else None, "backend": "transformers"}
    return DualEncoder(model, image, text, int(model.config.projection_dim), identity, preprocess, device, batch_size)


def _import_open_clip():
    try:
        import open_clip
    except Exception as e:  # noqa: BLE001 - missing, or a torchvision that does not match torch
        raise BenchError(
            f"open_clip models need open_clip_torch and a torchvision matching torch ({describe(e)}): "
            f'pip install ".[image]" (e.g. torch 2.14.1 with torchvision 0.29.1)'
        ) from None
    return open_clip


def _safetensors_in(folder: Path, ref: str) -> Path:
    """The open_clip weights of a folder: open_clip_model.safetensors, else its one other safetensors."""
    if (folder / "open_clip_model.safetensors").is_file():
        return folder / "open_clip_model.safetensors"
    safe = sorted(folder.glob("*.safetensors"))
    if len(safe) == 1:
        return safe[0]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
    if pickles and not safe:
        raise BenchError(f"open_clip model {ref!r} has only pickle weights ({', '.join(pickles)}), which are never loaded: convert them to safetensors")
    raise BenchError(f"open_clip model {ref!r}: expected open_clip_model.safetensors in {folder}, found {[p.name for p in safe] or 'none'}")


def _load_open_clip(ref: str, device: str, pretrained: str | None, batch_size: int) -> DualEncoder:
    from bench.models import file_sha256, hub_snapshot_dir, is_random_init, state_dict_sha256

    folder = checkpoint = marker_dir = None
    arch = None
    if ref.startswith(OPEN_CLIP):
        arch, _, tag = ref[len(OPEN_CLIP):].partition("@")
        pretrained = pretrained or tag or None
        if not arch:
            raise BenchError(f"open_clip reference {ref!r} names no architecture: write open_clip:ViT-B-32 (see open_clip.list_models())")
    elif ref.startswith("hf-hub:"):
        folder = hub_snapshot_dir(ref[len("hf-hub:"):])
        if folder is None:
            raise BenchError(f"open_clip model {ref!r} is not in the local hub cache (HF_HUB_OFFLINE=1?): download it or pass local-dir:/path")
    else:
        folder = Path(ref.removeprefix("local-dir:")).expanduser().resolve()
    if folder is not None:
        if not folder.is_dir():
            raise BenchError(f"open_clip model {ref!r}: {folder} is not a folder; pass local-dir:<folder with {OPEN_CLIP_CONFIG}>")
        if pretrained:
            raise BenchError(f"open_clip model {ref!r} is a folder with its own weights: leave pretrained unset")
        if not (folder / OPEN_CLIP_CONFIG).is_file():
            raise BenchError(f"open_clip model {ref!r}: no {OPEN_CLIP_CONFIG} in {folder} (a folder as written by open_clip's push_to_hf_hub)")
        checkpoint, marker_dir = _safetensors_in(folder, ref), folder
    open_clip = _import_open_clip()
    import torch

    force_pp, quick_gelu = None, False
    if arch is not None and pretrained:
        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if cfg:
            checkpoint = _tag_checkpoint(arch, pretrained, cfg)
            force_pp = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k) is not None} or None
            quick_gelu = bool(cfg.get("quick_gelu", False))
        elif Path(pretrained).expanduser().is_file():
            checkpoint = Path(pretrained).expanduser().resolve()
            marker_dir = checkpoint.parent
            if checkpoint.suffix != ".safetensors":
                raise BenchError(f"checkpoint {checkpoint} is not safetensors; pickle checkpoints are never loaded: convert it to safetensors")
        else:
            raise BenchError(f"open_clip pretrained={pretrained!r} is neither a tag of {arch} nor a checkpoint file: see open_clip.list_pretrained_tags_by_model({arch!r})")
    name = f"local-dir:{folder}" if folder is not None else arch
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly" before the checkpoint below loads
    try:
        from open_clip.transform import PreprocessCfg, image_transform_v2

        with torch.random.fork_rng(devices=[]):  # a random init is the same at every load
            torch.manual_seed(0)
            model = open_clip.create_model(name, pretrained=None, load_weights=False, device="cpu",
                                           force_quick_gelu=quick_gelu, force_preprocess_cfg=force_pp)
        if checkpoint is not None:
            open_clip.load_checkpoint(model, str(checkpoint), strict=True, weights_only=True)
        tokenizer = open_clip.get_tokenizer(name)
        pp = PreprocessCfg(**model.visual.preprocess_cfg)
        transform = image_transform_v2(pp, is_train=False)
    except Exception as e:  # noqa: BLE001
        raise BenchError(f"cannot load open_clip model {ref!r}: {describe(e)}") from None
    finally:
        logging.disable(previous)
    model.eval().to(device)

    def image(imgs):
        return model.encode_image(torch.stack([transform(im) for im in imgs]).to(device))

    def text(texts):
        return model.encode_text(tokenizer(texts).to(device))

    with torch.inference_mode():
        dim = int(text(["dimension probe"]).shape[-1])
    identity = {
        "name": ref if folder is not None or not pretrained else f"{ref.partition('@')[0]}@{pretrained}",
        "sha256": file_sha256(checkpoint) if checkpoint is not None else state_dict_sha256(model),
        "pretrained": checkpoint is not None and not is_random_init(marker_dir),
        "path": str(folder or checkpoint or "") or None,
        "backend": "open_clip",
    }
    preprocess = {"size": list(pp.size) if isinstance(pp.size, (tuple, list)) else pp.size, "mean": list(pp.mean), "std": list(pp.std),
                  "interpolation": pp.interpolation, "resize_mode": pp.resize_mode, "max_length": int(getattr(tokenizer, "context_length", 0) or 0)}
    return DualEncoder(model, image, text, dim, identity, preprocess, device, batch_size)


def _tag_checkpoint(arch: str, tag: str, cfg: dict) -> Path:
    """The safetensors weights of a pretrained tag, from the hub cache (never a pickle)."""
    repo = (cfg.get("hf_hub") or "").strip("/")
    if not repo:
        raise BenchError(f"open_clip tag {arch}@{tag} has no hub repository with safetensors weights: pass a local .safetensors checkpoint")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename="open_clip_model.safetensors"))
    except Exception as e:  # noqa: BLE001 - offline, or no safetensors in the repo
        raise BenchError(f"cannot get open_clip_model.safetensors of {arch}@{tag} from hub repo {repo} ({describe(e)}): download it, or pass a local checkpoint") from None


def fingerprint(enc: DualEncoder) -> dict[str, Any]:
    """What changes a dual encoder's vectors (for embedders' fingerprints and feature caches)."""
    ident = enc.identity
    return {"model": ident["name"], "backend": ident["backend"], "weights_sha256": ident["sha256"], "dim": enc.dim,
            "preprocess": json.loads(json.dumps(enc.preprocess, default=str)), "normalize": True}


def cached_encode(enc: DualEncoder, kind: str, items: list[str]) -> np.ndarray:
    """``enc.encode_images`` (kind "image") or ``encode_texts`` (kind "text"), cached on disk as
    safetensors by the encoder's identity and the items (image files by path, size and mtime)."""
    from bench.cache import cached_features, texts_hash

    stamps = list(items)
    if kind == "image":
        try:
            stamps = [f"{p}|{st.st_size}|{st.st_mtime_ns}" for p in items for st in [Path(p).stat()]]
        except OSError:
            return enc.encode_images(items)  # raises the one-line error naming the file
    key = [fingerprint(enc), kind, texts_hash(stamps), len(items)]
    return cached_features(key, len(items), lambda: enc.encode_images(items) if kind == "image" else enc.encode_texts(items))


# ---------------------------------------------------------------- the image victims


class _DualEncoderEmbedder(Embedder):
    """Shared by the image victims: ``embed`` takes image paths, ``embed_text`` texts (the text
    tower, for CLIPScore-like metrics); both L2-normalised ."""

    modality = "image"

    def __init__(self, params=None):
        super().__init__(params)
        self.encoder = None
        self.pretrained = self._pretrained_guess()

    def _pretrained_guess(self) -> bool:
        return not is_random_init(local_dir(self.params.model))

    def _load_args(self) -> tuple[str, str | None]:
        return self.params.model, None

    def load(self, device: str) -> None:
        if self.encoder is not None and self.encoder.device == str(torch_device(device)):
            return
        ref, pretrained = self._load_args()
        self.encoder = load_dual_encoder(ref, device, pretrained, self.params.batch_size)
        self.pretrained = bool(self.encoder.identity["pretrained"])

    def _ensure_loaded(self) -> None:
        if self.encoder is None:
            self.load("cpu")

    def embed(self, texts: list[str]) -> np.ndarray:
        self._ensure_loaded()
        return self.encoder.encode_images(list(texts))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        self._ensure_loaded()
        return self.encoder.encode_texts(list(texts))

    @property
    def dim(self) -> int:
        self._ensure_loaded()
        return self.encoder.dim

    def fingerprint(self) -> dict[str, Any]:
        self._ensure_loaded()
        fp = {"embedder": self.name, **fingerprint(self.encoder), "model": self.params.model}
        if hasattr(self.params, "pretrained"):
            fp["pretrained_weights"] = self.params.pretrained  # open_clip: the tag or checkpoint
        return fp


class CLIPEmbedder(_DualEncoderEmbedder):
    """A transformers CLIP model's image tower (hub id or local folder); image datasets only.

    ``pretrained`` is False when the folder contains ``bench_random_init.json``.
    """

    name = "clip"

    class Params(Params):
        model: str = Field(..., min_length=1, description='hub id or local folder of a transformers CLIPModel, e.g. "openai/clip-vit-base-patch32"')
        batch_size: int = Field(64, ge=1, description="images per forward pass")


class OpenCLIPEmbedder(_DualEncoderEmbedder):
    """An open_clip model's image tower (pip install ".[image]"); image datasets only.

    ``model``: an architecture (with ``pretrained`` a tag or a local .safetensors checkpoint; none:
    random init), ``local-dir:/path`` or ``hf-hub:org/repo``.
    """

    name = "open_clip"

    class Params(Params):
        model: str = Field(..., min_length=1, description='architecture (e.g. "ViT-B-32"), "local-dir:/path" or "hf-hub:org/repo"')
        pretrained: str | None = Field(None, description="architecture only: a pretrained tag or a local .safetensors checkpoint (none: random init)")
        batch_size: int = Field(64, ge=1, description="images per forward pass")

    def _pretrained_guess(self) -> bool:
        ref, pre = self.params.model, self.params.pretrained
        if ref.startswith(("local-dir:", "hf-hub:")) or local_dir(ref):
            return not is_random_init(local_dir(ref.removeprefix("local-dir:")))
        return bool(pre) and not (Path(pre).is_file() and is_random_init(Path(pre).parent))

    def _load_args(self) -> tuple[str, str | None]:
        ref = self.params.model
        if ref.startswith(("local-dir:", "hf-hub:")):
            return ref, self.params.pretrained
        return ("local-dir:" if local_dir(ref) else "open_clip:") + ref, self.params.pretrained
