"""Images from image embeddings with a diffusers pipeline (unCLIP image variation,
StableUnCLIPImg2Img: any pipeline whose ``__call__`` takes ``image_embeddings`` or ``image_embeds``),
safetensors only, no remote code, and the cache of the images it made (PNG files whose names carry
their digest) under the run's cache root. Used by ``slime-adaptive``; diffusers is imported on use."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache import atomic_write_bytes, default_cache_dir, file_matches, key_hash, seed_for
from bench.errors import BenchError
from bench.models import describe


def _import_diffusers():
    try:
        import diffusers
    except Exception as e:  # noqa: BLE001 - missing, or broken against this torch
        raise BenchError(f'slime-adaptive needs diffusers ({describe(e)}): pip install ".[adaptive]"') from None
    return diffusers


def _folder_dim(folder: Path) -> int | None:
    """The image-embedding dimension a pipeline folder's configs declare (None: unknown)."""
    for sub, key in (("text_proj", "clip_embeddings_dim"), ("image_normalizer", "embedding_dim"), ("image_encoder", "projection_dim")):
        try:
            value = json.loads((folder / sub / "config.json").read_text()).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, int):
            return value
    return None


class ImageGenerator:
    """A diffusers pipeline that turns image embeddings into images (loaded on first use)."""

    def __init__(self, ref: str, device: str = "cpu"):
        from bench.models import is_random_init, looks_like_path, model_dir, weights_sha256

        self.ref, self.device, self.pipe = ref, device, None
        folder = model_dir(ref)
        if folder is None:
            if looks_like_path(ref):
                raise BenchError(f"generator {ref!r} is not a folder: pass the folder of a diffusers pipeline (with model_index.json)")
            try:
                folder = Path(_import_diffusers().DiffusionPipeline.download(ref, use_safetensors=True))
            except BenchError:
                raise
            except Exception as e:  # noqa: BLE001 - offline and not cached, or not a pipeline
                raise BenchError(f"cannot get generator {ref!r} (not a local folder nor in the hub cache; HF_HUB_OFFLINE=1?): {describe(e)}") from None
        try:
            self.index = json.loads((folder / "model_index.json").read_text())
        except (OSError, ValueError):
            raise BenchError(f"generator {ref!r}: {folder} has no readable model_index.json (not a diffusers pipeline folder)") from None
        self.folder = folder
        self.dim = _folder_dim(folder)
        self.identity = {"name": ref, "class": self.index.get("_class_name"), "sha256": weights_sha256(folder),
                         "pretrained": not is_random_init(folder)}

    def _alias_moved_modules(self) -> None:
        """diffusers moved some pipelines to ``pipelines.deprecated`` (unCLIP), but their repositories'
        model_index.json still name the old module (karlo: text_proj = ["unclip", "UnCLIPTextProjModel"]):
        make such names resolve again (diffusers' own module, never code from the folder)."""
        from diffusers import pipelines

        for spec in self.index.values():
            if isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str) and not hasattr(pipelines, spec[0]):
                try:
                    setattr(pipelines, spec[0], importlib.import_module(f"diffusers.pipelines.deprecated.{spec[0]}"))
                except ImportError:
                    continue

    def load(self) -> None:
        diffusers = _import_diffusers()
        from diffusers.utils import logging as dlog

        cls_name = self.identity["class"]
        if getattr(diffusers, cls_name or "", None) is None:
            raise BenchError(f"generator {self.ref!r} declares pipeline class {cls_name!r}, which diffusers {diffusers.__version__} does not have (remote code is never run)")
        level = dlog.get_verbosity()
        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
        try:
            self._alias_moved_modules()
            self.pipe = diffusers.DiffusionPipeline.from_pretrained(self.folder, use_safetensors=True)
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"cannot load generator {self.ref!r} from {self.folder} (a diffusers pipeline with safetensors weights): {describe(e)}") from None
        finally:
            dlog.set_verbosity(level)
            dlog.enable_progress_bar()
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.args = set(inspect.signature(self.pipe.__call__).parameters)
        self.embed_arg = next((a for a in ("image_embeddings", "image_embeds") if a in self.args), None)
        if self.embed_arg is None:
            raise BenchError(f"generator {self.ref!r} ({cls_name}) takes no image embeddings (image_embeddings / image_embeds): use an unCLIP image-variation or StableUnCLIPImg2Img pipeline")

    def generate(self, emb: np.ndarray, seeds: list[int], steps: int, size: int) -> list:
        import torch

        if self.pipe is None:
            self.load()
        kw: dict[str, Any] = {self.embed_arg: torch.tensor(emb, dtype=self.pipe.dtype, device=self.device), "output_type": "pil",
                              "generator": [torch.Generator().manual_seed(s) for s in seeds]}
        kw.update({a: steps for a in ("num_inference_steps", "decoder_num_inference_steps", "super_res_num_inference_steps") if a in self.args})
        if "prompt" in self.args:
            kw["prompt"] = [""] * len(emb)
        if size:
            if not {"height", "width"} <= self.args:
                raise BenchError(f"generator {self.ref!r} ({self.identity['class']}) has a fixed image size: leave gen_size unset")
            kw.update(height=size, width=size)
        try:
            return list(self.pipe(**kw).images)
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"generator {self.ref!r} failed on {len(emb)} embeddings of dimension {emb.shape[1]}: {describe(e)}") from None


def cached_images(gen: ImageGenerator, emb: np.ndarray, settings: dict[str, Any], batch_size: int) -> list[Path]:
    """PNG paths of the images ``gen`` makes from each row of ``emb``, generated only when not cached.
    Each image has its own seed (cell seed + embedding), so it does not depend on the batch."""
    ident = {k: gen.identity[k] for k in ("name", "class", "sha256")}
    rows = [np.ascontiguousarray(r, dtype=np.float32) for r in emb]
    digests = [hashlib.sha256(r.tobytes()).hexdigest() for r in rows]
    root = default_cache_dir() / "adaptive" / "images"
    keys = [key_hash([ident, settings, d, r.shape[0]], 24) for d, r in zip(digests, rows)]
    paths: list[Path | None] = [_cached_png(root, k) for k in keys]
    todo = [i for i, p in enumerate(paths) if p is None]
    for s in range(0, len(todo), batch_size):
        idx = todo[s : s + batch_size]
        seeds = [seed_for(settings.get("seed", 0), "slime-adaptive", digests[i]) for i in idx]
        images = gen.generate(np.stack([rows[i] for i in idx]), seeds, settings["steps"], settings["size"])
        for i, im in zip(idx, images):
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG")
            data = buf.getvalue()
            paths[i] = root / f"{keys[i]}.{hashlib.sha256(data).hexdigest()[:16]}.png"  # the name carries its digest
            atomic_write_bytes(paths[i], data, overwrite=True)
    return paths


def _cached_png(root: Path, key: str) -> Path | None:
    """The cached image of ``key`` whose content matches the digest in its name; a damaged one is
    reported once and deleted (then regenerated)."""
    for path in sorted(root.glob(f"{key}.*.png")):
        if file_matches(path, path.name.split(".")[-2], "regenerating it"):
            return path
        path.unlink(missing_ok=True)
    return None
