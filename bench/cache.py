"""Content-addressed on-disk caches (safetensors only, never pickle) and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file


def key_hash(obj: Any, n: int = 16) -> str:
    """A stable short hash of any JSON-serialisable object."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def seed_for(*parts: Any) -> int:
    """A 63-bit seed derived from a cell seed and purpose strings."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:15], 16)


def default_cache_dir() -> Path:
    """The active settings' cache root (``bench.settings.active().cache_dir``)."""
    from bench.settings import active

    return active().cache_dir


def atomic_write_bytes(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write via a temp file and rename; refuse to replace an existing file unless told."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared meanwhile: nothing is overwritten
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, str] | None = None) -> None:
    """Save arrays as safetensors atomically (a cache entry is replaced whole or not at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path))


def cached_features(key: Any, n: int, compute, cache_dir: Path | None = None) -> np.ndarray:
    """``compute()`` (an array of ``n`` rows) cached as safetensors under ``<cache_dir>/features``
    (default: the active settings' cache root) by ``key_hash(key)``; a missing, damaged or
    wrong-sized entry is recomputed."""
    path = Path(cache_dir or default_cache_dir()) / "features" / f"{key_hash(key)}.safetensors"
    try:
        arr = load_arrays(path)["features"] if path.exists() else None
    except Exception:  # noqa: BLE001 - a damaged entry is recomputed, not trusted
        arr = None
    if arr is not None and arr.shape[0] == n:
        return arr
    arr = compute()
    save_arrays(path, {"features": arr})
    return arr


class EmbeddingCache:
    """Embeddings keyed by embedder fingerprint + dataset + split + the texts themselves."""

    def __init__(self, root: Path):
        self.root = Path(root) / "embeddings"

    def path(self, fingerprint: dict, dataset_key: str, split: str, texts: list[str]) -> Path:
        key = key_hash({"fp": fingerprint, "data": dataset_key, "split": split, "texts": texts_hash(texts)})
        return self.root / f"{split}-{key}.safetensors"

    def get(self, path: Path, n: int) -> np.ndarray | None:
        if not path.exists():
            return None
        try:
            emb = load_arrays(path)["embeddings"]
        except Exception:  # a damaged entry is recomputed, not trusted
            return None
        return emb if emb.shape[0] == n else None

    def put(self, path: Path, emb: np.ndarray) -> None:
        save_arrays(path, {"embeddings": emb.astype(np.float32)})
