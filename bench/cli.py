"""The ``bench`` command line."""

from __future__ import annotations

import contextvars
import json
import os
import sys
import time
from pathlib import Path

import click

from bench import __version__
from bench.allocator import keep_large_blocks
from bench.errors import BenchError, one_line
from bench.executors import NAMES as EXECUTORS
from bench.grid import KINDS

_ARGV: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("bench_argv", default=None)  # for records' `command`


def _host(ctx: click.Context):
    return ctx.find_root().obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bench")
@click.option("--plugins-dir", type=click.Path(path_type=Path), help="Also load plugins from *.py files in this folder.")
@click.pass_context
def cli(ctx: click.Context, plugins_dir: Path | None) -> None:
    """Benchmark embedding-inversion attacks against defenses.

    \b
    bench run --attack bow --defense none --defense noise
    bench list attacks
    bench leaderboard build results/ --name my-board
    """
    # The host is built in main() (plugins may add commands); tests may pass one via obj.


@cli.command()
@click.option("--attack", "-a", "attacks", multiple=True, help="Attack spec: NAME or NAME:key=value,key=a|b (repeatable).")
@click.option("--defense", "-d", "defenses", multiple=True, help="Defense spec, e.g. noise or noise:scale=0.01|0.1 (repeatable).")
@click.option("--embedder", "-e", "embedders", multiple=True, help="Victim embedder spec (default: minilm).")
@click.option("--dataset", "-D", "datasets", multiple=True, help="Dataset spec (default: wordnet).")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed (repeatable; default 0).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML file with the grid.")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for result records [results].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Where models run [auto].")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Root of every cache: embeddings, artifacts, models, features, captions [~/.cache/inversion-bench].")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N targets (0: all) [each attack's default, usually all].")
@click.option("--baseline/--no-baseline", default=None, help="Add the undefended cell when no defense given is 'none' [on].")
@click.option("--query-budget", type=int, default=None, help="Victim queries an attack may make per target at inference, enforced [unlimited].")
@click.option("--fluency/--no-fluency", default=None,
              help="Score each text reconstruction's perplexity (and the target's) under Gemma 3 270M, ~1-2 s per text on CPU [off].")
@click.option("--floor/--no-floor", default=None, help="Add the chance-floor attack (chance) beside text attacks [on].")
@click.option("--split", "split", type=click.Choice(["target", "dev"]), default=None,
              help="Attack and score this split: the published targets, or dev (to choose defaults on) [target].")
@click.option("--fit-query-budget", type=int, default=None,
              help="Victim queries an attack may make to fit and align (adaptive re-embedding of leaked pairs), in total, enforced [unlimited].")
@click.option("--isolate/--no-isolate", default=None,
              help="Run each attack in a worker process holding neither the victim nor the defense's state; it queries only "
                   "through the counted oracle (for code from other labs; see docs/threat-model.md) [off].")
