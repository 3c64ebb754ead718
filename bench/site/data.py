"""What a board's pages show, computed from its records alone (no plugin needs to be installed).

One board is a folder ``NAME/`` holding ``records/*.json`` (digest-checked result records, with
their per-sample JSONL when published) and optionally ``board.json`` (version and changelog, written
by ``bench leaderboard add``). Everything here is plain data; ``bench.site.render`` turns it into HTML.
"""

from __future__ import annotations

import json
import math
import re
import shlex
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
    raw: dict[str, Any] = field(default_factory=dict)  # the file's JSON: keys newer schemas add

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
        cells[rec.cell_id] = Cell(rec, f, samples if samples and samples.exists() else None, json.loads(f.read_text()))
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


ROUND = re.compile(r"@(round|step)\d+$")


def picker_metrics(board: Board) -> list[str]:
    """The leakage metrics a plot may show: declared higher = more leaked, not a per-round or per-step
    diagnostic; costs (lower is better, e.g. ``queries``) and reference levels (chance) are not leakage."""
    dirs = directions(board)
    return [m for m in leakage_metrics(board)[1] if dirs.get(m) is True and not ROUND.search(m)]


def cost_metrics(board: Board) -> list[str]:
    """Metrics declared lower-is-better (costs such as ``queries``): shown on their own axis."""
    dirs = directions(board)
    return [m for m in leakage_metrics(board)[1] if dirs.get(m) is False and not ROUND.search(m)]


def primary_leakage(board: Board) -> str | None:
    """The metric boards rank by: the first leakage metric in headline order (else any with a direction)."""
    picks = picker_metrics(board)
    if picks:
        return picks[0]
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
        "at_chance": at_chance(cell),
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


@dataclass(frozen=True)
class Point:
    """A defense setting on the privacy-utility plane: utility and leakage (higher = more leaked)
    with their 95% CIs (a missing CI is the value itself)."""

    id: str
    u: float
    u_lo: float
    u_hi: float
    leak: float
    l_lo: float
    l_hi: float


def dominates(q: Point, p: Point) -> bool:
    """q beats p beyond the intervals: q's utility CI lies wholly above p's and its leakage CI wholly
    below p's. Overlapping CIs on either axis decide nothing."""
    return q.u_lo > p.u_hi and q.l_hi < p.l_lo


def pareto_front(points: list[Point]) -> list[str]:
    """Ids of the points no other point dominates (CIs separate on both axes), by utility descending."""
    front = [p for p in points if not any(dominates(q, p) for q in points if q is not p)]
    return [p.id for p in sorted(front, key=lambda p: (-p.u, p.leak, p.id))]


def staircase(points: list[Point]) -> list[tuple[float, float]]:
    """The least leakage a defender can reach at each utility, as a line through attainable points only.

    From the highest-utility point leftwards, each step runs at the leakage already reached until the
    next point's utility, then down to that point's leakage: every vertex is (weakly) dominated by a
    point that exists, so the line never claims a setting nobody measured. Points above the line
    (more leakage at less utility) are skipped."""
    out: list[tuple[float, float]] = []
    for p in sorted(points, key=lambda p: (-p.u, p.leak)):
        if not out:
            out.append((p.u, p.leak))
            continue
        best = out[-1][1]
        if p.leak < best:
            out += [(p.u, best), (p.u, p.leak)]
    return out


def _ci(m) -> tuple[float, float, float]:
    lo = m.ci_low if m.ci_low is not None else m.value
    hi = m.ci_high if m.ci_high is not None else m.value
    return m.value, lo, hi


def defense_ranking(board: Board, metric: str | None = None, utility: str | None = None) -> list[dict[str, Any]]:
    """Defense settings ranked by leakage at their utility: each setting's worst-case leakage over
    every attack and mode on the board (the attacker picks its best), with its CI and cell, the
    utility it keeps, and whether it lies on the defender's Pareto front (no other setting beats it
    with both CIs separate). Sorted by utility (best first)."""
    metric = metric or primary_leakage(board)
    utils = utility_metrics(board)
    utility = utility or (utils[0] if utils else None)
    if metric is None:
        return []
    sign = 1.0 if directions(board).get(metric, True) is not False else -1.0
    settings: dict[str, dict[str, Any]] = {}
    for c in board.cells:
        r = c.record
        if metric not in r.metrics:
            continue
        label = defense_label(r)
        value, lo, hi = _ci(r.metrics[metric])
        s = settings.setdefault(label, {"defense": label, "family": family(r), "cells": 0, "bad": None})
        s["cells"] += 1
        if s["bad"] is None or sign * value > s["bad"]:
            u = r.utility.get(utility) if utility else None
            s.update(bad=sign * value, leakage=value, ci=[lo, hi], by=f"{r.attack.name} {mode(r)}", cell=r.cell_id,
                     at_chance=metric in at_chance(c),
                     utility=u.value if u else None, utility_ci=list(_ci(u)[1:]) if u else None)
    out = list(settings.values())
    points = [Point(s["defense"], s["utility"], *s["utility_ci"], s["bad"],
                    *sorted((sign * s["ci"][0], sign * s["ci"][1])))
              for s in out if s["utility"] is not None]
    front = set(pareto_front(points))
    for s in out:
        s.pop("bad")
        s["pareto"] = s["defense"] in front
    out.sort(key=lambda s: (s["utility"] is None, -(s["utility"] or 0), natural_key(s["defense"])))
    return out


