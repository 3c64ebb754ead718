"""The result record: one versioned model documents every key; atomic, never-overwritten files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from bench.api import ThreatModel
from bench.cache import atomic_write_bytes
from bench.errors import BenchError, one_line

SCHEMA_VERSION = 4
DIGEST_SINCE = 3  # records of this schema on must carry a digest


class MetricValue(BaseModel):
    value: float = Field(description="mean over samples (or the corpus-level value)")
    ci_low: float | None = Field(None, description="bootstrap 95% CI, lower bound (the record's ci_method)")
    ci_high: float | None = Field(None, description="bootstrap 95% CI, upper bound (the record's ci_method)")
    higher_is_better: bool | None = Field(
        True, description="the metric's declared direction: None for a reference level that ranks nothing (a chance level)"
    )
    n: int = Field(0, description="samples the value is computed over")


class ComponentConfig(BaseModel):
    name: str
    params: dict[str, Any] = {}
    plugin: str = Field("", description="the plugin that registered it")
    version: str = Field("", description="that plugin's version")


class ModelInfo(BaseModel):
    role: str = Field(description="victim, attack, ...")
    name: str
    pretrained: bool = Field(description="False for randomly initialised models: numbers are not findings")
    weights: str | None = Field(None, description="'shipped': trained weights shipped with the package, not trained in this cell")
    weights_sha256: str | None = Field(None, description="sha256 of the shipped weights file")
    training: dict[str, Any] | None = Field(None, description="the shipped weights' training scale (data, steps, epochs, time) and architecture (which replaces the attack's defaults)")


class Provenance(BaseModel):
    package_version: str
    git_commit: str | None = None
    date: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    python: str = ""
    libraries: dict[str, str] = {}
    device: str = "cpu"
    wall_time_s: float = 0.0
    victim_queries: int = Field(0, description="texts the attacker sent to the victim: fit + alignment + inference (see ResultRecord.queries)")
    victim_embed_s: float = Field(0.0, description="seconds spent embedding (0 when all came from cache)")
    gpu_seconds: float = 0.0


class ResultRecord(BaseModel):
    """One benchmark cell: attack x defense x embedder x dataset x seed."""

    schema_version: int = SCHEMA_VERSION
    cell_id: str
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    attack: ComponentConfig
    defense: ComponentConfig
    embedder: ComponentConfig
    dataset: ComponentConfig
    seed: int
    limit: int | None = Field(None, description="only the first N targets were evaluated (None: all)")
    query_budget: int | None = Field(
        None, description="the cell's configured query budget per target (part of its id; threat_model.query_budget is the one applied)"
    )
    fit_query_budget: int | None = Field(
        None, description="the cell's configured fit query budget in total (part of its id; threat_model.fit_query_budget is the one applied)"
    )
    command: str | None = Field(None, description="the `bench run` command that made the record, shell-quoted, secrets redacted (None: the API)")
    threat_model: ThreatModel
    metrics: dict[str, MetricValue] = {}
    headline: list[str] | None = Field(None, description="the attack's headline metrics, what tables show (None: all)")
    utility: dict[str, MetricValue] = {}
    split: str = Field("target", description="the split whose texts were attacked and scored (target, or dev for tuning)")
    ci_method: str = Field("bootstrap", description="how CIs were drawn: bootstrap (targets resampled) or cluster-bootstrap (their groups)")
    ci_groups: int | None = Field(None, description="cluster-bootstrap: the number of groups (clusters) among the targets")
    floor: dict[str, MetricValue] = Field(
        {}, description="text attacks: the chance floor (bench.floor's constant text) scored on exactly these targets"
    )
    at_chance: list[str] = Field(
        [], description="leakage metrics whose paired difference with the floor (attack minus floor, same targets) has a 95% CI reaching 0 or below"
    )
    models: list[ModelInfo] = []
    all_pretrained: bool = True
    victim_fingerprint: dict[str, Any] = {}
    dataset_info: dict[str, Any] = Field({}, description="what the dataset says of its source: version, file hashes, counts")
    defense_info: dict[str, Any] = Field(
        {}, description="calibrated privacy parameters (e.g. the DP noise scale) and, for a fitted defense, the data it was fitted on"
    )
    alignment: dict[str, Any] | None = Field(
        None, description="via= attacks: the map from the victim's space into the attacker's own (method, pairs, held-out cosine)"
    )
    queries: dict[str, Any] | None = Field(
        None,
        description="the cell's query ledger: victim queries by phase (fit, alignment, inference; "
        "inference_per_target_mean / _max; scoring: the attack's re-embeddings after its outputs were fixed, "
        "not charged), total (= provenance.victim_queries) and whom they were asked of (victim, or the own embedder of via)",
    )
    provenance: Provenance
    samples_file: str | None = Field(None, description="per-sample JSONL next to this record")
    samples_sha256: str | None = Field(None, description="sha256 of the samples file's bytes")
    digest: str | None = Field(None, description="sha256 of every other key (canonical JSON), written at creation")


def cell_stem(record: ResultRecord) -> str:
    return f"{record.attack.name}__{record.defense.name}__{record.embedder.name}__{record.dataset.name}__s{record.seed}__{record.cell_id}"


def record_path(out_dir: Path, cell_id: str) -> Path | None:
    """The finished record of a cell, if there is one."""
    hits = sorted(Path(out_dir).glob(f"*__{cell_id}.json"))
    return hits[0] if hits else None


def content_digest(data: dict) -> str:
    """sha256 of a record's JSON without its ``digest`` key (sorted keys, no white space)."""
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def sealed_json(record: ResultRecord) -> bytes:
    """The record's file content, with its digest computed over exactly what is written."""
    data = json.loads(record.model_dump_json())
    data["digest"] = content_digest(data)
    return json.dumps(data, indent=2, ensure_ascii=False).encode()


