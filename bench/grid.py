"""The grid: spec parsing, the ``Cell`` and its one way back from a recorded configuration.

A cell is attack x defense x embedder x dataset x seed, plus the target limit, the attacker's own
embedder (``via``) and the cell's query budget. ``Cell.from_config`` rebuilds a cell from what was
recorded of it (a result record, a job spec's ``cell``, or ``Cell.configs()``): the runner, the job
specs and ``bench reproduce`` all go through it, so a cell rebuilt anywhere has the same id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from bench.api import Attack, Dataset, Defense, Embedder
from bench.cache import key_hash
from bench.errors import BenchError
from bench.floor import ATTACK as FLOOR_ATTACK
from bench.plugins import KINDS as _KIND_BASES
from bench.plugins import Host

KINDS: tuple[str, ...] = tuple(_KIND_BASES)  # attacks, defenses, embedders, datasets: the plugin host's kinds
PARTS: tuple[str, ...] = tuple(k[:-1] for k in KINDS)  # attack, defense, embedder, dataset: a cell's fields


def parse_spec(spec: str) -> tuple[str, list[dict[str, str]]]:
    """``name`` or ``name:key=value,key=a|b`` -> (name, parameter sets); ``a|b`` sweeps."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise BenchError(f"empty plugin name in {spec!r}: write NAME or NAME:key=value,...")
    if not rest.strip():
        return name, []
    options: list[tuple[str, list[str]]] = []
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"bad parameter {part!r} in {spec!r}: write key=value (sweep with key=a|b)")
        options.append((key.strip(), [v.strip() for v in value.split("|")]))
    keys = [k for k, _ in options]
    return name, [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in options))]


@dataclass(frozen=True)
class Cell:
    attack: Attack
    defense: Defense
    embedder: Embedder
    dataset: Dataset
    seed: int
    limit: int | None = None  # evaluate only the first `limit` targets (None: all)
    via: Embedder | None = None  # the attacker's own embedder (attack param via=): the victim is never queried
    query_budget: int | None = None  # victim queries per target at inference (None: the settings', else unlimited)
    fit_query_budget: int | None = None  # victim queries to fit and align, in total (None: the settings', else unlimited)
    split: str = "target"  # the split attacked and scored: "target", or "dev" (where defaults are chosen)

    def configs(self) -> dict[str, Any]:
        """What identifies the cell (its id is the hash of this); ``from_config`` reads it back."""
        out = {
            "attack": self.attack.config(),
            "defense": self.defense.config(),
            "embedder": self.embedder.config(),
            "dataset": self.dataset.config(),
            "seed": self.seed,
        }
        if self.limit is not None:  # absent when unset, so ids of unlimited cells never change
            out["limit"] = self.limit
        if self.query_budget is not None:
            out["query_budget"] = self.query_budget
        if self.fit_query_budget is not None:
            out["fit_query_budget"] = self.fit_query_budget
        if self.split != "target":  # absent for the target split, so published ids never change
            out["split"] = self.split
        return out

    @property
    def cell_id(self) -> str:
        return key_hash(self.configs(), 12)

    def label(self) -> str:
        mode = "adaptive" if self.attack.adaptive else "naive"
        limit = f" limit={self.limit}" if self.limit is not None else ""
        limit += f" split={self.split}" if self.split != "target" else ""
        return f"{self.attack.short()} [{mode}] vs {self.defense.short()} on {self.embedder.short()}/{self.dataset.short()} seed={self.seed}{limit}"

    def for_targets(self, n_targets: int) -> Cell:
        """The same cell with its limit stated as used: a limit that covers every one of the
        dataset's ``n_targets`` targets is no limit (``--limit 999999999`` on 200 targets is the
        unlimited cell, with its id)."""
        if self.limit is not None and self.limit >= n_targets:
            return replace(self, limit=None)
        return self

    @classmethod
    def from_config(cls, host: Host, config: Any) -> Cell:
        """The cell a recorded configuration describes: a ``ResultRecord``, a job spec's ``cell``
        or ``Cell.configs()`` (components as ``{"name", "params"}``, seed, limit, query_budget, fit_query_budget, split).
        ``via`` comes back from the attack's parameters, through the same function as the grid's."""
        data = config.model_dump() if hasattr(config, "model_dump") else dict(config)
        parts = {}
        for kind, part in zip(KINDS, PARTS):
            comp = data.get(part)
            if not isinstance(comp, dict) or not comp.get("name"):
                raise BenchError(f"the configuration has no {part} (a name and params): pass a result record or a cell spec")
            parts[part] = host.make(kind, comp["name"], comp.get("params") or {})
        limit, budget, fit_budget = data.get("limit"), data.get("query_budget"), data.get("fit_query_budget")
        return cls(**parts, seed=int(data["seed"]), limit=None if limit is None else int(limit),
                   via=via_embedder(host, parts["attack"]), query_budget=None if budget is None else int(budget),
                   fit_query_budget=None if fit_budget is None else int(fit_budget), split=data.get("split") or "target")


