"""From a solution (stakes per project) to the result object's portfolio part: selected
projects, totals and the scenario limits that bind. Pure numpy/pandas on the data."""

from __future__ import annotations

import numpy as np

from . import limits
from .data import ProjectData
from .limits import Holding, holding
from .sample import sample_for
from .schema import PRODUCTS, Binding, Scenario, SelectedProject, Totals


def _r(v: float) -> float:
    """A plain float, -0.0 as 0.0. Not rounded: a reported stake, re-priced by the reader,
    must meet the limits exactly as the checked one did."""
    return float(v) + 0.0


def portfolio(data: ProjectData, stakes: dict[str, float]
              ) -> tuple[list[SelectedProject], Totals]:
    """Selected projects (in table order) and totals for a {project_id: stake} portfolio."""
    f = data.frame
    h = holding(data, stakes)
    x, s, cost = h.x, h.s, h.cost
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
        india_output_t={m: _r(india @ out[:, j]) for j, m in enumerate(PRODUCTS)},
        us_output_t={m: _r((1.0 - india) @ out[:, j]) for j, m in enumerate(PRODUCTS)},
        by_country_musd={k: _r(v) for k, v in by_country},
        avg_risk=_r((data.col("risk_score") * cost).sum() / total) if total > 0 else None,
        china_processing_share=_r(china / total) if total > 0 else None,
        annual_musd=[_r((data.spend[:, k] * cost).sum()) for k in range(data.n_years)],
        n_projects=len(rows), n_countries=len(used),
    )
    return selected, totals


def binding(data: ProjectData, scenario: Scenario, stakes: dict[str, float] | Holding
            ) -> list[Binding]:
    """Scenario limits the portfolio meets with equality (within 1e-6 relative), as the table
    of limits reads them."""
    h = stakes if isinstance(stakes, Holding) else holding(data, stakes)
    return [Binding(field=p, limit=v, value=q) for p, v, q in limits.binding(data, scenario, h)]


def objective_value(data: ProjectData, scenario: Scenario, totals: Totals,
                    stakes: dict[str, float] | None = None) -> float:
    """The objective recomputed from the portfolio (not read from the solver); a stochastic
    objective on the scenario's sample, from ``stakes``."""
    if scenario.objective == "npv":
        return totals.npv_musd
    if scenario.objective == "supply":
        w = scenario.weights()
        return float(sum(w[m] * totals.output_t[m] for m in PRODUCTS))
    if stakes is None:
        raise ValueError(f"objective {scenario.objective!r} needs the portfolio's stakes")
    fig = limits.measure(data, scenario, sample_for(data, scenario), stakes)
    lam = scenario.risk_aversion if scenario.objective == "mean_cvar" else 0.0
    return (1.0 - lam) * fig.mean + lam * fig.cvar


__all__ = ["portfolio", "binding", "objective_value"]
