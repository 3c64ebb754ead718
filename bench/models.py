"""Shared model code for every plugin: locating a model, hashing its weights, refusing pickles,
the random-init marker, describing a failure in one line, quiet loading, the torch device, and how
a local encoder runs there (its dtype and batch size on a GPU, a loaded model moved, not reloaded).

* A model reference is a local folder, a hub id (its snapshot in the local hub cache; never
  downloaded here) or something a plugin resolves itself (a packaged model such as ``smollm2``).
* Weights load from safetensors only: a folder (or any sub-folder) whose weights are all pickles is refused.
* A folder holding :data:`RANDOM_INIT_MARKER` is a randomly initialised model (``pretrained`` False):
  tests and toy models write it, and records from such models say they are not findings.
* :func:`weights_sha256` fingerprints the weight files; per-file digests are memoised under
  ``<cache_dir>/fingerprints`` (the active settings' cache root by default).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.cache import atomic_write_bytes, default_cache_dir, file_digest, key_hash
from bench.errors import BenchError, one_line

RANDOM_INIT_MARKER = "bench_random_init.json"
OFFLINE_HINT = "not a local directory and the hub is unreachable (HF_HUB_OFFLINE=1?); pass a local path"


# ---------------------------------------------------------------- locating


def looks_like_path(ref: str) -> bool:
    """A reference that can only be a filesystem path (hub ids never start with / . ~)."""
    return ref.startswith(("/", ".", "~", "\\")) or os.path.isabs(ref)


def local_dir(ref: str) -> Path | None:
    """The resolved folder ``ref`` names, if it is one."""
    p = Path(ref).expanduser()
    return p.resolve() if p.is_dir() else None


def hub_snapshot_dir(ref: str) -> Path | None:
    """The cached snapshot folder of a hub id, without touching the network (None if not cached)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=ref, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, not a repo id, or no huggingface_hub
        return None


def model_dir(ref: str) -> Path | None:
    """The local folder of a reference: the folder itself, or a hub id's cached snapshot (None: neither)."""
    return local_dir(ref) or (None if looks_like_path(ref) else hub_snapshot_dir(ref))


_NOT_WEIGHTS = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt")


