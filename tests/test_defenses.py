import numpy as np
import pytest

from bench.align import least_squares, procrustes
from bench.errors import BenchError


def _unit(n=200, d=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_noise_scales_and_renormalises(host):
    x = _unit()
    rng = lambda: np.random.default_rng(1)  # noqa: E731
    assert np.allclose(host.make("defenses", "noise", {"scale": 0}).apply(x, rng()), x)
    small = host.make("defenses", "noise", {"scale": 0.01}).apply(x, rng())
    big = host.make("defenses", "noise", {"scale": 0.5}).apply(x, rng())
    cos = lambda a: (a * x).sum(1).mean()  # noqa: E731
    assert cos(small) > 0.99 > 0.5 > cos(big)
    assert np.allclose(np.linalg.norm(big, axis=1), 1, atol=1e-5)
    raw = host.make("defenses", "noise", {"scale": 0.5, "renormalize": False}).apply(x, rng())
    assert np.linalg.norm(raw, axis=1).mean() > 2


def test_quantize_levels(host):
    x = _unit(d=64)
    err = {b: np.abs(host.make("defenses", "quantize", {"bits": b}).apply(x, None) - x).max() for b in (8, 4)}
    assert err[8] < 0.01 < err[4]
    q8 = host.make("defenses", "quantize", {"bits": 8}).apply(x, None)
    assert len(np.unique(q8[0])) <= 255
    sign = host.make("defenses", "quantize", {"bits": 1}).apply(x, None)
    assert set(np.unique(np.sign(sign))) <= {-1.0, 1.0}
    assert np.allclose(np.linalg.norm(sign, axis=1), 1, atol=1e-5)
    assert np.array_equal(np.sign(sign), np.where(x >= 0, 1.0, -1.0))


@pytest.mark.parametrize("kind", ["orthogonal", "permutation"])
def test_rotation_is_keyed_and_preserves_geometry(host, kind):
    x = _unit()
    a = host.make("defenses", "rotation", {"key": "k1", "kind": kind})
    r = a.defend(x, None, a.keyed(b"ignored: the fixed key wins"))
    assert np.allclose(r @ r.T, x @ x.T, atol=1e-4)  # all inner products kept: full utility
    assert np.allclose(a.defend(x, None, a.keyed(b"other")), r)  # same fixed key, same matrix
    other = host.make("defenses", "rotation", {"key": "k2", "kind": kind})
    assert not np.allclose(other.defend(x, None, other.keyed(b"")), r)
    assert np.abs((r * x).sum(1)).mean() < 0.5  # vectors themselves moved
    # no fixed key: the harness's per-cell key decides, and the record states only "fixed key" for a given one
    free = host.make("defenses", "rotation", {"kind": kind})
    k1, k2 = free.defend(x, None, free.keyed(b"seed-0 key")), free.defend(x, None, free.keyed(b"seed-1 key"))
    assert not np.allclose(k1, k2) and np.allclose(k1 @ k1.T, x @ x.T, atol=1e-4)
    assert a.config()["params"]["key"] == "fixed key" and "k1" not in repr(a) + a.short()
    with pytest.raises(BenchError, match="key"):
        free.apply(x, None)  # no key, no rotation


def test_alignment_recovers_a_rotation_from_pairs(host):
    x = _unit(n=100, d=32)
    rot = host.make("defenses", "rotation")
    w = rot.matrix(32, rot.keyed(b"a per-run key"))
    y = x @ w
    assert np.allclose(y @ procrustes(y, x), x, atol=1e-4)
    assert np.allclose(y @ least_squares(y, x, ridge=0.0), x, atol=1e-3)
    one = least_squares(y[:1], x[:1])  # one pair: regularised, still points the right way
    assert (y[:1] @ one * x[:1]).sum() > 0.5


def test_alignment_from_quantized_vectors_with_dead_dimensions(host):
    """8-bit quantization rounds a dimension every vector barely uses to exactly 0 (3 of MiniLM's 384
    on Wikipedia passages): the plain solve is singular; the map ignores those dimensions instead."""
    x = _unit(n=100, d=32)
    x[:, :3] *= 1e-4  # dimensions the encoder barely uses
    q = host.make("defenses", "quantize", {"bits": 8}).apply(x, np.random.default_rng(0))
    assert (q[:, :3] == 0).all()
    w = least_squares(q, x, ridge=0.0)
    assert np.isfinite(w).all() and np.allclose(w[:3], 0) and np.allclose(q @ w, x, atol=0.05)
    # barely used, not zeroed (MiniLM's sit at ~1e-8): fitting noise through them took weights ~1e7 to inf
    rng = np.random.default_rng(1)
    dead = x.copy()
    dead[:, :3] = 1e-8 * rng.normal(size=(100, 3))
    noisy = dead[:, 3:] @ rng.normal(size=(29, 8)) + 0.01 * rng.normal(size=(100, 8))
    assert np.abs(least_squares(dead, noisy, ridge=0.0)[:3]).max() < 1e-3
    # PCA keeps k of 32 directions; the rest is float32 rounding noise, which must get no weight
    y = _unit(n=300, d=32)
    pca = host.make("defenses", "pca", {"k": 4})
    z = pca.apply(y, np.random.default_rng(0), pca.fit(y, np.random.default_rng(0)))
    w = least_squares(z, y, ridge=0.0)
    best = np.linalg.lstsq(z.astype(np.float64), y, rcond=1e-5)[0]
    assert np.abs(w).max() < 100 and np.allclose(z @ w, z @ best, atol=1e-4)


def test_defense_params_validated(host):
    from bench.errors import BenchError

    for name, params in [("quantize", {"bits": 0}), ("quantize", {"bits": 17}), ("rotation", {"key": ""}), ("noise", {"scale": "lots"})]:
        with pytest.raises(BenchError):
            host.make("defenses", name, params)
