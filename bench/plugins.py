"""Plugin discovery and typed registries.

Built-in plugins (the modules the package ``BUILTIN_PACKAGE`` lists in its ``PLUGINS``) go through
the same hooks as third-party ones; the core names no plugin module.
Installed plugins come from the ``bench`` entry-point group; ``BENCH_LOAD_PLUGINS`` limits them
(a comma-separated list of distribution or entry-point names; empty: none). ``--plugins-dir``
loads loose ``*.py`` files.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pluggy

from bench import __version__, api, hookspecs
from bench.errors import BenchError
from bench.models import describe

ENTRY_POINT_GROUP = "bench"
BUILTIN_PACKAGE = "bench_plugins"  # its PLUGINS: the modules of the built-in plugins

KINDS = {
    "attacks": api.Attack,
    "defenses": api.Defense,
    "embedders": api.Embedder,
    "datasets": api.Dataset,
}

# The class attributes each kind declares (see docs/plugins.md), shown by `bench list --json`.
DECLARED = {
    "attacks": ("output", "query_access", "modalities", "default_limit", "adapts_to", "headline"),
    "defenses": ("secret", "identity", "fitted"),
    "embedders": ("modality", "pretrained"),
    "datasets": (),
}


@dataclass
class Entry:
    cls: type
    plugin: str
    version: str


@dataclass
class Registry:
    """Name -> class for one kind; remembers which plugin registered each name."""

    kind: str
    base: type
    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, cls: type, plugin: str, version: str) -> None:
        singular = self.kind[:-1]
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise BenchError(
                f"plugin {plugin!r} registered {cls!r} as a {singular}, but it is not a subclass of "
                f"bench.api.{self.base.__name__}: subclass it"
            )
        name = getattr(cls, "name", "")
        if not name:
            raise BenchError(f"plugin {plugin!r}: {cls.__name__} has no `name`: set the class attribute")
        if name in self.entries:
            other = self.entries[name].plugin
            raise BenchError(
                f"{singular} name {name!r} is registered by both {other!r} and {plugin!r}: "
                f"rename one, or limit plugins with BENCH_LOAD_PLUGINS"
            )
        if issubclass(cls, api.Attack):
            check_metric_declarations(cls, plugin)
        self.entries[name] = Entry(cls, plugin, version)

    def get(self, name: str) -> Entry:
        if name in self.entries:
            return self.entries[name]
        singular = self.kind[:-1]
        close = difflib.get_close_matches(name, list(self.entries), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"see `bench list {self.kind}`"
        raise BenchError(f"unknown {singular} {name!r}: {hint}")

    def names(self) -> list[str]:
        return sorted(self.entries)


def check_metric_declarations(cls: type, plugin: str) -> None:
    """An attack's ``metrics`` are ``Metric`` declarations and its ``headline`` names resolve to one."""
    from bench.metrics import Metric, resolve

    bad = [m for m in cls.metrics if not isinstance(m, Metric)]
    if bad:
        raise BenchError(f"plugin {plugin!r}: {cls.__name__}.metrics must hold bench.metrics.Metric declarations, got {bad[0]!r}")
    for name in cls.headline or ():
        if resolve(name, cls.metrics) is None:
            raise BenchError(
                f"plugin {plugin!r}: {cls.__name__}.headline names {name!r}, which is not declared: "
                f"add a bench.metrics.Metric for it to {cls.__name__}.metrics"
            )


