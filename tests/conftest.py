import os

# Tests load no installed plugins and never touch the network or the user's cache.
os.environ["BENCH_LOAD_PLUGINS"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def host():
    from bench.plugins import Host

    return Host(load_installed=False)


TOY_DIR = os.path.join(os.path.dirname(__file__), "toy_plugins")


@pytest.fixture
def toy_host():
    """A host with the built-ins plus the toy embedder and dataset."""
    from pathlib import Path

    from bench.plugins import Host

    return Host(plugins_dir=Path(TOY_DIR), load_installed=False)


@pytest.fixture
def one_thread():
    """torch on one thread for the test: tiny-model results do not depend on the machine's cores."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