def check_no_pickle_only(ref: str, folder: Path | None) -> None:
    """Refuse a model folder where the folder itself or any sub-folder (sentence-transformers loads
    e.g. ``2_Dense/``) holds pickle weights (``*.bin``, ``*.pt``, ``*.pth``) but no safetensors."""
    if folder is None:
        return
    folders = [folder] + sorted(
        p for p in folder.rglob("*") if p.is_dir() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for sub in folders:
        names = [p.name for p in sub.iterdir() if p.is_file()]
        if any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
            continue
        pickles = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth")) and n not in _NOT_WEIGHTS and not n.startswith("rng_state"))
        if pickles:
            where = "" if sub == folder else f" in {sub.relative_to(folder).as_posix()}/"
            raise BenchError(
                f"model {ref!r} has only pickle weights{where} ({', '.join(pickles)}), which are never loaded: "
                f"convert them to safetensors (load once in a trusted session, then save_pretrained(dir))"
            )


def locate(ref: str) -> Path | None:
    """The local folder of a model reference (None: a hub id left to the loader), checked for
    loadable weights; a path that does not exist is a ``BenchError``."""
    folder = model_dir(ref)
    if folder is None and looks_like_path(ref):
        raise BenchError(f"cannot load model {ref!r}: {OFFLINE_HINT}")
    check_no_pickle_only(ref, folder)
    return folder


def is_random_init(folder: Path | None) -> bool:
    """True when ``folder`` holds the :data:`RANDOM_INIT_MARKER` file (an untrained model)."""
    return folder is not None and (Path(folder) / RANDOM_INIT_MARKER).is_file()


# ---------------------------------------------------------------- hashing


def weight_files(folder: Path) -> list[Path]:
    """``*.safetensors`` files under ``folder`` (recursively, hidden folders skipped), sorted by
    relative path; a folder with no safetensors contributes its ``*.bin``/``*.pt`` files instead (e.g.
    an old sentence-transformers Dense layer), so no weights escape the fingerprint."""
    by_dir: dict[Path, list[Path]] = {}
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            by_dir.setdefault(p.parent, []).append(p)
    files: list[Path] = []
    for found in by_dir.values():
        safe = [p for p in found if p.suffix == ".safetensors"]
        files.extend(safe or [p for p in found if p.name != "training_args.bin"])
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """SHA-256 of one file, streamed in 1 MiB chunks and memoised in a JSON sidecar under
    ``<cache_dir>/fingerprints/`` (default: the active settings' cache root), keyed by
    (absolute path, size, mtime_ns)."""
    from bench.settings import active

    path = Path(path).resolve()
    st = path.stat()
    key = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    sidecar = Path(cache_dir or active().cache_dir) / "fingerprints" / f"{key_hash(key)}.json"
    try:
        memo = json.loads(sidecar.read_text())
        if {k: memo.get(k) for k in key} == key and isinstance(memo.get("sha256"), str) and len(memo["sha256"]) == 64:
            return memo["sha256"]
    except (OSError, ValueError):
        pass
    digest = file_digest(path)
    try:
        atomic_write_bytes(sidecar, json.dumps({**key, "sha256": digest}).encode(), overwrite=True)
    except OSError:
        pass  # a read-only cache only costs a rehash next time
    return digest


def weights_sha256(folder: Path) -> str | None:
    """SHA-256 over the model's weight files (:func:`weight_files`), sorted by relative path.

    One file: that file's own SHA-256 (equal to the hub's LFS oid, so it can be checked against
    the upstream model). Several files: SHA-256 of the lines ``"<relative path> <sha256>"``.
    None when the folder holds no weight files.
    """
    files = weight_files(Path(folder))
    if not files:
        return None
    digests = [(p.relative_to(folder).as_posix(), file_sha256(p)) for p in files]
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{rel} {d}\n" for rel, d in digests).encode()).hexdigest()


def state_dict_sha256(module) -> str:
    """SHA-256 of a torch module's parameters and buffers, for models whose files cannot be found."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_digest(folder: Path | None, model) -> str:
    """SHA-256 of the weight files, or of the loaded tensors when there is no local folder."""
    sha = weights_sha256(folder) if folder is not None else None
    return sha or state_dict_sha256(model)


# ---------------------------------------------------------------- errors and loading


def describe(e: BaseException, limit: int = 200) -> str:
    """``"TypeName: message"`` on one line: how a failure inside a library reads in a BenchError."""
    text = one_line(e, limit)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def load_error(ref: str, folder: Path | None, e: BaseException) -> BenchError:
    """The one-line error for a model that failed to load (offline hub id, no safetensors, ...)."""
    if folder is None:
        if "safetensors" in str(e).lower():
            return BenchError(f"cannot load model {ref!r}: it has no safetensors weights and pickle is never loaded ({describe(e)})")
        return BenchError(f"cannot load model {ref!r}: {OFFLINE_HINT}")
    return BenchError(f"cannot load model {ref!r} from {folder}: {describe(e)}")


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' "Loading weights" progress bars and sentence-transformers' notices
    ("No sentence-transformers model found ...") while a model loads; restore them afterwards."""
    import logging

    from transformers.utils import logging as hf_logging

    st_log = logging.getLogger("sentence_transformers")
    level = st_log.level
    bars = hf_logging.is_progress_bar_enabled()
    st_log.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        st_log.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def torch_device(device: str):
    """``torch.device(device)``, or a one-line error for a bad name or a missing GPU."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BenchError(f"bad device {device!r}: pass cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"device {device!r} requested but torch sees no GPU (torch.cuda.is_available() is False): use device cpu")
    return dev


def reuse_loaded(embedder, dev) -> bool:
    """True when ``embedder.model`` is already loaded (moved to ``dev`` and ``embedder.device`` set if needed)."""
    if embedder.model is None:
        return False
    if str(dev) != embedder.device:
        embedder.model.to(dev)
        embedder.device = str(dev)
    return True


GPU_BATCH = 512  # texts per forward pass on a GPU when the user set no batch_size


def cuda_dtype(device) -> str:
    """The dtype an encoder runs in on ``device``: float16 on CUDA (``BENCH_CUDA_DTYPE=float32`` keeps
    full precision), float32 elsewhere."""
    if not str(device).startswith("cuda"):
        return "float32"
    want = os.environ.get("BENCH_CUDA_DTYPE", "float16")
    if want not in ("float16", "float32"):
        raise BenchError(f"BENCH_CUDA_DTYPE={want!r}: use float16 or float32")
    return want


def gpu_batch_size(params, device) -> int:
    """The batch size: the user's (``params.batch_size`` when set), or a large one on a GPU (small
    batches leave it idle)."""
    if str(device or "cpu").startswith("cuda") and "batch_size" not in params.model_fields_set:
        return max(params.batch_size, GPU_BATCH)
    return params.batch_size


def reassemble_model(name: str, sha256: str, join, top: str | None, what: str, fix: str, cache_dir: Path | None = None,
                     folders: tuple[str, ...] = ()) -> Path:
    """A sentence-transformers folder shipped as a zip split over packages, reassembled once into
    ``<cache>/models/<name>-<sha12>/`` (mpnet, embeddinggemma).

    ``join(path)`` writes the joined zip. Its files are unpacked under the folder ``top`` (that
    prefix stripped, the rest skipped; None: a single top folder is stripped unless ``modules.json``
    sits at the root), checked (``model.safetensors`` against ``sha256``), given the module folders
    ``modules.json`` names (and ``folders``) that the zip lacks, then renamed into place, so a concurrent or interrupted
    run never sees a half-written model. Errors name ``what`` and end with ``fix``.
    """
    import shutil
    import tempfile
    import zipfile

    root = Path(cache_dir or default_cache_dir()) / "models"
    final = root / f"{name}-{sha256[:12]}"
    if (final / "model.safetensors").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    try:
        joined = work / f"{name}.zip"
        join(joined)
        unpacked = work / "model"
        try:
            with zipfile.ZipFile(joined) as z:
                infos = [i for i in z.infolist() if not i.is_dir()]
                if top is None:
                    tops = {Path(i.filename).parts[0] for i in infos}
                    strip = len(tops) == 1 and not any(Path(i.filename).name == "modules.json" and len(Path(i.filename).parts) == 1 for i in infos)
                for info in infos:
                    path = Path(info.filename)
                    if top is not None:
                        if not info.filename.startswith(f"{top}/"):
                            continue
                        rel = path.relative_to(top)
                    else:
                        rel = Path(*path.parts[1:]) if strip else path
                    if ".." in rel.parts or rel.is_absolute() or not rel.parts or rel.name == "desktop.ini":
                        continue
                    dest = unpacked / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except zipfile.BadZipFile as e:
            raise BenchError(f"the {what} pieces do not form a valid zip ({e}): {fix}") from None
        weights = unpacked / "model.safetensors"
        got = file_digest(weights) if weights.is_file() else "missing"
        if got != sha256:
            raise BenchError(f"{what} model.safetensors has sha256 {got[:16]}…, expected {sha256[:16]}…: {fix}")
        for folder in folders:
            (unpacked / folder).mkdir(parents=True, exist_ok=True)
        spec = unpacked / "modules.json"  # the zips store no empty module folders (e.g. 2_Normalize/)
        if spec.is_file():
            for m in json.loads(spec.read_text()):
                if m.get("path") and ".." not in Path(m["path"]).parts:
                    (unpacked / m["path"]).mkdir(parents=True, exist_ok=True)
        try:
            os.rename(unpacked, final)
        except OSError:
            if not (final / "model.safetensors").is_file():  # another process won the race: use its copy
                raise
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)
