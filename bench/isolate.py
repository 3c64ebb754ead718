"""Running an attack in a worker process that holds neither the victim nor the defense's state.

For code from other labs (``bench run --isolate``): the attack's ``fit``, ``invert`` and
``extra_scores`` run in a fresh ``spawn`` process (nothing of the harness's memory is copied: no
embedder, no embedding cache object, no defense key, no ledger). The worker gets the attack's class
and parameters, the data its threat model names (attacker and leaked splits, the defended leaked
vectors, the targets' defended vectors), the defense's public description, and a
:class:`RemoteOracle`: every query goes over a pipe to the harness, which counts and budgets it on
the one ledger and answers with embeddings or a refusal. Credential-like environment variables
(API keys of an HTTP victim, ``BENCH_DEFENSE_SECRET``) are removed from the worker's environment.

What isolation does not cover (docs/threat-model.md): the worker runs as the same user, so it can
read files (the dataset on disk, the embedding cache) and use the network; run untrusted code in a
container that mounts only what it should see.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from bench.errors import BenchError, one_line
from bench.oracle import QueryBudgetExceeded, QueryOracle, as_texts
from bench.redact import credential_env_names

# Requests the worker may send, besides the end of a command ("done" / "failed").
_REQUESTS = ("query", "remaining", "leaked_clean")


class RemoteOracle:
    """The worker's oracle: the same interface as :class:`bench.oracle.QueryOracle`, answered by the
    harness over a pipe (which counts and budgets every query)."""

    def __init__(self, conn, dim: int, modality: str, name: str, fingerprint: dict):
        self._conn = conn
        self._scope: list[int | None] = [None, 0]
        self.dim, self.modality, self.name, self.fingerprint = dim, modality, name, fingerprint

    def _ask(self, *msg) -> Any:
        self._conn.send(msg)
        kind, value = self._conn.recv()
        if kind == "refused":
            raise QueryBudgetExceeded(value)
        if kind == "error":
            raise BenchError(value)
        return value

    def query(self, texts, split: str = "queries", cache: bool = True, targets=None) -> np.ndarray:
        items = as_texts(texts)
        if targets is None and self._scope[0] is not None:
            targets = self._scope[0]
        if isinstance(targets, np.integer):
            targets = int(targets)
        elif targets is not None and not isinstance(targets, int):
            targets = [int(t) for t in targets]
        return self._ask("query", items, str(split), bool(cache), targets)

    def remaining(self, target: int | None = None) -> int | None:
        return self._ask("remaining", self._scope[0] if target is None else int(target))

    def leaked_clean(self) -> np.ndarray:
        return self._ask("leaked_clean")

    @contextmanager
    def for_target(self, i: int | None = None) -> Iterator[None]:
        i = self._scope[1] if i is None else int(i)
        outer = self._scope[0]
        self._scope[0], self._scope[1] = i, max(self._scope[1], i + 1)
        try:
            yield None
        finally:
            self._scope[0] = outer


def _worker(conn, payload: bytes, plugin_files: dict[str, str]) -> None:
    """The worker's loop: load the ``--plugins-dir`` files the harness loaded, build the attack and its
    context from ``payload``, then run the harness's commands."""
    import importlib.util
    import pickle
    import sys

    from bench.api import AttackContext
    from bench.settings import use

    try:
        for modname, path in plugin_files.items():  # loose plugin files: the same module names as in the harness
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
        attack_cls, params, parts = pickle.loads(payload)
        attack = attack_cls(params)
        oracle = RemoteOracle(conn, **parts.pop("oracle"))
        ctx = AttackContext(oracle=oracle, **parts)
    except Exception as e:  # noqa: BLE001 - reported to the harness as one line
        conn.send(("failed", _message(e)))
        return
    conn.send(("done", None))
    while True:
        try:
            cmd, args = conn.recv()
        except EOFError:
            return
        if cmd == "close":
            return
        try:
            with use(ctx.settings):
                if cmd == "fit":
                    result = attack.fit(ctx)
                elif cmd == "invert":
                    result = attack.invert(args, ctx)
                elif cmd == "extra_scores":
                    result = attack.extra_scores(args[0], args[1], ctx)
                else:
                    raise BenchError(f"unknown command {cmd!r}")
            conn.send(("done", result))
        except Exception as e:  # noqa: BLE001 - reported to the harness as one line
            conn.send(("failed", _message(e)))


