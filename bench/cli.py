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

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"config file {path} cannot be read ({e}): check its permissions and encoding") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"config file {path} is not valid TOML ({e}): fix the syntax") from None
    known = {"attacks", "defenses", "embedders", "datasets", "seeds", "out", "device", "limit", "baseline"}
    extra = set(data) - known
    if extra:
        raise BenchError(f"config file {path} has unknown keys {sorted(extra)}: allowed are {sorted(known)}")
    return data


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
@click.option("--leaderboard", "board", help="Also build leaderboards/NAME from this run's records.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.pass_context
def run(ctx, attacks, defenses, embedders, datasets, seeds, config_path, out, device, cache_dir, limit, baseline, board, quiet):
    """Run a grid of attack x defense x embedder x dataset x seed cells.

    Finished cells are skipped when the same command runs again; caches make re-runs fast.
    """
    from bench import leaderboard
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
    limit = limit if limit is not None else config.get("limit")
    baseline = baseline if baseline is not None else config.get("baseline", True)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise BenchError(f"limit must be an integer (0: every target), got {limit!r}")
    cells = build_grid(host, grid["attacks"], grid["defenses"], grid["embedders"], grid["datasets"], grid["seeds"],
                       limit=limit, baseline=bool(baseline))
    # One settings object for the run: every cache (plugins' model, feature and caption caches too)
    # under one root, --cache-dir or else $BENCH_CACHE_DIR or ~/.cache/inversion-bench.
    settings = Settings(device=resolve_device(device or config.get("device", "auto")), progress=not quiet,
                        **({"cache_dir": Path(cache_dir).expanduser().resolve()} if cache_dir else {}))
    out_dir = Path(out or config.get("out", "results"))
    runner = Runner(host, out_dir, settings=settings)
    say = (lambda *a, **k: None) if quiet else (lambda msg: click.echo(msg, err=True))
    runner.prepare(cells)
    say(f"{len(cells)} cells -> {out_dir}/ (device {runner.device})")
    started = time.perf_counter()

    def on_done(i, n, cell, status):
        say(f"[{i}/{n}] {cell.label()}: {status}")

    records = runner.run(cells, on_done=on_done)
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
    from bench.results import load_records

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


def _argv_plugins_dir(argv: list[str]) -> Path | None:
    for i, a in enumerate(argv):
        if a == "--plugins-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--plugins-dir="):
            return Path(a.split("=", 1)[1])
    return None


def main(argv: list[str] | None = None) -> None:
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
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: finished cells are saved; run the same command again to resume", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
