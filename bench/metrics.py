"""Reconstruction metrics (per sample, then mean with a bootstrap 95% CI).

BLEU is sacrebleu's sentence BLEU averaged over samples (as Vec2Text reports it), ROUGE-L is
rouge-score's F-measure, token F1 is SQuAD-style multiset overlap, word P/R/F1 compare the sets of
words (all words of the target; words an attack cannot output count as misses).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

WORD_RE = re.compile(r"[a-z0-9]+")
NAME_LABELS = ("first_name", "last_name", "full_name")


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def set_prf(pred: set[str], truth: set[str]) -> tuple[float, float, float]:
    if not pred and not truth:
        return 1.0, 1.0, 1.0
    hit = len(pred & truth)
    p = hit / len(pred) if pred else 0.0
    r = hit / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def token_f1(pred: str, truth: str) -> float:
    a, b = Counter(words(pred)), Counter(words(truth))
    if not a and not b:
        return 1.0
    common = sum((a & b).values())
    if common == 0:
        return 0.0
    p, r = common / sum(a.values()), common / sum(b.values())
    return 2 * p * r / (p + r)


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_boot: int = 1000, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        v = float(values.mean()) if len(values) else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for i in range(0, n_boot, 100):  # chunks keep memory flat for large n
        idx = rng.integers(0, len(values), size=(min(100, n_boot - i), len(values)))
        means[i : i + len(idx)] = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summarize(per_sample: dict[str, list[float]], higher: dict[str, bool], seed: int = 0) -> dict[str, dict[str, Any]]:
    out = {}
    for name, vals in per_sample.items():
        arr = np.asarray([v for v in vals if v is not None], dtype=np.float64)
        if not len(arr):
            continue
        lo, hi = bootstrap_ci(arr, seed=seed)
        out[name] = {
            "value": float(arr.mean()),
            "ci_low": lo,
            "ci_high": hi,
            "higher_is_better": higher.get(name, True),
            "n": int(len(arr)),
        }
    return out


def pii_recovery(recon_words: set[str], entities: list[dict]) -> dict[str, float]:
    """Per entity label: the fraction of that label's entities whose words were all recovered."""
    by_label: dict[str, list[float]] = {}
    for ent in entities:
        toks = set(words(ent["text"]))
        if toks:
            by_label.setdefault(ent["label"], []).append(float(toks <= recon_words))
    return {label: float(np.mean(v)) for label, v in by_label.items()}


def reconstruction_scores(
    outputs: list[Any], targets: list[str], output_kind: str, meta: list[dict] | None = None
) -> list[dict[str, float]]:
    """Per-sample scores. ``outputs`` are word lists (output_kind "words") or strings ("text")."""
    rows = []
    if output_kind == "text":
        from rouge_score import rouge_scorer
        from sacrebleu.metrics import BLEU

        bleu = BLEU(effective_order=True)
        rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for i, (out, truth) in enumerate(zip(outputs, targets)):
        pred_words = set(out) if output_kind == "words" else set(words(out))
        p, r, f = set_prf(pred_words, set(words(truth)))
        row = {"word_precision": p, "word_recall": r, "word_f1": f}
        if output_kind == "text":
            row["bleu"] = bleu.sentence_score(out, [truth]).score
            row["rouge_l"] = rouge.score(truth, out)["rougeL"].fmeasure
            row["token_f1"] = token_f1(out, truth)
            row["exact_match"] = float(" ".join(out.split()).lower() == " ".join(truth.split()).lower())
        if meta and meta[i].get("entities"):
            for label, v in pii_recovery(pred_words, meta[i]["entities"]).items():
                row[f"pii_{label}"] = v
        rows.append(row)
    return rows


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)
