"""Content-addressed on-disk caches (safetensors only, never pickle) and atomic writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file


def key_hash(obj: Any, n: int = 16) -> str:
    """A stable short hash of any JSON-serialisable object."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def texts_hash(texts: list[str], n: int = 16) -> str:
    """SHA-256 of a list of texts (each followed by a NUL), its first ``n`` hex digits (64: all)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:n]


def seed_for(*parts: Any) -> int:
    """A 63-bit seed derived from a cell seed and purpose strings."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16)


def default_cache_dir() -> Path:
    """The active settings' cache root (``bench.settings.active().cache_dir``)."""
    from bench.settings import active

    return active().cache_dir


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def process_umask() -> int:
    """This process's umask (Linux reads it without changing it; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plainly created file gets (0666 less the umask): mkstemp's 0600 would make a
    shared results folder, cache or served site unreadable to others."""
    return 0o666 & ~process_umask()


def no_space(e: OSError, path: Path) -> Exception:
    """A one-line BenchError for a full disk or quota under ``path``; any other error as it is."""
    from bench.errors import BenchError

    if e.errno in NO_SPACE:
        return BenchError(f"no space left on the device holding {Path(path).parent} ({e.strerror}): "
                          f"free some space there or pass another --out / --cache-dir")
    return e


def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write via a temp file and rename; refuse to replace an existing file unless told. The file
    gets the umask's mode; a full disk is a one-line BenchError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile: nothing is overwritten
            os.unlink(tmp)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            raise no_space(e, path) from None
        raise


# ---------------------------------------------------------------- integrity
#
# Every cache entry and trained artifact carries a SHA-256 of its content, written with it and
# checked when it is read. A damaged, truncated or unverifiable file is reported once (one warning
# line naming it), deleted and recomputed: it is never used, and it never fails every rerun.

DIGEST_KEY = "bench_sha256"
_warned: set[str] = set()


class DamagedFile(Exception):
    """A cache entry or artifact whose content does not match its digest (or cannot be parsed)."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = Path(path), why


def warn_damaged(path: Path, why: str, action: str = "recomputing it") -> None:
    """One warning line on stderr per damaged file and process."""
    import sys

    if str(path) not in _warned:
        _warned.add(str(path))
        print(f"warning: {path} is damaged ({why}): {action}", file=sys.stderr)


def _tensor_bytes(value: Any) -> tuple[str, tuple, bytes]:
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        return str(a.dtype), tuple(a.shape), a.tobytes()
    import torch  # a torch tensor (any dtype, bf16 included)

    t = value.detach().to("cpu").contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return str(t.dtype).removeprefix("torch."), tuple(t.shape), raw


def content_digest(arrays: dict[str, Any], meta: dict[str, str] | None = None) -> str:
    """SHA-256 of named arrays (numpy or torch: dtype, shape, bytes) and string metadata."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        dtype, shape, raw = _tensor_bytes(arrays[name])
        h.update(f"{name}\0{dtype}\0{shape}\0{len(raw)}\0".encode())
        h.update(raw)
    for k in sorted(meta or {}):
        if k != DIGEST_KEY:
            h.update(f"meta\0{k}\0{meta[k]}\0".encode())
    return h.hexdigest()


