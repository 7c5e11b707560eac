"""An independent check of a portfolio against every scenario limit, without the solver.

Used before a result is reported as optimal/feasible, and by the tests. It recomputes costs,
shares and outputs from the data with numpy (the table of limits, :mod:`optimizer.limits`,
says what each limit reads); nothing here reads the Pyomo model.
"""

from __future__ import annotations

import numpy as np

from .data import ProjectData
from .limits import CHECK_TOL, Breach, Holding, breaches, holding
from .schema import Scenario

REL_TOL = CHECK_TOL  # no limit may be broken by more than this, relative to max(1, |limit|)


def portfolio_arrays(data: ProjectData, stakes: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(chosen 0/1, stake) arrays in row order from a {project_id: stake} mapping."""
    h = holding(data, stakes)
    return h.x, h.s


def structural(data: ProjectData, h: Holding) -> list[str]:
    """The projects' own rules the portfolio breaks: stake ranges, exclusive groups and
    ``requires`` links."""
    f = data.frame
    out: list[str] = []
    smin, smax = data.col("min_stake"), data.col("max_stake")
    for i in np.flatnonzero(h.chosen):
        if not (smin[i] <= h.s[i] <= smax[i]):
            out.append(f"stake of {f['project_id'].iat[i]} = {h.s[i]:.10g} outside "
                       f"[{smin[i]:.10g}, {smax[i]:.10g}]")
    for g, rows in data.groups.items():
        if h.x[rows].sum() > 1:
            out.append(f"exclusive_group {g}: {int(h.x[rows].sum())} projects chosen")
    for p, q in data.requires:
        if h.x[p] > 0 and h.x[q] == 0:
            out.append(f"requires: {f['project_id'].iat[p]} chosen without "
                       f"{f['project_id'].iat[q]}")
    return out


def violations(data: ProjectData, scenario: Scenario, stakes: dict[str, float], *,
               rel_tol: float = REL_TOL) -> list[str]:
    """Every constraint of CONTRACT section 3 the portfolio breaks, in words (empty if none).

    A limit counts as broken when it is missed by more than ``rel_tol * max(1, |limit|)``
    (for shares and the average risk: of the limit times total spend). Stakes must lie inside
    ``[min_stake, max_stake]`` exactly."""
    h = holding(data, stakes)
    return structural(data, h) + [b.text for b in breaches(data, scenario, h, rel_tol=rel_tol)]


def broken_limits(data: ProjectData, scenario: Scenario, stakes: dict[str, float], *,
                  rel_tol: float = REL_TOL) -> list[Breach]:
    """The scenario limits the portfolio breaks, each with its level and by how much."""
    return breaches(data, scenario, holding(data, stakes), rel_tol=rel_tol)
