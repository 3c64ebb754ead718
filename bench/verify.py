"""Checks that a record's numbers are what its samples file says, and that a re-run matches them.

A digest proves only that a file was not edited after sealing; anyone can re-seal an edited record.
These checks tie the numbers to the evidence: each per-sample metric's value must be the mean of the
samples file's scores (and its ``n`` their count), a corpus-level metric must recompute from the
samples' texts, and every value must lie in its own CI. ``compare`` then holds a re-run against the
published values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.results import MetricValue, ResultRecord

REL_TOL = 1e-6  # recomputed means: float noise only
CI_TOL = 1e-9  # float noise at a CI's edges


def close(a: float, b: float, tol: float = REL_TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def in_ci(m: MetricValue, value: float | None = None) -> bool:
    v = m.value if value is None else value
    lo = m.ci_low if m.ci_low is not None else m.value
    hi = m.ci_high if m.ci_high is not None else m.value
    return lo - CI_TOL * max(1.0, abs(lo)) <= v <= hi + CI_TOL * max(1.0, abs(hi))


def read_samples(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BenchError(f"{path}: not a readable samples file ({e}): restore it from the submission") from None


def sample_problems(rec: ResultRecord, samples: list[dict] | None) -> list[str]:
    """What in the record its samples do not support (empty: every number checks out).

    Without a samples file only the CIs can be checked (the caller says whether one is required).
    """
    from bench.metrics import corpus_bleu, resolve

    problems = []
    for group, metrics in (("", rec.metrics), ("floor ", rec.floor), ("utility ", rec.utility)):
        for name, m in metrics.items():
            if not in_ci(m):
                problems.append(f"{group}{name} = {m.value:.6g} lies outside its own 95% CI [{m.ci_low}, {m.ci_high}]")
    if samples is None:
        return problems
    if rec.limit is not None and len(samples) > rec.limit:
        problems.append(f"the samples file has {len(samples)} rows, more than the record's limit {rec.limit}")
    for name, m in rec.metrics.items():
        decl = resolve(name)
        if decl is not None and decl.corpus:
            if name == "corpus_bleu" and all(isinstance(s.get("reconstruction"), str) for s in samples):
                got = corpus_bleu([s["reconstruction"] for s in samples], [s["target"] for s in samples])["value"]
                if not close(got, m.value):
                    problems.append(f"{name} = {m.value:.6g} but the samples' texts give {got:.6g}")
            continue
        vals = [s.get("scores", {}).get(name) for s in samples]
        vals = [v for v in vals if v is not None]
        if not vals:
            problems.append(f"{name} has no per-sample scores in the samples file: a value must come with its evidence")
            continue
        mean = float(np.mean(np.asarray(vals, dtype=np.float64)))
        if not close(mean, m.value):
            problems.append(f"{name} = {m.value:.6g} is not the mean of its samples file's scores ({mean:.6g})")
        elif m.n and m.n != len(vals):
            problems.append(f"{name} says n = {m.n} but the samples file scores {len(vals)}")
    return problems