def write_record(out_dir: Path, record: ResultRecord, samples: list[dict] | None) -> Path:
    """Write the samples, then the record (the record's presence marks the cell done).

    A samples file without its record is debris of an interrupted write and is replaced; a record
    is never replaced. The record carries the sha256 of its samples file and a digest of its own
    content, so an edited number or samples file is refused on load. Failed cells are written with
    a timestamp so a retry never replaces the earlier error. Callers hold the cell's lock
    (``Runner.run``), so no other process writes these names.
    """
    out_dir = Path(out_dir)
    stem = cell_stem(record)
    if record.status == "error":
        stem += "__error-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    if samples is not None:
        name = f"{stem}.samples.jsonl"
        body = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples).encode()
        atomic_write_bytes(out_dir / name, body, overwrite=True)  # debris of a crash is replaced
        record = record.model_copy(update={"samples_file": name, "samples_sha256": hashlib.sha256(body).hexdigest()})
    path = out_dir / f"{stem}.json"
    atomic_write_bytes(path, sealed_json(record))
    return path


def check_digest(data: dict, path: Path | None = None) -> None:
    """Refuse (BenchError naming the file) a record whose content or samples file was changed.

    Records before schema ``DIGEST_SINCE`` have no digest and pass; a newer one without it fails.
    """
    where = str(path) if path else f"record {data.get('cell_id', '?')}"
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version < DIGEST_SINCE:
        return
    if not data.get("digest"):
        raise BenchError(f"{where}: record has no content digest: records are written by `bench run`; re-run the cell")
    if content_digest(data) != data["digest"]:
        raise BenchError(f"{where}: record content does not match its digest (edited after it was written): restore it or re-run the cell")
    if path and data.get("samples_file") and data.get("samples_sha256"):
        samples = Path(path).parent / data["samples_file"]
        if samples.exists() and hashlib.sha256(samples.read_bytes()).hexdigest() != data["samples_sha256"]:
            raise BenchError(f"{samples}: samples file does not match its record's digest (edited or truncated): restore it or re-run the cell")


class AttackInfo:
    """What a migration may ask of the attack that wrote a record: its metric declarations and
    headline (from the plugin registry; None when the attack is not installed)."""

    def __init__(self, lookup=None):
        self._lookup = lookup  # attack name -> Attack class, or None

    def cls(self, attack: str):
        try:
            return self._lookup(attack) if self._lookup else None
        except Exception:  # noqa: BLE001 - an attack that is not installed: shared declarations only
            return None


def _v1_to_v2(data: dict, attacks: AttackInfo) -> dict:
    """Schema 1 stored every metric as higher-is-better and no headline: take both from the
    declarations (the attack's own when it is installed, else the shared ones; an undeclared
    metric keeps its stored direction)."""
    from bench.metrics import resolve

    cls = attacks.cls((data.get("attack") or {}).get("name", ""))
    declared = tuple(getattr(cls, "metrics", ())) if cls else ()
    for group in ("metrics", "utility"):
        for name, m in (data.get(group) or {}).items():
            decl = resolve(name, declared)
            if decl is not None:
                m["higher_is_better"] = decl.higher_is_better
    if "headline" not in data:
        head = getattr(cls, "headline", None) if cls else None
        data["headline"] = list(head) if head is not None else None
    return data


