"""Exclusive lock files that hold across processes and machines sharing a filesystem (NFS too).

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and on NFSv3+),
holding its owner (host, pid, job id, a random token). While held, a heartbeat thread refreshes the
file's mtime. A waiter breaks a lock when its owner is a dead process on the waiter's own host, or
when the waiter has watched the lock's mtime stand still for ``stale_s`` seconds (measured on the
waiter's own clock, so clock skew between machines does not matter). Breaking renames the file away
first, so of two waiters breaking the same dead lock only one succeeds.

Used for one grid cell (``OUT/.locks/<cell>.lock``: a cell is computed once, the other process reads
its record) and for shared cache entries (embeddings, trained attack artifacts, features: one job
computes, the others wait and read).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from bench.errors import BenchError

STALE_S = float(os.environ.get("BENCH_LOCK_STALE_S", 90))  # no heartbeat for this long: owner is gone


def _job_id() -> str | None:
    """The engine's id of the job this process runs in, if any (for `bench status` and errors)."""
    for var, engine in (("SLURM_JOB_ID", "slurm"), ("SUBMITIT_LOCAL_JOB_ID", "submitit-local")):
        if os.environ.get(var):
            return f"{engine}:{os.environ[var]}"
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str
    job: str | None = None
    since: float = 0.0

    @classmethod
    def read(cls, path: Path) -> "Owner | None":
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: data.get(k) for k in ("host", "pid", "token", "job", "since")})
        except (OSError, ValueError, TypeError):
            return None  # gone, or caught between create and write: treated as held

    def dead_here(self) -> bool:
        """True when the owner is a process of this host that no longer exists."""
        return self.host == socket.gethostname() and not pid_alive(int(self.pid))


def holder(path: Path) -> Owner | None:
    """Who holds the lock at ``path`` now (None: free, or its owner is a dead local process)."""
    owner = Owner.read(path)
    if owner is None:
        return None if not Path(path).exists() else Owner("?", -1, "?")
    return None if owner.dead_here() else owner


class FileLock:
    """``with FileLock(path): ...`` — exclusive across processes and hosts; waits for the holder.

    ``timeout_s``: give up waiting (BenchError) after this long; None waits as long as the holder
    is alive. Not re-entrant.
    """

    def __init__(self, path: Path, timeout_s: float | None = None, stale_s: float | None = None, poll_s: float = 0.2):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.stale_s = STALE_S if stale_s is None else stale_s
        self.poll_s = poll_s
        self.owner: Owner | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # ------------------------------------------------------------ acquire / release

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        owner = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex, _job_id(), time.time())
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(owner.__dict__, f)
            f.flush()
            os.fsync(f.fileno())
        self.owner = owner
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lock-heartbeat {self.path.name}", daemon=True)
        self._beat.start()
        return True

    def acquire(self) -> None:
        start = time.monotonic()
        seen: tuple | None = None  # (mtime, token) of the holder's file, and when we first saw it
        seen_at = start
        while not self.try_acquire():
            now = time.monotonic()
            state = self._state()
            if state is None:
                continue  # released meanwhile: try again at once
            owner, mtime = state
            if owner is not None and owner.dead_here():
                self._break(owner.token)
                continue
            if seen is None or seen != (mtime, owner.token if owner else None):
                seen, seen_at = (mtime, owner.token if owner else None), now
            elif now - seen_at > self.stale_s:
                self._break(seen[1])  # no heartbeat for stale_s: its owner died on another host
                continue
            if self.timeout_s is not None and now - start > self.timeout_s:
                who = f"{owner.host} pid {owner.pid}" if owner else "an unknown process"
                raise BenchError(f"lock {self.path} is held by {who}: wait for it, or delete the file if that process is gone")
            time.sleep(self.poll_s)

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        current = Owner.read(self.path)
        if current is not None and self.owner is not None and current.token == self.owner.token:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        self.owner = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------ internals

    def _state(self) -> tuple[Owner | None, float] | None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        return Owner.read(self.path), mtime

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.2, self.stale_s / 6)):
            try:
                os.utime(self.path)
            except OSError:
                return

    def _break(self, token: str | None) -> None:
        """Remove a dead holder's lock; if a live owner took it meanwhile, put theirs back."""
        aside = self.path.with_name(f"{self.path.name}.broken-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else broke or released it
        moved = Owner.read(aside)
        if moved is not None and token is not None and moved.token != token:
            try:
                os.link(aside, self.path)  # a live lock taken after our look: restore it (fails if re-taken)
            except FileExistsError:
                pass
        try:
            aside.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def locked(path: Path, timeout_s: float | None = None) -> Iterator[FileLock]:
    """Hold the lock at ``path`` for the duration of the block."""
    lock = FileLock(path, timeout_s=timeout_s)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def lock_path(root: Path, kind: str, key: str) -> Path:
    """Where the lock of one shared entry lives: ``ROOT/.locks/KIND/KEY.lock``."""
    return Path(root) / ".locks" / kind / f"{key}.lock"
