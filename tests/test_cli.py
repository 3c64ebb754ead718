import json
from pathlib import Path

import pytest
from cli_helpers import run_cli

from bench.results import SCHEMA_VERSION

TOY = str(Path(__file__).parent / "toy_plugins")



@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--attack", "bwo"], "unknown attack 'bwo': did you mean bow"),
        (["run", "--attack", "bow", "--defense", "noise:scale=-0.1"], "bad value for defense 'noise' parameter 'scale'"),
        (["run", "--attack", "bow", "--dataset", "wordnet:path=/nonexistent"], "apt-get install wordnet-base"),
        (["run"], "no attack given"),
        (["run", "--attack", "bow", "--limit", "-3"], "--limit must be an integer >= 0"),
        (["run", "--attack", "bow", "--defense", "noise:scale"], "write key=value"),
        (["--plugins-dir", "/nonexistent", "plugins"], "is not a directory"),
        (["leaderboard", "build", "/nonexistent", "--name", "x"], "does not exist"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()  # nothing half-written


def test_bad_config_files(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("attacks = [bow\n")
    code, _, err = run_cli(capsys, "run", "--config", str(bad))
    assert code == 2 and "not valid TOML" in err
    extra = tmp_path / "extra.toml"
    extra.write_text('attacks = ["bow"]\nattackz = 1\n')
    code, _, err = run_cli(capsys, "run", "--config", str(extra))
    assert code == 2 and "unknown keys ['attackz']" in err
    code, _, err = run_cli(capsys, "run", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err


def test_mismatched_dimension_is_caught_before_running(capsys, tmp_path):
    plug = tmp_path / "plugs"
    plug.mkdir()
    (plug / "toy.py").write_text(Path(TOY, "toy.py").read_text())
    (plug / "shrink.py").write_text('''
from bench.api import Defense
from bench.hookspecs import hookimpl
class Shrink(Defense):
    """Drops half the dimensions (not allowed)."""
    name = "shrink"
    def apply(self, emb, rng):
        return emb[:, : emb.shape[1] // 2]
@hookimpl
def register_defenses(register):
    register(Shrink)
''')
    code, _, err = run_cli(
        capsys, "--plugins-dir", str(plug), "run", "-a", "nearest", "-d", "shrink", "-e", "toy-hash", "-D", "toy",
        "--out", str(tmp_path / "res"),
    )
    assert code == 2 and "must keep the victim's dimension" in err
    assert not (tmp_path / "res").exists()


def test_list_and_plugins_json(capsys):
    code, out, _ = run_cli(capsys, "list", "attacks", "--json")
    rows = json.loads(out)
    assert code == 0 and {"name", "plugin", "description"} <= set(rows[0])
    assert "bow" in {r["name"] for r in rows}
    code, out, _ = run_cli(capsys, "plugins", "--json")
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["bench_plugins.defenses"]["provides"]["defenses"] == ["none", "noise", "quantize", "rotation"]
    code, out, _ = run_cli(capsys, "list", "defenses")
    assert "noise" in out and "scale = 0.01" in out


def test_run_prints_table_then_leaderboard_build(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--plugins-dir", TOY, "run", "-a", "nearest", "-d", "none", "-d", "rotation", "-e", "toy-hash", "-D", "toy",
            "--cache-dir", str(tmp_path / "c"), "--device", "cpu"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "| attack" in out and "word_f1" in out and "ndcg@10" in out and "not pretrained" in out
    assert "| chance" in out and "4 ok, 0 failed" in err  # the chance floor's cell runs beside the text attack
    printed = out
    code, _, err = run_cli(capsys, *args)
    assert "cached" in err  # resumed, nothing recomputed
    assert len(list((tmp_path / "results").glob("*.json"))) == 4

    code, out, _ = run_cli(capsys, "leaderboard", "build", "results", "--name", "toy", "--out", "boards")
    assert code == 0 and out == printed  # the same table as `bench run`
    md = (tmp_path / "boards" / "toy" / "leaderboard.md").read_text()
    assert "nearest (not pretrained)" in md and "rotation" in md
    board = json.loads((tmp_path / "boards" / "toy" / "leaderboard.json").read_text())
    assert board["schema_version"] == SCHEMA_VERSION and len(board["rows"]) == 4
    assert "word_f1_lo" in (tmp_path / "boards" / "toy" / "leaderboard.csv").read_text().splitlines()[0]


def test_toml_config_runs_a_sweep(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        'attacks = ["nearest:adaptive=false"]\nembedders = ["toy-hash"]\ndatasets = ["toy"]\nseeds = [0, 1]\n'
        f'out = "{tmp_path / "res"}"\ndevice = "cpu"\nlimit = 20\nbaseline = false\nfloor = false\n'
        '[[defenses]]\nname = "noise"\nscale = [0.0, 0.5]\nrenormalize = false\n'
    )
    code, out, err = run_cli(capsys, "--plugins-dir", TOY, "run", "--config", str(cfg), "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    records = [json.loads(p.read_text()) for p in (tmp_path / "res").glob("*.json")]
    assert sorted((r["seed"], r["defense"]["params"]["scale"]) for r in records) == [(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5)]
    assert all(r["defense"]["params"]["renormalize"] is False for r in records)
    assert all(r["limit"] == 20 and r["metrics"]["word_f1"]["n"] == 20 for r in records)
    f1 = {(r["seed"], r["defense"]["params"]["scale"]): r["metrics"]["word_f1"]["value"] for r in records}
    assert f1[(0, 0.5)] < f1[(0, 0.0)]


def test_long_work_writes_progress_lines_a_log_file_shows(tmp_path, monkeypatch):
    """Not a terminal (a job's log, `2> run.log`): plain lines with count, elapsed and time left."""
    import io

    from bench import progress

    log = io.StringIO()
    ticks = iter([0.0, 0.0, 40.0, 41.0, 90.0, 90.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(ticks))
    with progress.bar(4, "zsinvert", "target", stream=log, every=30.0) as b:
        for _ in range(3):
            b.update(1)
    lines = log.getvalue().splitlines()
    assert lines == ["zsinvert: 2/4 targets, 0m40s, ~0m40s left", "zsinvert: 3/4 targets, 1m30s, ~0m30s left"], lines
    short = io.StringIO()
    ticks = iter([0.0, 1.0, 2.0])
    with progress.bar(4, "embedding target", "text", stream=short, every=30.0) as b:
        b.update(4)
    assert short.getvalue() == ""  # work shorter than `every` writes nothing
    quiet = io.StringIO()
    with progress.bar(4, "x", "text", enabled=False, stream=quiet) as b:
        b.update(4)
    assert quiet.getvalue() == ""


def test_large_freed_blocks_are_kept_unless_the_user_chose(monkeypatch):
    """The CLI raises glibc's mmap/trim thresholds (big numpy temporaries are reused, not page-faulted
    afresh), and leaves a user's own MALLOC_*_THRESHOLD_ setting alone."""
    import sys

    from bench.allocator import keep_large_blocks

    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert keep_large_blocks() is sys.platform.startswith("linux")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert keep_large_blocks() is False
