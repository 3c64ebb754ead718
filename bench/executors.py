"""Where a grid's cells run: in-process (``local``), as Slurm jobs through submitit (``slurm``,
``submitit-local`` for trying a Slurm grid on one machine), or as Ray tasks (``ray``).

Every non-local cell is one job that gets the cell's JSON specification (``bench.jobs``) and runs
it with the local runner's code path. The submitting process writes the grid's manifest and the
specs under ``OUT/.grid/``, submits in two waves so shared work is done once (the first cell of
each group of cells sharing a victim, dataset, seed and trained attack runs first and fills the
caches; the group's other cells start when it ends), waits and reports each finished cell. A job
that dies (killed, out of memory, time limit) becomes an error record carrying the engine's
reason; running the same command again submits only the cells without an ``ok`` record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.cache import atomic_write_bytes, key_hash
from bench.errors import BenchError
from bench.results import ResultRecord, load_record, record_path, write_record

GRID_DIR = ".grid"  # under OUT: manifests, cell specs, job ids, submitit's job folders
NAMES = ("local", "slurm", "submitit-local", "ray")


# ---------------------------------------------------------------- options


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    poll_s: float = Field(2.0, gt=0, description="seconds between looks at the jobs while waiting")


class LocalOptions(Options):
    pass


class SubmititOptions(Options):
    time_min: float = Field(60, gt=0, description="time limit of one cell's job, in minutes (0.5: 30 seconds)")
    gpus_per_task: int = Field(0, ge=0, description="GPUs per job")
    cpus_per_task: int = Field(1, ge=1, description="CPUs per job")
    job_dir: str | None = Field(None, description="submitit's folder for job scripts and logs [OUT/.grid/submitit]")
    array_parallelism: int = Field(64, ge=1, description="jobs of the grid running at once")


class SlurmOptions(SubmititOptions):
    poll_s: float = Field(15.0, gt=0, description="seconds between looks at the jobs (sacct) while waiting")
    partition: str | None = Field(None, description="Slurm partition (sbatch --partition)")
    account: str | None = Field(None, description="Slurm account to charge (sbatch --account)")
    qos: str | None = Field(None, description="quality of service (sbatch --qos)")
    constraint: str | None = Field(None, description="node features (sbatch --constraint), e.g. a100")
    mem_gb: float | None = Field(None, gt=0, description="memory per job in GB (sbatch --mem)")
    setup: list[str] = Field([], description="shell lines run before each job, e.g. 'module load cuda'")
    requeue: bool = Field(True, description="Slurm puts a job back in the queue when it is preempted or its node fails (sbatch --requeue; false: --no-requeue, such a cell ends as an error record)")


class RayOptions(Options):
    poll_s: float = Field(0.5, gt=0)
    address: str | None = Field(None, description="Ray cluster address ('auto', 'ray://host:10001'); none: start a local cluster")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local cluster started when no address is given [all]")
    cpus_per_task: float = Field(1.0, gt=0, description="CPUs Ray reserves per cell")
    gpus_per_task: float = Field(0.0, ge=0, description="GPUs Ray reserves per cell (fractions share a GPU)")
    memory_gb: float | None = Field(None, gt=0, description="memory Ray reserves per cell, in GB")


OPTIONS: dict[str, type[Options]] = {
    "local": LocalOptions, "slurm": SlurmOptions, "submitit-local": SubmititOptions, "ray": RayOptions,
}


def parse_options(executor: str, given: dict[str, Any]) -> Options:
    """Typed options of an executor from ``-X key=value`` strings or a TOML table (one-line errors)."""
    if executor not in OPTIONS:
        raise BenchError(f"unknown executor {executor!r}: choose one of {', '.join(NAMES)}")
    cls = OPTIONS[executor]
    values = dict(given)
    for k, v in values.items():  # strings from the command line; lists come as a|b
        if isinstance(v, str) and k in cls.model_fields and "list" in str(cls.model_fields[k].annotation):
            values[k] = [s for s in v.split("|") if s]
        elif isinstance(v, str) and v.lower() in ("none", "null", ""):
            values[k] = None
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(map(str, first["loc"])) or "?"
        if first["type"] == "extra_forbidden":
            raise BenchError(f"executor {executor!r} has no option {field!r}: known options are "
                             f"{', '.join(cls.model_fields)} (see docs/clusters.md)") from None
        raise BenchError(f"bad value for executor {executor!r} option {field!r}: {first['msg']} (got {first.get('input')!r})") from None


def options_help() -> str:
    lines = []
    for name, cls in OPTIONS.items():
        opts = [k for k in cls.model_fields if k != "poll_s"]
        lines.append(f"{name}: {', '.join(opts) or '-'}")
    return "; ".join(lines)


# ---------------------------------------------------------------- grid folder


def grid_dir(out_dir: Path) -> Path:
    return Path(out_dir) / GRID_DIR


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2).encode(), overwrite=True)


def share_key(spec: dict) -> str:
    """Cells with the same key share a victim's embeddings and a trained attack artifact."""
    c = spec["cell"]
    attack = {"name": c["attack"]["name"], "params": {k: v for k, v in c["attack"]["params"].items() if k != "adaptive"}}
    return key_hash([c["embedder"], c["dataset"], c["seed"], attack])


