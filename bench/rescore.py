"""Re-score a published board from its samples files, under today's metric definitions.

No attack is re-run: each sample's reconstruction is scored again against its target with the shared
metrics (``bench.metrics.reconstruction_scores``), means and CIs are recomputed (cluster bootstrap
where the dataset declares groups), and each record gains its chance floor and ``at_chance``
(the dataset's attacker split and, for the floor's cosine, the victim embedder are loaded). Records and
samples files are rewritten sealed at the current schema; ``board.json`` gets a new version whose
changelog entry names every re-scored cell with its previous digest (the previous files stay in git).

What it cannot re-score says so in the changelog: attack-specific scores (per-round or per-step
diagnostics, tag metrics) keep the values they were written with, utility keeps its CIs (its
per-query scores are not in the samples), and a record without its samples file is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cache import atomic_write_bytes
from bench.errors import BenchError
from bench.results import SCHEMA_VERSION, ResultRecord, load_record, record_files, sealed_json
from bench.verify import read_samples

SHARED_KEYS = ("word_precision", "word_recall", "word_f1", "bleu", "rouge_l", "token_f1", "exact_match")


def rescore_record(host, runner, path: Path, fluency: bool = False) -> tuple[ResultRecord, list[dict]] | None:
    """(the re-scored record, its re-scored samples) of one record file; None when it has no samples.
    ``fluency`` adds each text reconstruction's and target's perplexity under the judge LM (``bench.fluency``)."""
    from bench.defender import evaluated_split
    from bench.grid import Cell
    from bench.metrics import ci_method, corpus_bleu, directions, reconstruction_scores, summarize

    rec = load_record(path, attacks=lambda n: host.entry("attacks", n).cls)
    if rec.status != "ok" or not rec.samples_file or not (path.parent / rec.samples_file).exists():
        return None
    samples = read_samples(path.parent / rec.samples_file)
    cell = Cell.from_config(host, rec)
    victim, data = runner._victim(cell)
    split = evaluated_split(cell, data)
    targets = split.head(len(samples))
    if [s["id"] for s in samples] != targets.ids or [s["target"] for s in samples] != targets.texts:
        raise BenchError(f"{path}: its targets are not the dataset's today (ids or texts differ): re-run the cell instead")
    kind = cell.attack.output
    outputs = [s["reconstruction"] for s in samples]
    fresh = reconstruction_scores(outputs, targets.texts, kind, targets.meta)
    models = list(rec.models)
    if fluency and kind == "text":
        from bench.fluency import JUDGE_NAME
        from bench.results import ModelInfo

        runner._fluency(fresh, [str(o) for o in outputs], targets.texts)
        if not any(m.role == "fluency-judge" for m in models):
            models.append(ModelInfo(role="fluency-judge", name=JUDGE_NAME, pretrained=True))
    for s, row in zip(samples, fresh):
        s["scores"] = {**s["scores"], **row}
    names = dict.fromkeys(k for s in samples for k in s["scores"])
    per_metric = {k: [s["scores"].get(k) for s in samples] for k in names}  # one slot per sample: aligned with groups
    higher = directions(per_metric, cell.attack.metrics)
    groups = targets.groups
    metrics = summarize(per_metric, higher, seed=rec.seed, groups=groups)
    if kind == "text":
        metrics["corpus_bleu"] = corpus_bleu([str(o) for o in outputs], targets.texts, seed=rec.seed, groups=groups)
    clean = victim.embed_split(cell.split, runner.inputs(cell, split))
    floor, chance = runner._floor(cell, victim, data, targets, clean, per_metric, higher)
    new = ResultRecord.model_validate({
        **json.loads(rec.model_dump_json()),
        "schema_version": SCHEMA_VERSION,
        "metrics": metrics,
        "floor": floor,
        "at_chance": chance,
        "models": [m.model_dump(mode="json") for m in models],
        "split": rec.split,
        **ci_method(groups),
        "digest": None,
    })
    return new, samples


def rescore_board(host, board_dir: Path, note: str | None = None, cache_dir: Path | None = None,
                  say=lambda msg: None, fluency: bool = False, cells: list[str] | None = None) -> dict[str, Any]:
    """Re-score every record of ``board_dir/records`` with samples (only ``cells`` when given; with
    ``fluency``, adding perplexities); write them, a new board version and the rebuilt tables.
    Returns the changelog entry (None-like empty dict when nothing was re-scored)."""
    from bench import leaderboard
    from bench.results import load_records
    from bench.runner import Runner
    from bench.settings import Settings
    from bench.submissions import load_board_meta, save_board_meta

    board_dir = Path(board_dir)
    records_dir = board_dir / "records"
    if not records_dir.is_dir():
        raise BenchError(f"{board_dir} is not a board folder (no records/): pass leaderboards/NAME")
    files = [f for f in record_files([records_dir]) if not f.name.endswith(".samples.jsonl")]
    if cells:
        ids = {f: json.loads(f.read_text()).get("cell_id") for f in files}
        unknown = sorted(set(cells) - set(ids.values()))
        if unknown:
            raise BenchError(f"no cell {', '.join(unknown)} on board {board_dir.name}: pass cell ids its records/ holds")
        files = [f for f in files if ids[f] in cells]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(progress=False, **({"cache_dir": Path(cache_dir)} if cache_dir else {}))
        runner = Runner(host, Path(tmp) / "out", settings=settings)
        done: list[tuple[Path, ResultRecord, list[dict], str]] = []
        skipped = []
        for f in files:
            old = json.loads(f.read_text())
            if not (isinstance(old, dict) and "cell_id" in old):
                continue
            got = rescore_record(host, runner, f, fluency)
            if got is None:
                skipped.append(old["cell_id"])
                continue
            say(f"re-scored {f.name}")
            done.append((f, *got, old.get("digest") or ""))
    if not done:
        return {}
    changes = {}
    for f, rec, samples, old_digest in done:  # every record re-scored before any is written
        body = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples).encode()
        atomic_write_bytes(f.parent / rec.samples_file, body, overwrite=True)
        rec = rec.model_copy(update={"samples_sha256": hashlib.sha256(body).hexdigest()})
        atomic_write_bytes(f, sealed_json(rec), overwrite=True)
        old = json.loads(f.read_text())
        changes[rec.cell_id] = {"previous_digest": old_digest, "digest": old["digest"]}
    meta = load_board_meta(board_dir)
    version = int(meta.get("version", 0)) + 1
    entry = {
        "version": version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rescored": changes,
        "not_rescored": sorted(skipped),
        "command": f"bench leaderboard rescore {board_dir}" + (" --fluency" if fluency else "")
        + "".join(f" --cell {c}" for c in cells or []),
        "note": note or ("added fluency (perplexity of each reconstruction and of its target under the judge LM); "
                         if fluency else "") + (
            f"re-scored {len(changes)} cell(s) from their samples files under schema {SCHEMA_VERSION}: bleu as Vec2Text "
            "computes it (per-pair sacrebleu, averaged), corpus_bleu added, token_f1 as Vec2Text's set F1, Unicode words, "
            "texts without words score 0, cluster-bootstrap CIs where the dataset declares groups, the chance floor and "
            "at_chance; attack-specific diagnostics and utility keep their values; no attack was re-run"
            + (f"; {len(skipped)} cell(s) without samples files left as they were" if skipped else "")
        ),
    }
    save_board_meta(board_dir, {**meta, "version": version, "changelog": [*meta.get("changelog", []), entry]})
    leaderboard.write(load_records([records_dir]), board_dir.parent, board_dir.name)
    return entry
