"""Reconstruction metrics (per sample, then mean with a bootstrap 95% CI).

BLEU is sacrebleu's sentence BLEU averaged over samples (as Vec2Text reports it), ROUGE-L is
rouge-score's F-measure, token F1 is SQuAD-style multiset overlap, word P/R/F1 compare the sets of
words (all words of the target; words an attack cannot output count as misses).
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.vectors import cosine_rows  # noqa: F401 - also importable from here, as before

WORD_RE = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Metric:
    """A metric's declaration: its name, its direction, what it measures.

    ``higher_is_better``: True for a leakage score (more recovered is a stronger attack), False for
    a cost (victim queries), None for a reference level that ranks nothing (e.g. the chance level
    of a metric, or a count describing the output). A reported name ``base@anything`` (``ndcg@10``,
    ``nbr_f1@50``, ``bleu@step1``) resolves to the declaration ``base``; a declared name ending in
    ``*`` is a prefix (``pii_*``).
    """

    name: str
    higher_is_better: bool | None
    description: str

    def matches(self, base: str) -> bool:
        return fnmatch.fnmatchcase(base, self.name) if self.name.endswith("*") else base == self.name


SHARED_METRICS: tuple[Metric, ...] = (
    Metric("word_precision", True, "share of the reconstruction's words that are in the target"),
    Metric("word_recall", True, "share of the target's words found in the reconstruction"),
    Metric("word_f1", True, "F1 of the reconstruction's and the target's word sets"),
    Metric("bleu", True, "sacrebleu sentence BLEU of the reconstruction against the target (0-100)"),
    Metric("rouge_l", True, "ROUGE-L F-measure of the reconstruction against the target"),
    Metric("token_f1", True, "SQuAD-style multiset token F1"),
    Metric("exact_match", True, "1 when the reconstruction equals the target (case and spaces folded)"),
    Metric("cosine", True, "cosine of the victim's embedding of the reconstruction to the clean target embedding"),
    Metric("pii_*", True, "share of the target's entities of that label whose words were all recovered"),
    Metric("queries", False, "victim queries the attacker made (a cost)"),
    Metric("perplexity", False, "fluency (bench run --fluency): perplexity of the reconstruction under Gemma 3 270M, an LM no attack uses; lower reads better"),
    Metric("target_perplexity", None, "fluency reference (bench run --fluency): perplexity of the target text itself under the same LM"),
    Metric("align_cosine", True, "via= attacks: cosine of the mapped target vector to the attacker's own embedding of its text"),
    Metric("ndcg", True, "utility: nDCG@k of retrieval on the defended embeddings"),
    Metric("recall", True, "utility: recall@k of retrieval on the defended embeddings"),
)


def base_name(name: str) -> str:
    """``nbr_f1@50`` -> ``nbr_f1``: the declared name a reported metric resolves to."""
    return name.split("@", 1)[0]


def resolve(name: str, declared: Iterable[Metric] = ()) -> Metric | None:
    """The declaration of a reported metric: the attack's own ``declared`` first, then the shared
    ones; an exact name before a ``*`` prefix. None when it is not declared."""
    base = base_name(name)
    decls = [*declared, *SHARED_METRICS]
    for m in decls:
        if m.name == base:
            return m
    for m in decls:
        if m.name.endswith("*") and m.matches(base):
            return m
    return None


def directions(names: Iterable[str], declared: Iterable[Metric] = ()) -> dict[str, bool | None]:
    """``higher_is_better`` of each reported name; an undeclared name raises ``BenchError``."""
    from bench.errors import BenchError

    declared = tuple(declared)
    out = {}
    for name in names:
        m = resolve(name, declared)
        if m is None:
            raise BenchError(
                f"metric {name!r} is not declared: add bench.metrics.Metric({base_name(name)!r}, higher_is_better, "
                f"description) to the attack's `metrics` (shared ones: {', '.join(s.name for s in SHARED_METRICS)})"
            )
        out[name] = m.higher_is_better
    return out
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


def summarize(per_sample: dict[str, list[float]], higher: dict[str, bool | None], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Mean and bootstrap CI per metric (None values left out); ``higher`` gives each direction
    (see ``directions``)."""
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
            "higher_is_better": higher[name],
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