def _atomic_save(path: Path, save) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            raise no_space(e, path) from None
        raise


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, str] | None = None) -> None:
    """Save numpy arrays (and string metadata) as safetensors atomically, with their content digest."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = {**(meta or {}), DIGEST_KEY: content_digest(arrays, meta)}
    _atomic_save(path, lambda tmp: save_file(arrays, tmp, metadata=meta))


def save_tensors(path: Path, tensors: dict[str, Any], meta: dict[str, str] | None = None) -> None:
    """:func:`save_arrays` for torch tensors (any dtype)."""
    from safetensors.torch import save_file as save_torch

    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    meta = {"format": "pt", **(meta or {})}
    meta[DIGEST_KEY] = content_digest(tensors, meta)
    _atomic_save(path, lambda tmp: save_torch(tensors, tmp, metadata=meta))


def read_verified(path: Path, framework: str = "numpy") -> tuple[dict[str, Any], dict[str, str]]:
    """(arrays, metadata) of a safetensors file written by :func:`save_arrays` / :func:`save_tensors`;
    raises :class:`DamagedFile` when it cannot be parsed, has no digest or does not match it."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt" if framework == "torch" else "np") as f:
            meta = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated, overwritten header, not safetensors
        raise DamagedFile(path, f"unreadable: {type(e).__name__}: {' '.join(str(e).split())[:120]}") from None
    want = meta.get(DIGEST_KEY)
    if not want:
        raise DamagedFile(path, "no content digest (written by an older version)")
    if content_digest(arrays, meta) != want:
        raise DamagedFile(path, "content does not match its digest")
    return arrays, meta


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The verified arrays of ``path``; a damaged file is a BenchError naming it (callers that can
    recompute use :func:`load_entry` instead)."""
    from bench.errors import BenchError

    try:
        return read_verified(path)[0]
    except DamagedFile as e:
        raise BenchError(f"{e.path} is damaged ({e.why}): delete it so it is recomputed") from None


def load_entry(path: Path, framework: str = "numpy", what: str = "recomputing it") -> tuple[dict[str, Any], dict[str, str]] | None:
    """(arrays, metadata) of a cache entry or artifact, or None when it is missing or damaged (a
    damaged one is reported once, deleted, and so recomputed by the caller)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return read_verified(path, framework)
    except FileNotFoundError:
        return None
    except DamagedFile as e:
        warn_damaged(path, e.why, what)
        path.unlink(missing_ok=True)
        return None


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def file_matches(path: Path, want: str | None, action: str = "recomputing it") -> bool:
    """True when the file's SHA-256 is ``want`` (or starts with it: a digest prefix carried in a file
    name); otherwise the file is reported once as damaged and False returned, for the caller to delete
    and rebuild it. For cache entries that are plain files (a model copy, an image)."""
    if not want:
        warn_damaged(path, "no content digest (written by an older version)", action)
        return False
    try:
        ok = file_digest(path).startswith(want)
    except OSError as e:
        warn_damaged(path, f"unreadable: {type(e).__name__}", action)
        return False
    if not ok:
        warn_damaged(path, "content does not match its digest", action)
    return ok


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON value (keys sorted, non-ASCII kept): the digest a JSON cache entry carries."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_json_entry(path: Path, value: Any, field: str = "value") -> None:
    """Write a JSON cache entry atomically as ``{"sha256": json_digest(value), field: value}``.
    A cache that cannot be written (OSError) only makes the next run slower: nothing is raised."""
    body = {"sha256": json_digest(value), field: value}
    try:
        atomic_write_bytes(Path(path), json.dumps(body, ensure_ascii=False).encode(), overwrite=True)
    except OSError:
        pass


