"""Victim ``hf``: any Hugging Face AutoModel (encoder, or a T5-style encoder-decoder's encoder) with
mean, CLS or last-token pooling. Conventions of every victim embedder: ``bench_plugins.embedders``."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.errors import BenchError
from bench.models import gpu_batch_size, is_random_init, load_error, local_dir, locate, quiet_loading, reuse_loaded, torch_device, weights_digest
from bench.vectors import batches
from bench_plugins.st_embedders import EncoderParams, LocalEncoder


class HFEmbedder(LocalEncoder):
    """A Hugging Face AutoModel + AutoTokenizer with mean, CLS or last-token pooling (white-box).

    Encoder-decoder models (T5) use their encoder. ``pretrained`` is False when the model folder
    contains ``bench_random_init.json``. White-box access: ``self.model`` and ``self.tokenizer``.
    """

    name = "hf"

    class Params(EncoderParams):
        model: str = Field(..., min_length=1, description="hub id or local folder of a transformers model")
        pooling: Literal["mean", "cls", "last"] = Field("mean", description="mean over tokens (masked), the first token, or the last non-padding token")
        trust_remote_code: bool = Field(False, description="run the model repository's own Python code (only for repos you trust)")
        prompt: str | None = Field(None, description='prefix added to every text, e.g. "query: " for E5')
        dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
            "auto", description="compute dtype via autocast; auto = bfloat16 (or float16) on cuda, float32 on cpu"
        )

    def __init__(self, params=None):
        super().__init__(params)
        self._encoder = None
        self._max_length: int | None = None
        self.pretrained = not is_random_init(local_dir(self.params.model))

    def load(self, device: str) -> None:
        dev = torch_device(device)
        if reuse_loaded(self, dev):
            return
        ref = self.params.model
        model_dir = locate(ref)
        from transformers import AutoModel, AutoTokenizer

        source = str(model_dir) if model_dir is not None else ref
        trust = self.params.trust_remote_code
        try:
            with quiet_loading():
                tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
                model = AutoModel.from_pretrained(source, trust_remote_code=trust, use_safetensors=True)
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001 - any load failure becomes a one-line BenchError
            raise load_error(ref, model_dir, e) from None
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise BenchError(f"model {ref!r}: its tokenizer has neither a pad nor an eos token, so batches cannot be padded")
            tokenizer.pad_token = tokenizer.eos_token
        model.eval().to(dev)
        self.model, self.tokenizer, self.device, self.model_dir = model, tokenizer, str(dev), model_dir
        self._encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
        self.pretrained = not is_random_init(model_dir)
        positions = getattr(model.config, "max_position_embeddings", None)
        positions = positions if isinstance(positions, int) and positions > 0 else None
        limit = self.params.max_length
        if limit is None:  # the tokenizer's limit, within the model's position table
            tml = getattr(tokenizer, "model_max_length", None)
            limit = int(tml) if isinstance(tml, int) and 0 < tml < 100_000 else 512
            limit = min(limit, positions) if positions else limit
        elif positions and limit > positions:
            raise BenchError(f"max_length={limit} exceeds the {positions} positions of model {ref!r}: pass max_length<={positions}")
        self._max_length = limit
        hidden = getattr(model.config, "hidden_size", None) or getattr(model.config, "d_model", None)
        self._dim = int(hidden) if hidden else int(self.embed(["dimension probe"]).shape[1])

    def compute_dtype(self) -> str:
        """The dtype the forward pass runs in on the current device."""
        import torch

        want = self.params.dtype
        on_cuda = (self.device or "cpu").startswith("cuda")
        if want == "auto":
            if not on_cuda:
                return "float32"
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return want

    def _autocast(self):
        import torch

        dt = self.compute_dtype()
        if dt == "float32":
            return nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=getattr(torch, dt))

    def _pool(self, hidden, mask):
        import torch

        mask = mask.to(hidden.dtype)
        if self.params.pooling == "cls":
            return hidden[:, 0]
        if self.params.pooling == "last":
            # Index of the last non-padding token; works with left or right padding.
            positions = torch.arange(mask.shape[1], device=mask.device, dtype=hidden.dtype)
            last = (mask * (positions + 1)).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        self._ensure_loaded()
        prompt = self.params.prompt or ""
        texts = [prompt + t for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths share a batch
        with torch.inference_mode(), self._autocast():
            for batch in batches(len(order), gpu_batch_size(self.params, self.device)):
                idx = [order[j] for j in batch]
                enc = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self._encoder(**enc).last_hidden_state.float()
                pooled = self._pool(hidden, enc["attention_mask"])
                if self.params.normalize:
                    pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def fingerprint(self) -> dict[str, Any]:
        self._ensure_loaded()
        self._weights_sha = self._weights_sha or weights_digest(self.model_dir, self.model)
        return {
            "embedder": self.name,
            "model": self.params.model,
            "weights_sha256": self._weights_sha,
            "pooling": self.params.pooling,
            "normalize": self.params.normalize,
            "max_length": self._max_length,
            "dim": self.dim,
            "prompt": self.params.prompt or None,
            "dtype": self.compute_dtype(),
        }
