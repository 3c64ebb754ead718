"""Fault injection: kill -9 at each write step, two runs at once, damaged caches and artifacts, a
misbehaving embeddings server. Every case must end in the metrics of an uninterrupted run (or a
one-line error), with each cell written once and nothing silently wrong.

The runs are real ``bench run`` subprocesses on the toy embedder and dataset (seconds each); a
kill point is injected by a small wrapper that patches one write function to SIGKILL its own
process at that step, so the production code has no test hooks.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from stub_server import embeddings_server

ROOT = Path(__file__).parents[1]
TOY = str(ROOT / "tests" / "toy_plugins")
GRID = ["-a", "bow:adaptive=false,features=256,holdout=100", "-d", "none", "-d", "noise:scale=0.1", "-e", "toy-hash", "-D", "toy"]

# Each kill point: the code run in the subprocess before `bench run` starts, patching one step.
KILL_POINTS = {
    # the samples file's temp copy is written, the rename has not happened
    "samples-rename": """
        real = os.replace
        def replace(src, dst, *a, **k):
            if str(dst).endswith(".samples.jsonl"): die()
            return real(src, dst, *a, **k)
        os.replace = replace
    """,
    # the samples file is in place, the record is not written yet
    "before-record": """
        import bench.results as r
        real = r.atomic_write_bytes
        def write(path, data, overwrite=False):
            if str(path).endswith(".json"): die()
            return real(path, data, overwrite)
        r.atomic_write_bytes = write
    """,
    # the record's temp copy is written, the link to its final name has not happened
    "record-link": """
        real = os.link
        def link(src, dst, *a, **k):
            if str(dst).endswith(".json") and "__s0__" in str(dst): die()
            return real(src, dst, *a, **k)
        os.link = link
    """,
    # an embedding cache entry is written to its temp name, not renamed
    "embedding-cache": """
        real = os.replace
        def replace(src, dst, *a, **k):
            if "/embeddings/" in str(dst): die()
            return real(src, dst, *a, **k)
        os.replace = replace
    """,
    # the trained bow artifact is written but not sealed
    "artifact-seal": """
        import bench_plugins.attacks.bow as bow
        bow.seal = lambda *a, **k: die()
    """,
    # the second cell is being computed (its lock is held): the first cell is finished
    "second-cell": """
        import bench.runner as runner
        real = runner.Runner.run_cell
        calls = []
        def run_cell(self, cell):
            calls.append(cell)
            if len(calls) == 2: die()
            return real(self, cell)
        runner.Runner.run_cell = run_cell
    """,
}

WRAPPER = """
import os, signal, sys
def die():
    os.kill(os.getpid(), signal.SIGKILL)
{patch}
from bench.cli import main
main(sys.argv[1:])
"""


def bench(args, out, cache, patch="", wait=True, env=None):
    cmd = [sys.executable, "-c", WRAPPER.format(patch=textwrap.dedent(patch)), "--plugins-dir", TOY, "run", "--no-floor", *args,
           "--device", "cpu", "-q", "--out", str(out), "--cache-dir", str(cache)]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_LOAD_PLUGINS": "", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=full_env)
    if not wait:
        return proc
    out_text, err = proc.communicate(timeout=300)
    return proc.returncode, out_text, err


def metrics(out: Path) -> dict:
    """cell id -> metrics of every ok record, checking that each cell is written exactly once."""
    recs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    ids = [r["cell_id"] for r in recs]
    assert len(ids) == len(set(ids)), f"a cell written twice: {sorted(ids)}"
    samples = list(out.glob("*.samples.jsonl"))
    assert len(samples) == len(recs), "samples files without records left behind"
    for r in recs:
        assert r["status"] == "ok", r["error"]
        rows = (out / r["samples_file"]).read_text().splitlines()
        assert len(rows) == r["metrics"]["word_f1"]["n"]
    return {r["cell_id"]: r["metrics"] for r in recs}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The metrics of one uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    code, _, err = bench(GRID, tmp / "out", tmp / "cache")
    assert code == 0, err
    ref = metrics(tmp / "out")
    assert len(ref) == 2
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_9_at_each_write_step_resumes_to_identical_metrics(tmp_path, reference, point):
    out, cache = tmp_path / "out", tmp_path / "cache"
    code, _, err = bench(GRID, out, cache, KILL_POINTS[point])
    assert code == -signal.SIGKILL, f"the kill point {point} was never reached: {err[-500:]}"
    code, _, err = bench(GRID, out, cache)
    assert code == 0, err
    assert "Traceback" not in err
    assert metrics(out) == reference
    assert not list((out / ".locks").glob("*.lock")), "a lock file left behind"
    assert not list(out.glob(".*.tmp")), "temp files of the killed write left behind"


def test_two_concurrent_runs_on_the_same_folders(tmp_path, reference):
    out, cache = tmp_path / "out", tmp_path / "cache"
    procs = [bench(GRID, out, cache, wait=False) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for code, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    assert metrics(out) == reference  # each cell once, same numbers


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # overwrite a stretch in the middle of the tensor data with other bytes
        mid = len(data) * 2 // 3
        data[mid : mid + 1024] = bytes((b + 1) % 256 for b in data[mid : mid + 1024])
        path.write_bytes(bytes(data))


@pytest.mark.slow
def test_damaged_cache_and_artifact_files_are_reported_once_and_recomputed(tmp_path, reference):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert bench(GRID, out, cache)[0] == 0
    emb = {p.name.split("-")[0]: p for p in (cache / "embeddings").glob("*.safetensors")}
    (art,) = list((cache / "artifacts" / "bow").rglob("bow.safetensors"))
    damaged = [emb["attacker"], emb["target"], art, art.with_name("bow.json")]
    for path, how in zip(damaged, ["overwrite", "truncate", "overwrite", "truncate"]):
        _damage(path, how)
    code, _, err = bench(GRID, tmp_path / "out2", cache)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    for path in damaged:
        assert sum(str(path) in w for w in warnings) == 1, err
    assert "Traceback" not in err
    assert metrics(tmp_path / "out2") == reference  # recomputed, never used
    # and the recomputed files are sound: a third run warns about nothing
    code, _, err = bench(GRID, tmp_path / "out3", cache)
    assert code == 0 and "warning" not in err, err


# ---------------------------------------------------------------- a misbehaving embeddings server


def _api_grid(url, **params):
    spec = ",".join(f"{k}={v}" for k, v in {"base_url": url, "model": "stub-model", "api_key_env": "FAULT_TEST_KEY", **params}.items())
    return ["-a", "nearest:adaptive=false", "-d", "none", "-e", f"openai:{spec}", "-D", "toy:attacker=60,leaked=10,target=20"]


KEY = "sk-fault-test-0123456789abcdef"


def run_in_process(capsys, args, out, cache):
    """``bench run`` in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    from bench.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--plugins-dir", TOY, "run", "--no-floor", *args, "--device", "cpu", "-q", "--out", str(out), "--cache-dir", str(cache)])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return e.value.code or 0, captured.out, captured.err


