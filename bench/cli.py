"""The ``bench`` command line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from bench import __version__
from bench.errors import BenchError, one_line

EMBEDDED_DEFAULT = {"embedders": ["minilm"], "datasets": ["wordnet"], "defenses": ["none"], "seeds": [0]}


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


def _load_config(path: Path) -> dict:
    import tomllib

    from bench.preflight import check_config

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"config file {path} cannot be read ({e}): check its permissions and encoding") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"config file {path} is not valid TOML ({e}): fix the syntax") from None
    known = {"attacks", "defenses", "embedders", "datasets", "seeds", "out", "device", "limit", "baseline", "executor", "query_budget", "fluency"}
    extra = set(data) - known
    if extra:
        raise BenchError(f"config file {path} has unknown keys {sorted(extra)}: allowed are {sorted(known)}")
    return check_config(data, path)


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
@click.option("--leaderboard", "board", help="Also build leaderboards/NAME from this run's records.")
@click.option("--fluency/--no-fluency", default=None,
              help="Score each text reconstruction's perplexity (and the target's) under Gemma 3 270M, ~1-2 s per text on CPU [off].")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.option("--executor", type=click.Choice(["local", "slurm", "submitit-local", "ray"]), default=None,
              help="Where cells run: in this process [local], Slurm jobs (submitit), submitit's local subprocesses, Ray tasks.")
@click.option("--executor-option", "-X", "executor_options", multiple=True, metavar="KEY=VALUE",
              help="Executor option (repeatable), e.g. -X partition=gpu -X gpus_per_task=1 -X time_min=120; see README.")
@click.option("--wait/--no-wait", default=True, help="Wait for the jobs and print the table [wait]; --no-wait submits and returns.")
@click.pass_context
def run(ctx, attacks, defenses, embedders, datasets, seeds, config_path, out, device, cache_dir, limit, baseline, query_budget, board, fluency, quiet,
        executor, executor_options, wait):
    """Run a grid of attack x defense x embedder x dataset x seed cells.

    Finished cells are skipped when the same command runs again; caches make re-runs fast.
    With --executor slurm / submitit-local / ray every cell is one job; `bench status OUT` follows them.
    """
    from bench import leaderboard
    from bench.cache import default_cache_dir
    from bench.executors import check_available, parse_options, submit_grid, write_manifest
    from bench.jobs import cell_spec
    from bench.preflight import check_seed, check_writable_dir
    from bench.runner import Runner, build_grid, resolve_device
    from bench.settings import Settings

    host = _host(ctx)
    config = _load_config(config_path) if config_path else {}
    grid = {
        "attacks": list(attacks) or config.get("attacks", []),
        "defenses": list(defenses) or config.get("defenses") or EMBEDDED_DEFAULT["defenses"],
        "embedders": list(embedders) or config.get("embedders") or EMBEDDED_DEFAULT["embedders"],
        "datasets": list(datasets) or config.get("datasets") or EMBEDDED_DEFAULT["datasets"],
        "seeds": list(seeds) or config.get("seeds") or EMBEDDED_DEFAULT["seeds"],
    }
    if not grid["attacks"]:
        raise BenchError("no attack given: add --attack NAME (see `bench list attacks`)")
    for s in seeds:
        check_seed(s)
    out_dir = Path(out or config.get("out", "results"))
    check_writable_dir(out_dir, "--out")
    check_writable_dir(Path(cache_dir) if cache_dir else default_cache_dir(), "--cache-dir")
    if board:
        check_writable_dir(Path("leaderboards") / board, "--leaderboard")
    limit = limit if limit is not None else config.get("limit")
    baseline = baseline if baseline is not None else config.get("baseline", True)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise BenchError(f"limit must be an integer (0: every target), got {limit!r}")
    executor, exec_opts = _executor_config(executor, executor_options, config.get("executor"))
    options = parse_options(executor, exec_opts)
    if not wait and executor == "local":
        raise BenchError("--no-wait needs a job executor: add --executor slurm (or submitit-local)")
    if not wait and executor == "ray":
        raise BenchError("ray tasks end with the process that submitted them: run without --no-wait "
                         "(or submit the whole command with `ray job submit -- bench run ...`)")
    check_available(executor)
    query_budget = query_budget if query_budget is not None else config.get("query_budget")
    if query_budget is not None and (isinstance(query_budget, bool) or not isinstance(query_budget, int) or query_budget < 1):
        raise BenchError(f"query budget must be a positive integer (victim queries per target), got {query_budget!r}")
    cells = build_grid(host, grid["attacks"], grid["defenses"], grid["embedders"], grid["datasets"], grid["seeds"],
                       limit=limit, baseline=bool(baseline), query_budget=query_budget)
    # One settings object for the run: every cache (plugins' model, feature and caption caches too)
    # under one root, --cache-dir or else $BENCH_CACHE_DIR or ~/.cache/inversion-bench.
    # Jobs pick their device where they run; the submitter loads models on the CPU only to check the grid.
    device = device or config.get("device", "auto")
    fluency = bool(fluency if fluency is not None else config.get("fluency", False))
    settings = Settings(device=resolve_device(device) if executor == "local" else "cpu", progress=not quiet, query_budget=query_budget, fluency=fluency,
                        **({"cache_dir": Path(cache_dir).expanduser().resolve()} if cache_dir else {}))
    runner = Runner(host, out_dir, settings=settings)
    say = (lambda *a, **k: None) if quiet else (lambda msg: click.echo(msg, err=True))
    runner.prepare(cells)
    where = f"device {runner.device}" if executor == "local" else f"{executor} jobs, device {device}"
    say(f"{len(cells)} cells -> {out_dir}/ ({where})")
    started = time.perf_counter()

    def on_done(i, n, cell, status):
        say(f"[{i}/{n}] {cell.label()}: {status}")

    def on_wait(cell, holder):
        say(f"waiting: {cell.label()} is being computed by pid {holder.get('pid')} on {holder.get('host')}")

    if executor == "local":
        write_manifest(out_dir, [cell_spec(c, host, out_dir, settings, device) for c in cells], "local", options)  # for `bench status`
        records = runner.run(cells, on_done=on_done, on_wait=on_wait)
    else:
        records = submit_grid(runner, cells, executor, options, device, wait=wait, say=say)
        if records is None:
            return
    shown = leaderboard.headline(records)
    click.echo(leaderboard.to_markdown(leaderboard.frame(records), metrics=shown))
    if shown:
        say(f"(headline metrics; every metric is in the records under {out_dir}/ and in a leaderboard's CSV and JSON)")
    failed = [r for r in records if r.status == "error"]
    say(f"done in {time.perf_counter() - started:.1f}s; {len(records) - len(failed)} ok, {len(failed)} failed")
    if board:
        paths = leaderboard.write(records, Path("leaderboards"), board)
        say(f"leaderboard written: {', '.join(map(str, paths))}")
    if failed:
        sys.exit(1)


def _executor_config(executor: str | None, flags: tuple[str, ...], from_config) -> tuple[str, dict]:
    """The executor and its options: --executor/-X flags over the config's ``executor`` (a name, or
    a table with ``name`` and options)."""
    table: dict = {}
    if isinstance(from_config, str):
        name = from_config
    elif isinstance(from_config, dict):
        table = dict(from_config)
        name = table.pop("name", None)
    elif from_config is None:
        name = None
    else:
        raise BenchError(f"config key executor must be a name or a table with name = ..., got {from_config!r}")
    given = executor or name or "local"
    if executor and name and executor != name:
        table = {}  # the config's options belong to another executor
    for flag in flags:
        key, eq, value = flag.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"bad executor option {flag!r}: write -X key=value (e.g. -X partition=gpu)")
        table[key.strip()] = value.strip()
    return given, table


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of cells).")
@click.option("--all", "show_all", is_flag=True, help="List every cell, not only those not done.")
def status(out, as_json, show_all):
    """Show which cells of the grids in OUT are done, running, submitted, failed or missing."""
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
    counts = {s: sum(r["state"] == s for r in rows) for s in ("done", "running", "submitted", "failed", "missing")}
    for r in rows:
        if show_all or r["state"] != "done":
            detail = f"  ({r['detail']})" if r["detail"] else ""
            click.echo(f"{r['state']:<9} {r['cell_id']}  {r['label']}{detail}")
    click.echo(f"{len(rows)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts["failed"] or counts["missing"]:
        click.echo("run the same `bench run` command again to (re)submit the failed and missing cells")


@cli.command(name="list")
@click.argument("kind", type=click.Choice(["attacks", "defenses", "embedders", "datasets"]))
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
def add(submission, board, boards_root, note, description):
    """Merge a valid submission into a board: copy its records, bump the version, log the change."""
    from bench.submissions import add as merge

    problems, meta = merge(submission, board, boards_root, note, description)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"{len(problems)} problem(s): nothing was added", err=True)
        sys.exit(1)
    entry = meta["changelog"][-1]
    click.echo(f"board {board} is now version {meta['version']} ({len(entry['added'])} cell(s) added): {entry['note']}", err=True)


@cli.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where models run [auto].")
@click.option("--cache-dir", type=click.Path(path_type=Path),
              help="Reuse this cache (embeddings, trained attacks) [none: a fresh temporary cache, so everything is recomputed].")
@click.option("--out", type=click.Path(path_type=Path), help="Also write the new record and samples here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.pass_context
def reproduce(ctx, record, device, cache_dir, out, quiet):
    """Re-run the cell RECORD describes and check each metric against the record's 95% CI.

    Exits 0 when every metric lands inside its CI, 1 otherwise.
    """
    from bench.reproduce import reproduce as rerun
    from bench.runner import resolve_device

    if not record.is_file():
        raise BenchError(f"{record} is not a record file: pass a result record (*.json) written by `bench run`")
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else None  # None: a fresh temporary cache
    checks, _ = rerun(_host(ctx), record, resolve_device(device), cache, out, progress=not quiet, say=say)
    width = max(len(c.metric) for c in checks) if checks else 6
    click.echo(f"{'metric':<{width}}  {'published':>9}  {'95% CI':<17}  {'re-run':>9}  verdict")
    for c in checks:
        ci = f"[{c.ci_low:.4f}, {c.ci_high:.4f}]" if c.ci_low is not None else "(none)"
        got = f"{c.reproduced:.4f}" if c.reproduced is not None else "missing"
        click.echo(f"{c.metric:<{width}}  {c.published:>9.4f}  {ci:<17}  {got:>9}  {'within CI' if c.within else 'OUTSIDE CI'}")
    bad = [c.metric for c in checks if not c.within]
    click.echo(f"reproduced {len(checks) - len(bad)}/{len(checks)} metrics within the record's CI"
               + (f"; outside: {', '.join(bad)}" if bad else ""), err=True)
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
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        _main(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from bench.plugins import Host

        host = Host(plugins_dir=_argv_plugins_dir(argv))
        host.pm.hook.register_commands(cli=cli)
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