def write_manifest(out_dir: Path, specs: list[dict], executor: str, options: Options) -> Path:
    """``OUT/.grid/manifest-<grid>.json``: the cells of the grid, how they were submitted; plus one spec per cell."""
    gdir = grid_dir(out_dir)
    for spec in specs:
        _write_json(gdir / "specs" / f"{spec['cell_id']}.json", spec)
    grid_id = key_hash(sorted(s["cell_id"] for s in specs), 12)
    path = gdir / f"manifest-{grid_id}.json"
    _write_json(path, {
        "grid_id": grid_id,
        "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "executor": executor,
        "options": options.model_dump(mode="json"),
        "driver": {"host": socket.gethostname(), "pid": os.getpid()},
        "cells": [{"cell_id": s["cell_id"], "label": s["label"]} for s in specs],
    })
    return path


def note_job(out_dir: Path, cell_id: str, executor: str, job_id: str | None, job_dir: str | None = None) -> None:
    """Remember which job runs a cell (``bench status`` asks the engine about it); job id None: the
    waiting driver holds the cell until its group's first cell has ended."""
    _write_json(grid_dir(out_dir) / "jobs" / f"{cell_id}.json", {
        "executor": executor, "job_id": job_id, "job_dir": job_dir, "driver": {"host": socket.gethostname(), "pid": os.getpid()},
        "submitted": time.time(),
    })


def error_records(out_dir: Path, cell_id: str) -> list[Path]:
    return sorted(Path(out_dir).glob(f"*__{cell_id}__error-*.json"))


def latest_record(out_dir: Path, cell_id: str) -> ResultRecord | None:
    """The cell's ok record, else its newest error record, else None."""
    path = record_path(out_dir, cell_id)
    if path is None:
        errors = error_records(out_dir, cell_id)
        path = errors[-1] if errors else None
    return load_record(path) if path else None


# ---------------------------------------------------------------- engines


class Engine:
    """Submits cell specs as jobs and tells when each has ended (and how)."""

    name: ClassVar[str] = ""

    def __init__(self, options: Options, out_dir: Path):
        self.options = options
        self.out_dir = Path(out_dir)

    def submit(self, specs: list[dict], after: dict[str, str] | None = None) -> list[Any]:
        """One job per spec; ``after``: cell id -> job id it should wait for (engines that can)."""
        raise NotImplementedError

    def job_id(self, handle: Any) -> str:
        raise NotImplementedError

    def outcome(self, handle: Any) -> dict | str | None:
        """None while the job runs; its summary dict when it returned; a reason string when it died."""
        raise NotImplementedError

    def poll(self, handles: list[Any]) -> None:
        """Look at all running jobs at once before their outcomes are asked (engines that can)."""

    def cancel(self, handles: list[Any]) -> None:
        pass

    def close(self) -> None:
        pass

    max_in_flight: int | None = None


