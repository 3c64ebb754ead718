"""SLImE's metrics: their declarations, the neighbourhood F1 (the paper's Definition 3.2) and the
per-target rows ``extra_scores`` reports (tag F1, neighbourhood F1 at each m, its attack-reference
and chance levels, and per-kind F1s)."""

from __future__ import annotations

import numpy as np

from bench.metrics import Metric, set_prf

NEIGHBOURHOODS = (5, 10, 20, 50)
KINDS = ("object", "attribute", "relation", "scene")  # bench_plugins.tags.KINDS
KIND_M = 10  # neighbourhood size of the per-kind F1s

# Declared once: ``nbr_f1@10`` resolves to ``nbr_f1`` (the size of the neighbourhood after the @).
METRICS = (
    Metric("tag_f1", True, "exact set F1 of the retrieved tags against the tags parsed from the target"),
    Metric("tag_f1_ref", True, "exact set F1 of the retrieved tags against the attack-reference tags (the retriever on the attacker's clean embedding of the target)"),
    Metric("nbr_f1", True, "neighbourhood F1@m (SLImE Def. 3.2) of the retrieved tags against the target's tags"),
    Metric("nbr_f1_ref", True, "neighbourhood F1@m of the retrieved tags against the attack-reference tags"),
    Metric("nbr_f1_chance", None, "neighbourhood F1@m of as many random vocabulary tags: the level no leakage gives (a reference, not a score)"),
    Metric("object_f1", True, "neighbourhood F1@10 within object tags"),
    Metric("attribute_f1", True, "neighbourhood F1@10 within attribute-object tags"),
    Metric("relation_f1", True, "neighbourhood F1@10 within subject-verb-object tags"),
    Metric("scene_f1", True, "neighbourhood F1@10 within scene tags"),
)


def neighbourhood_f1(retrieved: list[int], refs: list[str], nbrs: dict[str, list[int]], m: int, vindex: dict[str, int]) -> float | None:
    """Neighbourhood F1@m of retrieved vocabulary indices against reference tags: a retrieved tag
    matches a reference r when it is r or among r's m nearest vocabulary tags (``nbrs[r]``).
    None when there is no reference tag."""
    if not refs:
        return None
    if not retrieved:
        return 0.0
    hoods = []
    for r in refs:
        h = set(nbrs[r][:m])
        if r in vindex:
            h.add(vindex[r])
        hoods.append(h)
    prec = sum(any(t in h for h in hoods) for t in retrieved) / len(retrieved)
    rec = sum(any(t in h for t in retrieved) for h in hoods) / len(hoods)
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def tag_scores(retrieved: list[list[int]], gt: list[list[str]], gt_raw: list[list[dict]], ref: list[list[str]],
               nbrs: dict[str, list[int]], vocab: list[str], vindex: dict[str, int], kind_of: dict[str, str],
               rng: np.random.Generator, k: int) -> list[dict[str, float | None]]:
    """Per target: per-kind F1s, tag F1 (against the ground truth and the attack reference) and
    neighbourhood F1@m against the ground truth, the reference and the chance level (as many tags
    drawn uniformly from the vocabulary with ``rng``)."""
    rows = []
    for got, g, r, graw in zip(retrieved, gt, ref, gt_raw):
        got_text = {vocab[j] for j in got}
        row: dict[str, float | None] = {}
        for kind in KINDS:  # per kind (the paper's object/relation/scene F1): nbr F1@KIND_M within the kind
            want = [t["text"] for t in graw if t["type"] == kind]
            have = [j for j in got if kind_of.get(vocab[j]) == kind]
            row[f"{kind}_f1"] = neighbourhood_f1(have, want, nbrs, KIND_M, vindex) if want else None
        row["tag_f1"] = set_prf(got_text, set(g))[2] if g else None
        row["tag_f1_ref"] = set_prf(got_text, set(r))[2] if r else None
        chance = [int(j) for j in rng.choice(len(vocab), size=min(len(got) or k, len(vocab)), replace=False)]
        for m in NEIGHBOURHOODS:
            row[f"nbr_f1@{m}"] = neighbourhood_f1(got, g, nbrs, m, vindex)
            row[f"nbr_f1_ref@{m}"] = neighbourhood_f1(got, r, nbrs, m, vindex)
            row[f"nbr_f1_chance@{m}"] = neighbourhood_f1(chance, g, nbrs, m, vindex)
        rows.append(row)
    return rows