class Host:
    """A plugin manager plus one registry per kind."""

    def __init__(self, plugins_dir: Path | None = None, load_installed: bool = True):
        self.plugins_dir, self.load_installed = plugins_dir, load_installed  # a job rebuilds the same host
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.versions: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        for modname in importlib.import_module(BUILTIN_PACKAGE).PLUGINS:
            self.register(importlib.import_module(modname), modname, __version__, "builtin")
        if load_installed:
            self._load_entry_points()
        if plugins_dir is not None:
            self._load_dir(Path(plugins_dir))
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            raise BenchError(f"{e}: check the hook's spelling against bench.hookspecs") from None
        self.registries = {kind: Registry(kind, base) for kind, base in KINDS.items()}
        for kind, reg in self.registries.items():
            hook = getattr(self.pm.hook, f"register_{kind}")
            for impl in hook.get_hookimpls():
                name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                version = self.versions.get(name, "unknown")

                def register(cls: type, _name: str = name, _version: str = version, _reg=reg) -> None:
                    _reg.add(cls, _name, _version)

                impl.function(**({"register": register} if impl.argnames else {}))

    def register(self, module: Any, name: str, version: str, source: str) -> None:
        try:
            self.pm.register(module, name)
        except ValueError as e:
            raise BenchError(f"plugin {name!r} could not be registered ({e}): two plugins share a name") from None
        self.versions[name] = version
        self.sources[name] = source

    def _load_entry_points(self) -> None:
        allowed = os.environ.get("BENCH_LOAD_PLUGINS")
        wanted = None if allowed is None else {s.strip() for s in allowed.split(",") if s.strip()}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else ep.name
            if wanted is not None and ep.name not in wanted and dist not in wanted:
                continue
            try:
                module = ep.load()
            except Exception as e:
                raise BenchError(
                    f"installed plugin {ep.name!r} ({dist}) failed to import: {describe(e)}; "
                    f"fix or uninstall it, or exclude it with BENCH_LOAD_PLUGINS"
                ) from None
            self.register(module, ep.name, ep.dist.version if ep.dist else "unknown", f"entry point ({dist})")

    def _load_dir(self, directory: Path) -> None:
        if not directory.is_dir():
            raise BenchError(f"--plugins-dir {directory} is not a directory: pass a folder of *.py plugin files")
        for path in sorted(directory.glob("*.py")):
            modname = f"bench_dir_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            try:
                spec.loader.exec_module(module)
            except Exception as e:
                raise BenchError(f"plugin file {path} failed to import: {describe(e)}") from None
            self.register(module, path.stem, getattr(module, "__version__", "unknown"), f"file {path}")

    # ------------------------------------------------------------ lookups

    def entry(self, kind: str, name: str) -> Entry:
        return self.registries[kind].get(name)

    def make(self, kind: str, name: str, params: dict[str, Any] | None = None) -> api.Component:
        from pydantic import ValidationError

        entry = self.entry(kind, name)
        try:
            return entry.cls(params or {})
        except ValidationError as e:
            raise BenchError(_validation_message(kind[:-1], name, e, entry.cls)) from None

    def listing(self, kind: str) -> list[dict[str, Any]]:
        rows = []
        for name in self.registries[kind].names():
            e = self.registries[kind].entries[name]
            params = {
                k: {"default": None if f.is_required() else f.default, "required": f.is_required(), "description": f.description}
                for k, f in e.cls.Params.model_fields.items()
            }
            rows.append(
                {"name": name, "plugin": e.plugin, "version": e.version, "description": e.cls.describe(), "params": params,
                 # what a bare `NAME` spec sweeps, and the class attributes the kind declares
                 "default_grid": [dict(g) for g in e.cls.default_grid or [{}]],
                 "declares": {a: getattr(e.cls, a) for a in DECLARED[kind]}}
            )
        return rows

    def plugins(self) -> list[dict[str, Any]]:
        rows = []
        for name, module in sorted(self.pm.list_name_plugin()):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(module) or [])
            provides = {k: [n for n, e in r.entries.items() if e.plugin == name] for k, r in self.registries.items()}
            rows.append(
                {
                    "name": name,
                    "version": self.versions.get(name, "unknown"),
                    "source": self.sources.get(name, "unknown"),
                    "hooks": hooks,
                    "provides": {k: v for k, v in provides.items() if v},
                    "description": (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else "",
                }
            )
        return rows


def _validation_message(kind: str, name: str, err: Exception, cls: type) -> str:
    first = err.errors()[0]
    field_name = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        known = ", ".join(cls.Params.model_fields) or "none"
        return f"{kind} {name!r} has no parameter {field_name!r}: known parameters are {known}"
    return (
        f"bad value for {kind} {name!r} parameter {field_name!r}: {first['msg']} "
        f"(got {first.get('input')!r}); see `bench list {kind}s`"
    )