# Each migration takes a record dict at version v (and the attack lookup) and returns it at v + 1.
def _v2_to_v3(data: dict, attacks: AttackInfo) -> dict:
    """Schema 3 adds ``samples_sha256`` and ``digest``; older records have neither (None)."""
    return data


def _v3_to_v4(data: dict, attacks: AttackInfo) -> dict:
    """Schema 4 adds ``command`` (None: unknown), the cell's own ``query_budget`` and
    ``fit_query_budget`` (a schema 3 cell's per-target budget is the applied one unless the attack
    set its own: then the cell's was most likely none; ``bench reproduce`` says so when the rebuilt
    id differs), ``queries`` (the ledger by phase; empty before it existed), and the threat model's
    ``fit_query_budget`` and ``isolated``; ``split``, ``ci_method``/``ci_groups``, ``floor`` and
    ``at_chance`` (a schema-3 record evaluated the target split with a plain bootstrap and measured
    no floor: the defaults); a model's ``weights``/``weights_sha256``/``training``."""
    data.setdefault("command", None)
    data.setdefault("fit_query_budget", None)
    if "query_budget" not in data:
        own = ((data.get("attack") or {}).get("params") or {}).get("query_budget")
        data["query_budget"] = None if own is not None else (data.get("threat_model") or {}).get("query_budget")
    return data


MIGRATIONS: dict[int, Any] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


def migrate(data: dict, attacks: AttackInfo | None = None) -> dict:
    version = int(data.get("schema_version", 0))
    if version > SCHEMA_VERSION:
        raise ValueError(f"record schema {version} is newer than this bench ({SCHEMA_VERSION}): upgrade inversion-bench")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data, attacks or AttackInfo())
        version += 1
        data["schema_version"] = version
    return data


def load_record(path: Path | None = None, data: dict | None = None, attacks=None) -> ResultRecord:
    """A record from its file (or its parsed JSON), digest-checked and migrated to the current
    schema; a file that is not a readable record is a one-line BenchError naming it. ``attacks``
    (attack name -> class, e.g. ``lambda n: host.entry("attacks", n).cls``) lets a migration read
    the attack's metric declarations."""
    if data is None:
        data = read_json(path)
    where = f"record {path}" if path else "a record"
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BenchError(f"{where}: record schema {version!r} is newer than this bench ({SCHEMA_VERSION}): upgrade inversion-bench")
    check_digest(data, path)
    try:
        data = migrate(json.loads(json.dumps(data)), AttackInfo(attacks))  # a copy: migrations edit it
        return ResultRecord.model_validate(data)
    except ValueError as e:
        raise BenchError(f"{where} is not a valid result record ({one_line(e, 160)}): restore it, or delete it to recompute the cell") from None


def read_json(path: Path) -> Any:
    """The parsed JSON of a result file; a truncated or unreadable one is a BenchError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise BenchError(f"{path}: not a readable result record ({one_line(e, 120)}): restore it, or delete it to recompute the cell") from None


def record_files(paths: list[Path]) -> list[Path]:
    """Every ``*.json`` under the given files and folders; hidden files and folders (``.grid/``
    manifests and cell specs, ``.locks/``) hold no records and are skipped."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.json") if not any(s.startswith(".") for s in q.relative_to(p).parts)))
        else:
            files.append(p)
    return files


def iter_records(paths: list[Path], attacks=None) -> Iterator[tuple[Path, ResultRecord]]:
    """(file, digest-checked record) for every result record under ``paths``; other JSON files
    (e.g. a leaderboard.json under the same folder) are passed over."""
    for f in record_files(paths):
        data = read_json(f)
        if isinstance(data, dict) and "cell_id" in data:
            yield f, load_record(f, data=data, attacks=attacks)


def load_records(paths: list[Path], include_errors: bool = False, attacks=None) -> list[ResultRecord]:
    """The records under ``paths``, each cell once (the same cell in two folders is one row)."""
    records: dict[str, ResultRecord] = {}
    for f, rec in iter_records(paths, attacks):
        key = rec.cell_id if rec.status == "ok" else f"{rec.cell_id}/{f.name}"
        records.setdefault(key, rec)
    return [r for r in records.values() if include_errors or r.status == "ok"]
