"""The threat model, enforced: cheating attacks, one per route around the counted oracle, must fail.

In-process the context refuses (``AttributeError`` / ``BenchError`` / ``QueryBudgetExceeded``: the
cell becomes an error record); isolated (``Settings.isolate``, ``bench run --isolate``) the worker
process holds nothing to reach. The cheats are registered inline, as ``tests/conftest.py``'s hosts
allow, and live at module level so a spawned worker can import them. The victim is the toy hashed
bag-of-words embedder (not pretrained: these numbers are not findings).
"""

import json
import os
import sys

import numpy as np
import pytest

from bench.api import Attack, Inversion
from bench.defender import RunSecret
from bench.errors import BenchError
from bench.oracle import QueryBudgetExceeded, QueryLedger, QueryOracle
from bench.results import load_records
from bench.runner import Runner, build_grid
from bench.settings import Settings

BUDGET = 5
DATA = "toy:attacker=60,leaked=20,target=4"


class Cheat(Attack):
    """A naive attack whose ``invert`` runs ``cheat`` once, then answers "cat" for every target."""

    name = "cheat"
    default_grid = [{"adaptive": False}]

    def cheat(self, emb, ctx):
        raise NotImplementedError

    def invert(self, emb, ctx):
        self.cheat(emb, ctx)
        return [Inversion("cat") for _ in emb]


class ReachEmbedder(Cheat):
    name = "cheat-embedder"

    def cheat(self, emb, ctx):
        ctx.victim.embedder.embed(["the cat"])  # the model behind the oracle


class ReachEmbedSplit(Cheat):
    name = "cheat-embed-split"

    def cheat(self, emb, ctx):
        ctx.oracle.embed_split("target", ["the cat"])  # the harness's uncounted, cached path


class LiftBudget(Cheat):
    name = "cheat-lift-budget"

    def cheat(self, emb, ctx):
        ctx.oracle.target_budget = None


class LiftBudgetHard(Cheat):
    name = "cheat-lift-budget-hard"

    def cheat(self, emb, ctx):
        object.__setattr__(ctx.oracle, "budget", None)  # past __setattr__: no such slot


class SettingsBudget(Cheat):
    name = "cheat-settings-budget"

    def cheat(self, emb, ctx):
        object.__setattr__(ctx.settings, "query_budget", None)  # the settings are a copy; the ledger holds the budget
        with ctx.oracle.for_target(0):
            ctx.oracle.query([f"t{i}" for i in range(BUDGET + 1)], cache=False)


class BigCall(Cheat):
    name = "cheat-big-call"

    def cheat(self, emb, ctx):
        ctx.oracle.query([f"text {i}" for i in range(200)], cache=False)  # 200 texts in one call, budget 5 per target


class Liar:
    """A sequence that says it is empty but yields 200 texts."""

    def __len__(self):
        return 0

    def __iter__(self):
        return iter([f"text {i}" for i in range(200)])


class UnderReport(Cheat):
    name = "cheat-under-report"

    def cheat(self, emb, ctx):
        ctx.oracle.query(Liar(), cache=False)


class ReopenTarget(Cheat):
    name = "cheat-reopen-target"

    def cheat(self, emb, ctx):
        for _ in range(2):  # a fresh scope on the same target gives no fresh budget
            with ctx.oracle.for_target(0):
                ctx.oracle.query([f"t{i}-{_}" for i in range(BUDGET)], cache=False)


class ForeignTarget(Cheat):
    name = "cheat-foreign-target"

    def cheat(self, emb, ctx):
        with ctx.oracle.for_target(len(emb) + 3):  # a target that is not being inverted: a budget of its own
            ctx.oracle.query(["the cat"], cache=False)


class ReadMatrix(Cheat):
    name = "cheat-read-matrix"
    default_grid = [{"adaptive": True}]

    def cheat(self, emb, ctx):
        ctx.defense.matrix(emb.shape[1])


class RebuildSecret(Cheat):
    name = "cheat-rebuild-secret"
    default_grid = [{"adaptive": True}]

    def cheat(self, emb, ctx):
        rotation = ctx.defense.cls(ctx.defense.params)  # the class and public params, but no key
        rotation.apply(emb, None)


class SimulateSecret(Cheat):
    name = "cheat-simulate-secret"
    default_grid = [{"adaptive": True}]

    def cheat(self, emb, ctx):
        ctx.defense.simulator()


