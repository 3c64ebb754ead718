"""Utility left by a defense: retrieval quality of the defended embeddings (faiss, cosine)."""

from __future__ import annotations

import numpy as np

from bench.api import RetrievalTask


def search(queries: np.ndarray, corpus: np.ndarray, k: int, device: str | None = "cpu") -> np.ndarray:
    """Top-k corpus indices by cosine (-1 pads rows when k exceeds the corpus).

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


def retrieval_scores(
    query_ids: list[str], queries: np.ndarray, corpus: np.ndarray, task: RetrievalTask, k: int = 10, device: str = "cpu"
) -> dict[str, list[float]]:
    """Per-query nDCG@k and recall@k with binary relevance."""
    idx = search(queries, corpus, k, device)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for qi, qid in enumerate(query_ids):
        rel = task.qrels.get(qid, set())
        if not rel:
            continue
        hits = np.array([task.corpus_ids[j] in rel for j in idx[qi] if j >= 0], dtype=float)
        dcg = float((hits * discounts[: len(hits)]).sum())
        ideal = float(discounts[: min(len(rel), k)].sum())
        ndcg.append(dcg / ideal)
        recall.append(float(hits.sum()) / len(rel))
    return {f"ndcg@{k}": ndcg, f"recall@{k}": recall}
