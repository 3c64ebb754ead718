"""Utility left by a defense: retrieval quality of the defended embeddings (faiss, cosine)."""

from __future__ import annotations

import numpy as np

from bench.api import RetrievalTask
from bench.retrieval import search  # noqa: F401 - also importable from here, as before


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
