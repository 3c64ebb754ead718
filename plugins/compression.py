"""Compression defenses fitted on data the defender owns: ``pca`` (keep the top-k principal
directions) and ``pq`` (faiss product quantization, vectors replaced by their reconstruction).

Both are ``fitted``: the runner calls ``fit`` on the defender's own embeddings (the dataset's
defender split, else its retrieval corpus; never the targets) and hands the state to ``apply``.
An adaptive attacker fits its own copy on its own data (``AttackContext.train_view``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from bench.api import Defense, Params
from bench.errors import BenchError
from bench.hookspecs import hookimpl


class PCA(Defense):
    """Keep the top-k principal directions (fitted on the defender's data); the vector keeps its dimension.

    x ↦ μ + (x − μ) V_k V_kᵀ, with μ and V_k the mean and top-k principal axes of the defender's
    embeddings (Zhuang et al., arXiv 2402.12784, propose dimension reduction as a defense).
    """

    name = "pca"
    fitted = True

    class Params(Params):
        k: int = Field(64, ge=1, description="principal directions kept")

    default_grid: ClassVar[list[dict]] = [{"k": k} for k in (256, 64, 16, 4)]

    def check(self, dim, n_fit):
        if self.params.k > dim:
            raise BenchError(f"pca:k={self.params.k} exceeds the victim's dimension {dim}: pass k<={dim}")
        if self.params.k > n_fit:
            raise BenchError(f"pca:k={self.params.k} needs at least {self.params.k} defender embeddings, there are {n_fit}: lower k")

    def fit(self, data, rng):
        self.check(data.shape[1], len(data))
        mean = data.astype(np.float64).mean(0)
        _, _, vt = np.linalg.svd(data.astype(np.float64) - mean, full_matrices=False)
        return {"mean": mean.astype(np.float32), "basis": vt[: self.params.k].astype(np.float32)}

    def apply(self, emb, rng, state=None):
        mean, basis = state["mean"], state["basis"]
        return (mean + ((emb - mean) @ basis.T) @ basis).astype(np.float32)


class PQ(Defense):
    """Product quantization (faiss) trained on the defender's data; vectors replaced by their reconstruction.

    The vector is cut into ``m`` sub-vectors, each stored as the index of its nearest of 2^nbits
    centroids (k-means per sub-space on the defender's embeddings): ``m·nbits`` bits per vector
    instead of 32·d (Zhuang et al., arXiv 2402.12784, propose it as a defense).
    """

    name = "pq"
    fitted = True

    class Params(Params):
        m: int = Field(16, ge=1, description="sub-quantizers (must divide the dimension)")
        nbits: int = Field(8, ge=1, le=12, description="bits per sub-quantizer code (2^nbits centroids)")

    default_grid: ClassVar[list[dict]] = [{"m": m} for m in (96, 32, 8, 2)]

    def check(self, dim, n_fit):
        if dim % self.params.m:
            raise BenchError(f"pq:m={self.params.m} must divide the victim's dimension {dim}: pick a divisor of {dim}")
        if n_fit < 2**self.params.nbits:
            raise BenchError(
                f"pq:nbits={self.params.nbits} needs at least {2**self.params.nbits} defender embeddings to train, "
                f"there are {n_fit}: lower nbits"
            )

    def _quantizer(self, d: int):
        import faiss

        return faiss.ProductQuantizer(d, self.params.m, self.params.nbits)

    def fit(self, data, rng):
        import faiss

        self.check(data.shape[1], len(data))
        pq = self._quantizer(data.shape[1])
        pq.cp.seed = int(rng.integers(2**31 - 1))
        pq.cp.min_points_per_centroid = 1  # fewer points than faiss's rule of thumb: the record says how many
        pq.verbose = False
        pq.train(np.ascontiguousarray(data, np.float32))
        return {"centroids": faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)}

    def apply(self, emb, rng, state=None):
        import faiss

        pq = self._quantizer(emb.shape[1])
        faiss.copy_array_to_vector(np.ascontiguousarray(state["centroids"], np.float32).ravel(), pq.centroids)
        x = np.ascontiguousarray(emb, np.float32)
        return pq.decode(pq.compute_codes(x)).astype(np.float32)

    def privacy(self, dim):
        bits = self.params.m * self.params.nbits
        return {"code_bits": bits, "compression": round(32 * dim / bits, 2)}


@hookimpl
def register_defenses(register):
    register(PCA)
    register(PQ)
