"""Perturbations of the project data: the distributions a Monte-Carlo batch (``monte_carlo``
of a batch spec) and a scenario's own sample (``uncertainty``) are drawn from.

Price factors per mineral (optionally correlated through a Gaussian copula), a capex-overrun
factor per project on ``equity_value_musd``, an output factor per project and country
disruption. How a draw is made from them: ``optimizer.sample`` (and the batch engine's
``optimizer.batch.draws``, the same numbers).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

# The primary minerals (CONTRACT section 1); a price factor is drawn per mineral. Defined here,
# the lowest module that needs them; optimizer.schema exports them with the other columns.
MINERALS: tuple[str, ...] = ("tantalum", "niobium", "ree")


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", strict=True)


class Lognormal(BaseModel):
    """A lognormal factor: ``median * exp(sigma * z)``, z standard normal (median 1 and sigma
    0.2 means about +-20 % in one standard deviation)."""

    model_config = _strict()
    dist: Literal["lognormal"]
    median: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 1.0
    sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)]

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        return self.median * np.exp(self.sigma * z)


class Triangular(BaseModel):
    """A triangular factor on ``[low, high]`` with its mode at ``mode``."""

    model_config = _strict()
    dist: Literal["triangular"]
    low: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    mode: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    high: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not (self.low <= self.mode <= self.high) or self.low == self.high:
            raise ValueError(f"needs low <= mode <= high and low < high, got low {self.low}, "
                             f"mode {self.mode}, high {self.high}")
        return self

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        """Inverse CDF at Phi(z) (so a correlated normal drives it, Gaussian copula)."""
        u = _normal_cdf(np.asarray(z, dtype=float))
        a, c, b = self.low, self.mode, self.high
        cut = (c - a) / (b - a)
        left = a + np.sqrt(u * (b - a) * (c - a))
        right = b - np.sqrt((1 - u) * (b - a) * (b - c))
        return np.where(u < cut, left, right)


Distribution = Annotated[Lognormal | Triangular, Field(discriminator="dist")]

_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z), the standard normal CDF (math.erf elementwise; no SciPy at run time)."""
    return 0.5 * (1.0 + np.asarray(_erf(z / math.sqrt(2.0)), dtype=float))


class Disruption(BaseModel):
    """Each draw, every project of a country is unavailable with that country's probability
    (``countries``, ISO codes) or ``default``."""

    model_config = _strict()
    default: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    countries: dict[str, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(
        default_factory=dict)


class Perturbations(BaseModel):
    """Which figures a draw perturbs, and how (each optional)."""

    model_config = _strict()
    price: dict[Literal["tantalum", "niobium", "ree"], Distribution] = Field(
        default_factory=dict,
        description="per-mineral factor on each project's value (NPV + equity value)")
    correlation: Annotated[float, Field(gt=-0.5, lt=1, allow_inf_nan=False)] | list[
        list[float]] | None = Field(
        None, description="between the minerals' price factors: one coefficient for every "
        "pair, or a 3x3 matrix in the order tantalum, niobium, ree")
    capex_overrun: Distribution | None = Field(
        None, description="per-project factor on equity_value_musd")
    output: Distribution | None = Field(None, description="per-project factor on every output")
    disruption: Disruption | None = None
    @model_validator(mode="after")
    def _correlation(self) -> Perturbations:
        self.correlation_matrix()  # raises on a bad matrix
        return self

    def correlation_matrix(self) -> np.ndarray:
        k = len(MINERALS)
        c = self.correlation
        if c is None:
            return np.eye(k)
        if isinstance(c, float | int):
            m = np.full((k, k), float(c))
            np.fill_diagonal(m, 1.0)
        else:
            m = np.array(c, dtype=float)
            if m.shape != (k, k):
                raise ValueError(f"a correlation matrix must be {k}x{k} (tantalum, niobium, ree)")
            if not np.allclose(m, m.T) or not np.allclose(np.diag(m), 1.0):
                raise ValueError("a correlation matrix must be symmetric with 1 on the diagonal")
        if np.linalg.eigvalsh(m).min() <= 1e-12:
            raise ValueError("the correlation matrix is not positive definite")
        return m

    @property
    def any(self) -> bool:
        """Does it perturb anything at all?"""
        return bool(self.price or self.capex_overrun or self.output or self.disruption)