@pytest.mark.parametrize(
    "behaviour, params, message",
    [
        ({"nan": True}, {}, "non-finite values"),
        ({"dim": 8}, {"dimensions": 16}, "returned 8-d vectors although dimensions=16 was asked"),
        ({"drop": True}, {}, "returned 2 embeddings for 3 inputs"),
        ({"echo_key": 400}, {}, "HTTP 400"),
        ({"echo_key": 401}, {}, "the key in $FAULT_TEST_KEY was sent and refused"),
    ],
)
def test_misbehaving_server_is_one_line_nothing_cached_no_key(tmp_path, capsys, monkeypatch, behaviour, params, message):
    monkeypatch.setenv("FAULT_TEST_KEY", KEY)
    with embeddings_server(**behaviour) as server:
        code, stdout, err = run_in_process(capsys, _api_grid(server.base_url, **params), tmp_path / "out", tmp_path / "cache")
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert KEY not in err + stdout and KEY[:12] not in err + stdout
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.json"))
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # nothing cached
    if behaviour.get("echo_key"):
        assert any(auth == f"Bearer {KEY}" for _, _, auth in server.log)  # the key was sent, and echoed back


def test_server_failing_inside_a_cell_keeps_the_key_out_of_the_record(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FAULT_TEST_KEY", KEY)
    with embeddings_server(echo_key=500, fail_after=1) as server:  # the identity probe passes, then errors echo the key
        code, stdout, err = run_in_process(capsys, _api_grid(server.base_url, max_retries=0), tmp_path / "out", tmp_path / "cache")
    assert code == 1, err
    (record,) = list((tmp_path / "out").glob("*.json"))
    text = record.read_text()
    assert "HTTP 500" in json.loads(text)["error"] and "[REDACTED]" in text
    for blob in (text, err, stdout):
        assert KEY not in blob and KEY[:12] not in blob


def test_another_model_behind_the_same_url_is_not_served_from_the_cache(tmp_path, capsys):
    with embeddings_server(salt="model-a") as server:
        grid = _api_grid(server.base_url)
        port = server.server_port
        assert run_in_process(capsys, grid, tmp_path / "a", tmp_path / "cache")[0] == 0
    with embeddings_server(port=port, salt="model-b") as server:  # restarted with another model, same URL and name
        code, _, err = run_in_process(capsys, grid, tmp_path / "b", tmp_path / "cache")
        embedded = [b for p, b, _ in server.log if b is not None]
    assert code == 0, err
    assert sum(len(b["input"]) for b in embedded) >= 60 + 20  # attacker and target texts embedded again
    (a,), (b,) = [[json.loads(p.read_text()) for p in (tmp_path / d).glob("*.json")] for d in ("a", "b")]
    fa, fb = a["victim_fingerprint"], b["victim_fingerprint"]
    assert fa["probe_sha256"] != fb["probe_sha256"] and fa["server_model"] == fb["server_model"] == "stub-model"
    assert fa["dim"] == fb["dim"] == 16
    assert a["cell_id"] == b["cell_id"]  # the same cell spec, another victim


# ---------------------------------------------------------------- the probe's leftovers: disk, links, modes


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 512 KiB tmpfs (root only), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC test covers the rest)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_under_out_is_one_line_before_any_work(tmp_path, capsys, tiny_tmpfs):
    fd = os.open(tiny_tmpfs / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # fill it up to the last block
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    code, stdout, err = run_in_process(capsys, GRID, tiny_tmpfs / "out", tmp_path / "cache")
    assert code == 2 and "no space left on its device" in err and "--out" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "cache").exists() and not (tiny_tmpfs / "out").exists()  # found before any work


