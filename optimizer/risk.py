"""A fixed portfolio measured on a sample of draws (CONTRACT section 8), without the solver.

For draw ``s``: the portfolio's NPV ``R_s = sum_p a_sp s_p - deal_p x_p`` (``a_sp`` the value
coefficients of :meth:`Sample.value_coefficients`), what it pays ``C_s`` (each side its
``india_share``, each plan year its ``spend_share``), whether every spend cap of the scenario
holds at those prices, whether every ``min_output_t`` floor holds at the drawn outputs. Used
for the result's in-sample figures, for judging a portfolio on fresh draws, by the independent
check of the sampled limits (``optimizer.limits``, which reads the scenario's caps and floors
off the table of limits and calls :func:`outcomes`) and by the reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .schema import LIMITS, PRODUCTS, RiskFigures

if TYPE_CHECKING:
    from .data import ProjectData
    from .limits import Holding
    from .sample import Sample

CHECK_TOL = 1e-9  # as optimizer.limits: a cap or floor missed by more than this is broken


@dataclass(frozen=True)
class Outcomes:
    """Per draw: the NPV, whether every spend cap holds, whether every floor holds; and by how
    much each cap is overspent (0 where it holds), per cap path."""

    npv: np.ndarray
    within_caps: np.ndarray
    floors_met: np.ndarray
    overspend: dict[str, np.ndarray]


def outcomes(data: ProjectData, sample: Sample, h: Holding,
             caps: Sequence[tuple[str, float, np.ndarray | None]],
             floors: Mapping[str, float]) -> Outcomes:
    """The portfolio ``h`` in every draw of ``sample``. ``caps``: each spend cap as (path,
    value, weight per project or None for the whole spend); ``floors``: output floors per
    product (``optimizer.limits.outcomes_on`` reads both off a scenario)."""
    a = sample.value_coefficients(data)
    npv = a @ h.s - float(data.col("deal_cost_musd") @ h.x)
    cost = sample.cost_coefficients(data) * h.s + data.col("deal_cost_musd") * h.x  # (N, n)
    within = np.ones(sample.n_draws, dtype=bool)
    overspend: dict[str, np.ndarray] = {}
    for path, value, w in caps:
        spent = cost.sum(axis=1) if w is None else cost @ w
        over = spent - value
        broken = over > CHECK_TOL * max(1.0, abs(value))
        within &= ~broken
        overspend[path] = np.where(broken, over, 0.0)
    met = np.ones(sample.n_draws, dtype=bool)
    drawn = sample.available * sample.output * h.s  # (N, n) stake times drawn output factor
    for m, floor in floors.items():
        got = drawn @ data.outputs[:, PRODUCTS.index(m)]
        met &= got >= floor - CHECK_TOL * max(1.0, abs(floor))
    return Outcomes(npv=npv, within_caps=within, floors_met=met, overspend=overspend)


def cvar(values: np.ndarray, alpha: float) -> float:
    """CVaR_alpha of equally likely ``values`` (Rockafellar-Uryasev): ``max_eta eta -
    1/(alpha N) sum_s max(0, eta - R_s)``, the mean of the worst ``alpha`` share (a fraction
    of a draw counted in part). The maximum is at a value of the sample (the alpha-quantile)."""
    r = np.sort(np.asarray(values, dtype=float))
    n = len(r)
    k = alpha * n  # draws in the tail
    whole = math.floor(k + 1e-12)
    tail = r[:whole].sum()
    if whole < n and k - whole > 1e-12:
        tail += (k - whole) * r[whole]
    return float(tail / k)


def figures(out: Outcomes, alpha: float) -> RiskFigures:
    npv = out.npv
    p5, p50, p95 = np.quantile(npv, [0.05, 0.5, 0.95])
    return RiskFigures(mean=float(npv.mean()), cvar=cvar(npv, alpha), p5=float(p5),
                       p50=float(p50), p95=float(p95),
                       within_caps_share=float(out.within_caps.mean()),
                       floors_met_share=float(out.floors_met.mean()))


# the sampled limits' rows of the table, for a quick membership test
SAMPLED_FIELDS = tuple(lim.field for lim in LIMITS if lim.sampled)

__all__ = ["Outcomes", "SAMPLED_FIELDS", "cvar", "figures", "outcomes"]