class EditData(Cheat):
    name = "cheat-edit-data"

    def cheat(self, emb, ctx):
        ctx.attacker.texts.clear()  # the next cell's attacker would train on nothing, if this were the run's split
        ctx.leaked.texts[:] = ["the cat"] * len(ctx.leaked.texts)


class Snoop(Attack):
    """Walks the interpreter (gc, every thread's frames, the environment) for what the oracle hides."""

    name = "cheat-snoop"
    default_grid = [{"adaptive": False}]

    def invert(self, emb, ctx):
        import gc

        from bench.api import Defense, Embedder
        from bench.victim import Victim

        kinds = (Victim, Embedder, Defense, QueryLedger, QueryOracle, RunSecret)
        found = sorted({type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)})
        frames = set()
        for frame in sys._current_frames().values():
            while frame is not None:
                frames |= {k for k, v in frame.f_locals.items() if isinstance(v, kinds)}
                frame = frame.f_back
        env = sorted(k for k in os.environ if k in ("TOY_API_KEY", "BENCH_DEFENSE_SECRET"))
        text = ctx.oracle.query(["the cat"])  # and the honest route still works, counted
        return [Inversion("cat", {"found": found, "frames": sorted(frames), "env": env, "dim": int(text.shape[1])}) for _ in emb]


CHEATS = [ReachEmbedder, ReachEmbedSplit, LiftBudget, LiftBudgetHard, SettingsBudget, BigCall, UnderReport, ReopenTarget,
          ForeignTarget, ReadMatrix, RebuildSecret, SimulateSecret, EditData, Snoop]


@pytest.fixture
def cheat_host(toy_host):
    for cls in CHEATS:
        toy_host.registries["attacks"].add(cls, "test", "0")
    return toy_host


def _run(host, tmp_path, attacks, defenses=("none",), isolate=False, out="out", seeds=(0,), **grid):
    cells = build_grid(host, list(attacks), list(defenses), ["toy-hash"], [grid.pop("dataset", DATA)], list(seeds),
                       baseline=False, **grid)
    settings = Settings(cache_dir=tmp_path / "cache", device="cpu", progress=False, isolate=isolate)
    runner = Runner(host, tmp_path / out, settings=settings)
    runner.prepare(cells)
    return runner, runner.run(cells)


# What each route's error says, in-process.
EXPECTED = {
    "cheat-embedder": "no 'embedder'",
    "cheat-embed-split": "no 'embed_split'",
    "cheat-lift-budget": "read-only",
    "cheat-lift-budget-hard": "budget",
    "cheat-settings-budget": "5 per target",
    "cheat-big-call": "budget is 5 per target",
    "cheat-under-report": "budget is 5 per target",
    "cheat-reopen-target": "for target 0",
    "cheat-foreign-target": "not one of the 4 targets",
}


def test_every_route_around_the_oracle_fails_in_process(cheat_host, tmp_path):
    names = list(EXPECTED)
    _, records = _run(cheat_host, tmp_path, names, query_budget=BUDGET)
    assert [r.attack.name for r in records] == names
    for rec in records:
        assert rec.status == "error", rec.attack.name
        assert EXPECTED[rec.attack.name] in rec.error, (rec.attack.name, rec.error)
    # an attack that edits its data edits a copy: the next cell of the same run gets the split intact
    _, (edit, honest) = _run(cheat_host, tmp_path, ["cheat-edit-data", "nearest:adaptive=false"], out="honest", query_budget=BUDGET)
    assert edit.status == "ok" and honest.status == "ok", honest.error
    assert honest.queries["fit"] == 60 and honest.queries["inference"] == 0


def test_a_secret_defense_gives_the_attacker_its_description_only(cheat_host, tmp_path):
    names = ["cheat-read-matrix", "cheat-rebuild-secret", "cheat-simulate-secret"]
    _, records = _run(cheat_host, tmp_path, names, defenses=["rotation"])
    errors = {r.attack.name: r.error for r in records}
    assert all(r.status == "error" for r in records)
    assert "matrix" in errors["cheat-read-matrix"]  # DefenseView has no matrix
    assert "needs its key" in errors["cheat-rebuild-secret"]  # the class without the harness's key
    assert "cannot simulate" in errors["cheat-simulate-secret"]


