"""Submissions a maintainer can trust: validate a folder of records, merge it into a board.

``validate`` reports one line per problem (``FILE: what is wrong: what to do``): unreadable or
future-schema records, schema violations, content or samples digests that do not match, values
that are not the mean of their samples file's scores or lie outside their own CI (``bench.verify``), error
records, components without their plugin and version, models whose pretrained state is not
stated consistently, duplicate cells, and cells that are already published (identical) or that
would change a published cell (published cells are immutable). ``add`` merges a valid submission
into ``leaderboards/NAME/records/``, bumps the board's version and appends a changelog entry
(``board.json``), then rebuilds ``leaderboard.{md,csv,json}``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.cache import atomic_write_bytes
from bench.errors import BenchError, one_line
from bench.results import (
    DIGEST_SINCE,
    SCHEMA_VERSION,
    ResultRecord,
    check_digest,
    content_digest,
    load_record,
    migrate,
    read_json,
    record_files,
)
from bench.verify import read_samples, sample_problems

BOARD_FILES = {"leaderboard.json", "board.json"}
COMPONENTS = ("attack", "defense", "embedder", "dataset")


def published_cells(boards_root: Path) -> dict[str, tuple[str, str]]:
    """cell_id -> (board name, content digest) of every record under ``boards_root/*/records``."""
    out: dict[str, tuple[str, str]] = {}
    root = Path(boards_root)
    if not root.is_dir():
        return out
    for board in sorted(d for d in root.iterdir() if (d / "records").is_dir()):
        for f in record_files([board / "records"]):
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "cell_id" in data:
                out.setdefault(data["cell_id"], (board.name, data.get("digest") or content_digest(data)))
    return out


def _record_problems(data: dict, path: Path) -> tuple[list[str], ResultRecord | None]:
    """Problems of one record on its own (no cross-record checks)."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        return [f"record schema {version!r} is newer than this bench ({SCHEMA_VERSION}): upgrade inversion-bench to validate it"], None
    problems = []  # every problem of the record, so an edit that also drops a version says both
    if version < DIGEST_SINCE:
        problems.append(f"schema {version} record has no content digest: re-run the cell with inversion-bench whose records are schema >= {DIGEST_SINCE}")
    else:
        try:
            check_digest(data, path)
        except BenchError as e:
            problems.append(str(e).removeprefix(f"{path}: "))
    sealed = not problems  # an edited file is refused already: its numbers are not checked against the samples
    try:
        rec = ResultRecord.model_validate(migrate(json.loads(json.dumps(data))))
    except (ValidationError, ValueError) as e:
        errs = e.errors() if isinstance(e, ValidationError) else [{"loc": (), "msg": str(e)}]
        where = ".".join(str(x) for x in errs[0]["loc"]) or "record"
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return [*problems, f"does not match the record schema: {where}: {one_line(errs[0]['msg'], 120)}{more}"], None
    if rec.status != "ok":
        problems.append(f"is an error record ({one_line(rec.error or '', 80)}): only finished cells are published; fix and re-run the cell")
    for kind in COMPONENTS:
        comp = getattr(rec, kind)
        if not comp.plugin:
            problems.append(f"{kind} {comp.name!r} names no plugin: records must say which plugin produced each part")
        elif not comp.version:
            problems.append(f"{kind} {comp.name!r} (plugin {comp.plugin}) has no plugin version: give the plugin a version and re-run")
    if not rec.models:
        problems.append("lists no models: records must list every model with its pretrained state")
    elif not any(m.role == "victim" for m in rec.models):
        problems.append("lists no victim model: records must list the victim with its pretrained state")
    elif rec.all_pretrained != all(m.pretrained for m in rec.models):
        odd = [m.name for m in rec.models if not m.pretrained]
        problems.append(f"all_pretrained is {rec.all_pretrained} but the models say otherwise ({', '.join(odd) or 'all pretrained'}): non-pretrained models must be marked")
    if rec.samples_file and not (path.parent / rec.samples_file).exists():
        problems.append(f"its samples file {rec.samples_file} is missing: send each record with its .samples.jsonl")
        return problems, rec
    if rec.status == "ok" and sealed:  # the numbers must be what the samples say (a re-sealed edit passes the digest)
        samples = read_samples(path.parent / rec.samples_file) if rec.samples_file else None
        problems += sample_problems(rec, samples)
    return problems, rec


def validate(folder: Path, boards_root: Path | None = Path("leaderboards")) -> tuple[list[str], list[tuple[Path, ResultRecord]]]:
    """(problem lines, the valid records with their files) of a submission folder."""
    folder = Path(folder)
    if not folder.exists():
        raise BenchError(f"{folder} does not exist: pass the folder of records written by `bench run --out`")
    published = published_cells(boards_root) if boards_root else {}
    problems: list[str] = []
    valid: list[tuple[Path, ResultRecord]] = []
    seen: dict[str, Path] = {}
    files = [f for f in record_files([folder]) if f.name not in BOARD_FILES]
    if not files:
        problems.append(f"{folder}: holds no result records (*.json): submit the folder `bench run --out` wrote")
    for f in files:
        try:
            data = read_json(f)
        except BenchError as e:
            problems.append(str(e))
            continue
        if not (isinstance(data, dict) and "cell_id" in data):
            problems.append(f"{f}: is not a result record (no cell_id): submit only the files `bench run` writes")
            continue
        mine, rec = _record_problems(data, f)
        problems += [f"{f}: {p}" for p in mine]
        cid = data["cell_id"]
        if cid in seen:
            problems.append(f"{f}: duplicate cell {cid} (also {seen[cid].name}): submit each cell once")
            continue
        seen[cid] = f
        if cid in published:
            board, digest = published[cid]
            if digest == (data.get("digest") or content_digest(data)):
                problems.append(f"{f}: cell {cid} is already published in board {board}: leave it out of the submission")
            else:
                problems.append(f"{f}: cell {cid} would change a cell already published in board {board}: published cells never change; submit new cells (e.g. another seed)")
            continue
        if rec is not None and not mine:
            valid.append((f, rec))
    return problems, valid


def load_board_meta(board_dir: Path) -> dict[str, Any]:
    path = Path(board_dir) / "board.json"
    return json.loads(path.read_text()) if path.exists() else {"name": Path(board_dir).name, "version": 0, "changelog": []}


def save_board_meta(board_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``board.json`` atomically, its ``verification`` derived from the changelog
    (``board_status``), and return what was written."""
    meta = {**meta, "verification": board_status(meta.get("changelog", []))}
    atomic_write_bytes(Path(board_dir) / "board.json", (json.dumps(meta, indent=2) + "\n").encode(), overwrite=True)
    return meta


VERIFY_CELLS = 5  # re-run every submitted cell when there are at most this many, else a seeded sample of this many


def secret_key(rec: ResultRecord) -> bool:
    """The cell's defense has a secret key, which no record holds: a re-run draws another (a per-run
    key) or cannot be given the fixed one, so its values can match only statistically: against the
    spread of several re-runs under fresh keys (``bench.reproduce.reproduce_keys``)."""
    return bool((rec.defense_info or {}).get("key"))


def verify(host, valid: list[tuple[Path, ResultRecord]], n: int = VERIFY_CELLS, seed: int = 0, device: str = "cpu",
           cache_dir: Path | None = None, allow_ci: bool = False, say=lambda msg: None) -> dict[str, Any]:
    """Re-run submitted cells (all when at most ``n``, else ``n`` drawn with ``seed``) and compare each
    metric with the submitted value (``bench.reproduce``). ``status`` is "verified" when every re-run
    matched (equal values; or inside the CI with ``allow_ci``; a secret-key cell: inside the 99%
    prediction interval of ``KEY_RUNS`` re-runs under fresh keys), else "self-reported"; ``n`` = 0
    re-runs nothing (self-reported)."""
    import random

    from bench.reproduce import KEY_RUNS, reproduce, reproduce_keys

    cells = sorted(valid, key=lambda fr: fr[1].cell_id)
    picked = cells if len(cells) <= n else sorted(random.Random(seed).sample(cells, n), key=lambda fr: fr[1].cell_id)
    picked = picked if n > 0 else []
    out: dict[str, Any] = {
        "status": "self-reported",
        "rule": "equal values (relative 1e-6)" + (" or inside the submitted 95% CI" if allow_ci else "")
        + f"; a cell of a secret defense (its key is in no record): re-run {KEY_RUNS} times under fresh keys, the submitted "
        "value inside the 99% prediction interval of their values (Student t)",
        "sample": "none re-run" if not picked else "all" if len(picked) == len(cells) else f"{len(picked)} of {len(cells)}, drawn with seed {seed}",
        "rerun": [rec.cell_id for _, rec in picked],
        "mismatches": {},
        "failed": {},
    }
    for f, rec in picked:
        say(f"re-running cell {rec.cell_id} ({rec.attack.name} vs {rec.defense.name})")
        try:
            if secret_key(rec):
                keyed, _ = reproduce_keys(host, f, device=device, cache_dir=cache_dir, say=say)
                bad = [c.metric for c in keyed if not c.ok]
                out.setdefault("key_runs", {})[rec.cell_id] = KEY_RUNS
                out.setdefault("key_values", {})[rec.cell_id] = {  # the spread a reader can check the rule against
                    c.metric: {"published": c.published, "reruns": c.reruns} for c in keyed}
            else:
                checks, _ = reproduce(host, f, device=device, cache_dir=cache_dir)
                bad = [c.metric for c in checks if not (c.equal or (allow_ci and c.within))]
        except BenchError as e:
            out["failed"][rec.cell_id] = one_line(e, 200)
            continue
        if bad:
            out["mismatches"][rec.cell_id] = bad
    if picked and not out["mismatches"] and not out["failed"]:
        out["status"] = "verified"
    return out


def add(submission: Path, board: str, boards_root: Path = Path("leaderboards"), note: str | None = None,
        description: str | None = None, host=None, verify_cells: int = VERIFY_CELLS, verify_seed: int = 0,
        device: str = "cpu", cache_dir: Path | None = None, allow_ci: bool = False, say=lambda msg: None) -> tuple[list[str], dict]:
    """Merge a valid submission into ``boards_root/board``. Returns (problems, board meta); on any
    problem nothing is written. With a ``host`` the submitted cells are re-run first (``verify``):
    the changelog entry says what was re-run and whether it matched, and the board is "verified"
    only while every version's re-runs matched ("self-reported" otherwise)."""
    from bench import leaderboard
    from bench.results import load_records

    if not board or "/" in board or board.startswith("."):
        raise BenchError(f"board name {board!r} must be a plain folder name")
    problems, valid = validate(submission, boards_root)
    if problems:
        return problems, {}
    target = Path(boards_root) / board
    records_dir = target / "records"
    meta = load_board_meta(target)
    for f, rec in valid:  # every copy is checked before anything is written
        for name in filter(None, (f.name, rec.samples_file)):
            if (records_dir / name).exists():
                raise BenchError(f"{records_dir / name} already exists: the board holds a file of that name")
    checked = (verify(host, valid, verify_cells, verify_seed, device, cache_dir, allow_ci, say) if host is not None
               else {"status": "self-reported", "sample": "none re-run", "rerun": []})
    for f, rec in valid:
        records_dir.mkdir(parents=True, exist_ok=True)
        if rec.samples_file:
            shutil.copyfile(f.parent / rec.samples_file, records_dir / rec.samples_file)
        shutil.copyfile(f, records_dir / f.name)
    version = int(meta.get("version", 0)) + 1
    entry = {
        "version": version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "added": sorted(rec.cell_id for _, rec in valid),
        "source": Path(submission).name,
        "note": note or f"added {len(valid)} cell(s) from {Path(submission).name}",
        "verification": checked,
    }
    changelog = [*meta.get("changelog", []), entry]
    meta = {**meta, "name": board, "version": version, "changelog": changelog}
    if description:
        meta["description"] = description
    meta = save_board_meta(target, meta)
    leaderboard.write(load_records([records_dir]), Path(boards_root), board)
    return [], meta


def board_status(changelog: list[dict]) -> str:
    """"verified" when every version that added cells still on the board passed its re-runs, or a
    later ``verify`` of that version (``reverifies``) did; "self-reported" otherwise. A version whose
    cells were all retired (a cell retired and added again belongs to the version that re-added it)
    no longer counts."""
    def passed(e: dict) -> bool:
        return (e.get("verification") or {}).get("status") == "verified"

    owner: dict[str, int] = {}  # cell id -> the version whose copy of it is on the board
    for e in changelog:
        owner.update(dict.fromkeys(e.get("added") or [], e["version"]))
        for cid in e.get("retired") or []:
            owner.pop(cid, None)
    again = {e["reverifies"] for e in changelog if e.get("reverifies") is not None and passed(e)}
    live = set(owner.values())
    ok = all(passed(e) or e["version"] in again for e in changelog if e["version"] in live)
    return "verified" if ok else "self-reported"


def reverify(board_dir: Path, version: int, host, note: str | None = None, device: str = "cpu", cache_dir: Path | None = None,
             say=lambda msg: None) -> dict:
    """Re-run the cells a board version's verification re-ran (those still on the board) under today's
    rules (e.g. a secret-key cell against fresh keys); a new version logs the result, and the board is
    verified again when that version now passes (``board_status``)."""
    from bench import leaderboard
    from bench.results import load_records

    board_dir = Path(board_dir)
    records_dir = board_dir / "records"
    if not records_dir.is_dir():
        raise BenchError(f"{board_dir} is not a board folder (no records/): pass leaderboards/NAME")
    meta = load_board_meta(board_dir)
    entry = next((e for e in meta.get("changelog", []) if e.get("version") == version and e.get("added")), None)
    if entry is None:
        added = [e["version"] for e in meta.get("changelog", []) if e.get("added")]
        raise BenchError(f"board {board_dir.name} has no version {version} that added cells: pass one of {added}")
    by_id = {rec.cell_id: (f, rec) for f in record_files([records_dir]) for rec in [load_record(f)]}
    wanted = (entry.get("verification") or {}).get("rerun") or entry["added"]
    valid = [by_id[c] for c in wanted if c in by_id]
    if not valid:
        raise BenchError(f"none of the cells version {version} re-ran is still on board {board_dir.name}: nothing to verify")
    checked = verify(host, valid, n=len(valid), device=device, cache_dir=cache_dir, say=say)
    new = int(meta.get("version", 0)) + 1
    log = {"version": new, "date": datetime.now(UTC).isoformat(timespec="seconds"), "reverifies": version,
           "note": note or f"version {version}'s re-run cells re-run under today's verification rules", "verification": checked}
    changelog = [*meta["changelog"], log]
    meta = save_board_meta(board_dir, {**meta, "version": new, "changelog": changelog})
    leaderboard.write(load_records([records_dir]), board_dir.parent, board_dir.name)
    return meta


def retire(board_dir: Path, cell_ids: list[str], note: str) -> dict:
    """Take cells off a board without losing them: their records and samples move to
    ``board/retired/`` (kept, still digest-checked), the board gets a new version whose changelog
    entry names them and says why, and its tables are rebuilt. Every id is checked first."""
    from bench import leaderboard
    from bench.results import load_records

    board_dir = Path(board_dir)
    records_dir = board_dir / "records"
    if not records_dir.is_dir():
        raise BenchError(f"{board_dir} is not a board folder (no records/): pass leaderboards/NAME")
    if not note or not note.strip():
        raise BenchError("say why the cells are retired: --note TEXT (it goes into the board's changelog)")
    by_id = {rec.cell_id: (f, rec) for f in record_files([records_dir]) for rec in [load_record(f)]}
    unknown = [c for c in cell_ids if c not in by_id]
    if unknown or not cell_ids:
        raise BenchError(f"no cell {', '.join(unknown) or '(none given)'} on board {board_dir.name}: pass cell ids its records/ holds")
    moves = []
    for cid in dict.fromkeys(cell_ids):
        f, rec = by_id[cid]
        moves += [(f, board_dir / "retired" / f.name)]
        if rec.samples_file and (records_dir / rec.samples_file).exists():
            moves += [(records_dir / rec.samples_file, board_dir / "retired" / rec.samples_file)]
    for _, dst in moves:
        if dst.exists():
            raise BenchError(f"{dst} already exists: that cell was retired before")
    (board_dir / "retired").mkdir(exist_ok=True)
    for src, dst in moves:
        os.replace(src, dst)
    meta = load_board_meta(board_dir)
    version = int(meta.get("version", 0)) + 1
    entry = {"version": version, "date": datetime.now(UTC).isoformat(timespec="seconds"),
             "retired": sorted(dict.fromkeys(cell_ids)), "note": note.strip()}
    changelog = [*meta.get("changelog", []), entry]
    save_board_meta(board_dir, {**meta, "version": version, "changelog": changelog})
    leaderboard.write(load_records([records_dir]), board_dir.parent, board_dir.name)
    return entry
