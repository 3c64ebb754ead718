"""Reconstruction metrics (per sample, then mean with a bootstrap 95% CI); docs/metrics.md.

``bleu`` is Vec2Text's: sacrebleu BLEU with its defaults computed on each (reconstruction, target)
pair alone, then averaged (0-100); ``corpus_bleu`` pools the n-gram counts of every pair into one
corpus-level value. ``token_f1`` is Vec2Text's set F1 over the word tokens (case kept); word P/R/F1
compare the case-folded word sets. Words are runs of Unicode letters, marks and digits of the NFC
text, so any script and accents count (``café`` stays ``café``). Two texts without a word score 0,
never 1: nothing recovered is no evidence of leakage, and a 1.0 would reward empty outputs.
Intervals resample targets, or whole clusters of targets when the split declares groups.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import regex

from bench.vectors import cosine_rows  # noqa: F401 - also importable from here, as before

WORD_RE = regex.compile(r"[\p{L}\p{M}\p{N}]+")  # a word: a run of letters, marks, digits (any script)


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
    corpus: bool = False  # a corpus-level value (not the mean of per-sample scores)

    def matches(self, base: str) -> bool:
        return fnmatch.fnmatchcase(base, self.name) if self.name.endswith("*") else base == self.name


SHARED_METRICS: tuple[Metric, ...] = (
    Metric("word_precision", True, "share of the reconstruction's words that are in the target"),
    Metric("word_recall", True, "share of the target's words found in the reconstruction"),
    Metric("word_f1", True, "F1 of the reconstruction's and the target's word sets"),
    Metric("bleu", True, "Vec2Text's BLEU: sacrebleu BLEU (defaults) of each reconstruction against its target, averaged (0-100)"),
    Metric("corpus_bleu", True, "sacrebleu corpus BLEU: the n-gram counts of every pair pooled into one value (0-100)", corpus=True),
    Metric("rouge_l", True, "ROUGE-L F-measure of the reconstruction against the target"),
    Metric("token_f1", True, "Vec2Text's token F1: F1 of the reconstruction's and the target's sets of word tokens (case kept)"),
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


def tokens(text: str) -> list[str]:
    """The word tokens of a text, case kept (Vec2Text's token F1 does not fold case): runs of Unicode
    letters, marks and digits of its NFC form; punctuation is no token."""
    return WORD_RE.findall(unicodedata.normalize("NFC", text))


def nfc_fold(text: str) -> str:
    """NFC form, case folded: how texts are compared for an exact match."""
    return unicodedata.normalize("NFC", text.casefold())


def words(text: str) -> list[str]:
    """The case-folded word tokens of a text (word P/R/F1, PII recovery, bag-of-words vocabularies)."""
    return WORD_RE.findall(nfc_fold(text))


def set_prf(pred: set[str], truth: set[str]) -> tuple[float, float, float]:
    """Precision, recall, F1 of a predicted set against a true one; all 0 when either is empty
    (two empty sets share nothing: no evidence of recovery)."""
    hit = len(pred & truth)
    p = hit / len(pred) if pred else 0.0
    r = hit / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def token_f1(pred: str, truth: str) -> float:
    """Vec2Text's ``token_set_f1``: 2|P & T| / (|P| + |T|) over the sets of word tokens (case kept);
    0 when neither text has a word."""
    return set_prf(set(tokens(pred)), set(tokens(truth)))[2]


def bleu_scorer():
    """sacrebleu BLEU as Vec2Text's evaluation calls it (``evaluate.load("sacrebleu")`` defaults:
    13a tokens, exponential smoothing, no effective order, case kept)."""
    from sacrebleu.metrics import BLEU

    return BLEU()


def bleu_stats(outputs: list[str], targets: list[str]) -> np.ndarray:
    """Per pair: its 4 matching n-gram counts, 4 n-gram totals, hypothesis and reference length
    (the sufficient statistics of BLEU, so corpus BLEU can be bootstrapped without recomputing)."""
    bleu = bleu_scorer()
    rows = []
    for out, truth in zip(outputs, targets):
        s = bleu.corpus_score([out], [[truth]])
        rows.append([*s.counts, *s.totals, s.sys_len, s.ref_len])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 10)


def bleu_from_stats(stats: np.ndarray) -> float:
    """BLEU (0-100) of summed statistics (one row per pair, see ``bleu_stats``)."""
    from sacrebleu.metrics import BLEU

    t = np.asarray(stats, dtype=np.float64).sum(axis=0)
    return float(BLEU.compute_bleu([int(x) for x in t[:4]], [int(x) for x in t[4:8]], int(t[8]), int(t[9]),
                                   smooth_method="exp").score)


def corpus_bleu(outputs: list[str], targets: list[str], seed: int = 0, groups: list[str] | None = None) -> dict[str, Any]:
    """Corpus BLEU (one value over every pair) with a bootstrap 95% CI over the pairs (or their
    clusters): the summary ``summarize`` gives a per-sample metric."""
    stats = bleu_stats(outputs, targets)
    if not len(stats):
        return {}
    lo, hi = bootstrap_ci(stats, seed=seed, groups=groups, statistic=bleu_from_stats)
    return {"value": bleu_from_stats(stats), "ci_low": lo, "ci_high": hi, "higher_is_better": True, "n": int(len(stats))}


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_boot: int = 1000, alpha: float = 0.05,
                 groups: list[str] | None = None, statistic=None) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of the mean of ``values`` (or of ``statistic(rows)``).

    With ``groups`` (one cluster label per value) it is a cluster bootstrap: each draw resamples
    whole clusters with replacement and keeps all their items, so items of one cluster (WordNet
    examples of one synset) do not count as independent evidence.
    """
    values = np.asarray(values, dtype=np.float64)
    stat = statistic or (lambda rows: float(rows.mean()))
    if len(values) < 2 or (groups is not None and len(set(groups)) < 2):
        v = stat(values) if len(values) else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    if groups is None:
        members = None
    else:
        if len(groups) != len(values):
            raise ValueError(f"{len(groups)} group labels for {len(values)} values")
        index: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            index.setdefault(str(g), []).append(i)
        members = [np.asarray(m) for m in index.values()]
    draws = np.empty(n_boot)
    if statistic is None and members is None:
        for i in range(0, n_boot, 100):  # chunks keep memory flat for large n
            idx = rng.integers(0, len(values), size=(min(100, n_boot - i), len(values)))
            draws[i : i + len(idx)] = values[idx].mean(axis=1)
    elif statistic is None:  # cluster means from per-cluster sums and sizes
        sums = np.array([values[m].sum() for m in members])
        sizes = np.array([len(m) for m in members], dtype=np.float64)
        for i in range(0, n_boot, 100):
            idx = rng.integers(0, len(members), size=(min(100, n_boot - i), len(members)))
            draws[i : i + len(idx)] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    else:
        for i in range(n_boot):
            if members is None:
                idx = rng.integers(0, len(values), size=len(values))
            else:
                idx = np.concatenate([members[g] for g in rng.integers(0, len(members), size=len(members))])
            draws[i] = stat(values[idx])
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def ci_method(groups: list[str] | None) -> dict[str, Any]:
    """What a record says of its intervals: ``{"ci_method": "bootstrap" | "cluster-bootstrap",
    "ci_groups": clusters or None}``."""
    if groups is None:
        return {"ci_method": "bootstrap", "ci_groups": None}
    return {"ci_method": "cluster-bootstrap", "ci_groups": len(set(groups))}


