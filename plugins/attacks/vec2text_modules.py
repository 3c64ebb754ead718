"""Torch modules of the vec2text attack's pretrained mode, imported on first use (listing plugins
loads no torch)."""

from __future__ import annotations

from types import SimpleNamespace

import torch.nn as nn

from bench.errors import BenchError


class NoEmbedder(nn.Module):
    """Stands in for the embedder vec2text's InversionModel would load itself (GTR from the hub).

    Every embedding the corrector needs comes from the victim (``route_embeddings_through_victim``),
    so the package's own embedder is never called; only its dimension is read at construction.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.config = SimpleNamespace(**{"hidden_size": dim, "_name_or_path": "bench-victim"})

    def forward(self, *a, **k):
        raise BenchError("vec2text tried to embed with its own embedder: embeddings must come from the victim")