def fronts(board: Board, metrics: list[str], utility: str | None) -> dict[str, dict[str, Any]]:
    """Per leakage metric: the cells that carry the Pareto front (each front setting's worst case)
    and the attainable staircase, in plot coordinates (utility, metric value)."""
    out: dict[str, dict[str, Any]] = {}
    if utility is None:
        return out
    for m in metrics:
        ranking = [s for s in defense_ranking(board, m, utility) if s["utility"] is not None]
        if len(ranking) < 2:
            continue
        sign = 1.0 if directions(board).get(m, True) is not False else -1.0
        points = [Point(s["defense"], s["utility"], *s["utility_ci"], sign * s["leakage"], 0.0, 0.0) for s in ranking
                  if s["pareto"]]
        out[m] = {"stars": [s["cell"] for s in ranking if s["pareto"]],
                  "stair": [[u, sign * leak] for u, leak in staircase(points)]}
    return out


# ------------------------------------------------------------------ keys newer schemas add

QUERY_PHASES = ("fit", "alignment", "inference", "inference_per_target_mean", "inference_per_target_max")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o)))


def record_key(cell: Cell, key: str) -> Any:
    """A key of schema 4 records (``command``, ``floor``, ``at_chance``, ``queries``): the record
    model's attribute where this bench declares it, else the file's JSON (top level, then under
    ``provenance``); None when absent."""
    value = getattr(cell.record, key, None)
    if value is None:
        value = getattr(cell.record.provenance, key, None)
    if value is None:
        value = cell.raw.get(key, (cell.raw.get("provenance") or {}).get(key))
    return None if value is None else _plain(value)


def floor(cell: Cell) -> dict[str, dict[str, float | None]]:
    """metric -> {value, ci_low, ci_high}: the chance baseline on the same targets ({} when absent)."""
    raw = record_key(cell, "floor")
    if not isinstance(raw, dict):
        return {}
    out = {}
    for name, f in raw.items():
        if isinstance(f, dict) and _num(f.get("value")) is not None:
            out[name] = {"value": float(f["value"]), "ci_low": _num(f.get("ci_low")), "ci_high": _num(f.get("ci_high"))}
    return out


def at_chance(cell: Cell) -> list[str]:
    """The metrics whose value lies inside the chance floor ([] when the record does not say)."""
    raw = record_key(cell, "at_chance")
    return [str(m) for m in raw] if isinstance(raw, list) else []


def queries(cell: Cell) -> list[dict[str, Any]]:
    """Victim queries by phase (fit, alignment, inference, per-target mean and max) beside the
    budget the threat model set for that phase; [] when the record has no ledger."""
    raw = record_key(cell, "queries")
    if not isinstance(raw, dict):
        return []
    tm = _plain(cell.record.threat_model) | (cell.raw.get("threat_model") or {})
    budgets = {k: v for k, v in tm.items() if "budget" in k and v is not None}

    def budget(phase: str) -> Any:
        """The threat model's budget for a phase: a key naming both (``fit_budget``,
        ``query_budget_fit``), for inference per target the per-target ``query_budget``."""
        if phase.startswith("inference_per_target"):
            return budgets.get("query_budget")
        return next((v for k, v in budgets.items() if phase in k), None)

    phases = [p for p in QUERY_PHASES if p in raw] + sorted(k for k in raw if k not in QUERY_PHASES)
    return [{"phase": p, "queries": raw[p], "budget": budget(p)} for p in phases]


def verification(board: Board) -> str:
    """``verified`` when ``bench leaderboard add`` re-ran the board's cells and they matched; a
    board.json without the key (older boards) is self-reported."""
    return "verified" if board.meta.get("verification") == "verified" else "self-reported"