def expand(host: Host, kind: str, specs: Iterable[Any]) -> list[Any]:
    """Instances for one axis. A spec is a string (CLI) or a dict with ``name`` (TOML)."""
    out = []
    for spec in specs:
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop("name", None)
            if not name:
                raise BenchError(f"a [[{kind}]] table in the config has no `name`: add name = \"...\"")
            lists = {k: v if isinstance(v, list) else [v] for k, v in spec.items()}
            param_sets = [dict(zip(lists, c)) for c in itertools.product(*lists.values())] if lists else []
        else:
            name, param_sets = parse_spec(str(spec))
        cls = host.entry(kind, name).cls
        # Given parameters override the plugin's default sweep: `bow:hidden=64` still runs naive
        # and adaptive, `noise:scale=0.1` replaces the noise sweep by one level.
        seen = set()
        for base in cls.default_grid or [{}]:
            for given in param_sets or [{}]:
                comp = host.make(kind, name, {**base, **given})
                key = key_hash(comp.config())
                if key not in seen:
                    seen.add(key)
                    out.append(comp)
    return out


SPLITS = ("target", "dev")  # the splits a cell may attack and score


def build_grid(host: Host, attacks, defenses, embedders, datasets, seeds, limit: int | None = None,
               baseline: bool = True, query_budget: int | None = None, fit_query_budget: int | None = None,
               floor: bool = False, split: str = "target") -> list[Cell]:
    """The cells of a grid. ``limit``: targets per cell (None: each attack's ``default_limit``;
    0: all). ``baseline``: add the undefended cell (defense ``none``) when no defense given is the
    identity, so every defended number has its clean reference beside it. ``floor``: add the
    ``chance`` attack's cell (undefended: it never reads an embedding) beside text attacks, once per
    embedder, dataset, seed and target limit. ``split``: "target", or "dev" to choose defaults on."""
    if split not in SPLITS:
        raise BenchError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if limit is not None and limit < 0:
        raise BenchError(f"--limit must be >= 0 (0: every target), got {limit}")
    axes = [expand(host, k, s) for k, s in zip(KINDS, (attacks, defenses, embedders, datasets))]
    if baseline and not any(d.identity for d in axes[1]) and "none" in host.registries["defenses"].names():
        axes[1].insert(0, host.make("defenses", "none", {}))
    cells = []
    for attack, defense, embedder, dataset, seed in itertools.product(*axes, seeds):
        if attack.adaptive and defense.identity:
            continue  # knowing "no defense" changes nothing: the naive cell covers it
        if attack.adaptive and attack.adapts_to == "secret" and not defense.secret:
            continue  # this attack's adaptive mode only differs against secret defenses
        n = attack.default_limit if limit is None else (limit or None)
        cells.append(Cell(attack, defense, embedder, dataset, int(seed), n, via_embedder(host, attack), query_budget,
                          fit_query_budget, split))
    if floor and FLOOR_ATTACK in host.registries["attacks"].names():
        cells += floor_cells(host, cells)
    if not cells:
        raise BenchError(
            "the grid is empty: adaptive attacks are skipped against defense 'none' (the naive cell covers it); "
            "add a defense or run the attack naive"
        )
    return cells


def needs_floor(cell: Cell) -> bool:
    """Whether a cell's record carries the chance floor: every attack that outputs text or words on a
    text victim, except the floor itself."""
    return cell.attack.output in ("text", "words") and cell.attack.name != FLOOR_ATTACK and cell.embedder.modality == "text"


def floor_cells(host: Host, cells: list[Cell]) -> list[Cell]:
    """The chance-floor cells the text and bag-of-words attacks among ``cells`` need (none when one is
    already there)."""
    have = {key_hash([c.embedder.config(), c.dataset.config(), c.seed, c.limit, c.split]) for c in cells if c.attack.name == FLOOR_ATTACK}
    out = []
    for c in cells:
        key = key_hash([c.embedder.config(), c.dataset.config(), c.seed, c.limit, c.split])
        if not needs_floor(c) or key in have:
            continue
        have.add(key)
        out.append(Cell(host.make("attacks", FLOOR_ATTACK, {}), host.make("defenses", "none", {}), c.embedder, c.dataset, c.seed,
                        c.limit, None, None, None, c.split))
    return out


def via_embedder(host: Host, attack: Attack) -> Embedder | None:
    """The attacker's own embedder named by the attack's ``via`` (an embedder spec, one parameter set)."""
    if not attack.via:
        return None
    if attack.query_access == "none":
        raise BenchError(
            f"attack {attack.name!r} never queries the victim and brings its own alignment: drop via={attack.via}"
        )
    name, param_sets = parse_spec(attack.via)
    if len(param_sets) > 1:
        raise BenchError(f"via={attack.via} names several embedders: sweep via with the attack spec (via=a|b), not inside it")
    return host.make("embedders", name, param_sets[0] if param_sets else {})


def query_budget(attack: Attack, cell_budget: int | None) -> int | None:
    """Victim queries allowed per target at inference: the attack's own ``query_budget`` parameter
    (sweepable, e.g. ``zsinvert:query_budget=200|1000``) when it has one set, else the cell's.
    Queries made while fitting (the attacker embedding its own corpus) are not part of it."""
    own = getattr(attack.params, "query_budget", None)
    return own if own is not None else cell_budget
