"""Linear maps between embedding spaces, learned from paired vectors (leaked pairs)."""

from __future__ import annotations

import numpy as np


def procrustes(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Orthogonal W minimising ||src W - dst||_F (needs matching dimensions)."""
    u, _, vt = np.linalg.svd(src.T.astype(np.float64) @ dst.astype(np.float64))
    return (u @ vt).astype(np.float32)


def least_squares(src: np.ndarray, dst: np.ndarray, ridge: float | None = None) -> np.ndarray:
    """W = argmin ||src W - dst||^2 + ridge ||W||^2 in closed form.

    With fewer pairs than dimensions the problem is under-determined; ``ridge=None`` then picks a
    small ridge relative to the data scale, so a single pair still gives a usable map.
    """
    a, b = src.astype(np.float64), dst.astype(np.float64)
    n, d = a.shape
    if ridge is None:
        ridge = 1e-3 * float(np.trace(a.T @ a)) / d if n < 2 * d else 0.0
    gram = a.T @ a + ridge * np.eye(d)
    return np.linalg.solve(gram, a.T @ b).astype(np.float32)
