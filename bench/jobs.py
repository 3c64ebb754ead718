"""One grid cell as a self-contained job: a JSON specification in, a record on disk out.

A specification holds plain data only (the four component configs, seed, limit, the output and
cache folders, the device, where plugins come from, a few environment variables), never pickled
objects, so a job runs on any machine with the same packages and the shared folders:

    python -m bench.jobs OUT/.grid/specs/CELL.json [...]

Engines call :func:`run_spec` with the JSON text; it rebuilds the cell through the plugin host and
runs it with the local runner's own code path (``Runner.run``: the cell's lock, the shared
caches and their locks, the same record).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SPEC_VERSION = 1
# Environment a job needs to behave like the submitting process (never API keys: set those on the
# cluster's side; a spec file must not hold secrets).
PASSED_ENV = ("BENCH_LOAD_PLUGINS", "BENCH_LOCK_STALE_S", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
              "TOKENIZERS_PARALLELISM", "HF_HOME", "WNHOME")


def cell_spec(cell, host, out_dir: Path, settings, device: str, command: str | None = None) -> dict[str, Any]:
    """The JSON-serialisable specification of one cell (``settings``: the run's ``bench.settings.Settings``;
    ``device``: as the user gave it, "auto" resolved where the job runs; ``command``: the redacted
    ``bench run`` command line, for the record)."""
    return {
        "spec_version": SPEC_VERSION,
        "cell_id": cell.cell_id,
        "label": cell.label(),
        "cell": {**cell.configs(), "limit": cell.limit, "query_budget": cell.query_budget, "fit_query_budget": cell.fit_query_budget},  # read by Cell.from_config
        "command": command,
        "out": str(Path(out_dir).resolve()),
        "cache_dir": str(Path(settings.cache_dir).resolve()),
        "device": device,
        "query_budget": settings.query_budget,
        "fit_query_budget": settings.fit_query_budget,
        "isolate": settings.isolate,
        "fluency": settings.fluency,
        "plugins_dir": str(Path(host.plugins_dir).resolve()) if host.plugins_dir else None,
        "load_installed": host.load_installed,
        "env": {k: os.environ[k] for k in PASSED_ENV if k in os.environ},
    }


def cell_from_spec(host, spec: dict[str, Any]):
    """Rebuild the cell (``Cell.from_config``); its id must match the spec's (else the plugins differ from the submitter's)."""
    from bench.grid import Cell

    cell = Cell.from_config(host, spec["cell"])
    if cell.cell_id != spec["cell_id"]:
        raise BenchError(
            f"cell {spec['cell_id']} rebuilt here has id {cell.cell_id}: this machine's plugins or their "
            f"defaults differ from the submitter's; install the same versions everywhere"
        )
    return cell


_RUNNERS: dict[str, Any] = {}  # one runner per worker process: a Ray worker reuses loaded models


def _runner(spec: dict[str, Any]):
    from bench.plugins import Host
    from bench.runner import Runner, resolve_device
    from bench.settings import Settings

    key = json.dumps([spec.get(k) for k in ("out", "cache_dir", "device", "query_budget", "fit_query_budget", "isolate", "fluency", "plugins_dir", "load_installed", "command")]
                     + [spec["env"]])
    if key not in _RUNNERS:
        os.environ.update(spec["env"])
        os.environ["BENCH_CACHE_DIR"] = spec["cache_dir"]  # plugins' own caches under the same root
        host = Host(plugins_dir=Path(spec["plugins_dir"]) if spec["plugins_dir"] else None, load_installed=spec["load_installed"])
        _RUNNERS.clear()
        settings = Settings(cache_dir=Path(spec["cache_dir"]), device=resolve_device(spec["device"]), progress=False,
                            query_budget=spec.get("query_budget"), fit_query_budget=spec.get("fit_query_budget"),
                            isolate=bool(spec.get("isolate")), fluency=bool(spec.get("fluency")))
        _RUNNERS[key] = Runner(host, Path(spec["out"]), settings=settings, command=spec.get("command"))
    return _RUNNERS[key]


def run_spec(spec_json: str) -> dict[str, Any]:
    """Run the cell a JSON specification describes (the entry point engines call).

    Returns a small summary (cell id, status, error, record file); the record itself is on disk.
    """
    from bench.results import record_path

    spec = json.loads(spec_json)
    if spec.get("spec_version") != SPEC_VERSION:
        raise BenchError(f"cell spec version {spec.get('spec_version')} is not {SPEC_VERSION}: submit with this bench version")
    runner = _runner(spec)
    cell = cell_from_spec(runner.host, spec)
    how: list[str] = []
    (rec,) = runner.run([cell], on_done=lambda i, n, c, status: how.append(status))
    path = record_path(runner.out_dir, cell.cell_id)
    return {"cell_id": cell.cell_id, "status": rec.status, "error": rec.error, "how": how[0],
            "record": str(path) if path else None}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.jobs SPEC.json ...``: run each cell; exit 1 if one failed, 2 on bad input."""
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m bench.jobs SPEC.json [SPEC.json ...]", file=sys.stderr)
        return 2
    failed = 0
    for p in paths:
        try:
            text = Path(p).read_text()
            result = run_spec(text)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot run cell spec {p}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps(result))
        failed += result["status"] != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
