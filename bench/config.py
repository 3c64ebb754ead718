"""One run configuration: command-line flags over a TOML file (``--config``) over defaults,
validated once, before any work.

``RunConfig.load`` reads the TOML, merges the three sources and validates every value strictly
(no coercion: ``limit = "10"`` is refused, not read as 10), then the cross-field rules (executor
options, ``--no-wait``) and the folders (writable). Every failure is one line naming where the
value came from (the flag, or the config file and key) and the fix: a ``BenchError``, exit 2.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bench.errors import BenchError
from bench.grid import KINDS

SEED_MAX = 2**32 - 1
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEFAULTS: dict[str, Any] = {"embedders": ["minilm"], "datasets": ["wordnet"], "defenses": ["none"], "seeds": [0]}
# TOML keys; the others are flags only (cache_dir, wait, leaderboard, quiet, command).
TOML_KEYS = (*KINDS, "seeds", "out", "device", "limit", "baseline", "executor", "query_budget", "fit_query_budget", "isolate", "floor", "split", "fluency")
FLAGS = {"attacks": "--attack", "defenses": "--defense", "embedders": "--embedder", "datasets": "--dataset", "seeds": "--seed",
         "out": "--out", "device": "--device", "limit": "--limit", "baseline": "--baseline", "query_budget": "--query-budget",
         "fit_query_budget": "--fit-query-budget", "isolate": "--isolate", "floor": "--floor", "split": "--split", "fluency": "--fluency",
         "cache_dir": "--cache-dir", "leaderboard": "--leaderboard", "executor": "--executor"}


class _Invalid(ValueError):
    """A value refused by a validator; ``{name}`` in the text becomes the flag or the config key."""


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RunConfig(BaseModel):
    """What ``bench run`` runs: the grid, where it writes, how and where cells run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attacks: list[str | dict[str, Any]]
    defenses: list[str | dict[str, Any]] = DEFAULTS["defenses"]
    embedders: list[str | dict[str, Any]] = DEFAULTS["embedders"]
    datasets: list[str | dict[str, Any]] = DEFAULTS["datasets"]
    seeds: list[int] = DEFAULTS["seeds"]
    out: Path = Path("results")
    device: str = "auto"
    cache_dir: Path | None = None  # None: $BENCH_CACHE_DIR, else ~/.cache/inversion-bench
    limit: int | None = None  # targets per cell (None: each attack's default; 0: all)
    baseline: bool = True
    query_budget: int | None = None  # victim queries per target at inference (None: unlimited)
    fit_query_budget: int | None = None  # victim queries for fit and alignment, in total (None: unlimited)
    floor: bool = True  # add the chance-floor attack's cell beside text attacks
    split: str = "target"  # the split attacked and scored: "target", or "dev" (where defaults are chosen)
    fluency: bool = False  # score each text reconstruction's perplexity under bench.fluency's judge LM (opt-in: ~1-2 s per text)
    isolate: bool = False  # run each attack in a worker process holding neither the victim nor the defense state
    executor: str = "local"
    executor_options: dict[str, Any] = {}
    wait: bool = True
    leaderboard: str | None = None
    quiet: bool = False
    command: str | None = None  # the `bench run` command line, shell-quoted and redacted, for the records

    @field_validator(*KINDS, mode="before")
    @classmethod
    def _specs(cls, value: Any, info) -> list:
        if isinstance(value, str):
            return [value]  # one spec, not a list of its characters
        if not isinstance(value, list | tuple) or not value:
            raise _Invalid(f"{{name}} must be a spec string or a non-empty list of them, got {value!r}")
        for item in value:
            if isinstance(item, dict):
                if not isinstance(item.get("name"), str) or not item["name"]:
                    raise _Invalid(f"a [[{info.field_name}]] table needs name = \"...\" (a string), got {item.get('name')!r}")
                for k, v in item.items():
                    vals = v if isinstance(v, list) else [v]
                    if not vals or any(isinstance(x, dict | list) for x in vals):
                        raise _Invalid(f"[[{info.field_name}]] {item['name']}.{k} must be a value or a list of values, got {v!r}")
            elif not isinstance(item, str):
                raise _Invalid(f"every entry of {{name}} must be a spec string or a table, got {item!r}")
        return list(value)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> list[int]:
        seeds = list(value) if isinstance(value, list | tuple) else [value]
        if not seeds:
            raise _Invalid("{name} is empty: give at least one, e.g. seeds = [0]")
        for s in seeds:
            if not _int(s):
                raise _Invalid(f"{{name}} must be an integer between 0 and {SEED_MAX}, got {s!r}")
            if not 0 <= s <= SEED_MAX:
                raise _Invalid(f"{{name}} must be between 0 and {SEED_MAX}, got {s}")
        return seeds

    @field_validator("out", "cache_dir", mode="before")
    @classmethod
    def _folder(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str | Path) or not str(value).strip()):
            raise _Invalid(f"{{name}} must be a folder path (a string), got {value!r}")
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        if not isinstance(value, str) or not DEVICE.match(value):
            raise _Invalid(f"{{name}} must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {value!r}")
        return value

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> int | None:
        if value is not None and (not _int(value) or value < 0):
            raise _Invalid(f"{{name}} must be an integer >= 0 (0: every target), got {value!r}")
        return value

    @field_validator("query_budget", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> int | None:
        if value is not None and (not _int(value) or value < 1):
            raise _Invalid(f"{{name}} must be a positive integer (victim queries per target), got {value!r}")
        return value

    @field_validator("fit_query_budget", mode="before")
    @classmethod
    def _fit_budget(cls, value: Any) -> int | None:
        if value is not None and (not _int(value) or value < 1):
            raise _Invalid(f"{{name}} must be a positive integer (victim queries to fit, in total), got {value!r}")
        return value

    @field_validator("split", mode="before")
    @classmethod
    def _split(cls, value: Any) -> str:
        from bench.grid import SPLITS

        if value not in SPLITS:
            raise _Invalid(f"{{name}} must be one of {', '.join(repr(s) for s in SPLITS)}, got {value!r}")
        return value

    @field_validator("baseline", "wait", "quiet", "isolate", "floor", "fluency", mode="before")
    @classmethod
    def _bool(cls, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Invalid(f"{{name}} must be true or false (no quotes), got {value!r}")
        return value

    @field_validator("leaderboard", mode="before")
    @classmethod
    def _board(cls, value: Any) -> str | None:
        if value is not None and (not isinstance(value, str) or not value or "/" in value or value.startswith(".")):
            raise _Invalid(f"{{name}} must be a plain folder name (under leaderboards/), got {value!r}")
        return value

    # ------------------------------------------------------------ building it

    @classmethod
    def load(cls, flags: dict[str, Any], config_path: Path | None = None, argv: list[str] | None = None) -> RunConfig:
        """Flags over the TOML over the defaults, validated; then the executor and the folders checked.

        ``flags``: the command line's values (None or empty: not given); ``executor_options`` is the
        list of ``-X key=value`` strings. ``argv``: the ``bench`` arguments, kept (redacted) as ``command``.
        """
        toml = read_toml(config_path) if config_path else {}
        origin: dict[str, tuple[str, str]] = {}  # key -> (where, name): ("", "--limit") or ("config file P: ", "`limit`")
        values: dict[str, Any] = {}
        for key in (*KINDS, "seeds", "out", "device", "limit", "baseline", "query_budget", "fit_query_budget", "isolate", "floor", "split", "fluency"):
            given = flags.get(key)
            if given not in (None, (), []):
                values[key], origin[key] = list(given) if isinstance(given, tuple) else given, ("", FLAGS[key])
            elif key in toml:
                values[key], origin[key] = toml[key], (f"config file {config_path}: ", f"`{key}`")
        if not values.get("attacks") and "attacks" not in origin:
            raise BenchError("no attack given: add --attack NAME (see `bench list attacks`)")
        for key in ("cache_dir", "leaderboard", "wait", "quiet"):
            if flags.get(key) is not None:
                values[key], origin[key] = flags[key], ("", FLAGS.get(key, f"--{key}"))
        values["executor"], values["executor_options"] = executor_config(flags.get("executor"), flags.get("executor_options") or (),
                                                                         toml.get("executor"), config_path)
        if argv is not None:
            values["command"] = command_line(argv)
        try:
            config = cls.model_validate(values)
        except ValidationError as e:
            raise BenchError(_message(e, origin)) from None
        config.check()
        return config

    def check(self) -> None:
        """The rules across fields and the world outside: executor options, --no-wait, writable folders."""
        from bench.executors import check_available, parse_options
        from bench.preflight import check_writable_dir
        from bench.settings import env_cache_dir

        parse_options(self.executor, self.executor_options)
        if not self.wait and self.executor == "local":
            raise BenchError("--no-wait needs a job executor: add --executor slurm (or submitit-local)")
        if not self.wait and self.executor == "ray":
            raise BenchError("ray tasks end with the process that submitted them: run without --no-wait "
                             "(or submit the whole command with `ray job submit -- bench run ...`)")
        check_writable_dir(self.out, "--out")
        check_writable_dir(self.cache_dir if self.cache_dir else env_cache_dir(), "--cache-dir")
        if self.leaderboard:
            check_writable_dir(Path("leaderboards") / self.leaderboard, "--leaderboard")
        check_available(self.executor)

    def options(self):
        """The executor's typed options (``bench.executors.Options``)."""
        from bench.executors import parse_options

        return parse_options(self.executor, self.executor_options)


def _message(e: ValidationError, origin: dict[str, tuple[str, str]]) -> str:
    """The first validation error as one line, naming the flag or the config file and key."""
    first = e.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else "?"
    where, name = origin.get(key, ("", f"`{key}`"))
    err = (first.get("ctx") or {}).get("error")
    if isinstance(err, _Invalid):
        return where + str(err).replace("{name}", name)
    return f"{where}{name}: {first['msg']} (got {first.get('input')!r})"


def read_toml(path: Path) -> dict:
    """The TOML's table, with unknown keys refused (values are checked by ``RunConfig``)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist: check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"config file {path} cannot be read ({e}): check its permissions and encoding") from None
    except tomllib.TOMLDecodeError as e:
        raise BenchError(f"config file {path} is not valid TOML ({e}): fix the syntax") from None
    extra = set(data) - set(TOML_KEYS)
    if extra:
        raise BenchError(f"config file {path} has unknown keys {sorted(extra)}: allowed are {sorted(TOML_KEYS)}")
    return data


def executor_config(executor: str | None, flags: tuple[str, ...] | list[str], from_config: Any,
                    path: Path | None = None) -> tuple[str, dict]:
    """The executor and its options: --executor/-X flags over the config's ``executor`` (a name, or
    a table with ``name`` and options)."""
    table: dict = {}
    if isinstance(from_config, str):
        name = from_config
    elif isinstance(from_config, dict):
        table = dict(from_config)
        name = table.pop("name", None)
    elif from_config is None:
        name = None
    else:
        raise BenchError(f"config file {path}: `executor` must be a name or a table with name = ..., got {from_config!r}")
    given = executor or name or "local"
    if executor and name and executor != name:
        table = {}  # the config's options belong to another executor
    for flag in flags:
        key, eq, value = flag.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"bad executor option {flag!r}: write -X key=value (e.g. -X partition=gpu)")
        table[key.strip()] = value.strip()
    return given, table


def command_line(argv: list[str]) -> str:
    """``bench ARGS`` as one shell-quoted string, every registered secret redacted."""
    from bench.redact import redact

    return redact(shlex.join(["bench", *map(str, argv)]))
