"""The example third-party plugin (examples/bench-centroid-attack) installs and runs like a real one.

Installs the package offline into this environment (no index, no dependency resolution, no build
isolation: the venv's setuptools builds it), then drives the ``bench`` CLI in subprocesses:
the entry point is discovered, BENCH_LOAD_PLUGINS can exclude it, and ``bench run`` scores it
on a toy victim loaded with ``--plugins-dir``. Uninstalls it afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bench-centroid-attack"
DIST = "bench-centroid-attack"

TOY_PLUGIN = textwrap.dedent(
    '''
    """Toy victim for the CLI test: hashed bag-of-words embedder and a two-topic dataset."""

    import hashlib

    import numpy as np

    from bench.api import Dataset, DatasetSplits, Embedder, Params, RetrievalTask, Split
    from bench.hookspecs import hookimpl
    from bench.metrics import words

    DIM = 64
    PETS = [
        "the cat sleeps on the sofa", "the dog chases the cat", "a kitten and a puppy play",
        "the cat purrs near the dog", "feed the cat and walk the dog", "the puppy barks at the cat",
        "the dog and the cat nap", "the kitten hides from the dog",
    ]
    MARKETS = [
        "stocks fell as investors sold shares", "the bank raised interest rates",
        "investors bought bonds and stocks", "bank shares rose on earnings",
        "rates and inflation worry investors", "the market rallied as stocks rose",
        "bond yields rose as rates climbed", "investors sold bank shares",
    ]


    def split(items):
        return Split([i for i, _ in items], [t for _, t in items])


    class ToyTiny(Dataset):
        """Two topics, 16 sentences: 5 attacker, 1 leaked, 2 target each."""

        name = "toy-tiny"
        Params = Params

        def load(self):
            rows = {"attacker": [], "leaked": [], "target": []}
            for topic, texts in (("pets", PETS), ("markets", MARKETS)):
                for i, t in enumerate(texts):
                    rows["attacker" if i < 5 else "leaked" if i < 6 else "target"].append((f"{topic}-{i}", t))
            a = split(rows["attacker"])
            qrels = {q: {d for d in a.ids if d.split("-")[0] == q.split("-")[0]} for q, _ in rows["target"]}
            return DatasetSplits(
                attacker=a, leaked=split(rows["leaked"]), target=split(rows["target"]),
                retrieval=RetrievalTask(list(a.ids), list(a.texts), qrels),
            )


    class ToyHash(Embedder):
        """Word counts hashed into 64 buckets, L2-normalised."""

        name = "toy-hash"

        def embed(self, texts):
            out = np.zeros((len(texts), DIM), np.float32)
            for r, t in enumerate(texts):
                for w in words(t):
                    out[r, int(hashlib.sha256(w.encode()).hexdigest(), 16) % DIM] += 1
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

        @property
        def dim(self):
            return DIM

        def fingerprint(self):
            return {"name": "toy-hash", "dim": DIM, "version": 1}


    @hookimpl
    def register_datasets(register):
        register(ToyTiny)


    @hookimpl
    def register_embedders(register):
        register(ToyHash)
    '''
)


def bench_cmd() -> list[str]:
    script = Path(sys.executable).parent / ("bench.exe" if os.name == "nt" else "bench")
    if script.exists():
        return [str(script)]
    # `python -m bench` has no __main__; call the console script's target directly.
    return [sys.executable, "-c", "import sys; from bench.cli import main; sys.exit(main())"]


def bench(*args: str, load: str | None, tmp: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI with an explicit environment (conftest sets BENCH_LOAD_PLUGINS="" for us)."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_LOAD_PLUGINS"}
    if load is not None:
        env["BENCH_LOAD_PLUGINS"] = load
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", BENCH_CACHE_DIR=str(tmp / "cache"))
    proc = subprocess.run([*bench_cmd(), *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"bench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
    return proc


def pip(*args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


def installed() -> bool:
    try:
        distribution(DIST)
        return True
    except PackageNotFoundError:
        return False


def attacks(tmp: Path, load: str | None) -> dict[str, dict]:
    rows = json.loads(bench("list", "attacks", "--json", load=load, tmp=tmp).stdout)
    return {r["name"]: r for r in rows}


def copy_example(dest: Path) -> Path:
    """A clean copy: builds and test runs then never write into the repository."""
    junk = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
    shutil.copytree(EXAMPLE, dest, ignore=junk)
    return dest


@pytest.mark.slow
def test_example_plugin_own_tests_pass(tmp_path):
    """The example's own suite, run as its authors would (its folder is the pytest rootdir)."""
    src = copy_example(tmp_path / "example")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=src, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.slow