@click.option("--leaderboard", "leaderboard", help="Also build leaderboards/NAME from this run's records.")
@click.option("--quiet", "-q", is_flag=True, default=None, help="No progress lines.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="Where cells run: in this process [local], Slurm jobs (submitit), submitit's local subprocesses, Ray tasks.")
@click.option("--executor-option", "-X", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="Executor option (repeatable), e.g. -X partition=gpu -X gpus_per_task=1 -X time_min=120; see docs/clusters.md.")
@click.option("--wait/--no-wait", default=None, help="Wait for the jobs and print the table [wait]; --no-wait submits and returns.")
@click.pass_context
def run(ctx, config_path, **flags):
    """Run a grid of attack x defense x embedder x dataset x seed cells.

    Finished cells are skipped when the same command runs again; caches make re-runs fast.
    With --executor slurm / submitit-local / ray every cell is one job; `bench status OUT` follows them.
    """
    from bench import leaderboard
    from bench.config import RunConfig
    from bench.runner import run_grid

    config = RunConfig.load(flags, config_path, argv=_ARGV.get())  # every value checked before any work
    say = (lambda msg: None) if config.quiet else (lambda msg: click.echo(msg, err=True))
    started = time.perf_counter()
    records = run_grid(_host(ctx), config, say)
    if records is None:  # submitted, not waited for
        return
    shown = leaderboard.headline(records)
    click.echo(leaderboard.to_markdown(leaderboard.frame(records), metrics=shown))
    if shown:
        say(f"(headline metrics; every metric is in the records under {config.out}/ and in a leaderboard's CSV and JSON)")
    failed = [r for r in records if r.status == "error"]
    say(f"done in {time.perf_counter() - started:.1f}s; {len(records) - len(failed)} ok, {len(failed)} failed")
    if config.leaderboard:
        paths = leaderboard.write(records, Path("leaderboards"), config.leaderboard)
        say(f"leaderboard written: {', '.join(map(str, paths))}")
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of cells).")
@click.option("--all", "show_all", is_flag=True, help="List every cell, not only those not done.")
def status(out, as_json, show_all):
    """Show which cells of the grids in OUT are done, running, queued, failed or missing."""
    from bench.executors import grid_status

    if not out.is_dir():
        raise BenchError(f"{out} is not a folder: pass the --out folder of a `bench run`")
    rows = grid_status(out)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no grid in {out}: nothing was submitted or run there")
        return
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "running", "queued", "failed", "missing")}
    for r in rows:
        if show_all or r["state"] != "done":
            detail = f"  ({r['detail']})" if r["detail"] else ""
            click.echo(f"{r['state']:<9} {r['cell_id']}  {r['label']}{detail}")
    click.echo(f"{len(rows)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts["failed"] or counts["missing"]:
        click.echo("run the same `bench run` command again to (re)submit the failed and missing cells")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
def list_(ctx, kind, as_json):
    """List the registered attacks, defenses, embedders or datasets."""
    rows = _host(ctx).listing(kind)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        click.echo(f"{row['name']:<24} {row['description']}  [{row['plugin']}]")
        if row["default_grid"] != [{}]:
            click.echo(f"    default sweep: {' | '.join(','.join(f'{k}={v}' for k, v in g.items()) for g in row['default_grid'])}")
        for p, info in row["params"].items():
            click.echo(f"    {p} = {info['default']!r}  {info['description'] or ''}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of objects).")
@click.pass_context
def plugins(ctx, as_json):
    """List loaded plugins and what each provides."""
    rows = _host(ctx).plugins()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["provides"].items()) or "-"
        click.echo(f"{row['name']} {row['version']} ({row['source']}): {provides}")


@cli.group(name="leaderboard")
def leaderboard_group():
    """Build leaderboards from result records."""


@leaderboard_group.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", required=True, help="Leaderboard name (folder under --out).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True)
@click.pass_context
def build(ctx, results, name, out):
    """Turn result files or folders into OUT/NAME/leaderboard.{md,csv,json}."""
    from bench import leaderboard
    from bench.preflight import check_writable_dir
    from bench.results import load_records

    check_writable_dir(out / name, "--out")
    for p in results:
        if not p.exists():
            raise BenchError(f"{p} does not exist: pass result folders or record files written by `bench run --out`")
    try:
        records = load_records(list(results), attacks=lambda n: _host(ctx).entry("attacks", n).cls)
    except (ValueError, OSError) as e:
        raise BenchError(f"cannot read results: {one_line(str(e).splitlines()[0])}") from None
    if not records:
        raise BenchError(f"no finished result records under {', '.join(map(str, results))}: run `bench run --out DIR` first")
    if "/" in name or name.startswith("."):
        raise BenchError(f"leaderboard name {name!r} must be a plain folder name")
    paths = leaderboard.write(records, out, name)
    shown = leaderboard.headline(records)
    click.echo(leaderboard.to_markdown(leaderboard.frame(records), metrics=shown))
    if shown:
        click.echo("(headline metrics; every metric is in the CSV and JSON)", err=True)
    click.echo(f"wrote {', '.join(map(str, paths))}", err=True)


