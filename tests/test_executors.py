"""Grids as jobs: submitit's local executor (real subprocesses) and a local Ray cluster give the same
records as the in-process runner; killed jobs become error records and only they are re-submitted;
two runs at once compute each cell once; concurrent jobs embed a shared split once; `bench status`
reads a partial grid."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.executors import grid_status, parse_options, slurm_parameters
from bench.results import load_record, load_records

TOY_DIR = Path(__file__).parent / "toy_plugins"
ENV = {**os.environ, "BENCH_LOAD_PLUGINS": "", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# Attacks and an embedder for the fault tests: `killer` SIGKILLs its own process while its flag
# file exists; `counting-hash` logs every embed call, so a test can see what was computed twice.
EXTRA = '''
import os, signal
from pathlib import Path
from pydantic import Field
from bench.api import Attack, AttackParams, Inversion
from bench.hookspecs import hookimpl
from bench_dir_plugin_toy import HashEmbedder

class Killer(Attack):
    """Dies (SIGKILL) while its flag file exists, else guesses the word 'the'."""
    name = "killer"
    output = "words"
    default_grid = [{}]
    class Params(AttackParams):
        flag: str = Field("")
    def invert(self, emb, ctx):
        if self.params.flag and Path(self.params.flag).exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return [Inversion(["the"]) for _ in range(len(emb))]

class Counting(HashEmbedder):
    """toy-hash that appends one line per embed call to its log file."""
    name = "counting-hash"
    class Params(HashEmbedder.Params):
        log: str = Field("")
    def embed(self, texts):
        import time
        with open(self.params.log, "a") as f:
            f.write(f"{len(texts)} {os.getpid()}\\n")
        time.sleep(1.0)  # long enough for a second job to arrive while the first embeds
        return super().embed(texts)

@hookimpl
def register_attacks(register):
    register(Killer)

@hookimpl
def register_embedders(register):
    register(Counting)
'''


@pytest.fixture
def plugdir(tmp_path):
    d = tmp_path / "plugs"
    d.mkdir()
    (d / "toy.py").write_text((TOY_DIR / "toy.py").read_text())
    (d / "zz_extra.py").write_text(EXTRA)  # loaded after toy.py (sorted), which it imports
    return d


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def bench(*args, plugins=None) -> int:
    argv = (["--plugins-dir", str(plugins)] if plugins else []) + list(args)
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def metrics_by_cell(out: Path) -> dict:
    return {r.cell_id: (r.metrics, r.utility) for r in load_records([out])}


# ---------------------------------------------------------------- the same numbers everywhere


@pytest.mark.slow
def test_real_grid_same_records_in_process_submitit_and_ray(tmp_path, ray_cluster):
    """MiniLM on WordNet, bow against two defenses: identical metrics from all three executors."""
    grid = ["run", "--no-floor", "-a", "bow:features=256,holdout=50,adaptive=false", "-d", "noise:scale=0.1", "-q",
            "-D", "wordnet:attacker=400,leaked=20,target=40", "--cache-dir", str(tmp_path / "cache")]
    assert bench(*grid, "--out", str(tmp_path / "local")) == 0
    local = metrics_by_cell(tmp_path / "local")
    assert len(local) == 2
    assert bench(*grid, "--out", str(tmp_path / "sub"), "--executor", "submitit-local", "-X", "poll_s=0.3") == 0
    assert bench(*grid, "--out", str(tmp_path / "ray"), "--executor", "ray", "-X", "poll_s=0.2") == 0
    assert metrics_by_cell(tmp_path / "sub") == local
    assert metrics_by_cell(tmp_path / "ray") == local
    # every job ran as its own engine job from a JSON spec written beside the records
    specs = sorted((tmp_path / "sub" / ".grid" / "specs").glob("*.json"))
    assert {json.loads(p.read_text())["cell_id"] for p in specs} == set(local)
    assert any((tmp_path / "sub" / ".grid" / "submitit").iterdir())


@pytest.mark.slow
def test_job_entry_point_runs_a_spec_file(tmp_path, plugdir):
    """`python -m bench.jobs SPEC.json` (how a user reruns one cell by hand) gives the runner's record."""
    out = tmp_path / "out"
    args = ["run", "--no-floor", "-a", "nearest:adaptive=false", "-d", "none", "-e", "toy-hash", "-D", "toy", "-q",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert bench(*args, "--executor", "submitit-local", "-X", "poll_s=0.2", plugins=plugdir) == 0
    (spec,) = (out / ".grid" / "specs").glob("*.json")
    first = metrics_by_cell(out)
    for f in out.glob("*.json"):
        f.unlink()
    proc = subprocess.run([sys.executable, "-m", "bench.jobs", str(spec)], env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["status"] == "ok"
    assert metrics_by_cell(out) == first


# ---------------------------------------------------------------- failures and resume


def _killer_grid(tmp_path, plugdir, out):
    flag = tmp_path / "flag"
    return flag, ["run", "--no-floor", "-a", f"killer:flag={flag}", "-a", "nearest:adaptive=false", "-d", "none", "-e", "toy-hash",
                  "-D", "toy", "-q", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["submitit-local", "ray"])
def test_killed_job_is_an_error_record_and_the_rerun_submits_only_it(tmp_path, plugdir, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_cluster")
    out = tmp_path / "out"
    flag, grid = _killer_grid(tmp_path, plugdir, out)
    flag.touch()
    assert bench(*grid, "--executor", executor, "-X", "poll_s=0.2", plugins=plugdir) == 1
    (err,) = out.glob("killer__*__error-*.json")
    reason = load_record(err).error
    engine = "submitit-local job" if executor == "submitit-local" else "ray task"
    assert reason and engine in reason and ("without a result" in reason or "WorkerCrashedError" in reason), reason
    rows = {r["label"].split()[0].split("(")[0]: r for r in grid_status(out)}
    assert rows["killer"]["state"] == "failed" and rows["nearest"]["state"] == "done"
    assert rows["killer"]["detail"].startswith(reason.splitlines()[0][:50])
    # the dead job's cell lock is no obstacle: its owner is a dead process of this host
    ok = next(out.glob("nearest__*.json"))
    ok_mtime = ok.stat().st_mtime_ns
    jobs = out / ".grid" / "jobs"
    noted = {p.name: p.read_text() for p in jobs.glob("*.json")}

    flag.unlink()
    assert bench(*grid, "--executor", executor, "-X", "poll_s=0.2", plugins=plugdir) == 0
    assert ok.stat().st_mtime_ns == ok_mtime  # the finished cell was not re-run
    changed = [n for n, text in noted.items() if (jobs / n).read_text() != text]
    assert len(changed) == 1 and changed[0].startswith(load_record(err).cell_id)  # only the failed cell re-submitted
    assert [r["state"] for r in grid_status(out)] == ["done", "done"]
    assert len(load_records([out])) == 2 and len(list(out.glob("*__error-*.json"))) == 1


@pytest.mark.slow
def test_no_wait_submits_and_status_follows_the_jobs(tmp_path, plugdir, capsys):
    out = tmp_path / "out"
    args = ["run", "--no-floor", "-a", "nearest:adaptive=false", "-d", "none", "-d", "noise:scale=0.3", "-e", "toy-hash", "-D", "toy",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--executor", "submitit-local", "--no-wait"]
    assert bench(*args, plugins=plugdir) == 0
    assert "submitted 2 jobs" in capsys.readouterr().err
    seen = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = [r["state"] for r in grid_status(out)]
        seen.update(states)
        if states == ["done", "done"]:
            break
        time.sleep(0.3)
    assert states == ["done", "done"] and seen & {"queued", "running"}, seen
    assert len(load_records([out])) == 2


@pytest.mark.slow
def test_sigkilled_local_run_resumes_without_loss(tmp_path, plugdir):
    """The whole `bench run` process killed mid-grid: the rerun finishes, each cell exactly once."""
    out = tmp_path / "out"
    flag, grid = _killer_grid(tmp_path, plugdir, out)
    flag.touch()
    cmd = [sys.executable, "-m", "bench", "--plugins-dir", str(plugdir)] + grid
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == -9  # killed inside the killer cell (the first one)
    rows = grid_status(out)
    assert [r["state"] for r in rows] == ["missing", "missing"]  # nothing half-written, no live lock left
    flag.unlink()
    assert subprocess.run(cmd, env=ENV, capture_output=True).returncode == 0
    recs = load_records([out])
    assert sorted(r.attack.name for r in recs) == ["killer", "nearest"]
    assert not list(out.glob("*__error-*.json"))


@pytest.mark.slow
def test_two_identical_runs_at_once_each_cell_once(tmp_path, plugdir):
    out = tmp_path / "out"
    grid = ["run", "--no-floor", "-a", "nearest", "-d", "none", "-d", "noise:scale=0.3", "-e", "toy-hash", "-D", "toy", "-q",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    cmd = [sys.executable, "-m", "bench", "--plugins-dir", str(plugdir)] + grid
    procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    records = load_records([out])
    assert len(records) == 3 == len({r.cell_id for r in records})
    assert len(list(out.glob("*.samples.jsonl"))) == 3 and not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_concurrent_jobs_embed_a_shared_split_once(tmp_path, plugdir):
    """Two groups' first cells start together and need the same embeddings: one job computes each
    split, the other waits for it and reads the cache."""
    log = tmp_path / "embed.log"
    out = tmp_path / "out"
    grid = ["run", "--no-floor", "-a", "nearest:adaptive=false", "-a", "killer", "-d", "none", "-e", f"counting-hash:log={log}",
            "-D", "toy", "-q", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert bench(*grid, "--executor", "submitit-local", "-X", "poll_s=0.2", plugins=plugdir) == 0
    calls = [line.split() for line in log.read_text().splitlines()]
    sizes = [int(n) for n, _ in calls]
    # once each: attacker (600), leaked (50); target, corpus and nearest's reconstructions (80 each)
    assert sizes.count(600) == 1 and sizes.count(50) == 1 and sizes.count(80) == 3, calls


# ---------------------------------------------------------------- status, options, CLI errors


def test_status_of_a_partial_grid(tmp_path, plugdir, capsys):
    from bench.executors import note_job, write_manifest
    from bench.jobs import cell_spec
    from bench.locks import file_lock
    from bench.plugins import Host
    from bench.runner import Runner, build_grid

    host = Host(plugins_dir=plugdir, load_installed=False)
    out = tmp_path / "out"
    cells = build_grid(host, ["nearest:adaptive=false", "killer"], ["none", "noise:scale=0.3"], ["toy-hash"], ["toy"], [0], baseline=False)
    assert len(cells) == 4
    runner = Runner(host, out, "cpu", tmp_path / "cache", progress=False)
    specs = [cell_spec(c, host, out, runner.settings, "cpu") for c in cells]
    write_manifest(out, specs, "submitit-local", parse_options("submitit-local", {}))
    runner.run(cells[:1])  # done
    from bench.results import write_record

    write_record(out, runner.error_record(cells[1], "slurm job 7 ended TIMEOUT: time limit"), None)  # failed
    with file_lock(out / ".locks" / f"{cells[2].cell_id}.lock"):  # running: this process holds its lock
        rows = {r["cell_id"]: r for r in grid_status(out)}
        assert [rows[c.cell_id]["state"] for c in cells] == ["done", "failed", "running", "missing"]
        assert "TIMEOUT" in rows[cells[1].cell_id]["detail"] and str(os.getpid()) in rows[cells[2].cell_id]["detail"]
        note_job(out, cells[3].cell_id, "submitit-local", str(os.getpid()))  # a live local job: queued
        assert grid_status(out)[3]["state"] == "queued"
        assert bench("status", str(out)) == 0
        text = capsys.readouterr().out
        assert "4 cells: 1 done, 1 running, 1 queued, 1 failed, 0 missing" in text and "TIMEOUT" in text
    assert bench("status", str(out), "--json") == 0
    assert {r["state"] for r in json.loads(capsys.readouterr().out)} == {"done", "failed", "missing", "queued"}


def test_slurm_options_become_sbatch_flags(tmp_path):
    pytest.importorskip("submitit")
    from submitit.slurm.slurm import _make_sbatch_string  # what SlurmExecutor writes (srun is not here)

    opts = parse_options("slurm", {"partition": "gpu", "account": "lab", "time_min": "90", "gpus_per_task": "1",
                                   "cpus_per_task": "8", "mem_gb": "32", "array_parallelism": "4",
                                   "setup": "module load cuda|source venv/bin/activate"})
    script = _make_sbatch_string("python -m submitit.core._submit x", tmp_path / "%j", map_count=10, **slurm_parameters(opts))
    for flag in ("--partition=gpu", "--account=lab", "--time=90", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32768M", "--array=0-9%4", "module load cuda", "--requeue", "--signal=USR2@90"):
        assert flag in script, flag
    short = parse_options("slurm", {"time_min": "0.5", "requeue": "false"})
    script = _make_sbatch_string("python -m submitit.core._submit x", tmp_path / "%j", **slurm_parameters(short))
    for flag in ("--time=0:30", "--no-requeue", "--signal=USR2@5"):
        assert flag in script, flag


@pytest.mark.parametrize("args, message", [
    (["-X", "partiton=gpu", "--executor", "slurm"], "has no option 'partiton'"),
    (["-X", "time_min=soon", "--executor", "slurm"], "option 'time_min'"),
    (["-X", "nokey", "--executor", "slurm"], "write -X key=value"),
    (["--no-wait"], "--no-wait needs a job executor"),
    (["--no-wait", "--executor", "ray"], "ray tasks end with the process"),
    (["--executor", "slurm"], "no Slurm here"),
])
def test_bad_executor_input_is_one_line_before_any_work(tmp_path, plugdir, capsys, monkeypatch, args, message):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here, even where the test cluster runs
    out = tmp_path / "out"
    code = bench("run", "--no-floor", "-a", "nearest", "-e", "toy-hash", "-D", "toy", "--out", str(out), *args, plugins=plugdir)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_executor_from_config_table(tmp_path, plugdir):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(f'''attacks = ["nearest:adaptive=false"]
defenses = ["none"]
embedders = ["toy-hash"]
datasets = ["toy"]
out = "{tmp_path / 'out'}"

[executor]
name = "submitit-local"
poll_s = 0.2
array_parallelism = 1
''')
    assert bench("run", "--config", str(cfg), "-q", "--cache-dir", str(tmp_path / "cache"), plugins=plugdir) == 0
    (manifest,) = (tmp_path / "out" / ".grid").glob("manifest-*.json")
    data = json.loads(manifest.read_text())
    assert data["executor"] == "submitit-local" and data["options"]["array_parallelism"] == 1