def test_example_plugin_installs_and_runs(tmp_path):
    if installed():
        pytest.skip(f"{DIST} is already installed here; uninstall it to run this test (it would be removed)")
    # An offline build without isolation uses this environment's setuptools: it must know PEP 639
    # license strings (77+; that also builds wheels without the `wheel` package). torch 2.13
    # requires setuptools>=77.0.3, so every environment of this project has it.
    major = int(version("setuptools").split(".")[0])
    if major < 77:
        pytest.skip(f"setuptools {version('setuptools')} here; the offline build needs setuptools>=77")
    src = copy_example(tmp_path / "example")  # pip builds in-tree: keep build/ out of the repo
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy.py").write_text(TOY_PLUGIN)
    try:
        pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src))
        assert installed()

        # Installed plugins load when BENCH_LOAD_PLUGINS is unset ...
        found = attacks(tmp_path, load=None)
        assert "centroid" in found, sorted(found)
        row = found["centroid"]
        assert row["plugin"] == "centroid"
        assert row["version"] == "0.1.0"
        assert set(row["params"]) == {"adaptive", "via", "k", "min_share", "max_train"}
        assert row["params"]["k"]["default"] == 10
        # ... or when named, by entry-point or distribution name; an empty list loads none.
        assert "centroid" in attacks(tmp_path, load="centroid")
        assert "centroid" in attacks(tmp_path, load=DIST)
        assert "centroid" not in attacks(tmp_path, load="")
        assert "nearest" in attacks(tmp_path, load="")  # built-ins always load

        plugin_rows = json.loads(bench("plugins", "--json", load=None, tmp=tmp_path).stdout)
        [mine] = [p for p in plugin_rows if p["name"] == "centroid"]
        assert mine["provides"] == {"attacks": ["centroid"]}
        assert mine["source"].startswith("entry point")

        # A real run: the installed attack against a toy victim from --plugins-dir.
        out = tmp_path / "results"
        args = ["--plugins-dir", str(plugins), "run", "--attack", "centroid:k=3,min_share=0.5",
                "--embedder", "toy-hash", "--dataset", "toy-tiny", "--defense", "none", "--seed", "0",
                "--out", str(out), "--cache-dir", str(tmp_path / "bench-cache"), "--device", "cpu", "--quiet"]
        bench(*args, load=None, tmp=tmp_path)
        records = {r["attack"]["name"]: r for r in (json.loads(p.read_text()) for p in sorted(out.glob("*.json")))}
        # The attack's cell, and the chance floor's beside it (centroid outputs words).
        assert sorted(records) == ["centroid", "chance"], [p.name for p in out.iterdir()]
        rec = records["centroid"]
        assert rec["floor"]["word_f1"]["value"] == records["chance"]["metrics"]["word_f1"]["value"]
        assert rec["status"] == "ok", rec["error"]
        assert rec["attack"]["name"] == "centroid"
        assert rec["attack"]["plugin"] == "centroid"
        assert rec["attack"]["version"] == "0.1.0"
        assert rec["attack"]["params"]["k"] == 3
        f1 = rec["metrics"]["word_f1"]
        assert f1["n"] == 4 and 0.0 < f1["value"] <= 1.0
        samples = [json.loads(line) for line in (out / rec["samples_file"]).read_text().splitlines()]
        assert len(samples) == 4 and all(isinstance(s["reconstruction"], list) for s in samples)

        # Without the installed plugin the same command fails cleanly, naming the attack.
        proc = bench(*args, load="", tmp=tmp_path, check=False)
        assert proc.returncode == 2 and "unknown attack 'centroid'" in proc.stderr
    finally:
        if installed():
            pip("uninstall", "-y", DIST)
    assert not installed()
