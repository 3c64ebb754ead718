"""The hooks a plugin may implement. An implementation may take any subset of the arguments."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "bench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_attacks(register: Callable[[type], None]) -> None:
    """Register attack classes (subclasses of ``bench.api.Attack``) by calling ``register(cls)``."""


@hookspec
def register_defenses(register: Callable[[type], None]) -> None:
    """Register defense classes (subclasses of ``bench.api.Defense``)."""


@hookspec
def register_embedders(register: Callable[[type], None]) -> None:
    """Register victim embedder classes (subclasses of ``bench.api.Embedder``)."""


@hookspec
def register_datasets(register: Callable[[type], None]) -> None:
    """Register dataset classes (subclasses of ``bench.api.Dataset``)."""


@hookspec
def register_commands(cli) -> None:
    """Add commands to the ``bench`` click group ``cli``."""