def _spec_value(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float, str)):
        text = str(v)
        return None if any(ch in text for ch in ",|=") else text
    if isinstance(v, list) and all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v):
        return "+".join(str(x) for x in v)
    return None


def component_spec(comp) -> str | None:
    """``name:key=value,...`` of a recorded component (None: a value no spec can write)."""
    parts = []
    for k, v in comp.params.items():
        if v is None:
            continue
        text = _spec_value(v)
        if text is None:
            return None
        parts.append(f"{k}={text}")
    return comp.name + (":" + ",".join(parts) if parts else "")


def run_command(cell: Cell) -> dict[str, Any]:
    """The ``bench run`` that made the cell: the record's own ``command`` when it keeps one, else
    the equivalent command built from its configuration (every non-null parameter, its seed, its
    target limit and query budget); ``recorded`` says which. ``text`` is None when a parameter
    cannot be written as a spec (then only ``bench reproduce`` rebuilds the cell)."""
    recorded = record_key(cell, "command")
    if recorded:
        return {"text": recorded if isinstance(recorded, str) else shlex.join(map(str, recorded)), "recorded": True}
    r = cell.record
    args = ["bench", "run"]
    for flag, comp in (("-a", r.attack), ("-d", r.defense), ("-e", r.embedder), ("-D", r.dataset)):
        spec = component_spec(comp)
        if spec is None:
            return {"text": None, "recorded": False}
        args += [flag, spec]
    args += ["--seed", str(r.seed), "--limit", str(r.limit or 0)]
    if r.threat_model.query_budget is not None:
        args += ["--query-budget", str(r.threat_model.query_budget)]
    if r.defense.name != "none":
        args.append("--no-baseline")
    return {"text": shlex.join(args), "recorded": False}


def reproduce_command(cell: Cell, board: Board) -> str:
    """``bench reproduce`` of the cell's record, by its path in the boards folder (``leaderboards/``)."""
    rel = Path(board.folder.parent.name) / board.folder.name / cell.path.relative_to(board.folder)
    return shlex.join(["bench", "reproduce", rel.as_posix()])


def board_commands(board: Board) -> list[dict[str, Any]]:
    """The distinct commands that made the board's cells, each with the cells it made."""
    seen: dict[str, dict[str, Any]] = {}
    for c in board.cells:
        cmd = run_command(c)
        key = cmd["text"] or f"bench reproduce {c.path.name}"
        seen.setdefault(key, {"text": key, "recorded": cmd["recorded"], "cells": []})["cells"].append(c.id)
    return sorted(seen.values(), key=lambda d: (-len(d["cells"]), d["text"]))


# ------------------------------------------------------------------ papers

# Where each attack comes from (a paper, and its authors' code when public). The site links them.
PAPERS: dict[str, dict[str, str]] = {
    "bow": {"title": "Song & Raghunathan 2020, Information Leakage in Embedding Models",
            "paper": "https://arxiv.org/abs/2004.00053"},
    "vec2text": {"title": "Morris et al. 2023, Text Embeddings Reveal (Almost) As Much As Text",
                 "paper": "https://arxiv.org/abs/2310.06816", "code": "https://github.com/jxmorris12/vec2text"},
    "geia": {"title": "Li et al. 2023, Sentence Embedding Leaks More Information than You Expect (GEIA)",
             "paper": "https://arxiv.org/abs/2305.03010", "code": "https://github.com/HKUST-KnowComp/GEIA"},
    "slime": {"title": "SLImE: semantic leakage from image and text embeddings",
              "paper": "https://arxiv.org/abs/2601.22929"},
    "zsinvert": {"title": "Zhang, Morris & Shmatikov 2025, Universal Zero-shot Embedding Inversion (ZSInvert)",
                 "paper": "https://arxiv.org/abs/2504.00147"},
}


def papers(names: list[str]) -> list[dict[str, str]]:
    return [{"attack": n, **PAPERS[n]} for n in names if n in PAPERS]


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
        "commits": sorted({r.provenance.git_commit for r in recs if r.provenance.git_commit}),
        "verification": verification(board),
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


def board_floors(board: Board) -> dict[str, list[dict[str, float | None]]]:
    """metric -> the distinct chance floors of the board's cells (usually one: same targets)."""
    out: dict[str, list[dict[str, float | None]]] = {}
    for c in board.cells:
        for name, f in floor(c).items():
            if f not in out.setdefault(name, []):
                out[name].append(f)
    return out


