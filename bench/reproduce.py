"""Re-run the cell a record describes (same configuration, seed, data and target limit) and say,
metric by metric, whether the new value equals the published one (within ``REL_TOL``: a
deterministic cell), else whether it lies within the record's 95% CI. Before re-running, the record
itself is checked against its samples file (``bench.verify``)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.results import ResultRecord, load_record

TOL = 1e-9  # float noise at the CI's edges
REL_TOL = 1e-6  # a re-run of a deterministic cell gives the published value up to this (relative)


@dataclass
class Check:
    metric: str
    published: float
    ci_low: float | None
    ci_high: float | None
    reproduced: float | None

    @property
    def equal(self) -> bool:
        """The re-run gives the published value (deterministic cells must)."""
        if self.reproduced is None:
            return False
        return abs(self.reproduced - self.published) <= REL_TOL * max(1.0, abs(self.published))

    @property
    def verdict(self) -> str:
        return "equal" if self.equal else "within CI" if self.within else "OUTSIDE CI"

    @property
    def within(self) -> bool:
        if self.reproduced is None:
            return False
        lo = self.ci_low if self.ci_low is not None else self.published
        hi = self.ci_high if self.ci_high is not None else self.published
        return lo - TOL <= self.reproduced <= hi + TOL


KEY_RUNS = 3  # re-runs, each under a fresh secret key, that a secret-key cell is verified against
KEY_LEVEL = 0.99  # the prediction interval's level


@dataclass
class KeyCheck:
    """A secret-key cell's metric: the published value held against re-runs under fresh keys.

    The published run is one more draw of the key: it must lie in the ``KEY_LEVEL`` prediction
    interval of the re-runs' values (Student t, ``mean ± t·s·sqrt(1 + 1/R)``). The targets are the
    same in every run, so the spread between keys, not the target bootstrap, is what a re-run can differ by."""

    metric: str
    published: float
    reruns: list[float | None]

    @property
    def interval(self) -> tuple[float, float] | None:
        vals = [v for v in self.reruns if v is not None]
        if len(vals) < 2 or len(vals) < len(self.reruns):
            return None
        return key_interval(vals)

    @property
    def ok(self) -> bool:
        iv = self.interval
        return iv is not None and iv[0] <= self.published <= iv[1]

    @property
    def verdict(self) -> str:
        return "inside the keys' interval" if self.ok else "OUTSIDE the keys' interval" if self.interval else "missing"


def key_interval(values: list[float], level: float = KEY_LEVEL) -> tuple[float, float]:
    """The ``level`` prediction interval for one more run under a fresh key, from runs' values."""
    import numpy as np
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    r = len(v)
    m, sd = float(v.mean()), float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, r - 1)) * sd * (1 + 1 / r) ** 0.5 + REL_TOL * max(1.0, abs(m))
    return m - half, m + half


def compare_keys(old: ResultRecord, news: list[ResultRecord]) -> list[KeyCheck]:
    """Per metric of ``old``, its value against the re-runs' (each under another secret key)."""
    per = [compare(old, n) for n in news]
    return [KeyCheck(c.metric, c.published, [p[i].reproduced for p in per]) for i, c in enumerate(per[0])] if per else []


def reproduce_keys(host, path: Path, runs: int = KEY_RUNS, say=lambda msg: None, **kw) -> tuple[list[KeyCheck], list[ResultRecord]]:
    """Re-run a secret-key cell ``runs`` times (each run draws its own key) and compare (``KeyCheck``)."""
    if runs < 2:
        raise BenchError(f"a secret-key cell needs at least 2 re-runs to measure the spread between keys, got {runs}")
    news = []
    for k in range(runs):
        say(f"re-run {k + 1}/{runs} under a fresh secret key")
        news.append(reproduce(host, path, say=say, **kw)[1])
    old = load_record(Path(path), attacks=lambda n: host.entry("attacks", n).cls)
    return compare_keys(old, news), news


def compare(old: ResultRecord, new: ResultRecord) -> list[Check]:
    checks = []
    for prefix, a, b in (("", old.metrics, new.metrics), ("utility:", old.utility, new.utility), ("floor:", old.floor, new.floor)):
        for name, m in a.items():
            got = b.get(name)
            checks.append(Check(prefix + name, m.value, m.ci_low, m.ci_high, got.value if got else None))
    return checks


def reproduce(host, path: Path, device: str = "cpu", cache_dir: Path | None = None, out: Path | None = None,
              progress: bool = False, say=lambda msg: None) -> tuple[list[Check], ResultRecord]:
    """Re-run the record's cell; returns the per-metric checks and the new record (kept in ``out`` if given)."""
    from bench.grid import Cell
    from bench.results import record_path
    from bench.runner import Runner
    from bench.settings import Settings
    from bench.verify import read_samples, sample_problems

    rec = load_record(Path(path), attacks=lambda n: host.entry("attacks", n).cls)  # digest-checked
    samples_path = Path(path).parent / rec.samples_file if rec.samples_file else None
    samples = read_samples(samples_path) if samples_path is not None and samples_path.exists() else None
    problems = sample_problems(rec, samples) if rec.status == "ok" else []
    if problems:
        raise BenchError(f"{path}: the record's numbers are not what its samples file says ({problems[0]}"
                         f"{f'; +{len(problems) - 1} more' if len(problems) > 1 else ''}): it cannot be reproduced as published")
    if samples is None:
        say("note: no samples file beside the record: its means could not be checked against per-sample scores")
    if out and record_path(Path(out), rec.cell_id) is not None:
        raise BenchError(f"{out} already holds a record of cell {rec.cell_id}: pass another --out folder")
    if rec.status != "ok":
        raise BenchError(f"record {rec.cell_id} is an error record: there are no metrics to reproduce")
    cell = Cell.from_config(host, rec)  # the same function the runner's grid and the job specs use
    if not cache_dir:
        say("recomputing everything in a fresh cache (embeddings, trained attack); --cache-dir reuses one")
    if cell.cell_id != rec.cell_id:
        say(f"note: the installed plugins give this configuration cell id {cell.cell_id} (record: {rec.cell_id}); "
            "a plugin's parameters changed since the record was written")
    for kind, comp in (("attacks", rec.attack), ("defenses", rec.defense), ("embedders", rec.embedder), ("datasets", rec.dataset)):
        entry = host.entry(kind, comp.name)
        if comp.version and entry.version != comp.version:
            say(f"note: {kind[:-1]} {comp.name!r} is plugin {entry.plugin} {entry.version} here, {comp.version} in the record")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(device=device, progress=progress, query_budget=rec.threat_model.query_budget,
                            fit_query_budget=rec.threat_model.fit_query_budget, isolate=rec.threat_model.isolated,
                            fluency="perplexity" in rec.metrics,
                            cache_dir=Path(cache_dir) if cache_dir else Path(tmp) / "cache")
        runner = Runner(host, Path(out) if out else Path(tmp) / "out", settings=settings)
        (new,) = runner.run(runner.prepare([cell]))
    if new.status != "ok":
        raise BenchError(f"the re-run of cell {rec.cell_id} failed: {new.error}")
    return compare(rec, new), new
