"""Linear maps between embedding spaces, learned from paired vectors (leaked pairs)."""

from __future__ import annotations

import numpy as np


def procrustes(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Orthogonal W minimising ||src W - dst||_F (needs matching dimensions)."""
    u, _, vt = np.linalg.svd(src.T.astype(np.float64) @ dst.astype(np.float64))
    return (u @ vt).astype(np.float32)


RCOND = 1e-5  # float32 vectors: directions below this share of the largest singular value are rounding noise


def least_squares(src: np.ndarray, dst: np.ndarray, ridge: float | None = None, rcond: float = RCOND) -> np.ndarray:
    """W = argmin ||src W - dst||^2 + ridge ||W||^2 in closed form.

    With fewer pairs than dimensions the problem is under-determined; ``ridge=None`` then picks a
    small ridge relative to the data scale, so a single pair still gives a usable map. Without a
    ridge it is the minimum-norm solution over the directions ``src`` spans: those whose singular
    value is below ``rcond`` of the largest are left out (mapped to 0). Embeddings often have such
    directions: MiniLM leaves 3 of its 384 dimensions at ~1e-8 or exactly 0 (8-bit quantization),
    and a PCA defense keeps k directions of 384; solving the normal equations there divides by
    float32 rounding noise and gives weights of 1e7 to inf.
    """
    a, b = src.astype(np.float64), dst.astype(np.float64)
    n, d = a.shape
    if ridge is None:
        ridge = 1e-3 * float(np.trace(a.T @ a)) / d if n < 2 * d else 0.0
    if ridge > 0:
        return np.linalg.solve(a.T @ a + ridge * np.eye(d), a.T @ b).astype(np.float32)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    keep = s > rcond * s.max(initial=0.0)
    return (vt[keep].T @ ((u[:, keep].T @ b) / s[keep, None])).astype(np.float32)


RIDGE_GRID = tuple(10.0 ** np.arange(-4, 3))  # relative to the mean squared singular value


def ridge_loo(src: np.ndarray, dst: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID) -> tuple[np.ndarray, float]:
    """Ridge W = argmin ||src W - dst||^2 + α||W||^2, α chosen by exact leave-one-out error.

    Through the SVD of ``src`` every α on the grid costs O(n²d): the hat matrix H = U diag(s²/(s²+α)) Uᵀ
    gives the leave-one-out residuals (y - ŷ)_i / (1 - H_ii) in closed form. α is relative to the
    mean squared singular value, so the grid fits any data scale. Returns (W, α used).
    """
    a, b = src.astype(np.float64), dst.astype(np.float64)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    scale = float(np.mean(s**2)) if len(s) else 1.0
    uty = u.T @ b
    best = (np.inf, grid[0])
    if len(a) > 1:
        for rel in grid:
            alpha = rel * scale
            shrink = s**2 / (s**2 + alpha)
            fit = u @ (shrink[:, None] * uty)
            h = np.einsum("ij,j,ij->i", u, shrink, u)
            loo = (b - fit) / np.maximum(1 - h, 1e-9)[:, None]
            err = float(np.mean(loo**2))
            if err < best[0]:
                best = (err, rel)
    alpha = best[1] * scale
    w = vt.T @ ((s / (s**2 + alpha))[:, None] * uty)
    return w.astype(np.float32), float(best[1])


def fit_alignment(src: np.ndarray, dst: np.ndarray, method: str = "auto") -> tuple[np.ndarray, dict]:
    """A linear map from one embedding space to another, fitted on paired rows (the leaked pairs).

    ``auto``: orthogonal Procrustes when the dimensions match (a rotation cannot overfit a few pairs),
    else ridge with the leave-one-out α. Returns (W, a description for the record).
    """
    if len(src) == 0:
        from bench.errors import BenchError

        raise BenchError("aligning two embedding spaces needs leaked pairs: set the dataset's leaked > 0")
    if method == "auto":
        method = "procrustes" if src.shape[1] == dst.shape[1] else "ridge"
    if method == "procrustes":
        return procrustes(src, dst), {"method": "procrustes", "pairs": len(src)}
    w, alpha = ridge_loo(src, dst)
    return w, {"method": "ridge", "pairs": len(src), "ridge_alpha_rel": alpha}
