"""Progress of long work that a log file shows too: a tqdm bar on a terminal, and when stderr is not
one (a job's log, ``2> run.log``) a plain line at most every ``every`` seconds and at the end, with
the count, the elapsed time and an estimate of the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class LogProgress:
    """The log-file side: ``update(n)`` counts; a line is written when ``every`` seconds have passed
    since the last one (``desc: 12/50 targets, 3m20s, ~9m10s left``), and a last one by ``close``
    when the work took that long (short work writes nothing)."""

    def __init__(self, total: int, desc: str, unit: str, stream: TextIO, every: float = 30.0):
        self.total, self.desc, self.unit, self.stream, self.every = total, desc, unit, stream, every
        self.n, self.t0 = 0, time.monotonic()
        self.last = self.t0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        spent = now - self.t0
        left = f", ~{_clock(spent / self.n * (self.total - self.n))} left" if 0 < self.n < self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}s, {_clock(spent)}{left}", file=self.stream, flush=True)

    def close(self) -> None:
        now = time.monotonic()
        if self.n and now - self.t0 >= self.every:
            self._line(now)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bar(total: int, desc: str, unit: str, enabled: bool = True, stream: TextIO | None = None, every: float = 30.0):
    """A progress counter with ``update(n)`` and ``close()`` (also a context manager): tqdm on a
    terminal, :class:`LogProgress` lines otherwise, nothing when not ``enabled``."""
    stream = stream or sys.stderr
    if enabled and not stream.isatty():
        return LogProgress(total, desc, unit, stream, every)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, file=stream)


def track(items: Iterable[T], total: int, desc: str, unit: str, enabled: bool = True, every: float = 30.0) -> Iterator[T]:
    """``items``, counted by :func:`bar` as they are consumed."""
    with bar(total, desc, unit, enabled, every=every) as b:
        for item in items:
            yield item
            b.update(1)
