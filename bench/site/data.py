"""What a board's pages show, computed from its records alone (no plugin needs to be installed).

One board is a folder ``NAME/`` holding ``records/*.json`` (digest-checked result records, with
their per-sample JSONL when published) and optionally ``board.json`` (version and changelog, written
by ``bench leaderboard add``). Everything here is plain data; ``bench.site.render`` turns it into HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.leaderboard import headline_of, metric_order, natural_key
from bench.results import ResultRecord, iter_records

UTILITY_PREFERRED = ("ndcg@10", "recall@10")
# How a swept parameter is called on an axis (others keep their own name).
AXIS_LABELS = {
    "scale": "noise level λ",
    "bits": "bits per coordinate",
    "max_train": "attacker training sentences",
    "pairs": "leaked alignment pairs",
    "query_budget": "query budget (victim queries)",
    "leaked_pairs": "leaked pairs",
    "attacker": "attacker corpus size",
    "num_steps": "correction steps",
    "k": "retrieved tags k",
}


@dataclass
class Cell:
    """One record and where it lies."""

    record: ResultRecord
    path: Path
    samples_path: Path | None

    @property
    def id(self) -> str:
        return self.record.cell_id


@dataclass
class Board:
    name: str
    folder: Path
    cells: list[Cell]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> list[ResultRecord]:
        return [c.record for c in self.cells]


def load_board(folder: Path) -> Board:
    """A board folder (or a folder of records): its records, each cell once, and its board.json."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"{folder} is not a board folder: pass leaderboards/NAME (holding records/*.json)")
    source = folder / "records" if (folder / "records").is_dir() else folder
    cells: dict[str, Cell] = {}
    attacks = attack_lookup()
    for f, rec in iter_records([source], attacks):
        if rec.status != "ok" or rec.cell_id in cells:
            continue
        samples = f.parent / rec.samples_file if rec.samples_file else None
        cells[rec.cell_id] = Cell(rec, f, samples if samples and samples.exists() else None)
    if not cells:
        raise BenchError(f"{folder} holds no finished result records: build it from `bench run --out DIR` records")
    meta = json.loads((folder / "board.json").read_text()) if (folder / "board.json").exists() else {}
    return Board(meta.get("name", folder.name), folder, list(cells.values()), meta)


def attack_lookup():
    """attack name -> installed class, so records of older schemas migrate with the attack's own
    metric declarations (directions, headline); None when the plugins cannot load."""
    try:
        from bench.plugins import Host

        host = Host()
    except Exception:  # noqa: BLE001 - without plugins, older records migrate with the shared declarations
        return None
    return lambda name: host.entry("attacks", name).cls


# ------------------------------------------------------------------ labels

def family(rec: ResultRecord) -> str:
    return rec.defense.name


def mode(rec: ResultRecord) -> str:
    return "adaptive" if rec.attack.params.get("adaptive") else "naive"


def params_text(params: dict, keys: list[str] | None = None) -> str:
    keys = [k for k in (keys if keys is not None else params) if k != "adaptive" and k in params]
    return ", ".join(f"{k}={params[k]}" for k in keys)


def varying_keys(dicts: list[dict]) -> list[str]:
    """Keys whose values differ between the given parameter dicts (what a sweep changed)."""
    keys = sorted({k for d in dicts for k in d} - {"adaptive"})
    return [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in dicts}) > 1]


def defense_label(rec: ResultRecord) -> str:
    p = params_text(rec.defense.params)
    return f"{rec.defense.name}({p})" if p else rec.defense.name


def short_defense(rec: ResultRecord, shown: dict[str, list[str]]) -> str:
    p = params_text(rec.defense.params, shown.get(rec.defense.name, []))
    return f"{rec.defense.name} {p}" if p else rec.defense.name


# ------------------------------------------------------------------ metrics

def leakage_metrics(board: Board) -> tuple[list[str], list[str]]:
    """(headline metrics in their declared order, every leakage metric: headline first, then natural order)."""
    names = sorted({m for r in board.records for m in r.metrics}, key=natural_key)
    head = headline_of(board.records, names)
    return head, metric_order(names, head)


def utility_metrics(board: Board) -> list[str]:
    names = {u for r in board.records for u in r.utility}
    return [u for u in UTILITY_PREFERRED if u in names] + sorted(names - set(UTILITY_PREFERRED), key=natural_key)


def directions(board: Board) -> dict[str, bool | None]:
    """metric -> higher_is_better as the records declare it (leakage: True, higher = more leaked;
    a cost: False; a reference level such as chance: None)."""
    out: dict[str, bool | None] = {}
    for r in board.records:
        for name, m in (*r.metrics.items(), *(("utility:" + k, v) for k, v in r.utility.items())):
            out.setdefault(name, m.higher_is_better)
    return out


def primary_leakage(board: Board) -> str | None:
    """The metric boards rank by: the first headline metric that has a direction."""
    head, every = leakage_metrics(board)
    dirs = directions(board)
    return next((m for m in [*head, *every] if dirs.get(m) is not None), None)


# ------------------------------------------------------------------ rows

def row_of(cell: Cell, shown_attack: dict[str, list[str]], shown_defense: dict[str, list[str]]) -> dict[str, Any]:
    r = cell.record
    row: dict[str, Any] = {
        "cell": r.cell_id,
        "attack": r.attack.name,
        "attack_params": params_text(r.attack.params, shown_attack.get(r.attack.name, [])),
        "mode": mode(r),
        "defense": short_defense(r, shown_defense),
        "defense_family": family(r),
        "embedder": r.embedder.name,
        "dataset": r.dataset.name,
        "seed": r.seed,
        "limit": r.limit,
        "pretrained": r.all_pretrained,
        "leaked_pairs": r.threat_model.leaked_pairs,
        "query_access": r.threat_model.query_access,
        "victim_queries": r.provenance.victim_queries,
        "wall_time_s": r.provenance.wall_time_s,
        "date": r.provenance.date[:10],
        "samples": cell.samples_path is not None,
        "m": {},
    }
    for prefix, group in (("", r.metrics), ("utility:", r.utility)):
        for name, m in group.items():
            row["m"][prefix + name] = [m.value, m.ci_low, m.ci_high]
    return row


def sweep_params(board: Board) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per attack and per defense: the parameters that vary on this board (what the table shows)."""
    attacks: dict[str, list[dict]] = {}
    defenses: dict[str, list[dict]] = {}
    for r in board.records:
        attacks.setdefault(r.attack.name, []).append(r.attack.params)
        defenses.setdefault(r.defense.name, []).append(r.defense.params)
    return ({a: varying_keys(ps) for a, ps in attacks.items()}, {d: varying_keys(ps) for d, ps in defenses.items()})


def rows(board: Board) -> list[dict[str, Any]]:
    """Table rows, ranked: strongest attack first by the primary leakage metric's direction."""
    shown_a, shown_d = sweep_params(board)
    out = [row_of(c, shown_a, shown_d) for c in board.cells]
    primary = primary_leakage(board)
    if primary:
        sign = -1 if directions(board).get(primary) else 1  # most leakage first

        def key(row: dict) -> tuple:
            value = row["m"].get(primary, [None])[0]
            return (value is None, sign * (value or 0.0))

        out.sort(key=key)
    return out


# ------------------------------------------------------------------ plots

def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def swept_axes(board: Board) -> list[dict[str, Any]]:
    """Leakage along each swept numeric axis: defense parameters (noise level, bits), attack parameters
    (attacker data size, leaked pairs, query budget) and threat-model counts.

    Each axis: ``{"key", "label", "log", "series": [{"name", "points": [[x, cell_id], ...]}]}``; a
    series is one (attack, mode, defense family) with every other setting fixed.
    """
    candidates: dict[tuple[str, str], dict[tuple, list[tuple[float, str]]]] = {}
    for c in board.cells:
        r = c.record
        sources = [("defense", r.defense.name, r.defense.params), ("attack", r.attack.name, r.attack.params),
                   ("threat", "", r.threat_model.model_dump())]
        for kind, owner, params in sources:
            for key, value in params.items():
                x = _num(value)
                if x is None or key == "seed":
                    continue
                # the series: everything else about the cell, this parameter left out
                rest = {
                    "attack": r.attack.name, "mode": mode(r), "defense": r.defense.name,
                    "a": {k: v for k, v in r.attack.params.items() if not (kind == "attack" and k == key)},
                    "d": {k: v for k, v in r.defense.params.items() if not (kind == "defense" and k == key)},
                    "t": {k: v for k, v in r.threat_model.model_dump().items() if not (kind == "threat" and k == key)},
                    "e": r.embedder.name, "ds": r.dataset.params, "seed": r.seed, "limit": r.limit,
                }
                if kind == "attack" and key == "pairs":
                    rest["t"].pop("leaked_pairs", None)
                series_key = json.dumps(rest, sort_keys=True, default=str)
                candidates.setdefault((kind, f"{owner}:{key}" if owner else key), {}).setdefault(series_key, []).append((x, r.cell_id))
    axes = []
    for (kind, key), series in candidates.items():
        swept = {k: sorted(v) for k, v in series.items() if len({x for x, _ in v}) > 1}
        if not swept:
            continue
        owner, _, param = key.rpartition(":")
        if kind == "threat" and any(a["key"].endswith(":pairs") for a in axes):
            continue  # the leaked-pairs count follows slime's `pairs`: one plot is enough
        xs = [x for pts in swept.values() for x, _ in pts]
        positive = [x for x in xs if x > 0]
        named = []
        for sk, pts in swept.items():
            s = json.loads(sk)
            name = f"{s['attack']} {s['mode']}"
            if kind != "defense":
                fixed = params_text(s["d"])
                name += f" vs {s['defense']}" + (f"({fixed})" if fixed else "")
            named.append({"name": name, "mode": s["mode"], "points": [[x, cid] for x, cid in pts]})
        named.sort(key=lambda s: natural_key(s["name"]))
        where = {"defense": f"defense {owner}", "attack": f"attack {owner}", "threat": "threat model"}[kind]
        axes.append({
            "key": key,
            "param": param,
            "label": f"{AXIS_LABELS.get(param, param)} ({where}: {param})",
            "log": bool(positive) and len(positive) == len(xs) and max(xs) / min(positive) >= 50,
            "series": named,
        })
    axes.sort(key=lambda a: (a["key"].split(":")[0] != "defense", natural_key(a["key"])))
    return axes


def pareto_front(points: list[tuple[float, float, str]]) -> list[str]:
    """Defender's Pareto front: ids of (utility, leakage, id) points no other point beats on both
    (utility at least as high and leakage at least as low, one strictly), by utility descending."""
    front = []
    for u, leak, pid in points:
        dominated = any((u2 >= u and l2 <= leak) and (u2 > u or l2 < leak) for u2, l2, _ in points)
        if not dominated:
            front.append((u, leak, pid))
    return [pid for _, _, pid in sorted(front, reverse=True)]


def defense_ranking(board: Board, metric: str | None = None, utility: str | None = None) -> list[dict[str, Any]]:
    """Defense settings ranked by leakage at their utility: each setting's worst-case leakage over
    every attack and mode on the board (the attacker picks its best), its utility, and whether it
    lies on the defender's Pareto front. Sorted by utility (best first)."""
    metric = metric or primary_leakage(board)
    utils = utility_metrics(board)
    utility = utility or (utils[0] if utils else None)
    if metric is None:
        return []
    higher = directions(board).get(metric, True)
    settings: dict[str, dict[str, Any]] = {}
    for c in board.cells:
        r = c.record
        if metric not in r.metrics:
            continue
        label = defense_label(r)
        leak = r.metrics[metric].value if higher else -r.metrics[metric].value
        s = settings.setdefault(label, {"defense": label, "family": family(r), "worst": None, "by": None, "cells": 0,
                                        "utility": r.utility[utility].value if utility and utility in r.utility else None})
        s["cells"] += 1
        if s["worst"] is None or leak > s["worst"]:
            s["worst"], s["by"] = leak, f"{r.attack.name} {mode(r)}"
    out = list(settings.values())
    for s in out:
        s["leakage"] = s.pop("worst") if higher else -s.pop("worst")
    scored = [(s["utility"], s["leakage"] if higher else -s["leakage"], s["defense"]) for s in out if s["utility"] is not None]
    front = set(pareto_front(scored))
    for s in out:
        s["pareto"] = s["defense"] in front
    out.sort(key=lambda s: (s["utility"] is None, -(s["utility"] or 0), natural_key(s["defense"])))
    return out


# ------------------------------------------------------------------ summary + samples

def summary(board: Board) -> dict[str, Any]:
    recs = board.records
    dates = sorted(r.provenance.date for r in recs)
    return {
        "name": board.name,
        "victims": sorted({r.embedder.name for r in recs}),
        "datasets": sorted({r.dataset.name for r in recs}),
        "attacks": sorted({r.attack.name for r in recs}),
        "modes": sorted({mode(r) for r in recs}),
        "defenses": sorted({r.defense.name for r in recs}, key=natural_key),
        "cells": len(recs),
        "date": dates[-1][:10] if dates else "",
        "first_date": dates[0][:10] if dates else "",
        "versions": sorted({r.provenance.package_version for r in recs}, key=natural_key),
        "schema": sorted({r.schema_version for r in recs}),
        "not_pretrained": sum(not r.all_pretrained for r in recs),
        "board_version": board.meta.get("version"),
        "with_samples": sum(c.samples_path is not None for c in board.cells),
        "description": board.meta.get("description", ""),
    }


def samples(cell: Cell) -> list[dict[str, Any]]:
    """The cell's per-sample rows (id, target, reconstruction, scores, extras), or [] if not published."""
    if cell.samples_path is None:
        return []
    out = []
    for line in cell.samples_path.read_text().splitlines():
        if line.strip():
            s = json.loads(line)
            rec = s.get("reconstruction")
            out.append({
                "id": s.get("id"),
                "target": s.get("target", ""),
                "reconstruction": " ".join(rec) if isinstance(rec, list) else str(rec),
                "words": isinstance(rec, list),
                "scores": s.get("scores", {}),
                "extras": s.get("extras") or {},
            })
    return out


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "board"
