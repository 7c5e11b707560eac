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

import numpy as np

from .data import ProjectData
from .highs_backend import solve_lp
from .limits import entries, linear_form
from .schema import PRODUCTS, Scenario


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
    # every cap, floor and share of the table is linear in the chosen stakes once the chosen
    # set is fixed (counts and filters are then constants, met by the set itself)
    for e in entries(sc, data):
        form = linear_form(e, data, sc) if e.limit.kind != "filter" else None
        if form is None:
            continue
        kind, w = form
        w = w[rows]
        if e.limit.kind == "share" and not w.any():
            continue  # no chosen project counts towards it: -value x T <= 0 holds
        if kind == "cost":  # sum_p w_p (eq_p s_p + deal_p) <= cap, a share: (w_p - v) and 0
            if e.limit.kind == "share":
                w, cap = w - e.value, 0.0
            else:
                cap = e.value
            A.append(w * eq)
            b.append(cap - float(w @ deal))
        else:  # sum_p w_p s_p >= floor
            A.append(-w)
            b.append(-float(e.value))
    if sc.objective == "npv":
        gain = data.col("npv_musd")[rows]
    else:
        weights = sc.weights()
        gain = data.outputs[rows] @ np.array([weights[m] for m in PRODUCTS])

    lo, hi = data.col("min_stake")[rows], data.col("max_stake")[rows]
    s = solve_lp(np.asarray(gain, dtype=float), np.vstack(A) if A else np.zeros((0, k)),
                 np.asarray(b, dtype=float), lo, hi, maximize=True, tol=tol)
    return None if s is None else np.clip(s, lo, hi)