def summarize(per_sample: dict[str, list[float]], higher: dict[str, bool | None], seed: int = 0,
              groups: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Mean and bootstrap CI per metric (None values left out, with their group labels); ``higher``
    gives each direction (see ``directions``); ``groups`` (one per sample) makes it a cluster bootstrap."""
    out = {}
    for name, vals in per_sample.items():
        keep = [i for i, v in enumerate(vals) if v is not None]
        arr = np.asarray([vals[i] for i in keep], dtype=np.float64)
        if not len(arr):
            continue
        lo, hi = bootstrap_ci(arr, seed=seed, groups=[groups[i] for i in keep] if groups is not None else None)
        out[name] = {
            "value": float(arr.mean()),
            "ci_low": lo,
            "ci_high": hi,
            "higher_is_better": higher[name],
            "n": int(len(arr)),
        }
    return out


def paired_difference_ci(a: list[float | None], b: list[float | None], seed: int = 0,
                         groups: list[str] | None = None) -> tuple[float, float] | None:
    """Bootstrap 95% CI of mean(a - b) over the samples both score (paired: same targets, same
    draws), clustered when ``groups`` is given; None when no sample has both."""
    keep = [i for i, (x, y) in enumerate(zip(a, b)) if x is not None and y is not None]
    if not keep:
        return None
    diff = np.asarray([a[i] - b[i] for i in keep], dtype=np.float64)
    return bootstrap_ci(diff, seed=seed, groups=[groups[i] for i in keep] if groups is not None else None)


def at_chance(per_sample: dict[str, list[float | None]], floor_per_sample: dict[str, list[float | None]],
              higher: dict[str, bool | None], seed: int = 0, groups: list[str] | None = None) -> list[str]:
    """The leakage metrics (higher is better) not shown to beat the chance floor: those whose
    paired-difference CI (attack minus floor, on the same targets) has its lower bound at or below
    0. A value below the floor is at chance too."""
    out = []
    for name in sorted(set(per_sample) & set(floor_per_sample)):
        if higher.get(name) is not True:
            continue
        ci = paired_difference_ci(per_sample[name], floor_per_sample[name], seed=seed, groups=groups)
        if ci is not None and ci[0] <= 0:
            out.append(name)
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

        bleu = bleu_scorer()
        rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    for i, (out, truth) in enumerate(zip(outputs, targets)):
        pred_words = set(out) if output_kind == "words" else set(words(out))
        p, r, f = set_prf(pred_words, set(words(truth)))
        row = {"word_precision": p, "word_recall": r, "word_f1": f}
        if output_kind == "text":
            row["bleu"] = bleu.corpus_score([out], [[truth]]).score  # one pair alone, as Vec2Text scores a sample
            row["rouge_l"] = rouge.score(truth, out)["rougeL"].fmeasure
            row["token_f1"] = token_f1(out, truth)
            row["exact_match"] = float(" ".join(nfc_fold(out).split()) == " ".join(nfc_fold(truth).split()))
        if meta and meta[i].get("entities"):
            for label, v in pii_recovery(pred_words, meta[i]["entities"]).items():
                row[f"pii_{label}"] = v
        rows.append(row)
    return rows
