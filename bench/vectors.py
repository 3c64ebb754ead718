"""Vector helpers shared by the core and every plugin: unit rows, row-wise cosine, batch ranges."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def unit(x: np.ndarray, dtype=None) -> np.ndarray:
    """Each row scaled to unit L2 norm (a zero row stays zero); ``dtype``: cast first (None: keep)."""
    x = np.asarray(x, dtype) if dtype is not None else np.asarray(x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of ``a[i]`` and ``b[i]``."""
    return (unit(a) * unit(b)).sum(axis=1)


def batches(n: int, size: int) -> Iterator[range]:
    """The index ranges of ``n`` rows in batches of ``size`` (the last one shorter)."""
    for start in range(0, n, size):
        yield range(start, min(start + size, n))
