from types import SimpleNamespace

import pytest

from bench.api import Defense
from bench.errors import BenchError
from bench.plugins import Host


def test_builtins_register_through_hooks(host):
    names = {kind: {r["name"] for r in host.listing(kind)} for kind in ("attacks", "defenses", "embedders", "datasets")}
    assert {"bow", "nearest"} <= names["attacks"]
    assert names["defenses"] >= {"none", "noise", "quantize", "rotation"}
    assert {"minilm", "sentence-transformers", "hf", "openai"} <= names["embedders"]
    assert {"wordnet", "pii-notes"} <= names["datasets"]
    row = next(r for r in host.listing("defenses") if r["name"] == "noise")
    assert row["plugin"] == "bench_plugins.defenses" and row["description"]
    assert row["params"]["scale"]["default"] == 0.01


def test_unknown_name_suggests_near_misses(host):
    with pytest.raises(BenchError, match="unknown defense 'nosie': did you mean noise"):
        host.entry("defenses", "nosie")
    with pytest.raises(BenchError, match="see `bench list attacks`"):
        host.entry("attacks", "zzzzzz")


def test_bad_and_unknown_parameters_are_one_line(host):
    with pytest.raises(BenchError) as e:
        host.make("defenses", "noise", {"scale": -1})
    assert "'scale'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(BenchError, match="has no parameter 'sigma': known parameters are scale, renormalize"):
        host.make("defenses", "noise", {"sigma": 1})


def _write(tmp_path, name, body):
    (tmp_path / f"{name}.py").write_text(body)
    return tmp_path


def test_duplicate_names_name_both_plugins(tmp_path):
    _write(tmp_path, "clash", """
from bench.api import Defense
from bench.hookspecs import hookimpl
class Other(Defense):
    name = "noise"
@hookimpl
def register_defenses(register):
    register(Other)
""")
    with pytest.raises(BenchError, match=r"'noise' is registered by both 'bench_plugins.defenses' and 'clash'"):
        Host(plugins_dir=tmp_path, load_installed=False)


def test_registering_a_non_subclass_fails(tmp_path):
    _write(tmp_path, "bad", """
from bench.hookspecs import hookimpl
class NotADefense:
    name = "x"
@hookimpl
def register_defenses(register):
    register(NotADefense)
""")
    with pytest.raises(BenchError, match="not a subclass of bench.api.Defense"):
        Host(plugins_dir=tmp_path, load_installed=False)


def test_misspelled_hook_fails_loudly(tmp_path):
    _write(tmp_path, "typo", """
from bench.hookspecs import hookimpl
@hookimpl
def register_defences(register):
    pass
""")
    with pytest.raises(BenchError, match="register_defences"):
        Host(plugins_dir=tmp_path, load_installed=False)


def test_plugins_dir_must_exist(tmp_path):
    with pytest.raises(BenchError, match="is not a directory"):
        Host(plugins_dir=tmp_path / "missing", load_installed=False)


def _fake_entry_point(name, module):
    dist = SimpleNamespace(name=f"bench-{name}", version="9.9")
    return SimpleNamespace(name=name, dist=dist, load=lambda: module)


def test_entry_points_are_limited_by_env(monkeypatch):
    import bench.plugins as plugins
    from bench.hookspecs import hookimpl

    class Mine(Defense):
        """A test defense."""

        name = "mine"

        def apply(self, emb, rng):
            return emb

    module = SimpleNamespace(register_defenses=hookimpl(lambda register: register(Mine)), __doc__="mine plugin")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [_fake_entry_point("mine", module)])

    monkeypatch.delenv("BENCH_LOAD_PLUGINS", raising=False)
    host = Host()
    entry = host.entry("defenses", "mine")
    assert (entry.plugin, entry.version) == ("mine", "9.9")
    assert any(p["name"] == "mine" and p["provides"] == {"defenses": ["mine"]} for p in host.plugins())

    monkeypatch.setenv("BENCH_LOAD_PLUGINS", "")
    with pytest.raises(BenchError):
        Host().entry("defenses", "mine")
    monkeypatch.setenv("BENCH_LOAD_PLUGINS", "other,bench-mine")  # the distribution name works too
    assert Host().entry("defenses", "mine").plugin == "mine"


def test_broken_installed_plugin_is_one_line(monkeypatch):
    import bench.plugins as plugins

    def boom():
        raise ImportError("no module named torchvision")

    ep = SimpleNamespace(name="broken", dist=SimpleNamespace(name="bench-broken", version="1"), load=boom)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ep])
    monkeypatch.delenv("BENCH_LOAD_PLUGINS", raising=False)
    with pytest.raises(BenchError, match="installed plugin 'broken' .* failed to import: ImportError"):
        Host()