def _message(e: BaseException) -> str:
    return str(e) if isinstance(e, BenchError) else f"{type(e).__name__}: {one_line(e)}"


class IsolatedAttack:
    """The harness side: starts the worker and serves its oracle requests from the real oracle."""

    def __init__(self, attack, oracle: QueryOracle, parts: dict):
        self.name = attack.name
        self.oracle = oracle
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        parts = {**parts, "oracle": {"dim": oracle.dim, "modality": oracle.modality, "name": oracle.name,
                                     "fingerprint": dict(oracle.fingerprint)}}
        try:
            payload = pickle.dumps((type(attack), attack.params, parts))
        except Exception as e:  # noqa: BLE001 - a class defined inside a function, an unpicklable field
            raise BenchError(
                f"attack {attack.name!r} cannot run isolated: its class and context must be importable and picklable "
                f"(define the class at module level) ({type(e).__name__}: {one_line(e)})"
            ) from None
        files = {name: str(mod.__file__) for name, mod in list(sys.modules.items()) if name.startswith("bench_dir_plugin_")}
        hidden = {k: os.environ.pop(k) for k in credential_env_names()}  # the worker's environment has no credentials
        try:
            self.proc = ctx.Process(target=_worker, args=(child, payload, files), daemon=True)
            self.proc.start()
        finally:
            os.environ.update(hidden)
        child.close()
        try:
            self._serve()  # the worker reports that it built the attack and its context
        except BenchError:
            self.close()
            raise

    def _serve(self) -> Any:
        """Answer the worker's oracle requests until it ends the command; its result, or its failure as a BenchError."""
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.proc.join(5)
                raise BenchError(f"the isolated worker of attack {self.name!r} died (exit code {self.proc.exitcode})") from None
            kind = msg[0]
            if kind == "done":
                return msg[1]
            if kind == "failed":
                raise BenchError(f"attack {self.name!r} (isolated): {msg[1]}")
            if kind not in _REQUESTS:
                self.conn.send(("error", f"unknown request {kind!r}"))
                continue
            try:
                if kind == "query":
                    _, texts, split, cache, targets = msg
                    value = self.oracle.query(texts, split, cache, targets)
                elif kind == "remaining":
                    value = self.oracle.remaining(msg[1])
                else:
                    value = self.oracle.leaked_clean()
                self.conn.send(("ok", value))
            except QueryBudgetExceeded as e:
                self.conn.send(("refused", str(e)))
            except BenchError as e:
                self.conn.send(("error", str(e)))

    def run(self, cmd: str, args: Any = None) -> Any:
        self.conn.send((cmd, args))
        return self._serve()

    def close(self) -> None:
        try:
            self.conn.send(("close", None))
        except (OSError, ValueError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class InProcess:
    """The attack run in the harness's process (the default): the same calls as ``IsolatedAttack``."""

    def __init__(self, attack, ctx):
        self.attack, self.ctx = attack, ctx

    def run(self, cmd: str, args: Any = None) -> Any:
        if cmd == "fit":
            return self.attack.fit(self.ctx)
        if cmd == "invert":
            return self.attack.invert(args, self.ctx)
        return self.attack.extra_scores(args[0], args[1], self.ctx)

    def close(self) -> None:
        pass


def attack_calls(attack, ctx, isolated: bool) -> InProcess | IsolatedAttack:
    """How the runner calls the attack: in-process, or in a spawned worker given only what ``ctx`` grants."""
    if not isolated:
        return InProcess(attack, ctx)
    from dataclasses import fields

    parts = {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.init and f.name != "oracle"}
    return IsolatedAttack(attack, ctx.oracle, parts)
