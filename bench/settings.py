"""One settings object for a run: where caches live, which device, progress bars, query budget.

The runner builds one ``Settings`` and hands it to attacks as ``ctx.settings``; every on-disk cache
(embeddings, artifacts, features, generations, tags, models, fingerprints, generated images) lives
under ``settings.cache_dir``. Code that gets no context (an embedder's ``load``, a helper deep in a
plugin) asks ``bench.settings.active()``: the settings of the run in progress, else the defaults.
``BENCH_CACHE_DIR`` is only the default of ``cache_dir`` (the CLI's ``--cache-dir`` overrides it).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

CACHE_ENV = "BENCH_CACHE_DIR"


def env_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``~/.cache/inversion-bench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "inversion-bench")


@dataclass(frozen=True)
class Settings:
    """What a run is configured with, beyond the grid itself."""

    cache_dir: Path = field(default_factory=env_cache_dir)
    device: str = "cpu"
    progress: bool = True
    query_budget: int | None = None  # victim queries an attack may make per target at inference (None: unlimited)
    fit_query_budget: int | None = None  # victim queries an attack may make to fit and align, in total (None: unlimited)
    isolate: bool = False  # run each attack in a worker process holding neither the victim nor the defense's state
    fluency: bool = False  # score each text reconstruction's perplexity under bench.fluency's judge LM (opt-in: ~1-2 s per text)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())

    def cache(self, *parts: str) -> Path:
        """A folder under the cache root (not created): ``settings.cache("features")``."""
        return self.cache_dir.joinpath(*parts)

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)


_ACTIVE: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("bench_settings", default=None)


def active() -> Settings:
    """The settings of the run in progress (see ``use``), else ``Settings()`` from the environment."""
    return _ACTIVE.get() or Settings()


@contextlib.contextmanager
def use(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` the active ones inside the block (the runner wraps loading and each cell)."""
    token = _ACTIVE.set(settings)
    try:
        yield settings
    finally:
        _ACTIVE.reset(token)
