"""Nearest-neighbour search by cosine, for attacks and the utility metrics alike: faiss on the CPU;
on a GPU a faiss GPU index when faiss is a GPU build, else exact torch top-k."""

from __future__ import annotations

import numpy as np


def search(queries: np.ndarray, corpus: np.ndarray, k: int, device: str | None = "cpu") -> np.ndarray:
    """Top-k corpus indices by cosine (k is capped at the corpus size).

    ``device``: "cpu" (faiss), "cuda[:N]" (a faiss GPU index when faiss is a GPU build, else torch
    top-k on the GPU), or None: the GPU when torch sees one, else the CPU.
    """
    import faiss

    if device is None:
        device = "cuda" if _torch_cuda() else "cpu"
    q = np.ascontiguousarray(queries, dtype=np.float32).copy()
    c = np.ascontiguousarray(corpus, dtype=np.float32).copy()
    faiss.normalize_L2(q)
    faiss.normalize_L2(c)
    k = min(k, c.shape[0])
    gpu_faiss = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    if device.startswith("cuda") and not gpu_faiss and _torch_cuda():
        return _torch_topk(q, c, k, device)
    index = faiss.IndexFlatIP(c.shape[1])
    if device.startswith("cuda") and gpu_faiss:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), int(device.partition(":")[2] or 0), index)
    index.add(c)
    _, idx = index.search(q, k)
    return idx


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _torch_topk(q: np.ndarray, c: np.ndarray, k: int, device: str, chunk: int = 8192) -> np.ndarray:
    """Exact top-k inner products on the GPU with torch (for GPU machines without a faiss GPU build)."""
    import torch

    corpus = torch.from_numpy(c).to(device)
    out = []
    for i in range(0, len(q), chunk):
        sims = torch.from_numpy(q[i : i + chunk]).to(device) @ corpus.T
        out.append(sims.topk(k, dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)
