"""Checks of the world outside a run's configuration that run before any work: writable folders.

The configuration's own values (types, seeds, limits, budgets) are checked once, by
``bench.config.RunConfig``. Each failure is a one-line :class:`BenchError` (exit 2) naming the
value and the fix, raised before a model loads or a file is written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.cache import NO_SPACE
from bench.errors import BenchError

PROBE_BYTES = 64 * 1024  # written and removed in --out and --cache-dir before any work: room for a record


def check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is (or can be created as) a folder this process can write to; nothing is left behind."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise BenchError(f"{flag} {path} is a file, not a folder: pass a folder path")
    probe = p
    while not probe.exists() and probe != probe.parent:
        if probe.is_symlink():  # a dangling link: mkdir would fail on it after the work is done
            raise BenchError(f"{flag} {path}: {probe} is a symbolic link to {os.readlink(probe)}, which does not exist; "
                             f"create its target or pass another path")
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"{flag} {path} cannot be created: {probe} is a file, not a folder; pass another path")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".bench-write-probe-")
        try:  # a file can be created on a full disk: writing a record's worth of bytes cannot
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as e:
        if e.errno in NO_SPACE:
            raise BenchError(f"{flag} {path}: no space left on its device ({e.strerror} in {probe}): "
                             f"free some space there or pass another path") from None
        why = e.strerror or type(e).__name__
        raise BenchError(f"{flag} {path} is not writable ({why} in {probe}): pass a folder you can write to") from None
