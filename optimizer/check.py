"""An independent check of a portfolio against every scenario limit, without the solver.

Used before a result is reported as optimal/feasible, and by the tests. It recomputes costs,
shares and outputs from the data with numpy; nothing here reads the Pyomo model.
"""

from __future__ import annotations

import numpy as np

from .data import ProjectData
from .schema import OUTPUT_COLUMNS, Scenario

REL_TOL = 1e-9  # no limit may be broken by more than this, relative to max(1, |limit|)


def portfolio_arrays(data: ProjectData, stakes: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(chosen 0/1, stake) arrays in row order from a {project_id: stake} mapping."""
    pos = data.positions
    x = np.zeros(data.n)
    s = np.zeros(data.n)
    for pid, st in stakes.items():
        x[pos[pid]] = 1.0
        s[pos[pid]] = st
    return x, s


def violations(data: ProjectData, scenario: Scenario, stakes: dict[str, float], *,
               rel_tol: float = REL_TOL) -> list[str]:
    """Every constraint of CONTRACT section 3 the portfolio breaks, in words (empty if none).

    A limit counts as broken when it is exceeded by more than ``rel_tol * max(1, |limit|)``
    (for shares and the average risk: of the limit times total spend). Stakes must lie inside
    ``[min_stake, max_stake]`` exactly."""
    f = data.frame
    x, s = portfolio_arrays(data, stakes)
    out: list[str] = []

    def slack(limit: float) -> float:
        return rel_tol * max(1.0, abs(limit))

    def over(value: float, limit: float, what: str) -> None:
        if value > limit + slack(limit):
            out.append(f"{what}: {value:.10g} exceeds {limit:.10g}")

    smin, smax = data.col("min_stake"), data.col("max_stake")
    for i in np.flatnonzero(x > 0):
        if not (smin[i] <= s[i] <= smax[i]):
            out.append(f"stake of {f['project_id'].iat[i]} = {s[i]:.10g} outside "
                       f"[{smin[i]:.10g}, {smax[i]:.10g}]")
    cost = data.col("equity_value_musd") * s + data.col("deal_cost_musd") * x
    total = float(cost.sum())
    india = data.col("india_share")
    over(total, scenario.budget_musd, "budget_musd")
    if scenario.kabil_budget_musd is not None:
        over(float((india * cost).sum()), scenario.kabil_budget_musd, "kabil_budget_musd")
    if scenario.us_budget_musd is not None:
        over(float(((1 - india) * cost).sum()), scenario.us_budget_musd, "us_budget_musd")
    for k, cap in enumerate(scenario.annual_budget_musd or []):
        if cap is not None:
            spent = float((data.spend[:, k] * cost).sum()) if k < data.n_years else 0.0
            over(spent, cap, f"annual_budget_musd.{k} (plan year {k + 1})")
    if scenario.max_country_share is not None:
        cap = scenario.max_country_share * total
        codes, names = data.country_codes
        by = np.bincount(codes, weights=cost, minlength=len(names))
        for k in np.flatnonzero(by > cap + slack(cap)):
            out.append(f"max_country_share: {names[k]} takes {by[k] / total:.10g} of spend")
    if scenario.max_avg_risk is not None:
        cap = scenario.max_avg_risk * total
        weighted = float((data.col("risk_score") * cost).sum())
        if weighted > cap + slack(cap):
            out.append(f"max_avg_risk: average risk {weighted / total:.10g} exceeds "
                       f"{scenario.max_avg_risk}")
    if scenario.max_china_processing_share is not None:
        cap = scenario.max_china_processing_share * total
        china = float(cost[data.china_mask].sum())
        if china > cap + slack(cap):
            out.append(f"max_china_processing_share: {china / total:.10g} of spend")
    chosen = x > 0
    if scenario.min_countries is not None:
        n_c = len(np.unique(data.country_codes[0][chosen]))
        if n_c < scenario.min_countries:
            out.append(f"min_countries: {n_c} < {scenario.min_countries}")
    if scenario.max_projects is not None and chosen.sum() > scenario.max_projects:
        out.append(f"max_projects: {int(chosen.sum())} > {scenario.max_projects}")
    for m, floor in scenario.min_output_t.items():
        got = float((data.col(OUTPUT_COLUMNS[m]) * s).sum())
        if got < floor - slack(floor):
            out.append(f"min_output_t.{m}: {got:.10g} < {floor:.10g}")
    if scenario.min_weighted_supply is not None:
        w = scenario.weights()
        got = float(sum(w[m] * (data.col(OUTPUT_COLUMNS[m]) * s).sum() for m in w))
        floor = scenario.min_weighted_supply
        if got < floor - slack(floor):
            out.append(f"min_weighted_supply: {got:.10g} < {floor:.10g}")
    for g, rows in data.groups.items():
        if x[rows].sum() > 1:
            out.append(f"exclusive_group {g}: {int(x[rows].sum())} projects chosen")
    for p, q in data.requires:
        if x[p] > 0 and x[q] == 0:
            out.append(f"requires: {f['project_id'].iat[p]} chosen without "
                       f"{f['project_id'].iat[q]}")
    ids = f["project_id"]
    excluded = set(scenario.exclude_projects) | set(
        ids[f["country"].isin(scenario.exclude_countries)])
    for pid in stakes:
        if pid in excluded:
            out.append(f"excluded project {pid} chosen")
    if scenario.partners is not None:
        for i in np.flatnonzero(chosen & ~f["partner"].isin(scenario.partners).to_numpy()):
            out.append(f"partners: {ids.iat[i]} is led by {f['partner'].iat[i]}")
    if scenario.max_chinese_ownership is not None:
        own = data.col("chinese_ownership")
        for i in np.flatnonzero(chosen & (own > scenario.max_chinese_ownership)):
            out.append(f"max_chinese_ownership: {ids.iat[i]} is {own[i]:.4g} Chinese-owned")
    for pid in scenario.include_projects:
        if pid not in stakes:
            out.append(f"include_projects: {pid} not chosen")
    return out
