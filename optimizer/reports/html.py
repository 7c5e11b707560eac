"""The HTML report of one run: one self-contained file (inline CSS, charts as inline SVG, no
script and no reference to anything outside the file), readable on a laptop and printable on
A4. Rendered by Jinja2 from ``templates/run.html.j2``; everything it says comes from
:func:`optimizer.reports.facts.facts`."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..data import ProjectData
from ..schema import Result, Scenario
from . import charts
from .analysis import Analysis
from .facts import (
    PARTNER_NAMES,
    PARTNER_SHORT,
    Facts,
    alternatives_matrix,
    country_name,
    facts,
    money,
    num,
    pct,
    product_name,
    product_short,
    product_unit,
    signed,
)

_ENV: Environment | None = None


def environment() -> Environment:
    """The Jinja2 environment of the report templates (autoescaped, strict)."""
    global _ENV
    if _ENV is None:
        env = Environment(loader=PackageLoader("optimizer.reports", "templates"),
                          autoescape=select_autoescape(["html", "j2"]),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(money=money, num=num, pct=pct, signed=signed,
                           product_name=product_name, product_unit=product_unit,
                           product_short=product_short,
                           partner_short=lambda p: PARTNER_SHORT.get(p, p),
                           country_name=country_name,
                           partner_name=lambda p: PARTNER_NAMES.get(p, p))
        _ENV = env
    return _ENV


def _groups(fx: Facts, key: str) -> tuple[list[str], list[float], list[float]]:
    kabil: dict[str, float] = defaultdict(float)
    us: dict[str, float] = defaultdict(float)
    for p in fx.portfolio:
        kabil[p[key]] += p["kabil_musd"]
        us[p[key]] += p["us_musd"]
    order = sorted(kabil, key=lambda k: -(kabil[k] + us[k]))
    return order, [kabil[k] for k in order], [us[k] for k in order]


def chart_svgs(fx: Facts) -> list[dict[str, str]]:
    """Every chart of the run's report: [{id, title, caption, svg}]."""
    if not fx.solved or not fx.portfolio:
        return []
    sc, t = fx.scenario, fx.result.totals
    out = []
    labels, k, u = _groups(fx, "country")
    cap = sc.max_country_share * t.cost_musd if sc.max_country_share is not None else None
    out.append(dict(id="chart-country", title="Spend by country",
                    caption="Each bar is split into what KABIL and the US partners pay."
                    + (f" Dashed line: the {pct(sc.max_country_share, 0)} country cap."
                       if cap is not None else ""),
                    svg=charts.stacked_spend("Spend by host country",
                                             [f"{country_name(c)} ({c})" for c in labels],
                                             k, u, cap, "country cap")))
    labels, k, u = _groups(fx, "mineral")
    out.append(dict(id="chart-mineral", title="Spend by mineral", caption="Primary mineral "
                    "of each project.", svg=charts.stacked_spend(
                        "Spend by primary mineral", [product_name(m) for m in labels], k, u)))
    labels, k, u = _groups(fx, "partner")
    out.append(dict(id="chart-lead", title="Spend by lead partner",
                    caption="Who leads the deal; colours show who pays.",
                    svg=charts.stacked_spend("Spend by lead partner",
                                             [PARTNER_NAMES.get(p, p) for p in labels], k, u)))
    out.append(dict(id="chart-offtake", title="Offtake against floors",
                    caption="Annual offtake entitlement of the stakes bought; dashed lines are "
                    "the scenario's security floors.",
                    svg=charts.offtake([product_name(m) for m in fx.products],
                                       [product_unit(m) for m in fx.products],
                                       [t.output_t[m] for m in fx.products],
                                       [sc.min_output_t.get(m) for m in fx.products])))
    if t.avg_risk is not None:
        out.append(dict(id="chart-risk", title="Risk against its cap",
                        caption="Diamond: the spend-weighted average risk; dots: the projects.",
                        svg=charts.risk(t.avg_risk, sc.max_avg_risk,
                                        [(p["project_id"], p["risk_score"], p["cost_musd"])
                                         for p in fx.portfolio])))
    caps = list(sc.annual_budget_musd or [])
    caps += [None] * (len(t.annual_musd) - len(caps))
    out.append(dict(id="chart-annual", title="Annual spend against caps",
                    caption="What the portfolio pays in each plan year; red dashes are the "
                    "annual caps.", svg=charts.annual(t.annual_musd, caps[:len(t.annual_musd)])))
    return out


def _budget_chart(fx: Facts) -> str | None:
    a = fx.analysis
    if a is None or a.budget is None or len(a.budget.curve) < 3:
        return None
    label = "NPV, US$ M" if fx.scenario.objective == "npv" else "weighted supply"
    return charts.budget_curve([p.budget_musd for p in a.budget.curve],
                               [p.objective for p in a.budget.curve],
                               fx.scenario.budget_musd, label)


def context(fx: Facts, generated: str | None = None) -> dict[str, Any]:
    r = fx.result
    return dict(
        fx=fx, r=r, sc=fx.scenario, t=r.totals, a=fx.analysis, products=fx.products,
        charts=chart_svgs(fx), budget_chart=_budget_chart(fx),
        binding=[row for row in fx.limits if row.binding], alt_matrix=alternatives_matrix(fx),
        generated=generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_sourced=int(fx.data.frame["source"].fillna("").astype(str).str.strip().ne("").sum()),
        objective_is_npv=fx.scenario.objective == "npv",
    )


def render_html(result: Result, scenario: Scenario, data: ProjectData,
                analysis: Analysis | None = None, *, generated: str | None = None) -> bytes:
    """The run's report as one self-contained HTML document (UTF-8 bytes). ``analysis``
    (from :func:`optimizer.reports.analysis.analyse`) adds the "why this portfolio" and
    alternatives sections; without it they say it was not computed."""
    fx = facts(result, scenario, data, analysis)
    html = environment().get_template("run.html.j2").render(**context(fx, generated))
    return html.encode("utf-8")


__all__ = ["chart_svgs", "environment", "render_html"]