@leaderboard_group.command()
@click.argument("boards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the site (index.html and boards/).")
def site(boards, out):
    """Build a static website of board folders (e.g. leaderboards/*): tables, plots, per-cell samples.

    Opens from disk (file://) or any static host; no network needed.
    """
    from bench.site import build_site

    folders: list[Path] = []
    for b in boards:
        if not b.is_dir():
            raise BenchError(f"{b} is not a board folder: pass leaderboards/NAME folders (each holding records/) or leaderboards/")
        inner = sorted(d for d in b.iterdir() if (d / "records").is_dir())
        folders += inner if not (b / "records").is_dir() and not any(b.glob("*.json")) and inner else [b]
    index = build_site(folders, out)
    click.echo(f"site of {len(folders)} board(s) written: open {index}", err=True)


@leaderboard_group.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--boards", "boards_root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True,
              help="Published boards to check against (cells already published, changes to them).")
def validate(folder, boards_root):
    """Check a submission: schema, digests, plugin versions, pretrained marks, duplicate and published cells.

    Prints one line per problem and exits 1 if there is any.
    """
    from bench.submissions import validate as check

    problems, valid = check(folder, boards_root)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{len(problems)} problem(s); {len(valid)} record(s) valid", err=True)
        sys.exit(1)
    click.echo(f"{len(valid)} record(s) valid: ready for `bench leaderboard add {folder} --board NAME`", err=True)


@leaderboard_group.command()
@click.argument("submission", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="Board to merge into (folder under --boards; created if new).")
@click.option("--boards", "boards_root", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True)
@click.option("--note", help="Changelog text for this version [added N cells from SUBMISSION].")
@click.option("--description", help="One line saying what the board measures (shown on the site).")
@click.option("--verify", "verify_cells", type=click.IntRange(min=0), default=5, show_default=True,
              help="Re-run the submitted cells when at most this many, else a seeded sample of this many (0: none; the board is then self-reported).")
