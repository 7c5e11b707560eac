"""Monte-Carlo draws: seeded perturbations of the project data, and how a fixed portfolio
fares under them.

A draw is made from ``(seed, draw index)`` alone (``numpy.random.default_rng([seed, index])``),
so the same spec gives the same table whatever the worker count, chunking or order. Within a
draw the random numbers are always taken in the same order (price normals, capex overruns,
output factors, disruptions), whichever perturbations the spec switches on, so switching one
on does not change the others (common random numbers across variants of a study).

The rules (README "Monte Carlo"):
- price: a factor per mineral (correlated through a Gaussian copula) multiplies each
  project's *value* ``V = npv + equity_value`` (what a 100 % stake is worth before its price);
- capex overrun: a factor per project multiplies ``equity_value_musd`` (the price paid);
  so ``npv' = V * price - equity_value * overrun``;
- output: a factor per project multiplies every output column;
- disruption: each country is disrupted with its probability; its projects may not be
  chosen, and a portfolio holding them gets nothing from them (``V' = 0``, outputs 0) while
  still paying for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import ProjectData
from ..schema import MINERALS, PRODUCTS, Scenario
from .spec import MonteCarloSpec


@dataclass(frozen=True)
class Draw:
    """One draw's perturbation of a table (arrays in row order)."""

    index: int
    price: dict[str, float]  # per mineral
    overrun: np.ndarray  # per project, on equity_value_musd
    output: np.ndarray  # per project, on every output
    disrupted: list[str]  # countries

    def summary(self) -> dict[str, Any]:
        """What a result row records of its draw (the arrays in brief; the draw itself is
        re-made exactly by ``make_draw(spec, data, index)``)."""
        return {"index": self.index, "price": self.price,
                "capex_overrun": _brief(self.overrun), "output_factor": _brief(self.output),
                "disrupted_countries": self.disrupted}


def _brief(a: np.ndarray) -> dict[str, float]:
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max())}


def make_draw(mc: MonteCarloSpec, data: ProjectData, index: int) -> Draw:
    rng = np.random.default_rng([mc.seed, index])
    n = data.n
    z = np.linalg.cholesky(mc.correlation_matrix()) @ rng.standard_normal(len(MINERALS))
    price = {m: float(mc.price[m].from_normal(z[k])) if m in mc.price else 1.0
             for k, m in enumerate(MINERALS)}
    zc = rng.standard_normal(n)
    zo = rng.standard_normal(n)
    codes, names = data.country_codes
    u = rng.random(len(names))
    overrun = mc.capex_overrun.from_normal(zc) if mc.capex_overrun else np.ones(n)
    output = mc.output.from_normal(zo) if mc.output else np.ones(n)
    disrupted: list[str] = []
    if mc.disruption is not None:
        p = np.array([mc.disruption.countries.get(c, mc.disruption.default) for c in names])
        disrupted = [c for c, hit in zip(names, u < p, strict=True) if hit]
    return Draw(index=index, price=price, overrun=np.asarray(overrun, dtype=float),
                output=np.asarray(output, dtype=float), disrupted=disrupted)


def perturb(data: ProjectData, draw: Draw) -> ProjectData:
    """The table as this draw sees it (see the module docstring for the rules)."""
    equity = data.col("equity_value_musd")
    value = data.col("npv_musd") + equity
    minerals = data.frame["mineral"].to_numpy()
    factor = np.ones(data.n)
    for m, f in draw.price.items():
        factor[minerals == m] = f
    down = np.isin(data.frame["country"].to_numpy(), draw.disrupted)
    new_equity = equity * draw.overrun
    new_value = np.where(down, 0.0, value * factor)
    output = np.where(down, 0.0, draw.output)
    return data.perturbed(equity=new_equity, npv=new_value - new_equity, output_factor=output,
                          unavailable=down if down.any() else None)


def evaluate(data: ProjectData, scenario: Scenario, stakes: dict[str, float]) -> float:
    """A fixed portfolio's objective on (perturbed) data, without re-optimising."""
    from ..check import portfolio_arrays

    x, s = portfolio_arrays(data, stakes)
    if scenario.objective == "npv":
        return float((data.col("npv_musd") * s - data.col("deal_cost_musd") * x).sum())
    w = scenario.weights()
    out = data.outputs
    return float(sum(w[m] * (out[:, j] * s).sum() for j, m in enumerate(PRODUCTS)))
