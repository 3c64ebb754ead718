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
