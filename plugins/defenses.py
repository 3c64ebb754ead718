"""Built-in defenses: none, Gaussian noise, quantization, secret rotation."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from bench.api import Defense, Params
from bench.cache import seed_for
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.vectors import unit


class NoDefense(Defense):
    """No defense: embeddings are stored as the embedder returns them."""

    name = "none"
    identity = True

    def apply(self, emb, rng):
        return emb.astype(np.float32, copy=True)


class Noise(Defense):
    """Gaussian noise: e + scale * N(0, I), optionally renormalised (Vec2Text's defense)."""

    name = "noise"

    class Params(Params):
        scale: float = Field(0.01, ge=0, description="standard deviation λ of the noise per dimension")
        renormalize: bool = Field(True, description="rescale each noisy vector to the input's norm")

    default_grid: ClassVar[list[dict]] = [{"scale": s} for s in (0.001, 0.01, 0.03, 0.1)]

    def apply(self, emb, rng):
        noisy = emb + self.params.scale * rng.standard_normal(emb.shape)
        if self.params.renormalize:
            noisy = unit(noisy) * np.linalg.norm(emb, axis=1, keepdims=True)
        return noisy.astype(np.float32)


class Quantize(Defense):
    """Scalar quantization: n-bit per dimension with a per-vector scale (8 = int8), or 1-bit sign."""

    name = "quantize"

    class Params(Params):
        bits: int = Field(8, ge=1, le=16, description="bits per dimension (1 = sign only)")

    default_grid: ClassVar[list[dict]] = [{"bits": b} for b in (8, 4, 1)]

    def apply(self, emb, rng):
        if self.params.bits == 1:
            # Sign bits only; scaled so that a unit vector stays unit.
            return (np.where(emb >= 0, 1.0, -1.0) / np.sqrt(emb.shape[1])).astype(np.float32)
        levels = 2 ** (self.params.bits - 1) - 1
        scale = np.maximum(np.abs(emb).max(axis=1, keepdims=True), 1e-12) / levels
        return (np.round(emb / scale) * scale).astype(np.float32)


class Rotation(Defense):
    """Secret rotation: a random orthogonal matrix derived from a key, applied to corpus and queries.

    The key is the cell's secret (the harness derives it from a per-run secret, different per seed,
    never written anywhere); ``key=`` fixes it for reproduction, and records then say "fixed key"
    without the key itself.
    """

    name = "rotation"
    secret = True

    class Params(Params):
        key: str | None = Field(None, min_length=1, json_schema_extra={"secret": True},
                                description='a fixed key, for reproduction (records say "fixed key"); None: a per-run secret, different per seed')
        kind: Literal["orthogonal", "permutation"] = Field("orthogonal", description="dense rotation or a signed permutation")

    def keyed(self, key: bytes) -> dict[str, np.ndarray]:
        """The state: the fixed key when one is given, else the harness's per-run, per-seed key."""
        fixed = self.params.key
        return super().keyed(fixed.encode() if fixed is not None else key)

    def matrix(self, dim: int, state: dict[str, np.ndarray]) -> np.ndarray:
        """The rotation for vectors of ``dim`` under the key in ``state`` (from ``keyed``)."""
        if state is None or "key" not in state:
            raise BenchError("rotation needs its key as state (defense.keyed(key)): the harness supplies one per run")
        rng = np.random.default_rng(seed_for("rotation", _key_text(state), dim))
        if self.params.kind == "permutation":
            m = np.eye(dim)[rng.permutation(dim)] * rng.choice([-1.0, 1.0], size=dim)
            return m.astype(np.float32)
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        return (q * np.sign(np.diag(r))).astype(np.float32)  # Haar-distributed

    def apply(self, emb, rng, state=None):
        return (emb @ self.matrix(emb.shape[1], state)).astype(np.float32)


def _key_text(state: dict[str, np.ndarray]) -> str:
    """The key as text (a fixed key reads back as given, so ``key=bench-secret`` is the old public key)."""
    return bytes(np.asarray(state["key"], np.uint8)).decode("utf-8", "backslashreplace")


@hookimpl
def register_defenses(register):
    for cls in (NoDefense, Noise, Quantize, Rotation):
        register(cls)
