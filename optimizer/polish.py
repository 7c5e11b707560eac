"""The stakes of a fixed chosen set, re-solved exactly: a small LP over those projects only.

Used by certification (``Optimizer.certify``) when a portfolio read off HiGHS breaks a limit
by more than 1e-9 once priced exactly: with the chosen set fixed, every limit of CONTRACT
section 3 is a linear row in the chosen stakes, and the best stakes are a simplex vertex,
which meets its active rows to rounding error. The LP has one column per chosen project and
one row per limit, so it solves in milliseconds however large the table (re-solving the full
model with ``choose`` fixed took seconds at 10,000 projects). Written from the data, like
``check.py``, not from the Pyomo model: it doubles as a second formulation of the stake part.
"""

from __future__ import annotations

import highspy
import numpy as np

from .data import ProjectData
from .highs_backend import highs_threads
from .schema import OUTPUT_COLUMNS, PRODUCTS, Scenario

INF = highspy.kHighsInf


def polish_stakes(data: ProjectData, sc: Scenario, rows: np.ndarray,
                  tol: float = 1e-10) -> np.ndarray | None:
    """Best stakes for the projects at positions ``rows`` (all chosen), or None if no stakes
    meet every limit. Stakes are returned clipped into their ranges."""
    rows = np.asarray(rows, dtype=int)
    k = len(rows)
    if k == 0:
        return np.zeros(0)
    eq = data.col("equity_value_musd")[rows]
    deal = data.col("deal_cost_musd")[rows]
    A: list[np.ndarray] = []
    b: list[float] = []

    def cost_cap(w: np.ndarray, cap: float) -> None:
        """sum_p w_p (eq_p s_p + deal_p) <= cap."""
        A.append(w * eq)
        b.append(cap - float(w @ deal))

    one = np.ones(k)
    india = data.col("india_share")[rows]
    cost_cap(one, sc.budget_musd)
    if sc.kabil_budget_musd is not None:
        cost_cap(india, sc.kabil_budget_musd)
    if sc.us_budget_musd is not None:
        cost_cap(1.0 - india, sc.us_budget_musd)
    for y, cap in enumerate(sc.annual_budget_musd or []):
        if cap is not None and y < data.n_years:
            cost_cap(data.spend[rows, y], cap)
    if sc.max_country_share is not None:
        codes = data.country_codes[0][rows]
        for c in np.unique(codes):
            cost_cap((codes == c) - sc.max_country_share, 0.0)
    if sc.max_avg_risk is not None:
        cost_cap(data.col("risk_score")[rows] - sc.max_avg_risk, 0.0)
    if sc.max_china_processing_share is not None:
        cost_cap(data.china_mask[rows] - sc.max_china_processing_share, 0.0)
    out = {m: data.col(OUTPUT_COLUMNS[m])[rows] for m in PRODUCTS}
    for m, floor in sc.min_output_t.items():
        A.append(-out[m])
        b.append(-float(floor))
    w = sc.weights()
    supply = sum(w[m] * out[m] for m in PRODUCTS)
    if sc.min_weighted_supply is not None:
        A.append(-supply)
        b.append(-float(sc.min_weighted_supply))
    gain = data.col("npv_musd")[rows] if sc.objective == "npv" else supply

    lp = highspy.HighsLp()
    lp.num_col_ = k
    lp.num_row_ = len(A)
    lp.col_cost_ = np.asarray(gain, dtype=float)
    lp.col_lower_ = data.col("min_stake")[rows]
    lp.col_upper_ = data.col("max_stake")[rows]
    lp.row_lower_ = np.full(len(A), -INF)
    lp.row_upper_ = np.asarray(b, dtype=float)
    lp.sense_ = highspy.ObjSense.kMaximize
    mat = np.vstack(A) if A else np.zeros((0, k))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    nz = mat != 0.0
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int32)
    lp.a_matrix_.index_ = np.nonzero(nz)[1].astype(np.int32)
    lp.a_matrix_.value_ = mat[nz]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    threads = highs_threads()  # HiGHS's scheduler is per process: keep its thread count
    if threads:
        h.setOptionValue("threads", threads)
    h.setOptionValue("primal_feasibility_tolerance", tol)
    h.setOptionValue("dual_feasibility_tolerance", tol)
    h.setOptionValue("solver", "simplex")
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    s = np.asarray(h.getSolution().col_value, dtype=float)
    return np.clip(s, lp.col_lower_, lp.col_upper_)