class SubmititEngine(Engine):
    """Slurm jobs (``slurm``) or submitit's local subprocesses (``submitit-local``)."""

    def __init__(self, options: SubmititOptions, out_dir: Path, cluster: str):
        super().__init__(options, out_dir)
        # On import submitit runs logging.config.dictConfig, which closes every handler already
        # installed, and absl's handler (imported with rouge-score) then closes the stream it writes
        # to: this process's stderr. NOCONFIG leaves logging alone (set SUBMITIT_LOG_LEVEL to override).
        os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
        try:
            import submitit
        except ImportError:
            raise BenchError("executor needs submitit: pip install 'inversion-bench[slurm]'") from None
        self.cluster = cluster
        self.folder = Path(options.job_dir) if options.job_dir else grid_dir(out_dir) / "submitit" / "%j"
        self.states: dict[str, dict[str, str]] = {}  # slurm: job id -> state and reason, from the last poll
        self.answered = False
        if cluster == "slurm":
            # submitit asks sacct, which many clusters (and the test cluster) lack: states come from
            # slurm_jobs() instead, so its warnings about sacct are noise
            logging.getLogger("submitit").setLevel(logging.ERROR)
            self.executor = submitit.SlurmExecutor(folder=self.folder)
            self.executor.update_parameters(**slurm_parameters(options))
        else:
            self.executor = submitit.LocalExecutor(folder=self.folder)
            self.executor.update_parameters(timeout_min=options.time_min, gpus_per_node=options.gpus_per_task)
            self.max_in_flight = options.array_parallelism  # the local executor starts every job at once

    def submit(self, specs, after=None):
        """One array job per batch; with ``after`` (Slurm, no-wait) one array per group of followers,
        held by Slurm until its group's first job has ended (``--dependency=afterany``)."""
        from bench.jobs import run_spec

        texts = [json.dumps(s) for s in specs]
        groups: dict[str | None, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault((after or {}).get(spec["cell_id"]) if self.cluster == "slurm" else None, []).append(i)
        handles: list[Any] = [None] * len(specs)
        for dep, idx in groups.items():
            if self.cluster == "slurm":
                self.executor.update_parameters(additional_parameters=_sbatch_extra(self.options, dep))
            batch = [texts[i] for i in idx]
            got = [self.executor.submit(run_spec, batch[0])] if len(batch) == 1 else self.executor.map_array(run_spec, batch)
            for i, h in zip(idx, got):
                handles[i] = h
        return handles

    def job_id(self, handle):
        return str(handle.job_id)

    def poll(self, handles):
        if self.cluster == "slurm":
            got = slurm_jobs([self.job_id(h) for h in handles])
            self.answered = got is not None
            self.states = got or {}

    def _slurm_outcome(self, handle):
        """From the result file when there is one, else from Slurm's state of the job (never sacct)."""
        jid = self.job_id(handle)
        info = self.states.get(jid)
        note = f" ({info['state']}{_reason(info)})" if info else ""
        if handle.paths.result_pickle.exists():
            try:
                return handle.result()
            except Exception as e:  # noqa: BLE001 - the job's reason becomes the error record
                return f"slurm job {jid} ended with an error{note}: {_last_line(e)}"
        if not self.answered:
            return None  # the controller does not answer (restarting?): keep waiting
        if info is not None and info["state"] not in SLURM_ENDED:
            return None
        if handle.paths.result_pickle.exists():  # written as the job ended
            return self._slurm_outcome(handle)
        return f"slurm job {jid} ended without a result{note or ' (no longer known to Slurm)'}"

    def outcome(self, handle):
        if self.cluster == "slurm":
            return self._slurm_outcome(handle)
        if not handle.done():
            return None
        try:
            return handle.result()
        except Exception as e:  # noqa: BLE001 - the engine's reason becomes the error record
            state = handle.state
            code = getattr(getattr(handle, "_process", None), "returncode", None)  # submitit-local only
            if isinstance(code, int) and code < 0:
                state = f"{state}, killed by signal {-code}"
            elif isinstance(code, int) and code > 0:
                state = f"{state}, exit code {code}"
            how = "without a result" if "has not produced any output" in str(e) else "with an error"
            return f"{self.cluster} job {handle.job_id} ended {how} ({state}): {_last_line(e)}"

    def cancel(self, handles):
        for h in handles:
            try:
                h.cancel(check=False)
            except Exception:  # noqa: BLE001
                pass


def slurm_parameters(options: SlurmOptions) -> dict[str, Any]:
    """submitit.SlurmExecutor parameters (sbatch flags) of the options."""
    seconds = round(options.time_min * 60)
    params: dict[str, Any] = {
        "time": -(-seconds // 60),  # whole minutes for submitit; seconds go to sbatch in _sbatch_extra
        # submitit's warning signal before the limit: a tenth of the limit, at most its 90 s default
        "signal_delay_s": max(5, min(90, seconds // 10)),
        "cpus_per_task": options.cpus_per_task,
        "array_parallelism": options.array_parallelism,
        "job_name": "bench-cell",
        "ntasks_per_node": 1,
    }
    if options.gpus_per_task:
        params["gpus_per_node"] = options.gpus_per_task
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(options, key):
            params[key] = getattr(options, key)
    if options.mem_gb:
        params["mem"] = f"{int(options.mem_gb * 1024)}M"
    if options.setup:
        params["setup"] = list(options.setup)
    params["additional_parameters"] = _sbatch_extra(options, None)
    return params


def _sbatch_extra(options: SlurmOptions, dependency: str | None) -> dict[str, Any]:
    """sbatch flags submitit has no parameter for: requeue, a limit in seconds, a follower's dependency."""
    extra: dict[str, Any] = {"requeue": True} if options.requeue else {"no-requeue": True}
    seconds = round(options.time_min * 60)
    if seconds % 60:
        extra["time"] = f"{seconds // 60}:{seconds % 60:02d}"
    if dependency:
        extra["dependency"] = f"afterany:{dependency}"
    return extra


# Slurm job states (squeue --states=all) after which a job runs no more, unless requeued
SLURM_ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                         "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"})


def slurm_jobs(job_ids: list[str]) -> dict[str, dict[str, str]] | None:
    """State, reason and node of each job Slurm knows, by job id (``12`` or ``12_3`` for an array
    task), from one ``squeue --states=all`` call (ended jobs stay listed for the cluster's
    MinJobAge, 5 minutes by default); None when the controller does not answer."""
    bases = sorted({str(j).split("_")[0] for j in job_ids})
    if not bases:
        return {}
    try:
        proc = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r|%N",
                               f"--jobs={','.join(bases)}"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return {} if "Invalid job id" in proc.stderr else None  # every one of them forgotten; else no answer
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4:
            jobs[parts[0]] = {"state": parts[1].split()[0], "reason": parts[2], "node": parts[3]}
    return jobs


def _reason(info: dict[str, str]) -> str:
    return f", {info['reason']}" if info.get("reason") not in (None, "", "None") else ""


class RayEngine(Engine):
    """Ray tasks on a cluster (``address``) or on a local one started here."""

    def __init__(self, options: RayOptions, out_dir: Path):
        super().__init__(options, out_dir)
        try:
            import ray
        except ImportError:
            raise BenchError("executor 'ray' needs ray: pip install 'inversion-bench[ray]'") from None
        from bench.jobs import run_spec

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if options.address:
                kwargs["address"] = options.address
            elif options.num_cpus:
                kwargs["num_cpus"] = options.num_cpus
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise BenchError(f"cannot reach the Ray cluster ({_last_line(e)}): check -X address= or start one with `ray start --head`") from None
        resources: dict[str, Any] = {"num_cpus": options.cpus_per_task, "num_gpus": options.gpus_per_task, "max_retries": 0}
        if options.memory_gb:
            resources["memory"] = int(options.memory_gb * 2**30)
        self.remote = ray.remote(**resources)(run_spec)

    def submit(self, specs, after=None):
        return [self.remote.remote(json.dumps(s)) for s in specs]

    def job_id(self, handle):
        return handle.task_id().hex()

    def outcome(self, handle):
        ready, _ = self.ray.wait([handle], timeout=0)
        if not ready:
            return None
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as e:
            return f"ray task {self.job_id(handle)[:16]} failed ({type(e).__name__}): {_last_line(e)}"

    def cancel(self, handles):
        for h in handles:
            try:
                self.ray.cancel(h, force=True)
            except Exception:  # noqa: BLE001
                pass

    def close(self):
        if self.started:
            self.ray.shutdown()


def _last_line(e: BaseException) -> str:
    """The informative last line of an engine's error text (submitit's own log lines skipped)."""
    lines = [s.strip() for s in str(e).strip().splitlines() if s.strip()]
    lines = [s for s in lines if not s.startswith(("submitit ", "----")) and "has not produced any output" not in s] or lines
    text = lines[-1] if lines else type(e).__name__
    return text[:500]


def check_available(executor: str) -> None:
    """Fail before any work when the executor's engine is not installed or not reachable here."""
    import importlib.util
    import shutil

    if executor in ("slurm", "submitit-local") and importlib.util.find_spec("submitit") is None:
        raise BenchError(f"executor {executor!r} needs submitit: pip install 'inversion-bench[slurm]'")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise BenchError("executor 'ray' needs ray: pip install 'inversion-bench[ray]'")
    if executor == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise BenchError("no Slurm here (sbatch/srun not on PATH): submit from the cluster's login node, "
                         "or try the grid on this machine with --executor submitit-local")


def make_engine(executor: str, options: Options, out_dir: Path) -> Engine:
    if executor == "slurm":
        return SubmititEngine(options, out_dir, "slurm")
    if executor == "submitit-local":
        return SubmititEngine(options, out_dir, "submitit-local")
    if executor == "ray":
        return RayEngine(options, out_dir)
    raise BenchError(f"executor {executor!r} runs in-process: use the Runner")


# ---------------------------------------------------------------- driving a grid


def waves(specs: list[dict]) -> tuple[list[dict], dict[str, list[dict]]]:
    """The first cell of each sharing group, and each first cell's followers."""
    leaders: dict[str, dict] = {}
    followers: dict[str, list[dict]] = {}
    for spec in specs:
        key = share_key(spec)
        if key not in leaders:
            leaders[key] = spec
            followers[spec["cell_id"]] = []
        else:
            followers[leaders[key]["cell_id"]].append(spec)
    return list(leaders.values()), followers


def submit_grid(runner, cells, executor: str, options: Options, device: str, wait: bool = True,
                say: Callable[[str], None] = lambda m: None, on_done=None) -> list[ResultRecord] | None:
    """Run the cells that have no ok record as jobs; with ``wait``, return every cell's record.

    ``runner`` is the submitting process's runner (its host and folders; it runs no cell).
    """
    from bench.jobs import cell_spec

    out_dir = runner.out_dir
    todo = [c for c in cells if record_path(out_dir, c.cell_id) is None]
    specs = [cell_spec(c, runner.host, out_dir, runner.settings, device, runner.command) for c in cells]
    write_manifest(out_dir, specs, executor, options)
    by_id = {c.cell_id: c for c in cells}
    todo_ids = {c.cell_id for c in todo}
    done = len(cells) - len(todo)
    if done:
        say(f"{done} of {len(cells)} cells already have a record: submitting the other {len(todo)}")
    if not todo:
        return [latest_record(out_dir, c.cell_id) for c in cells] if wait else None
    leaders, followers = waves([s for s in specs if s["cell_id"] in todo_ids])
    engine = make_engine(executor, options, out_dir)
    try:
        if not wait:
            handles = engine.submit(leaders)
            ids = {s["cell_id"]: engine.job_id(h) for s, h in zip(leaders, handles)}
            rest = [f for s in leaders for f in followers[s["cell_id"]]]
            after = {f["cell_id"]: ids[s["cell_id"]] for s in leaders for f in followers[s["cell_id"]]}
            handles += engine.submit(rest, after=after) if rest else []
            for spec, h in zip(leaders + rest, handles):
                note_job(out_dir, spec["cell_id"], executor, engine.job_id(h), str(engine_folder(engine)))
            say(f"submitted {len(handles)} jobs ({executor}); follow them with `bench status {out_dir}`")
            return None
        _wait_loop(runner, engine, executor, leaders, followers, by_id, len(cells), done, say, on_done)
    finally:
        engine.close()
    return [latest_record(out_dir, c.cell_id) for c in cells]


def engine_folder(engine: Engine) -> str | None:
    return str(getattr(engine, "folder", "")) or None


def _wait_loop(runner, engine, executor, leaders, followers, by_id, n_cells, done, say, on_done) -> None:
    out_dir = runner.out_dir
    queue = list(leaders)
    for spec in leaders:  # the others wait here for their group's first cell (`bench status`: queued)
        for f in followers[spec["cell_id"]]:
            note_job(out_dir, f["cell_id"], executor, None)
    running: dict[str, tuple[dict, Any]] = {}
    last_note = time.monotonic()
    try:
        while queue or running:
            room = len(queue) if engine.max_in_flight is None else max(0, engine.max_in_flight - len(running))
            batch, queue = queue[:room], queue[room:]
            if batch:
                for spec, h in zip(batch, engine.submit(batch)):
                    running[spec["cell_id"]] = (spec, h)
                    note_job(out_dir, spec["cell_id"], executor, engine.job_id(h), engine_folder(engine))
            time.sleep(engine.options.poll_s)
            engine.poll([h for _, h in running.values()])
            finished = []
            for cid, (spec, h) in running.items():
                result = engine.outcome(h)
                if result is None:
                    continue
                finished.append(cid)
                status = _settle(runner, by_id[cid], result)
                done += 1
                say(f"[{done}/{n_cells}] {spec['label']}: {status}")
                if on_done:
                    on_done(done, n_cells, by_id[cid], status)
                queue.extend(followers.get(cid, []))  # the group's caches are filled: its other cells go
            for cid in finished:
                del running[cid]
            if not finished and time.monotonic() - last_note > 60:
                say(f"waiting: {len(running)} jobs running or queued, {len(queue)} to submit, {done}/{n_cells} done")
                last_note = time.monotonic()
    except KeyboardInterrupt:
        if executor == "slurm":
            say(f"interrupted: the {len(running)} submitted Slurm jobs keep running; `bench status {out_dir}` follows them")
        else:
            engine.cancel([h for _, h in running.values()])
        raise


def _settle(runner, cell, result: dict | str) -> str:
    """A finished job's status line; a job that died without a record gets an error record."""
    if isinstance(result, dict):
        return result["status"] if result["status"] == "ok" else f"error: {result['error']}"
    if record_path(runner.out_dir, cell.cell_id) is not None:
        return "ok"  # it wrote its record before the engine stopped it
    write_record(runner.out_dir, runner.error_record(cell, result), None)
    return f"error: {result}"


# ---------------------------------------------------------------- status


def grid_status(out_dir: Path) -> list[dict[str, Any]]:
    """Every cell of every grid submitted into ``out_dir`` (or run there by the local runner), in
    one of five states: done (an ok record), running (its lock is held, or Slurm runs its job),
    queued (a job waiting for a node, or a cell the waiting driver holds back until its group's
    first cell ends), failed (error records only, or a Slurm job that ended without a record:
    Slurm's reason), missing (nothing)."""
    from bench.locks import holder

    out_dir = Path(out_dir)
    cells: dict[str, str] = {}
    for manifest in sorted(grid_dir(out_dir).glob("manifest-*.json")):
        for c in json.loads(manifest.read_text())["cells"]:
            cells.setdefault(c["cell_id"], c["label"])
    for rec_file in sorted(out_dir.glob("*.json")):  # cells run without a manifest (local runs)
        cid = rec_file.stem.split("__error-")[0].rsplit("__", 1)[-1]
        if cid not in cells:
            try:
                rec = load_record(rec_file)
            except (OSError, ValueError, BenchError):
                continue  # not a record, or one that fails its digest (bench run names it)
            cells[rec.cell_id] = f"{rec.attack.name} vs {rec.defense.name} on {rec.embedder.name}/{rec.dataset.name} seed={rec.seed}"
    jobs = {cid: _job_info(out_dir, cid) for cid in cells}
    slurm_ids = [str(j["job_id"]) for cid, j in jobs.items() if j and j.get("executor") == "slurm" and j.get("job_id")
                 and record_path(out_dir, cid) is None]
    slurm = slurm_jobs(slurm_ids) if slurm_ids else {}
    rows = []
    for cid, label in cells.items():
        row: dict[str, Any] = {"cell_id": cid, "label": label, "state": "missing", "detail": ""}
        job = jobs[cid]
        errors = error_records(out_dir, cid)
        last_error = errors[-1].stat().st_mtime if errors else 0.0
        if record_path(out_dir, cid) is not None:
            row["state"] = "done"
        elif (owner := holder(out_dir / ".locks" / f"{cid}.lock")) is not None:  # the runner's per-cell lock
            row["state"] = "running"
            row["detail"] = f"on {owner.get('host', '?')} pid {owner.get('pid', '?')}"
        elif job is not None and job.get("submitted", 0) >= last_error and (seen := _job_state(job, slurm)) is not None:
            row["state"], row["detail"] = seen
        elif errors:
            row["state"] = "failed"
            try:
                row["detail"] = ((load_record(errors[-1]).error or "").splitlines() or [""])[0][:200]
            except (OSError, ValueError, BenchError):
                row["detail"] = f"unreadable error record {errors[-1].name}"
        rows.append(row)
    return rows


def _job_info(out_dir: Path, cell_id: str) -> dict | None:
    path = grid_dir(out_dir) / "jobs" / f"{cell_id}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _job_state(job: dict, slurm: dict[str, dict[str, str]] | None) -> tuple[str, str] | None:
    """(state, detail) of a cell's noted job that has no record yet, or None when it is over and
    left nothing to say (then the cell's error records, if any, tell)."""
    from bench.locks import pid_alive

    here = socket.gethostname()
    driver = job.get("driver") or {}
    driver_alive = driver.get("host") != here or pid_alive(int(driver.get("pid", -1)))
    if not job.get("job_id"):  # held back by the waiting driver
        return ("queued", f"waits for its group's first cell (driver pid {driver.get('pid', '?')})") if driver_alive else None
    jid = str(job["job_id"])
    if job["executor"] == "slurm":
        if slurm is None:
            return "queued", f"slurm job {jid}: Slurm does not answer, state unknown"
        info = slurm.get(jid)
        if info is None:
            return None
        if info["state"] in ("RUNNING", "COMPLETING"):
            return "running", f"slurm job {jid} on {info['node'] or '?'}"
        if info["state"] not in SLURM_ENDED:
            return "queued", f"slurm job {jid} {info['state']}{_reason(info)}"
        return "failed", f"slurm job {jid} ended without a record ({info['state']}{_reason(info)})"
    if job["executor"] == "submitit-local" and jid.isdigit() and driver.get("host") == here:
        return ("queued", f"submitit-local job {jid}") if pid_alive(int(jid)) else None
    return ("queued", f"{job['executor']} job {jid}") if driver_alive else None