def test_a_disk_filling_up_during_the_run_is_one_line(tmp_path, capsys, monkeypatch):
    """ENOSPC injected at the first write of a record or a manifest (the pre-flight probe passes)."""
    import errno

    out = tmp_path / "out"
    real = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.startswith(str(out)) and ".bench-write-probe-" not in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code, stdout, err = run_in_process(capsys, GRID, out, tmp_path / "cache")
    assert code == 2 and "no space left on the device holding" in err and "free some space" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(out.rglob("*.tmp")) and not list(out.glob("*.json"))


def test_a_dangling_symlink_as_out_is_refused_before_any_work(tmp_path, capsys):
    link = tmp_path / "results"
    link.symlink_to(tmp_path / "gone" / "results")
    code, stdout, err = run_in_process(capsys, GRID, link, tmp_path / "cache")
    assert code == 2 and "is a symbolic link to" in err and "which does not exist" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "cache").exists()


def test_written_files_respect_the_umask(tmp_path, capsys):
    """Records, samples, caches and boards are readable by others under umask 022 (not mkstemp's 0600)."""
    old = os.umask(0o022)
    try:
        code, _, err = run_in_process(capsys, GRID[:4] + GRID[6:], tmp_path / "out", tmp_path / "cache")
        assert code == 0, err
        from bench.cli import main

        with pytest.raises(SystemExit) as e:
            main(["leaderboard", "build", str(tmp_path / "out"), "--out", str(tmp_path / "boards"), "--name", "b"])
            raise SystemExit(0)
        assert (e.value.code or 0) == 0, capsys.readouterr().err
    finally:
        os.umask(old)
    files = [p for d in ("out", "cache", "boards") for p in (tmp_path / d).rglob("*") if p.is_file() and ".locks" not in p.parts]
    kinds = {p.suffix for p in files}
    assert {".json", ".jsonl", ".safetensors", ".md", ".csv"} <= kinds, kinds
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_killed_leaderboard_build_leaves_debris_the_rerun_removes(tmp_path, capsys):
    code, _, err = run_in_process(capsys, GRID[:4] + GRID[6:], tmp_path / "out", tmp_path / "cache")
    assert code == 0, err
    build = [sys.executable, "-c", textwrap.dedent("""
        import os, signal, sys
        import bench.leaderboard as lb
        real = lb.atomic_write_bytes
        def write(path, data, overwrite=False):
            if path.name == "leaderboard.csv":  # the .md is in place, the .csv's temp copy half-written
                with open(path.with_name(".leaderboard.csv.killed.tmp"), "wb") as f:
                    f.write(data[:10])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, data, overwrite)
        lb.atomic_write_bytes = write
        from bench.cli import main
        main(sys.argv[1:])
    """), "leaderboard", "build", str(tmp_path / "out"), "--out", str(tmp_path / "boards"), "--name", "b"]
    env = {**os.environ, "BENCH_LOAD_PLUGINS": ""}
    assert subprocess.run(build, env=env, capture_output=True).returncode == -9
    board = tmp_path / "boards" / "b"
    assert [p.name for p in board.glob(".*.tmp")] == [".leaderboard.csv.killed.tmp"]
    rerun = subprocess.run(build[:1] + ["-m", "bench"] + build[3:], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(board.glob(".*.tmp")) and sorted(p.name for p in board.iterdir()) == ["leaderboard.csv", "leaderboard.json", "leaderboard.md"]
