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

import numpy as np

from .. import sample
from ..check import portfolio_arrays
from ..data import ProjectData
from ..sample import Draw
from ..schema import PRODUCTS, Scenario
from .spec import MonteCarloSpec


def make_draw(mc: MonteCarloSpec, data: ProjectData, index: int) -> Draw:
    """Draw ``index`` of a batch's Monte Carlo (the generator of ``optimizer.sample``)."""
    return sample.make_draw(mc, mc.seed, data, index)


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
    x, s = portfolio_arrays(data, stakes)
    if scenario.objective == "npv":
        return float((data.col("npv_musd") * s - data.col("deal_cost_musd") * x).sum())
    w = scenario.weights()
    out = data.outputs
    return float(sum(w[m] * (out[:, j] * s).sum() for j, m in enumerate(PRODUCTS)))