@click.option("--verify-seed", type=int, default=0, show_default=True, help="Seed of the sample of cells re-run.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True, help="Where re-runs run.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache for the re-runs [a fresh temporary one each].")
@click.option("--allow-ci", is_flag=True, help="A re-run inside the submitted CI counts as a match (nondeterministic cells).")
@click.pass_context
def add(ctx, submission, board, boards_root, note, description, verify_cells, verify_seed, device, cache_dir, allow_ci):
    """Merge a valid submission into a board: re-run its cells, copy its records, bump the version, log the change.

    The board is marked verified when the re-run cells give the submitted values, self-reported otherwise (board.json).
    """
    from bench.runner import resolve_device
    from bench.submissions import add as merge

    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    problems, meta = merge(submission, board, boards_root, note, description, host=_host(ctx), verify_cells=verify_cells,
                           verify_seed=verify_seed, device=resolve_device(device), cache_dir=cache_dir, allow_ci=allow_ci, say=say)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{len(problems)} problem(s): nothing was added", err=True)
        sys.exit(1)
    entry = meta["changelog"][-1]
    v = entry["verification"]
    why = "" if v["status"] == "verified" else (
        f" (re-run: {v['sample']}; mismatched: {', '.join(v.get('mismatches', {})) or '-'}; failed: "
        f"{'; '.join(f'{k}: {e}' for k, e in v.get('failed', {}).items()) or '-'})")
    click.echo(f"board {board} is now version {meta['version']} ({len(entry['added'])} cell(s) added): {entry['note']}", err=True)
    click.echo(f"this version is {v['status']}{why}; the board is {meta['verification']}", err=True)


@leaderboard_group.command("verify")
@click.argument("board", type=click.Path(path_type=Path))
@click.option("--version", "version", type=int, required=True, help="The board version whose re-run cells are re-run again.")
@click.option("--note", help="Changelog text [version V's re-run cells re-run under today's verification rules].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True, help="Where re-runs run.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache for the re-runs [a fresh temporary one each].")
@click.pass_context
def verify_board(ctx, board, version, note, device, cache_dir):
    """Re-run the cells a board version re-ran (leaderboards/NAME) under today's rules; log it as a new version.

    The board is verified again when every version that added cells passed, at the time or in such a re-run.
    """
    from bench.runner import resolve_device
    from bench.submissions import reverify

    meta = reverify(board, version, _host(ctx), note, resolve_device(device), cache_dir, say=lambda msg: click.echo(msg, err=True))
    v = meta["changelog"][-1]["verification"]
    click.echo(f"{Path(board).name}: version {meta['version']} re-ran version {version}'s cells: {v['status']}"
               + (f" (mismatched: {', '.join(v['mismatches'])})" if v["mismatches"] else "")
               + (f" (failed: {', '.join(v['failed'])})" if v["failed"] else "") + f"; the board is {meta['verification']}")


@leaderboard_group.command()
@click.argument("board", type=click.Path(path_type=Path))
@click.argument("cell_ids", nargs=-1, required=True)
@click.option("--note", required=True, help="Why the cells leave the board (goes into its changelog).")
def retire(board, cell_ids, note):
    """Take cells off a board (leaderboards/NAME): their records move to NAME/retired/, kept; the changelog says why."""
    from bench.submissions import retire as retire_cells

    entry = retire_cells(board, list(cell_ids), note)
    click.echo(f"{Path(board).name}: version {entry['version']}, retired {', '.join(entry['retired'])}")


@leaderboard_group.command()
@click.argument("boards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--note", help="Changelog text for the new version [what changed in the scoring].")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Cache root for the victim's embeddings [the default cache].")
@click.option("--fluency", is_flag=True, help="Also score fluency: each text reconstruction's and target's perplexity under the judge LM (~1-2 s per text).")
@click.option("--cell", "cells", multiple=True, help="Re-score only this cell id (repeatable) [every record with samples].")
@click.pass_context
def rescore(ctx, boards, note, cache_dir, fluency, cells):
    """Re-score published boards (leaderboards/NAME) from their samples files under today's metrics.

    No attack is re-run; each board gets a new version whose changelog names every re-scored cell.
    """
    from bench.rescore import rescore_board

    for b in boards:  # every folder checked before any is touched
        if not (b / "records").is_dir():
            raise BenchError(f"{b} is not a board folder (no records/): pass leaderboards/NAME folders")
    for b in boards:
        entry = rescore_board(_host(ctx), b, note, Path(cache_dir).expanduser() if cache_dir else None,
                              say=lambda msg: click.echo(msg, err=True), fluency=fluency, cells=list(cells) or None)
        if entry:
            click.echo(f"{b.name}: version {entry['version']}, {len(entry['rescored'])} cell(s) re-scored"
                       + (f", {len(entry['not_rescored'])} without samples left as they were" if entry["not_rescored"] else ""))
        else:
            click.echo(f"{b.name}: nothing to re-score (no record has its samples file)")


@cli.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where models run [auto].")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Reuse this cache (embeddings, trained attacks) [none: a fresh temporary cache, so everything is recomputed].")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the new record and samples here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--allow-ci", is_flag=True,
              help="Accept a re-run inside the record's 95% CI (a nondeterministic cell, e.g. on a GPU) [off: values must be equal].")
@click.option("--keys", type=click.IntRange(min=2), default=None,
              help="A secret-key cell: re-runs, each under a fresh key, whose spread the published value is held against [3].")
@click.pass_context
def reproduce(ctx, record, device, cache_dir, out, quiet, allow_ci, keys):
    """Re-run the cell RECORD describes and compare each metric with the published value.

    First checks the record against its samples file (each value the mean of its scores, inside its
    own CI). Exits 0 when every re-run value equals the published one (relative tolerance 1e-6), or,
    with --allow-ci, lies inside the record's 95% CI; 1 otherwise. A cell of a secret-key defense
    (its key is in no record) is re-run --keys times under fresh keys, and each published value must
    lie in the 99% prediction interval of those runs' values.
    """
    from bench.reproduce import KEY_RUNS
    from bench.reproduce import reproduce as rerun
    from bench.results import load_record
    from bench.runner import resolve_device
    from bench.submissions import secret_key

    if not record.is_file():
        raise BenchError(f"{record} is not a record file: pass a result record (*.json) written by `bench run`")
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else None  # None: a fresh temporary cache
    if secret_key(load_record(record)):
        if out is not None:
            raise BenchError("--out keeps one re-run, and a secret-key cell is re-run under several keys: drop --out")
        _reproduce_keys(ctx, record, resolve_device(device), cache, quiet, keys or KEY_RUNS, say)
        return
    if keys is not None:
        raise BenchError(f"--keys is for cells of a secret-key defense; {record} has none: drop --keys")
    checks, _ = rerun(_host(ctx), record, resolve_device(device), cache, out, progress=not quiet, say=say)
    width = max(len(c.metric) for c in checks) if checks else 6
    click.echo(f"{'metric':<{width}}  {'published':>9}  {'95% CI':<17}  {'re-run':>9}  verdict")
    for c in checks:
        ci = f"[{c.ci_low:.4f}, {c.ci_high:.4f}]" if c.ci_low is not None else "(none)"
        got = f"{c.reproduced:.4f}" if c.reproduced is not None else "missing"
        click.echo(f"{c.metric:<{width}}  {c.published:>9.4f}  {ci:<17}  {got:>9}  {c.verdict}")
    equal = [c for c in checks if c.equal]
    bad = [c.metric for c in checks if not (c.equal or (allow_ci and c.within))]
    click.echo(f"reproduced {len(equal)}/{len(checks)} metrics exactly"
               + (f", {sum(c.within and not c.equal for c in checks)} more within the record's CI" if len(equal) < len(checks) else "")
               + (f"; not reproduced: {', '.join(bad)}" + ("" if allow_ci else " (--allow-ci accepts values inside the CI)") if bad else ""),
               err=True)
    if bad:
        sys.exit(1)