def read_json_entry(path: Path, field: str = "value", action: str = "recomputing it") -> Any | None:
    """The value of a JSON cache entry written by :func:`write_json_entry`, or None when it is missing
    or damaged (unparsable, without a digest, not matching it: reported once, deleted, so recomputed)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        why = "no content digest (written by an older version)"
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        data, why = None, f"unreadable: {type(e).__name__}"
    if isinstance(data, dict) and field in data and "sha256" in data:
        if data["sha256"] == json_digest(data[field]):
            return data[field]
        why = "content does not match its digest"
    warn_damaged(path, why, action)
    path.unlink(missing_ok=True)
    return None


def seal(folder: Path, files: list[str], name: str) -> None:
    """Write ``<folder>/<name>.sha256.json`` (last, atomically): the SHA-256 of each of ``files``.
    An artifact is complete and intact exactly when :func:`sealed` says so."""
    folder = Path(folder)
    digests = {f: file_digest(folder / f) for f in files}
    atomic_write_bytes(folder / f"{name}.sha256.json", json.dumps({"files": digests}, indent=1).encode(), overwrite=True)


def sealed(folder: Path, files: list[str], name: str) -> bool:
    """True when the artifact ``name`` in ``folder`` is complete and every file matches its seal.

    A file that does not match (overwritten, truncated) is reported once and the artifact's files
    and seal are deleted, so the caller retrains it instead of loading it or failing every rerun.
    """
    folder = Path(folder)
    manifest = folder / f"{name}.sha256.json"
    if not manifest.is_file():
        return False
    try:
        want = json.loads(manifest.read_text())["files"]
        bad = {f: "missing" if not (folder / f).is_file() else "content does not match its digest"
               for f in files if f not in want or not (folder / f).is_file() or file_digest(folder / f) != want[f]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        bad = {manifest.name: f"unreadable seal: {type(e).__name__}"}
    if not bad:
        return True
    for f, why in bad.items():
        warn_damaged(folder / f, why, "retraining it")
    for f in [*files, manifest.name]:
        (folder / f).unlink(missing_ok=True)
    return False


def artifact_lock(folder: Path, name: str):
    """A lock on artifact ``name`` in ``folder`` (see :mod:`bench.locks`): check :func:`sealed`,
    train and :func:`seal` under it, so concurrent runs train it once and never see it half-written."""
    from bench.locks import file_lock

    return file_lock(Path(folder) / f".{name}.lock")


def cached_features(key: Any, n: int, compute, cache_dir: Path | None = None) -> np.ndarray:
    """``compute()`` (an array of ``n`` rows) cached as safetensors under ``<cache_dir>/features``
    (default: the active settings' cache root) by ``key_hash(key)``; a missing, damaged or
    wrong-sized entry is recomputed."""
    path = Path(cache_dir or default_cache_dir()) / "features" / f"{key_hash(key)}.safetensors"

    def read() -> np.ndarray | None:
        entry = load_entry(path)
        arr = entry[0].get("features") if entry else None
        return arr if arr is not None and arr.shape[0] == n else None

    arr = read()
    if arr is None:
        with entry_lock(path):  # concurrent jobs: one computes, the others wait and read it
            arr = read()
            if arr is None:
                arr = compute()
                save_arrays(path, {"features": arr})
    return arr


def entry_lock(path: Path):
    """The lock one process holds while it computes the cache entry at ``path`` (see :mod:`bench.locks`):
    jobs on other machines sharing the cache wait for it, then read the entry instead of recomputing."""
    from bench.locks import file_lock

    return file_lock(Path(path).parent / ".locks" / f"{Path(path).stem}.lock")


class EmbeddingCache:
    """Embeddings keyed by embedder fingerprint + dataset + split + the texts themselves."""

    def __init__(self, root: Path):
        self.root = Path(root) / "embeddings"

    def path(self, fingerprint: dict, dataset_key: str, split: str, texts: list[str]) -> Path:
        key = key_hash({"fp": fingerprint, "data": dataset_key, "split": split, "texts": texts_hash(texts)})
        return self.root / f"{split}-{key}.safetensors"

    def get(self, path: Path, n: int, dim: int | None = None) -> np.ndarray | None:
        """The entry's [n, dim] finite float32 embeddings, or None (missing, damaged: recomputed)."""
        entry = load_entry(path)
        emb = entry[0].get("embeddings") if entry else None
        if emb is None:
            return None
        if emb.ndim != 2 or emb.shape[0] != n or (dim is not None and emb.shape[1] != dim) or not np.isfinite(emb).all():
            warn_damaged(path, f"holds {emb.shape} {'non-finite ' if not np.isfinite(emb).all() else ''}embeddings, expected ({n}, {dim})")
            path.unlink(missing_ok=True)
            return None
        return emb

    def lock(self, path: Path):
        """The lock held while the entry at ``path`` is computed (:func:`entry_lock`)."""
        return entry_lock(path)

    def put(self, path: Path, emb: np.ndarray) -> None:
        save_arrays(path, {"embeddings": emb.astype(np.float32)})