def test_the_key_is_per_run_and_per_seed_and_never_written(cheat_host, tmp_path):
    # 40 targets: the key is random per run, and with 4 the adaptive margin fell under 0.1 in ~3% of runs
    data = "toy:attacker=60,leaked=20,target=40"  # over 240 random keys: margin at least 0.21, mean 0.28
    runner, records = _run(cheat_host, tmp_path, ["nearest"], defenses=["rotation"], seeds=(0, 1), dataset=data)
    assert all(r.status == "ok" for r in records), [r.error for r in records]
    rotation = cheat_host.make("defenses", "rotation", {})
    data_key = runner.data_key(cheat_host.make("datasets", "toy", dict(p.split("=") for p in data[4:].split(","))))
    k0, k1 = runner.secret.key(rotation, 0, data_key), runner.secret.key(rotation, 1, data_key)
    assert k0 != k1  # per seed
    assert Runner(cheat_host, tmp_path / "other", settings=runner.settings).secret.key(rotation, 0, data_key) != k0  # per run
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    for key in (k0, k1):
        assert key.hex() not in written and key.decode("latin-1") not in written
    assert all(r.defense_info["key"].startswith("per-run secret") for r in records)
    # the adaptive attacker still undoes much of the rotation, the leaked pairs charged to alignment
    by = {(r.seed, r.attack.params["adaptive"]): r for r in records}
    for seed in (0, 1):
        naive, adaptive = by[seed, False], by[seed, True]
        assert adaptive.queries["alignment"] == 20 and naive.queries["alignment"] == 0
        assert adaptive.metrics["word_f1"].value > naive.metrics["word_f1"].value + 0.1


def test_a_fixed_key_reproduces_and_is_stated_not_written(cheat_host, tmp_path):
    runs = [_run(cheat_host, tmp_path, ["nearest:adaptive=false"], defenses=["rotation:key=hunter2-longer"], out=f"o{i}")[1][0]
            for i in range(2)]
    assert all(r.status == "ok" for r in runs)
    assert runs[0].defense.params["key"] == "fixed key" and runs[0].defense_info["key"] == "fixed key"
    assert runs[0].metrics["word_f1"].value == runs[1].metrics["word_f1"].value  # the same rotation in both runs
    written = "".join(p.read_text() for p in tmp_path.rglob("o*/*") if p.is_file())
    assert "hunter2" not in written


def test_isolated_worker_holds_nothing_to_reach(cheat_host, tmp_path, monkeypatch):
    monkeypatch.setenv("TOY_API_KEY", "sk-toy-credential-123456")
    _, records = _run(cheat_host, tmp_path, ["cheat-snoop", "cheat-embedder", "cheat-big-call"], defenses=["rotation"],
                      isolate=True, query_budget=BUDGET)
    snoop, embedder, big = records
    assert snoop.status == "ok", snoop.error
    assert snoop.threat_model.isolated is True
    rows = [json.loads(line) for line in next((tmp_path / "out").glob(f"*{snoop.cell_id}.samples.jsonl")).read_text().splitlines()]
    assert {(tuple(r["extras"]["found"]), tuple(r["extras"]["frames"]), tuple(r["extras"]["env"])) for r in rows} == {((), (), ())}
    assert rows[0]["extras"]["dim"] == 64
    assert snoop.queries["inference"] == 1 and snoop.provenance.victim_queries == 1  # the one honest query, over the pipe
    assert embedder.status == "error" and "(isolated)" in embedder.error and "embedder" in embedder.error
    assert big.status == "error" and "budget is 5 per target" in big.error
    # the same snoop in-process does reach the harness's objects: isolation is what stops a plugin that tries
    _, (inproc,) = _run(cheat_host, tmp_path, ["cheat-snoop"], defenses=["rotation"], out="inproc")
    rows = [json.loads(line) for line in next((tmp_path / "inproc").glob("*.samples.jsonl")).read_text().splitlines()]
    assert {"Victim", "QueryLedger", "RunSecret"} <= set(rows[0]["extras"]["found"]) and rows[0]["extras"]["env"] == ["TOY_API_KEY"]


