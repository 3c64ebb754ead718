"""One run configuration: flags over TOML over defaults, validated once before any work."""

import json
import shlex
from pathlib import Path

import pytest
from cli_helpers import run_cli

from bench.config import DEFAULTS, RunConfig, command_line
from bench.errors import BenchError
from bench.executors import NAMES

TOY = str(Path(__file__).parent / "toy_plugins")


def test_flags_override_the_toml_which_overrides_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "grid.toml"
    cfg.write_text('attacks = ["nearest"]\ndefenses = "noise"\nseeds = [1, 2]\nlimit = 5\nquery_budget = 9\n'
                   'executor = {name = "submitit-local", array_parallelism = 3}\n')
    c = RunConfig.load({"seeds": (4,), "limit": None, "defenses": ()}, cfg)
    assert c.attacks == ["nearest"] and c.defenses == ["noise"]  # from the TOML (a string is one spec)
    assert c.seeds == [4] and c.limit == 5 and c.query_budget == 9  # the flag wins where given
    assert c.embedders == DEFAULTS["embedders"] and c.datasets == DEFAULTS["datasets"] and c.baseline is True
    assert c.executor == "submitit-local" and c.options().array_parallelism == 3
    c = RunConfig.load({"executor": "local", "executor_options": ()}, cfg)  # another executor: the table's options dropped
    assert c.executor == "local" and c.executor_options == {}


@pytest.mark.parametrize("flags, needle", [
    ({"attacks": ("nearest",), "limit": -1}, "--limit must be an integer >= 0"),
    ({"attacks": ("nearest",), "query_budget": 0}, "--query-budget must be a positive integer"),
    ({"attacks": ("nearest",), "seeds": (2**32,)}, "--seed must be between 0 and 4294967295"),
    ({"attacks": ("nearest",), "leaderboard": "../x"}, "--leaderboard must be a plain folder name"),
    ({"attacks": ("nearest",), "executor": "slurm", "executor_options": ("partiton=gpu",)}, "has no option 'partiton'"),
    ({"attacks": ("nearest",), "wait": False}, "--no-wait needs a job executor"),
    ({}, "no attack given"),
])
def test_bad_values_are_one_line_before_any_work(tmp_path, monkeypatch, flags, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchError, match=needle.replace("(", r"\(")):
        RunConfig.load({"out": tmp_path / "out", **flags})
    assert not (tmp_path / "out").exists()


def test_toml_values_name_the_file_and_key(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text('attacks = ["nearest"]\nquery_budget = "10"\n')
    with pytest.raises(BenchError, match=r"config file .*grid.toml: `query_budget` must be a positive integer .*got '10'"):
        RunConfig.load({}, cfg)
    cfg.write_text('attacks = ["nearest"]\nexecutor = 3\n')
    with pytest.raises(BenchError, match="`executor` must be a name or a table"):
        RunConfig.load({}, cfg)


def test_executor_choices_are_the_executors_names():
    from bench.cli import run

    (option,) = [p for p in run.params if p.name == "executor"]
    assert tuple(option.type.choices) == NAMES


def test_command_is_shell_quoted_and_redacted(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-abcdefghijklmnopqrstuvwx")
    line = command_line(["run", "-e", "openai:base_url=http://h/v1,model=m", "--out", "my results", "-X",
                         "token=sk-abcdefghijklmnopqrstuvwx"])
    assert "sk-abcdefghijklmnopqrstuvwx" not in line
    assert shlex.split(line)[:6] == ["bench", "run", "-e", "openai:base_url=http://h/v1,model=m", "--out", "my results"]


def test_records_keep_the_command_that_made_them(capsys, tmp_path):
    from bench.grid import build_grid
    from bench.runner import Runner
    from bench.settings import Settings

    args = ["--plugins-dir", TOY, "run", "-a", "nearest:adaptive=false", "-e", "toy-hash", "-D", "toy", "--no-baseline", "--no-floor",
            "--device", "cpu", "-q", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--limit", "999999999"]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    (path,) = (tmp_path / "out").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["schema_version"] == 4 and shlex.split(rec["command"]) == ["bench", *args]
    # --limit 999999999 on 80 targets is the unlimited cell: the same id, recorded without a limit
    assert rec["limit"] is None and rec["metrics"]["word_f1"]["n"] == 80
    code, _, err = run_cli(capsys, *args[:-2])  # the same command without the limit: the cell is done
    assert code == 0 and len(list((tmp_path / "out").glob("*.json"))) == 1, err
    # a record made through the API has no command
    from bench.plugins import Host

    host = Host(plugins_dir=Path(TOY), load_installed=False)
    cells = build_grid(host, ["nearest:adaptive=false"], ["none"], ["toy-hash"], ["toy"], [0], limit=5)
    (api_rec,) = Runner(host, tmp_path / "api", settings=Settings(cache_dir=tmp_path / "cache", progress=False)).run(cells)
    assert api_rec.command is None
