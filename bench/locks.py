"""Lock files that work across processes and hosts (NFS included): one writer per benchmark cell.

A lock is a small JSON file (holder pid, host, token) created with ``link(2)``, which is atomic on
local filesystems and on NFS (unlike ``O_EXCL`` on old NFS clients). While it is held a background
thread touches it, so a waiter can tell a live holder from a dead one without trusting clocks:

* same host, holder pid gone: stale at once (kill -9, power loss of a process);
* otherwise: stale when its modification time has not changed for ``stale_after`` seconds of the
  waiter's own clock (a crashed host, a hung holder).

A stale lock is removed under a short-lived ``.break`` lock, so two waiters never both break it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import BenchError

HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or damaged: judged by its age alone


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _try_create(path: Path, info: dict) -> bool:
    """Create ``path`` holding ``info`` unless it exists (link of a private temp file: NFS-safe)."""
    tmp = path.with_name(f".{path.name}.{info['token']}.tmp")
    tmp.write_text(json.dumps(info))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        # NFS may report an error for a link that was made (lost reply): the link count tells.
        return tmp.stat().st_nlink == 2
    finally:
        tmp.unlink(missing_ok=True)


def _break(path: Path, seen_token: str | None) -> None:
    """Remove the stale lock ``path`` if it still holds ``seen_token``, under ``path.break``."""
    guard = path.with_name(path.name + ".break")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex}
    if not _try_create(guard, info):
        try:  # a breaker that died holding the guard: the guard is only ever held for milliseconds
            if time.time() - guard.stat().st_mtime > 30:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return
    try:
        now = _holder(path)
        if now is not None and now.get("token") == seen_token:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def holder(path: Path) -> dict | None:
    """Who holds the lock at ``path`` (its pid, host, since), or None when it is free or its holder
    is a dead process of this host. (A holder on another host is reported until its lock goes stale.)"""
    info = _holder(Path(path))
    if info is None:
        return None
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]):
        return None
    return info


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    return _pid_alive(pid)


@contextmanager
def file_lock(
    path: Path,
    *,
    stale_after: float = STALE_AFTER_S,
    heartbeat: float = HEARTBEAT_S,
    poll: float = 0.2,
    on_wait: Callable[[dict], None] | None = None,
    timeout: float | None = None,
) -> Iterator[None]:
    """Hold the lock file ``path`` for the duration of the block (waiting while another live process holds it).

    ``on_wait(holder)`` is called once when the lock is found held (holder: its pid, host). The
    lock is released on exit, on an exception and on Ctrl-C; after kill -9 the next waiter breaks it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BenchError(f"cannot create the lock folder {path.parent} ({e.strerror}): check that it is writable") from None
    me = {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex, "since": time.time()}
    told = False
    seen: tuple | None = None  # (token, mtime) of the holder as last seen, and when it last changed
    changed_at = time.monotonic()
    started = time.monotonic()
    while not _try_create(path, me):
        holder = _holder(path)
        if holder is None:
            continue  # released meanwhile
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            continue
        state = (holder.get("token"), mtime)
        if state != seen:
            seen, changed_at = state, time.monotonic()
        dead = holder.get("host") == me["host"] and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"])
        if dead or time.monotonic() - changed_at > stale_after:
            _break(path, holder.get("token"))
            continue
        if not told and on_wait:
            on_wait(holder)
            told = True
        if timeout is not None and time.monotonic() - started > timeout:
            raise BenchError(f"{path} is held by pid {holder.get('pid')} on {holder.get('host')}: wait for that run or remove the file")
        time.sleep(poll)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            try:
                os.utime(path)
            except OSError:
                return

    thread = threading.Thread(target=beat, name=f"lock-heartbeat {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if (_holder(path) or {}).get("token") == me["token"]:
            path.unlink(missing_ok=True)
