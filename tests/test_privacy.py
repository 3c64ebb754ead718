"""DP calibration (classic and analytic Gaussian), metric-LDP noise, and the dp / ldp defenses."""

import math

import numpy as np
import pytest
from scipy import stats

from bench.privacy import (
    clip_rows,
    gaussian_delta,
    gaussian_sigma_analytic,
    gaussian_sigma_classic,
    metric_laplace_noise,
)


def test_classic_gaussian_is_dwork_roth_and_only_for_small_epsilon():
    assert gaussian_sigma_classic(0.5, 1e-5, 1.0) == pytest.approx(math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5)
    assert gaussian_sigma_classic(0.5, 1e-5, 2.0) == pytest.approx(2 * 9.68961, rel=1e-5)
    with pytest.raises(ValueError, match="0 < ε < 1"):
        gaussian_sigma_classic(1.0, 1e-5, 1.0)


def test_analytic_gaussian_meets_delta_exactly_and_beats_classic():
    for eps, delta in [(0.1, 1e-5), (0.5, 1e-6), (1.0, 1e-5), (10.0, 1e-5), (1000.0, 1e-5)]:
        sigma = gaussian_sigma_analytic(eps, delta, 2.0)
        assert gaussian_delta(sigma, eps, 2.0) <= delta * (1 + 1e-9)
        assert gaussian_delta(sigma * 0.999, eps, 2.0) > delta  # the smallest such σ
        if eps < 1:
            assert sigma < gaussian_sigma_classic(eps, delta, 2.0)
    # Balle & Wang 2018 (Fig. 1): ε = 1, δ = 1e-5, Δ = 1 needs σ ≈ 3.73 (classic: 4.84, not valid at ε = 1)
    assert gaussian_sigma_analytic(1.0, 1e-5, 1.0) == pytest.approx(3.7306, abs=1e-3)


def test_gaussian_delta_matches_the_privacy_loss_by_monte_carlo():
    # δ(ε) = E[(1 − e^{ε−L})_+] with the privacy loss L ~ N(η, 2η), η = Δ²/2σ²
    sigma, eps, sens = 1.3, 0.7, 1.0
    eta = sens**2 / (2 * sigma**2)
    loss = np.random.default_rng(0).normal(eta, math.sqrt(2 * eta), 4_000_000)
    mc = np.mean(np.maximum(0.0, 1 - np.exp(eps - loss)))
    assert gaussian_delta(sigma, eps, sens) == pytest.approx(mc, rel=0.02)


def test_metric_laplace_noise_has_gamma_radius_and_uniform_direction():
    d, eps = 20, 4.0
    z = metric_laplace_noise(20000, d, eps, np.random.default_rng(1))
    r = np.linalg.norm(z, axis=1)
    assert stats.kstest(r, stats.gamma(a=d, scale=1 / eps).cdf).pvalue > 0.01
    assert np.abs((z / r[:, None]).mean(0)).max() < 0.02


def test_clip_rows_caps_the_norm_only():
    x = np.array([[3.0, 4.0], [0.3, 0.4]])
    out = clip_rows(x, 1.0)
    assert np.allclose(np.linalg.norm(out, axis=1), [1.0, 0.5]) and np.allclose(out[1], x[1])


def test_dp_defense_noise_is_the_calibrated_sigma(host):
    zeros = np.zeros((4000, 64), np.float32)
    dp = host.make("defenses", "dp", {"epsilon": 100, "normalize": False})
    sigma = dp.privacy(64)["sigma"]
    assert sigma == pytest.approx(gaussian_sigma_analytic(100, 1e-5, 2.0))
    assert dp.defend(zeros, np.random.default_rng(0)).std() == pytest.approx(sigma, rel=0.01)
    lap = host.make("defenses", "dp", {"epsilon": 100, "mechanism": "laplace", "normalize": False})
    b = lap.privacy(64)["laplace_b"]
    assert b == pytest.approx(2 * 1.0 * 8 / 100) and lap.privacy(64)["delta"] == 0.0
    assert np.abs(lap.defend(zeros, np.random.default_rng(0))).mean() == pytest.approx(b, rel=0.01)  # E|Laplace(b)| = b
    unit = np.random.default_rng(1).standard_normal((10, 64)).astype(np.float32) * 5
    out = host.make("defenses", "dp", {"epsilon": 100, "clip": 0.5}).defend(unit, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(out, axis=1), 0.5, atol=1e-5)  # released at norm C


def test_dp_classic_calibration_refuses_large_epsilon_in_one_line(host):
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="epsilon < 1 only"):
        host.make("defenses", "dp", {"epsilon": 2, "calibration": "classic"})


def test_ldp_epsilon_is_per_dimension(host):
    for d in (16, 256):
        ldp = host.make("defenses", "ldp", {"epsilon": 2.0, "normalize": False})
        out = ldp.defend(np.zeros((5000, d), np.float32), np.random.default_rng(0))
        assert np.linalg.norm(out, axis=1).mean() == pytest.approx(0.5, rel=0.02)  # expected norm 1/ε whatever d
        assert ldp.privacy(d)["epsilon_total"] == 2.0 * d
