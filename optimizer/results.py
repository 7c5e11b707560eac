"""From a solution (stakes per project) to the result object's portfolio part: selected
projects, totals and the scenario limits that bind. Pure numpy/pandas on the data."""

from __future__ import annotations

import numpy as np

from .check import portfolio_arrays
from .data import ProjectData
from .schema import PRODUCTS, Binding, Scenario, SelectedProject, Totals

BIND_TOL = 1e-6


def _r(v: float) -> float:
    """A plain float, -0.0 as 0.0. Not rounded: a reported stake, re-priced by the reader,
    must meet the limits exactly as the checked one did."""
    return float(v) + 0.0


def portfolio(data: ProjectData, stakes: dict[str, float]
              ) -> tuple[list[SelectedProject], Totals]:
    """Selected projects (in table order) and totals for a {project_id: stake} portfolio."""
    f = data.frame
    x, s = portfolio_arrays(data, stakes)
    cost = data.col("equity_value_musd") * s + data.col("deal_cost_musd") * x
    india = data.col("india_share")
    value = data.col("npv_musd") * s - data.col("deal_cost_musd") * x
    out = data.outputs * s[:, None]
    rows = np.flatnonzero(x > 0)
    text = {c: f[c].to_numpy()[rows].tolist()
            for c in ("project_id", "name", "country", "mineral", "partner")}
    selected = [
        SelectedProject(
            project_id=text["project_id"][k], name=text["name"][k],
            country=text["country"][k], mineral=text["mineral"][k],
            partner=text["partner"][k], stake=_r(s[i]), cost_musd=_r(cost[i]),
            kabil_musd=_r(india[i] * cost[i]), us_musd=_r((1 - india[i]) * cost[i]),
            npv_musd=_r(value[i]),
            output_t={m: _r(out[i, j]) for j, m in enumerate(PRODUCTS)})
        for k, i in enumerate(rows)
    ]
    total = float(cost.sum())
    codes, names = data.country_codes
    by = np.bincount(codes, weights=cost, minlength=len(names))
    used = np.flatnonzero(np.bincount(codes[rows], minlength=len(names)))
    by_country = sorted(((names[k], float(by[k])) for k in used), key=lambda kv: -kv[1])
    china = float(cost[data.china_mask].sum())
    totals = Totals(
        cost_musd=_r(total), kabil_musd=_r((india * cost).sum()),
        us_musd=_r(((1 - india) * cost).sum()), npv_musd=_r(value.sum()),
        output_t={m: _r(out[:, j].sum()) for j, m in enumerate(PRODUCTS)},
        by_country_musd={k: _r(v) for k, v in by_country},
        avg_risk=_r((data.col("risk_score") * cost).sum() / total) if total > 0 else None,
        china_processing_share=_r(china / total) if total > 0 else None,
        annual_musd=[_r((data.spend[:, k] * cost).sum()) for k in range(data.n_years)],
        n_projects=len(rows), n_countries=len(used),
    )
    return selected, totals


def binding(scenario: Scenario, totals: Totals) -> list[Binding]:
    """Scenario limits the portfolio meets with equality (within 1e-6 relative)."""
    found: list[Binding] = []

    def check(field: str, limit: float | None, value: float | None) -> None:
        if limit is None or value is None:
            return
        if abs(value - limit) <= BIND_TOL * max(1.0, abs(limit)):
            found.append(Binding(field=field, limit=float(limit), value=float(value)))

    check("budget_musd", scenario.budget_musd, totals.cost_musd)
    check("kabil_budget_musd", scenario.kabil_budget_musd, totals.kabil_musd)
    check("us_budget_musd", scenario.us_budget_musd, totals.us_musd)
    for k, cap in enumerate(scenario.annual_budget_musd or []):
        if k < len(totals.annual_musd):
            check(f"annual_budget_musd.{k}", cap, totals.annual_musd[k])
    if scenario.max_country_share is not None and totals.cost_musd > 0:
        for country, v in totals.by_country_musd.items():
            check(f"max_country_share.{country}", scenario.max_country_share,
                  v / totals.cost_musd)
    check("max_avg_risk", scenario.max_avg_risk, totals.avg_risk)
    check("max_china_processing_share", scenario.max_china_processing_share,
          totals.china_processing_share)
    check("min_countries", scenario.min_countries, totals.n_countries)
    check("max_projects", scenario.max_projects, totals.n_projects)
    for m, floor in scenario.min_output_t.items():
        check(f"min_output_t.{m}", floor, totals.output_t[m])
    if scenario.min_weighted_supply is not None:
        w = scenario.weights()
        check("min_weighted_supply", scenario.min_weighted_supply,
              sum(w[m] * totals.output_t[m] for m in w))
    return found


def objective_value(data: ProjectData, scenario: Scenario, totals: Totals) -> float:
    """The objective recomputed from the portfolio (not read from the solver)."""
    if scenario.objective == "npv":
        return totals.npv_musd
    w = scenario.weights()
    return float(sum(w[m] * totals.output_t[m] for m in PRODUCTS))


__all__ = ["portfolio", "binding", "objective_value"]
