"""Nearest-neighbour search by cosine (faiss), for attacks and the utility metrics alike."""

from __future__ import annotations

import numpy as np


def search(queries: np.ndarray, corpus: np.ndarray, k: int, device: str = "cpu") -> np.ndarray:
    """Top-k corpus indices by cosine, with faiss (GPU index when faiss has GPUs and device is cuda).
    Rows are padded with -1 when ``k`` exceeds the corpus."""
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32).copy()
    c = np.ascontiguousarray(corpus, dtype=np.float32).copy()
    faiss.normalize_L2(q)
    faiss.normalize_L2(c)
    index = faiss.IndexFlatIP(c.shape[1])
    if device.startswith("cuda") and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(c)
    _, idx = index.search(q, min(k, c.shape[0]))
    return idx