def targets(board: Board, limit_metrics: int = 3) -> list[dict[str, Any]]:
    """One entry per target that at least two published cells reconstructed: its text and every
    cell's reconstruction of it (attack, mode, defense, scores), strongest first by the board's
    primary metric. Targets in the order of the first cell's samples file."""
    shown_a, shown_d = sweep_params(board)
    primary = primary_leakage(board)
    per: dict[str, dict[str, Any]] = {}
    for c in board.cells:
        r = c.record
        for s in samples(c):
            if s["id"] is None:
                continue
            t = per.setdefault(str(s["id"]), {"id": str(s["id"]), "target": s["target"], "rows": []})
            t["rows"].append({
                "cell": r.cell_id, "attack": r.attack.name, "attack_params": params_text(r.attack.params, shown_a.get(r.attack.name, [])),
                "mode": mode(r), "defense": short_defense(r, shown_d), "reconstruction": s["reconstruction"],
                "words": s["words"], "scores": s["scores"], "pretrained": r.all_pretrained,
            })
    out = [t for t in per.values() if len(t["rows"]) >= 2]
    names = [m for m in picker_metrics(board)]
    for t in out:
        t["rows"].sort(key=lambda row: (-(row["scores"].get(primary) or 0.0), natural_key(row["attack"] + row["defense"])))
        have = {k for row in t["rows"] for k in row["scores"]}
        t["metrics"] = [m for m in names if m in have][:limit_metrics]
    used: set[str] = set()
    for i, t in enumerate(out):  # one file per target, even when two ids slug alike ("a:1", "a-1")
        name = slug(t["id"])
        t["slug"] = name if name not in used else f"{name}-{i}"
        used.add(t["slug"])
    return out


# ------------------------------------------------------------------ overview across boards

def _entry(c: Cell, metric: str, board_slug: str, verified: bool) -> dict[str, Any]:
    value, lo, hi = _ci(c.record.metrics[metric])
    return {"value": value, "lo": lo, "hi": hi, "mode": mode(c.record), "cell": c.id, "board": board_slug,
            "href": f"boards/{board_slug}/cells/{c.id}.html", "verified": verified,
            "at_chance": metric in at_chance(c), "attack_params": params_text(c.record.attack.params),
            "pretrained": c.record.all_pretrained}


def _shared_metrics(entries: list[tuple[Board, Cell]]) -> list[str]:
    """Leakage metrics in order of how many attacks report them (the most shared first, then the
    order of headlines): a matrix never puts two metrics side by side."""
    by_attack: dict[str, set[str]] = {}
    head_rank: dict[str, int] = {}
    for b, c in entries:
        picks = set(picker_metrics(b))
        by_attack.setdefault(c.record.attack.name, set()).update(m for m in c.record.metrics if m in picks)
        for i, m in enumerate(c.record.headline or []):
            head_rank[m] = min(head_rank.get(m, 99), i)
    names = sorted({m for ms in by_attack.values() for m in ms})
    count = {m: sum(m in ms for ms in by_attack.values()) for m in names}
    return sorted(names, key=lambda m: (-count[m], head_rank.get(m, 99), natural_key(m)))


