"""Render boards to a static site: Jinja2 pages, data inlined as JSON, vendored scripts copied beside.

The site needs no server and no network: every page links its scripts and styles by relative path
(``static/``), and its data is inlined (a ``fetch`` of a local file fails under ``file://``). So it
opens from disk, from any static host (GitHub Pages) and offline.

Libraries (vendored under ``bench/site/static/vendor/``, MIT licensed, see VENDOR.md there):
- Tabulator (npm ``tabulator-tables``): the sortable, filterable tables with a column chooser;
- Plotly (npm ``plotly.js-basic-dist-min``, the scatter/bar bundle): the privacy-utility and sweep plots.
Jinja2 (Python) renders the pages from ``bench/site/templates/``.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from bench import __version__
from bench.errors import BenchError
from bench.site import data as D

STATIC = ("site.css", "site.js", "vendor/tabulator.min.js", "vendor/tabulator.min.css", "vendor/plotly-basic.min.js")


def _env() -> Environment:
    env = Environment(loader=PackageLoader("bench.site", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["tojson_script"] = lambda v: json.dumps(v, ensure_ascii=False, default=str).replace("</", "<\\/")
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    env.filters["fmt"] = _fmt
    env.filters["metricfmt"] = lambda v, name: _fmt(v, 1 if name.split("@")[0] == "bleu" else 3)
    return env


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def copy_static(out: Path) -> None:
    root = resources.files("bench.site") / "static"
    for rel in STATIC:
        dest = out / "static" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((root / rel).read_bytes())


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")  # world-readable, as a web server needs


def board_payload(board: D.Board) -> dict[str, Any]:
    """Everything the board page's script needs, as one JSON object."""
    head, leak = D.leakage_metrics(board)
    picks = D.picker_metrics(board)
    utils = D.utility_metrics(board)
    return {
        "name": board.name,
        "headline": head,
        "leakage": leak,
        "picker": picks,
        "costs": D.cost_metrics(board),
        "primary": D.primary_leakage(board),
        "utility": utils,
        "higher": D.directions(board),
        "rows": D.rows(board),
        "axes": D.swept_axes(board),
        "fronts": D.fronts(board, picks, utils[0] if utils else None),
        "floors": D.board_floors(board),
        "several_attacks": len({r.attack.name for r in board.records}) > 1,
    }


def render_board(env: Environment, board: D.Board, out: Path, built: str) -> dict[str, Any]:
    """Write ``out/boards/<slug>/``: index.html, downloads and one page per cell. Returns its summary."""
    slug = D.slug(board.name)
    folder = out / "boards" / slug
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "cells").mkdir(parents=True)
    downloads = []
    for name in ("leaderboard.csv", "leaderboard.json", "leaderboard.md"):
        if (board.folder / name).exists():
            shutil.copyfile(board.folder / name, folder / name)
            downloads.append(name)
    with zipfile.ZipFile(folder / "records.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for c in board.cells:
            z.write(c.path, f"records/{c.path.name}")
            if c.samples_path:
                z.write(c.samples_path, f"records/{c.samples_path.name}")
    downloads.append("records.zip")
    summary = D.summary(board) | {"slug": slug}
    payload = board_payload(board)
    ranking = D.defense_ranking(board)
    targets = D.targets(board)
    summary["targets"] = len(targets)
    _write(folder / "index.html", env.get_template("board.html").render(
        board=summary, payload=payload, ranking=ranking, primary=D.primary_leakage(board),
        utility=(D.utility_metrics(board) or [None])[0], downloads=downloads, meta=board.meta,
        commands=D.board_commands(board), papers=D.papers(summary["attacks"]),
        built=built, version=__version__, root="../../"))
    head, leak = D.leakage_metrics(board)
    target_ids = {t["id"] for t in targets}
    for c in board.cells:
        (folder / "cells" / c.path.name).write_bytes(c.path.read_bytes())
        rows = D.samples(c)
        for r in rows:
            r["target_page"] = f"../targets/{D.slug(str(r['id']))}.html" if str(r["id"]) in target_ids else None
        _write(folder / "cells" / f"{c.id}.html", env.get_template("cell.html").render(
            board=summary, cell=c, rec=c.record, mode=D.mode(c.record), defense=D.defense_label(c.record),
            head=head, leakage=leak, utility=D.utility_metrics(board),
            samples={"rows": rows, "scores": _score_order(rows, head)}, n_samples=len(rows),
            floor=D.floor(c), at_chance=D.at_chance(c), queries=D.queries(c),
            run=D.run_command(c), reproduce=D.reproduce_command(c, board), papers=D.papers([c.record.attack.name]),
            built=built, version=__version__, root="../../../"))
    if targets:
        (folder / "targets").mkdir()
        page = env.get_template("target.html")
        for i, t in enumerate(targets):
            prev_t, next_t = targets[i - 1] if i else None, targets[i + 1] if i + 1 < len(targets) else None
            _write(folder / "targets" / f"{t['slug']}.html", page.render(
                board=summary, t=t, prev=prev_t, next=next_t, built=built, version=__version__, root="../../../"))
        _write(folder / "targets" / "index.html", env.get_template("targets.html").render(
            board=summary, targets=targets, built=built, version=__version__, root="../../../"))
    return summary


def _score_order(rows: list[dict], head: list[str]) -> list[str]:
    names = {k for r in rows for k in r["scores"]}
    return [m for m in head if m in names] + sorted((m for m in names if m not in head), key=D.natural_key)


def build_site(boards: list[Path], out: Path) -> Path:
    """Build the site of the given board folders into ``out``; returns the index page."""
    env = _env()
    loaded = [D.load_board(Path(b)) for b in boards]  # every board read (and digest-checked) before writing
    slugs = [D.slug(b.name) for b in loaded]
    if len(set(slugs)) != len(slugs):
        raise BenchError(f"two boards have the same name ({', '.join(slugs)}): pass each board once")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file: pass a folder")
    out.mkdir(parents=True, exist_ok=True)
    copy_static(out)
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve files as they are
    built = datetime.now(UTC).isoformat(timespec="seconds")
    summaries = [render_board(env, b, out, built) | {"verification": D.verification(b)} for b in loaded]
    index = out / "index.html"
    _write(index, env.get_template("index.html").render(boards=summaries, overview=D.overview(loaded),
                                                        built=built, version=__version__, root=""))
    return index