def test_isolated_and_in_process_give_the_same_record(cheat_host, tmp_path):
    spec = "bow:features=256,holdout=12,adaptive=true"
    # one fixed key for both runs: with per-run keys the 4 targets' word F1 differs by up to ~0.12
    # between keys, which is the spread between keys, not a difference isolation makes
    rot = "rotation:key=isolation-test-key"
    _, (iso,) = _run(cheat_host, tmp_path, [spec], defenses=[rot], isolate=True, out="iso")
    _, (inp,) = _run(cheat_host, tmp_path, [spec], defenses=[rot], out="inp")
    assert iso.status == inp.status == "ok", (iso.error, inp.error)
    assert iso.threat_model.isolated and not inp.threat_model.isolated
    assert iso.queries == inp.queries and iso.queries["fit"] == 60 and iso.queries["alignment"] == 20
    assert abs(iso.metrics["word_f1"].value - inp.metrics["word_f1"].value) < 1e-6
    assert load_records([tmp_path / "iso"])[0].queries == iso.queries


def test_oracle_counts_what_it_is_given_and_refuses_before_embedding():
    embedded = []

    def embed(items, split, cache):
        embedded.append(len(items))
        return np.ones((len(items), 3), np.float32)

    ledger = QueryLedger(fit_budget=10, target_budget=2)
    oracle = QueryOracle(embed, ledger, dim=3, modality="text", name="toy", fingerprint={}, leaked=lambda: ["l1", "l2", "l3"])
    oracle.query(["a"] * 4)
    assert oracle.remaining() == 6
    with pytest.raises(QueryBudgetExceeded, match="--fit-query-budget"):
        oracle.query(Liar())  # counted by its items (200), not its __len__ (0)
    assert oracle.leaked_clean().shape == (3, 3) and oracle.leaked_clean().shape == (3, 3)  # charged once
    assert ledger.counts["alignment"] == 3 and embedded == [4, 3]
    ledger.start_inference(2)
    with pytest.raises(QueryBudgetExceeded):
        oracle.query(["x", "y", "z"], targets=[1, 1, 1])
    assert embedded == [4, 3]  # refused requests are never embedded
    with pytest.raises(BenchError, match="one per text"):
        oracle.query(["x", "y"], targets=[0])
    with pytest.raises(BenchError, match="not one string"):
        oracle.query("abc")
    with pytest.raises(TypeError):
        __import__("pickle").dumps(oracle)  # an isolated worker gets a RemoteOracle, never this one
    oracle.query(["x", "y"], targets=[0, 1])
    assert ledger.summary() | {} == {"fit": 4, "alignment": 3, "inference": 2, "inference_per_target_mean": 1.0,
                                     "inference_per_target_max": 1, "inference_unattributed": 0, "scoring": 0, "total": 9}


def test_budget_flags_are_checked_before_work(toy_host):
    from click.testing import CliRunner

    from bench.cli import cli

    for args in (["--fit-query-budget", "0"], ["--fit-query-budget", "-3"]):
        res = CliRunner().invoke(cli, ["run", "-a", "bow", *args], obj=toy_host, standalone_mode=False)
        assert isinstance(res.exception, BenchError) and "positive" in str(res.exception)


FILE_PLUGIN = '''
from bench.api import Attack, Inversion
from bench.hookspecs import hookimpl


class FileAttack(Attack):
    """A loose --plugins-dir attack: one counted query for target 0."""

    name = "file-attack"
    default_grid = [{"adaptive": False}]

    def invert(self, emb, ctx):
        ctx.oracle.query(["the cat"], targets=0)
        return [Inversion("the cat") for _ in emb]


@hookimpl
def register_attacks(register):
    register(FileAttack)
'''


def test_isolation_runs_plugins_dir_attacks_and_names_an_unimportable_class(tmp_path):
    import shutil
    from pathlib import Path

    from bench.plugins import Host

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(Path(__file__).parent / "toy_plugins" / "toy.py", plugins / "toy.py")
    (plugins / "file_attack.py").write_text(FILE_PLUGIN)
    host = Host(plugins_dir=plugins, load_installed=False)
    _, (rec,) = _run(host, tmp_path, ["file-attack"], isolate=True, query_budget=BUDGET)
    assert rec.status == "ok", rec.error
    assert rec.queries["inference"] == 1 and rec.queries["inference_per_target_max"] == 1

    class Local(Cheat):  # defined inside a function: a worker cannot import it
        name = "cheat-local"

        def cheat(self, emb, ctx):
            pass

    host.registries["attacks"].add(Local, "test", "0")
    _, (local,) = _run(host, tmp_path, ["cheat-local"], isolate=True, out="local")
    assert local.status == "error" and "cannot run isolated" in local.error and "module level" in local.error