def overview(boards: list[Board], max_metrics: int = 4) -> list[dict[str, Any]]:
    """Per (victim, dataset) across every board: the attack x defense matrix of worst-case leakage.

    An entry is the highest value any configuration of the attack reached against that defense
    setting, naive or adaptive (the attacker picks), with the naive and adaptive bests beside it, its
    cell and board. Columns are defense settings with the utility they keep. Metrics: those most
    attacks of the group report (the first is the default)."""
    groups: dict[tuple[str, str], list[tuple[Board, Cell]]] = {}
    for b in boards:
        for c in b.cells:
            groups.setdefault((c.record.embedder.name, c.record.dataset.name), []).append((b, c))
    out = []
    for (victim, dataset), entries in sorted(groups.items()):
        metrics = _shared_metrics(entries)[:max_metrics]
        if not metrics:
            continue
        utils = [u for u in UTILITY_PREFERRED if any(u in c.record.utility for _, c in entries)]
        utility = utils[0] if utils else None
        columns: dict[str, dict[str, Any]] = {}
        for _b, c in entries:
            r = c.record
            col = columns.setdefault(defense_label(r), {"label": defense_label(r), "family": family(r), "utility": None, "n": -1})
            u = r.utility.get(utility) if utility else None
            if u is not None and u.n > col["n"]:
                col["utility"], col["n"] = {"value": u.value, "lo": _ci(u)[1], "hi": _ci(u)[2]}, u.n
        params: dict[str, list[dict]] = {}
        for _b, c in entries:
            params.setdefault(c.record.defense.name, []).append(c.record.defense.params)
        shown = {name: varying_keys(ps) for name, ps in params.items()}
        for _b, c in entries:
            columns[defense_label(c.record)]["short"] = short_defense(c.record, shown)
        cols = sorted(columns.values(), key=lambda col: (col["family"] != "none", natural_key(col["label"])))
        matrices = {}
        for m in metrics:
            cells: dict[str, dict[str, dict[str, Any]]] = {}
            floors: dict[str, dict[str, float | None]] = {}
            for b, c in entries:
                r = c.record
                if m not in r.metrics:
                    continue
                e = _entry(c, m, slug(b.name), verification(b) == "verified")
                slot = cells.setdefault(r.attack.name, {}).setdefault(defense_label(r), {"best": None, "naive": None, "adaptive": None})
                for key in ("best", e["mode"]):
                    if slot[key] is None or e["value"] > slot[key]["value"]:
                        slot[key] = e
                if m in floor(c):
                    floors.setdefault(defense_label(r), floor(c)[m])
            attacks = sorted(cells, key=natural_key)
            best = [slot["best"]["value"] for row in cells.values() for slot in row.values()]
            matrices[m] = {"attacks": attacks, "cells": cells, "floors": floors, "max": max(best, default=0.0),
                           "ranking": {"attacks": rank_attacks(cells, cols), "defenses": rank_defenses(cells, cols)}}
        out.append({"victim": victim, "dataset": dataset, "metrics": metrics, "utility": utility, "columns": cols,
                    "short": {col["label"]: col["short"] for col in cols},
                    "boards": sorted({slug(b.name) for b, _ in entries}), "matrices": matrices,
                    "key": slug(f"{victim}-{dataset}")})
    return out


def _separated_higher(a: dict, b: dict) -> bool:
    """a's value is above b's beyond both CIs."""
    return a["lo"] > b["hi"]


def _win_rates(pairs: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """(a, b, +1 a wins / -1 b wins / 0 tie) -> per name: wins, ties, losses and win rate (ties half)."""
    score: dict[str, dict[str, Any]] = {}
    for a, b, res in pairs:
        for name, r in ((a, res), (b, -res)):
            s = score.setdefault(name, {"name": name, "wins": 0, "ties": 0, "losses": 0})
            s["wins" if r > 0 else "losses" if r < 0 else "ties"] += 1
    for s in score.values():
        n = s["wins"] + s["ties"] + s["losses"]
        s["comparisons"] = n
        s["win_rate"] = (s["wins"] + 0.5 * s["ties"]) / n if n else math.nan
    return sorted(score.values(), key=lambda s: (-s["win_rate"], -s["wins"], natural_key(s["name"])))


def rank_attacks(cells: dict[str, dict[str, dict]], cols: list[dict]) -> list[dict[str, Any]]:
    """Attacks by win rate: for every defense setting two attacks both ran against, the one whose
    worst-case leakage is higher with the CIs separate wins; overlapping CIs are a tie (half a win)."""
    pairs = []
    names = sorted(cells, key=natural_key)
    for col in cols:
        d = col["label"]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ea, eb = cells[a].get(d, {}).get("best"), cells[b].get(d, {}).get("best")
                if ea and eb:
                    pairs.append((a, b, 1 if _separated_higher(ea, eb) else -1 if _separated_higher(eb, ea) else 0))
    return _win_rates(pairs)


def rank_defenses(cells: dict[str, dict[str, dict]], cols: list[dict]) -> list[dict[str, Any]]:
    """Defense settings by win rate: against every attack that ran against both, the setting whose
    worst-case leakage is lower with the CIs separate wins; overlapping CIs are a tie. Utility is not
    in the rule: the table shows it beside."""
    pairs = []
    labels = [col["label"] for col in cols]
    for row in cells.values():
        for i, d in enumerate(labels):
            for e in labels[i + 1:]:
                ed, ee = row.get(d, {}).get("best"), row.get(e, {}).get("best")
                if ed and ee:
                    pairs.append((d, e, 1 if _separated_higher(ee, ed) else -1 if _separated_higher(ed, ee) else 0))
    ranked = _win_rates(pairs)
    utility = {col["label"]: col["utility"] for col in cols}
    for s in ranked:
        s["utility"] = utility.get(s["name"])
    return ranked


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "board"
