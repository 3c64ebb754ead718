"""The result record: one versioned model documents every key; atomic, never-overwritten files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from bench.api import ThreatModel
from bench.cache import atomic_write_bytes

SCHEMA_VERSION = 2


class MetricValue(BaseModel):
    value: float = Field(description="mean over samples (or the corpus-level value)")
    ci_low: float | None = Field(None, description="bootstrap 95% CI, lower bound")
    ci_high: float | None = Field(None, description="bootstrap 95% CI, upper bound")
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


class Provenance(BaseModel):
    package_version: str
    git_commit: str | None = None
    date: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    python: str = ""
    libraries: dict[str, str] = {}
    device: str = "cpu"
    wall_time_s: float = 0.0
    victim_queries: int = Field(0, description="texts the attacker sent to the victim")
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
    threat_model: ThreatModel
    metrics: dict[str, MetricValue] = {}
    headline: list[str] | None = Field(None, description="the attack's headline metrics, what tables show (None: all)")
    utility: dict[str, MetricValue] = {}
    models: list[ModelInfo] = []
    all_pretrained: bool = True
    victim_fingerprint: dict[str, Any] = {}
    dataset_info: dict[str, Any] = Field({}, description="what the dataset says of its source: version, file hashes, counts")
    provenance: Provenance
    samples_file: str | None = Field(None, description="per-sample JSONL next to this record")


def cell_stem(record: ResultRecord) -> str:
    return f"{record.attack.name}__{record.defense.name}__{record.embedder.name}__{record.dataset.name}__s{record.seed}__{record.cell_id}"


def record_path(out_dir: Path, cell_id: str) -> Path | None:
    """The finished record of a cell, if there is one."""
    hits = sorted(Path(out_dir).glob(f"*__{cell_id}.json"))
    return hits[0] if hits else None


def write_record(out_dir: Path, record: ResultRecord, samples: list[dict] | None) -> Path:
    """Write the samples, then the record (the record's presence marks the cell done).

    Failed cells are written with a timestamp so a retry never replaces the earlier error.
    """
    out_dir = Path(out_dir)
    stem = cell_stem(record)
    if record.status == "error":
        stem += "__error-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    if samples is not None:
        name = f"{stem}.samples.jsonl"
        body = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
        atomic_write_bytes(out_dir / name, body.encode())
        record = record.model_copy(update={"samples_file": name})
    path = out_dir / f"{stem}.json"
    atomic_write_bytes(path, record.model_dump_json(indent=2).encode())
    return path


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
MIGRATIONS: dict[int, Any] = {1: _v1_to_v2}


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
    """A record from its file (or its parsed JSON), migrated to the current schema. ``attacks``
    (attack name -> class, e.g. ``lambda n: host.entry("attacks", n).cls``) lets a migration read
    the attack's metric declarations."""
    data = data if data is not None else json.loads(Path(path).read_text())
    return ResultRecord.model_validate(migrate(data, AttackInfo(attacks)))


def load_records(paths: list[Path], include_errors: bool = False, attacks=None) -> list[ResultRecord]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(q for q in p.rglob("*.json")) if p.is_dir() else [p])
    records = []
    for f in files:
        if f.name.startswith("."):
            continue
        data = json.loads(f.read_text())
        if not (isinstance(data, dict) and "cell_id" in data):
            continue  # not a result record (e.g. a leaderboard.json under the same folder)
        records.append(load_record(data=data, attacks=attacks))
    return [r for r in records if include_errors or r.status == "ok"]
