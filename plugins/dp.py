"""Differential-privacy defenses: ``dp`` (clipping, then the Gaussian or Laplace mechanism calibrated
to ε) and ``ldp`` (metric local DP, Zero2Text's LapMech). Calibration lives in ``bench.privacy``."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from bench.api import Defense, Params
from bench.hookspecs import hookimpl
from bench.privacy import (
    clip_rows,
    gaussian_sigma_analytic,
    gaussian_sigma_classic,
    metric_laplace_noise,
)
from bench.vectors import unit


class DP(Defense):
    """Clip to L2 norm C, then the Gaussian (ε, δ) or Laplace (ε) mechanism for that sensitivity.

    Each embedding is released on its own (local DP): neighbouring inputs are any two embeddings in
    the ball of radius C, so the L2 sensitivity is Δ₂ = 2C and the L1 sensitivity Δ₁ = 2C·sqrt(d).
    Gaussian: σ from the analytic Gaussian mechanism (Balle & Wang, ICML 2018: the smallest σ with
    Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ) ≤ δ, valid for every ε), or with ``calibration=classic``
    σ = Δ₂·sqrt(2 ln(1.25/δ))/ε (Dwork & Roth 2014, Theorem A.1; ε < 1 only). Laplace: b = Δ₁/ε per
    coordinate, pure ε-DP. ``normalize`` rescales each output to norm C (post-processing: no privacy
    cost). The calibrated σ or b is in the record's ``defense_info``.
    """

    name = "dp"

    class Params(Params):
        epsilon: float = Field(1000.0, gt=0, description="privacy budget ε per released embedding")
        delta: float = Field(1e-5, gt=0, lt=1, description="δ of the Gaussian mechanism (ignored by laplace)")
        clip: float = Field(1.0, gt=0, description="L2 norm C every embedding is clipped to (sensitivity 2C)")
        mechanism: Literal["gaussian", "laplace"] = Field("gaussian", description="gaussian: (ε, δ)-DP; laplace: pure ε-DP")
        calibration: Literal["analytic", "classic"] = Field(
            "analytic", description="analytic Gaussian mechanism (Balle & Wang 2018) or the classic σ (ε < 1 only)"
        )
        normalize: bool = Field(True, description="rescale each released vector to norm C (post-processing)")

        @model_validator(mode="after")
        def _classic_needs_small_epsilon(self):
            if self.mechanism == "gaussian" and self.calibration == "classic" and self.epsilon >= 1:
                raise ValueError(f"calibration=classic holds for epsilon < 1 only (got {self.epsilon}): use calibration=analytic")
            return self

    # From "no effect" to "utility destroyed" on all-MiniLM-L6-v2 / WordNet (docs/results.md).
    default_grid: ClassVar[list[dict]] = [{"epsilon": e} for e in (1e5, 1e4, 1e3, 1e2)]

    def noise_scale(self, dim: int) -> float:
        """σ of the Gaussian noise, or b of the Laplace noise, per coordinate."""
        p = self.params
        if p.mechanism == "laplace":
            return 2 * p.clip * math.sqrt(dim) / p.epsilon
        calibrate = gaussian_sigma_analytic if p.calibration == "analytic" else gaussian_sigma_classic
        return calibrate(p.epsilon, p.delta, 2 * p.clip)

    def apply(self, emb, rng):
        x = clip_rows(emb.astype(np.float64), self.params.clip)
        scale = self.noise_scale(x.shape[1])
        noise = rng.laplace(0.0, scale, x.shape) if self.params.mechanism == "laplace" else rng.normal(0.0, scale, x.shape)
        out = x + noise
        if self.params.normalize:
            out = unit(out) * self.params.clip
        return out.astype(np.float32)

    def privacy(self, dim):
        p = self.params
        info = {"mechanism": p.mechanism, "epsilon": p.epsilon, "clip": p.clip}
        if p.mechanism == "laplace":
            info.update(delta=0.0, l1_sensitivity=2 * p.clip * math.sqrt(dim), laplace_b=self.noise_scale(dim))
        else:
            info.update(delta=p.delta, l2_sensitivity=2 * p.clip, calibration=p.calibration, sigma=self.noise_scale(dim))
        return info


class MetricLDP(Defense):
    """Metric local DP (Zero2Text's LapMech): add noise with density ∝ exp(−ε_total‖z‖), ε_total = ε·d.

    ``epsilon`` is per dimension, as Zero2Text reports it (ε/d): the noise direction is uniform and
    its radius is drawn from Gamma(d, 1/(ε·d)), so its expected norm is 1/ε whatever the dimension.
    Two inputs x, x' give output densities within a factor exp(ε·d·‖x − x'‖₂) (Feyisetan et al.,
    WSDM 2020); for unit embeddings that is at most exp(2ε·d), the pure-LDP bound in the record.
    ``normalize`` rescales each output to the input's norm (1 for normalised embedders).
    """

    name = "ldp"

    class Params(Params):
        epsilon: float = Field(1.0, gt=0, description="ε per dimension (ε/d in Zero2Text): expected noise norm 1/ε")
        normalize: bool = Field(True, description="rescale each noisy vector to the input's norm (post-processing)")

    default_grid: ClassVar[list[dict]] = [{"epsilon": e} for e in (10.0, 3.0, 1.0, 0.25)]

    def apply(self, emb, rng):
        x = emb.astype(np.float64)
        out = x + metric_laplace_noise(len(x), x.shape[1], self.params.epsilon * x.shape[1], rng)
        if self.params.normalize:
            out = unit(out) * np.linalg.norm(x, axis=1, keepdims=True)
        return out.astype(np.float32)

    def privacy(self, dim):
        eps = self.params.epsilon
        return {"epsilon_per_dim": eps, "epsilon_total": eps * dim, "expected_noise_norm": 1.0 / eps,
                "ldp_epsilon_unit_vectors": 2 * eps * dim}


@hookimpl
def register_defenses(register):
    register(DP)
    register(MetricLDP)
