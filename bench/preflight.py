"""Checks of the user's input that run before any work: config types, seeds, writable folders.

Each failure is a one-line :class:`BenchError` (exit 2) naming the value and the fix, raised before
a model loads or a file is written.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError

SEED_MAX = 2**32 - 1
AXES = ("attacks", "defenses", "embedders", "datasets")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_seed(seed: Any, where: str = "--seed") -> int:
    """A seed is an integer in [0, 2**32 - 1] (what numpy and torch accept), never a bool or a string."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BenchError(f"{where} must be an integer between 0 and {SEED_MAX}, got {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise BenchError(f"{where} must be between 0 and {SEED_MAX}, got {seed}")
    return seed


def _specs(value: Any, key: str, path: Path) -> list:
    """An axis of the grid: one spec string, or a list of spec strings and ``[[tables]]``."""
    if isinstance(value, str):
        return [value]  # one spec, not a list of its characters
    if not isinstance(value, list) or not value:
        raise BenchError(f"config file {path}: `{key}` must be a spec string or a non-empty list of them, got {value!r}")
    for item in value:
        if isinstance(item, dict):
            if not isinstance(item.get("name"), str) or not item["name"]:
                raise BenchError(f"config file {path}: a [[{key}]] table needs name = \"...\" (a string), got {item.get('name')!r}")
            for k, v in item.items():
                vals = v if isinstance(v, list) else [v]
                if not vals or any(isinstance(x, (dict, list)) for x in vals):
                    raise BenchError(f"config file {path}: [[{key}]] {item['name']}.{k} must be a value or a list of values, got {v!r}")
        elif not isinstance(item, str):
            raise BenchError(f"config file {path}: every entry of `{key}` must be a spec string or a table, got {item!r}")
    return value


def check_config(data: dict, path: Path) -> dict:
    """The config's values with their types checked strictly (no coercion): see ``bench run --help``."""
    out = dict(data)
    for key in AXES:
        if key in data:
            out[key] = _specs(data[key], key, path)
    if "seeds" in data:
        seeds = data["seeds"] if isinstance(data["seeds"], list) else [data["seeds"]]
        if not seeds:
            raise BenchError(f"config file {path}: `seeds` is empty: give at least one, e.g. seeds = [0]")
        out["seeds"] = [check_seed(s, f"config file {path}: seeds") for s in seeds]
    if "out" in data and (not isinstance(data["out"], str) or not data["out"].strip()):
        raise BenchError(f"config file {path}: `out` must be a folder path (a string), got {data['out']!r}")
    if "device" in data and (not isinstance(data["device"], str) or not _DEVICE.match(data["device"])):
        raise BenchError(f"config file {path}: `device` must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {data['device']!r}")
    if "limit" in data and (isinstance(data["limit"], bool) or not isinstance(data["limit"], int) or data["limit"] < 0):
        raise BenchError(f"config file {path}: `limit` must be an integer >= 0 (0: every target), got {data['limit']!r}")
    qb = data.get("query_budget")
    if "query_budget" in data and (isinstance(qb, bool) or not isinstance(qb, int) or qb < 1):
        raise BenchError(f"config file {path}: `query_budget` must be a positive integer (victim queries per target), got {qb!r}")
    if "baseline" in data and not isinstance(data["baseline"], bool):
        raise BenchError(f"config file {path}: `baseline` must be true or false (no quotes), got {data['baseline']!r}")
    if "fluency" in data and not isinstance(data["fluency"], bool):
        raise BenchError(f"config file {path}: `fluency` must be true or false (no quotes), got {data['fluency']!r}")
    return out


def check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is (or can be created as) a folder this process can write to; nothing is left behind."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise BenchError(f"{flag} {path} is a file, not a folder: pass a folder path")
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"{flag} {path} cannot be created: {probe} is a file, not a folder; pass another path")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".bench-write-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise BenchError(f"{flag} {path} is not writable ({why} in {probe}): pass a folder you can write to") from None