def _reproduce_keys(ctx, record: Path, device: str, cache: Path | None, quiet: bool, runs: int, say) -> None:
    """`bench reproduce` of a secret-key cell: ``runs`` re-runs under fresh keys, a table, exit 1 on a miss."""
    from bench.reproduce import KEY_LEVEL, reproduce_keys

    say(f"note: this cell's defense has a secret key, which no record holds: re-running it {runs} times under fresh keys; "
        f"each published value must lie in the {KEY_LEVEL:.0%} prediction interval of their values")
    checks, _ = reproduce_keys(_host(ctx), record, runs, say=say, device=device, cache_dir=cache, progress=not quiet)
    width = max(len(c.metric) for c in checks) if checks else 6
    click.echo(f"{'metric':<{width}}  {'published':>9}  {'re-runs':<{8 * runs}}  {'interval':<17}  verdict")
    for c in checks:
        runs_text = " ".join(f"{v:.4f}" if v is not None else "missing" for v in c.reruns)
        iv = f"[{c.interval[0]:.4f}, {c.interval[1]:.4f}]" if c.interval else "(none)"
        click.echo(f"{c.metric:<{width}}  {c.published:>9.4f}  {runs_text:<{8 * runs}}  {iv:<17}  {c.verdict}")
    bad = [c.metric for c in checks if not c.ok]
    click.echo(f"reproduced {len(checks) - len(bad)}/{len(checks)} metrics inside the keys' interval"
               + (f"; not reproduced: {', '.join(bad)}" if bad else ""), err=True)
    if bad:
        sys.exit(1)


def _argv_plugins_dir(argv: list[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--plugins-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--plugins-dir="):
            return Path(a.split("=", 1)[1])
    return None


RESUME_HINT = "interrupted: finished cells are saved; run the same command again to resume"


def main(argv: list[str] | None = None) -> None:
    """The CLI entry point; every line it or a plugin prints goes through :mod:`bench.redact`."""
    from bench.redact import RedactingStream

    streams = sys.stdout, sys.stderr
    wrapped = tuple(s if isinstance(s, RedactingStream) else RedactingStream(s) for s in streams)
    sys.stdout, sys.stderr = wrapped
    try:
        _main(argv)
    finally:
        # Restore only what this call replaced: a concurrent call (threads) must not be left holding
        # a wrapper around a stream that is gone.
        if sys.stdout is wrapped[0]:
            sys.stdout = streams[0]
        if sys.stderr is wrapped[1]:
            sys.stderr = streams[1]


def _main(argv: list[str] | None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_large_blocks()
    try:
        from bench.plugins import Host

        host = Host(plugins_dir=_argv_plugins_dir(argv))
        host.pm.hook.register_commands(cli=cli)
        _ARGV.set(argv)
        cli.main(args=argv, obj=host, standalone_mode=False)
    except BenchError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:  # click turns Ctrl-C into Abort
        click.echo(RESUME_HINT, err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo(RESUME_HINT, err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
