"""Differential-privacy calibration and noise for embedding defenses (public helpers for any plugin).

Each released embedding is one record (local release): two neighbouring inputs are any two
embeddings in the clipping ball, so after clipping to L2 norm C the L2 sensitivity is 2C and the
L1 sensitivity 2C·sqrt(d).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr


def gaussian_sigma_classic(epsilon: float, delta: float, sensitivity: float) -> float:
    """σ = Δ·sqrt(2 ln(1.25/δ)) / ε: the classic Gaussian mechanism (Dwork & Roth 2014, Theorem A.1),
    (ε, δ)-DP for ε < 1 only."""
    if not 0 < epsilon < 1:
        raise ValueError(f"the classic Gaussian calibration holds for 0 < ε < 1 only, got ε={epsilon}: use the analytic one")
    return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
    """The smallest δ for which N(0, σ²I) noise on an L2-sensitivity-Δ query is (ε, δ)-DP, exactly:
    δ = Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ) (Balle & Wang 2018, Theorem 8)."""
    a = sensitivity / (2 * sigma)
    b = epsilon * sigma / sensitivity
    return float(math.exp(log_ndtr(a - b)) - math.exp(epsilon + log_ndtr(-a - b)))


def gaussian_sigma_analytic(epsilon: float, delta: float, sensitivity: float) -> float:
    """The smallest σ for which the Gaussian mechanism is (ε, δ)-DP, for any ε > 0: the analytic
    Gaussian mechanism (Balle & Wang, ICML 2018, "Improving the Gaussian mechanism for differential
    privacy: analytical calibration and optimal denoising", Algorithm 1), found by bisection on the
    exact condition ``gaussian_delta(σ) <= δ`` (δ decreases in σ)."""
    if epsilon <= 0 or not 0 < delta < 1:
        raise ValueError(f"need ε > 0 and 0 < δ < 1, got ε={epsilon}, δ={delta}")
    lo, hi = 1e-12 * sensitivity, sensitivity
    while gaussian_delta(hi, epsilon, sensitivity) > delta:
        hi *= 2
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if gaussian_delta(mid, epsilon, sensitivity) > delta:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-12:
            break
    return hi


def clip_rows(x: np.ndarray, c: float) -> np.ndarray:
    """Each row scaled down to L2 norm at most ``c`` (rows inside the ball are unchanged)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, c / np.maximum(norms, 1e-12))


def metric_laplace_noise(n: int, d: int, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of z in R^d with density ∝ exp(−ε‖z‖₂): a uniform direction times a radius drawn
    from Gamma(shape d, scale 1/ε) (Wu et al. 2017; Feyisetan et al., WSDM 2020). Adding it to x is
    ε·d_2-private (metric LDP): outputs for x and x' differ by at most a factor exp(ε‖x − x'‖₂)."""
    direction = rng.standard_normal((n, d))
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-12)
    return direction * rng.gamma(shape=d, scale=1.0 / epsilon, size=(n, 1))
