"""The HTML report of one run: one self-contained file (inline CSS, charts as inline SVG, no
script and no reference to anything outside the file), readable on a laptop and printable on
A4. Rendered by Jinja2 from ``templates/run.html.j2``; everything it says comes from
:func:`optimizer.reports.facts.facts`."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..data import ProjectData
from ..schema import Result, Scenario
from . import charts
from .analysis import Analysis
from .facts import (
    PARTNER_NAMES,
    PARTNER_SHORT,
    WORLD_OUTPUT_2024,
    WORLD_OUTPUT_SOURCE,
    Currency,
    Facts,
    alternatives_matrix,
    country_name,
    facts,
    glossary,
    money,
    num,
    objective_unit,
    pct,
    product_name,
    product_short,
    product_unit,
    question_parts,
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
                           partner_short=lambda p: PARTNER_SHORT.get(p, p), val=value_text,
                           country_name=country_name,
                           partner_name=lambda p: PARTNER_NAMES.get(p, p), run_brief=run_brief)
        _ENV = env
    return _ENV


def run_brief(run: Any, currency: Currency | None = None) -> dict[str, str]:
    """What the index page (``GET /``) says of a stored run (``run.scenario`` and
    ``run.result`` as stored JSON): its question, cost (US$ and INR crore), objective with its
    unit, and a short id that tells two runs of the same name apart."""
    sc = dict(getattr(run, "scenario", None) or {})
    res = dict(getattr(run, "result", None) or {})
    cur = currency or Currency.from_env()
    question = question_parts(sc.get("description"))[0]
    totals = res.get("totals") or {}
    solved = res.get("status") in ("optimal", "feasible")
    cost = totals.get("cost_musd") if solved else None
    obj = res.get("objective")
    try:
        unit = objective_unit(Scenario.model_validate(sc)) if sc else "US$ M"
    except ValueError:  # a run stored by an older version: say what is known
        unit = "US$ M" if sc.get("objective", "npv") == "npv" else "weighted t/y"
    is_npv = sc.get("objective", "npv") == "npv"
    return {
        "question": question,
        "cost": "" if cost is None else f"{money(cost)}",
        "cost_inr": "" if cost is None else cur.inr(cost),
        "objective": "" if obj is None else (money(obj) + " NPV" if is_npv
                                             else f"{obj:,.0f}"),
        "unit": "" if obj is None or is_npv else unit,
        "short_id": str(getattr(run, "run_id", ""))[:8],
    }


def value_text(v: Any, path: str = "") -> str:
    """A varied field's value for a table cell: numbers to 6 significant digits; a
    Monte-Carlo draw's factors to 2 decimals."""
    if v is None:
        return ""
    if path.startswith("draw.") and isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:,.6g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


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
    out.append(offtake_chart(fx))
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


def offtake_chart(fx: Facts) -> dict[str, str]:
    """Offtake against the scenario's floors where it sets them, else against world mine
    production (sourced); products with neither are named in the caption."""
    sc, t = fx.scenario, fx.result.totals
    floored, world, none = [], [], []
    for m in fx.products:
        unit = product_unit(m)
        floor = sc.min_output_t.get(m) or 0.0
        if floor > 0:
            floored.append((product_name(m), t.output_t[m], floor, unit))
        elif m in WORLD_OUTPUT_2024:
            world.append((product_name(m), t.output_t[m], WORLD_OUTPUT_2024[m], unit))
        else:
            none.append(f"{product_name(m)} {t.output_t[m]:,.0f} {unit}")
    caption = "Annual offtake entitlement of the stakes bought, as a share of " + (
        "the scenario's security floors (dashed: the floor)" if floored else "") + (
        " and, where there is no floor, " if floored and world else "") + (
        f"{WORLD_OUTPUT_SOURCE}" if world else "") + "."
    if none:
        caption += (" No floor and no sourced world figure for " + "; ".join(none)
                    + " (in the portfolio table).")
    return dict(id="chart-offtake", title="Offtake against floors and world production",
                caption=caption, svg=charts.offtake(floored, world,
                                                    "world mine production 2024"))


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
        cur=fx.currency, ounit=fx.objective_unit, today=fx.today.isoformat(),
        charts=chart_svgs(fx), budget_chart=_budget_chart(fx),
        binding=[row for row in fx.limits if row.binding], alt_matrix=alternatives_matrix(fx),
        generated=generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_sourced=int(fx.data.frame["source"].fillna("").astype(str).str.strip().ne("").sum()),
        objective_is_npv=fx.scenario.objective == "npv",
        uncertainty_chart=_uncertainty_chart(fx),
    )


def _uncertainty_chart(fx: Facts) -> str:
    u = fx.uncertainty
    if u is None:
        return ""
    counts, edges = np.histogram(u.npv, bins=min(30, max(5, u.draws // 20)))
    bins = [(float(edges[i]), float(edges[i + 1]), int(c)) for i, c in enumerate(counts)]
    return charts.histogram(bins, "portfolio NPV in a draw, US$ M",
                            f"NPV over {u.draws:,} draws", marker=u.face_npv,
                            marker_label="NPV at face value")


def render_html(result: Result, scenario: Scenario, data: ProjectData,
                analysis: Analysis | None = None, *, generated: str | None = None,
                currency: Currency | None = None, today: dt.date | None = None) -> bytes:
    """The run's report as one self-contained HTML document (UTF-8 bytes). ``analysis``
    (from :func:`optimizer.reports.analysis.analyse`) adds the "why this portfolio" and
    alternatives sections; without it they say it was not computed. ``currency``: the INR
    rate (default: ``OPTIMIZER_INR_PER_USD`` or the data's convention); ``today``: the date
    study ages are counted to."""
    fx = facts(result, scenario, data, analysis, currency=currency, today=today)
    html = environment().get_template("run.html.j2").render(**context(fx, generated))
    return html.encode("utf-8")




# --- a batch's report -------------------------------------------------------------------------

KIND_WORDS = {"scenarios": "what-if scenarios", "grid": "a grid of scenarios",
              "monte_carlo": "Monte-Carlo draws of the project data",
              "frontier": "points of an efficient frontier"}
SELECTION_CHART_MAX = 30  # projects in the selection chart
GRID_HEATMAPS = 6  # heatmaps drawn for a grid of more than two fields (every table is shown)


def batch_context(view, generated: str | None = None) -> dict[str, Any]:
    """Everything the batch template shows (charts drawn here)."""
    from .batch import BatchView, marginal_scale, path_words

    v: BatchView = view
    charts_out: list[dict[str, str]] = []
    ok = v.ok_rows
    fk = v.frontier_kind
    fv = v.frontier_view()
    if fk == "risk" and fv is not None and fv.points:
        pts = [r for r in fv.points if r.in_sample]
        charts_out.append(dict(
            id="chart-frontier", title="Mean against CVaR",
            caption="Each point is the portfolio that maximises (1 - lambda) x mean NPV + "
            "lambda x CVaR over the sample (the label is lambda, risk_aversion): moving right "
            "buys a better worst case (CVaR, the mean of the worst draws) at the price of the "
            "mean. In-sample figures: the draws each was chosen on.",
            svg=charts.frontier([r.in_sample["cvar"] for r in pts],
                                [r.in_sample["mean"] for r in pts],
                                [f"{r.varied[fv.path]:g}" for r in pts],
                                "CVaR of NPV over the sample, US$ M", "mean NPV, US$ M",
                                "The risk frontier")))
    elif fv is not None and fv.points:
        pts = fv.points
        xlabel = ("total budget, US$ M" if fk == "budget"
                  else "weighted supply floor (t/y x weight)")
        charts_out.append(dict(
            id="chart-frontier", title="The efficient frontier",
            caption="Each point is the best NPV at that " + (
                "budget" if fk == "budget" else "floor on weighted supply")
            + "; the label is its number of projects; orange (or the dotted line): the base "
            "scenario; shaded: stretches where the NPV does not move because another limit "
            "binds (see the table). The portfolios are in the table below.",
            svg=charts.frontier([r.varied[fv.path] for r in pts], [r.objective for r in pts],
                                [str(len(r.stakes)) for r in pts], xlabel, "NPV, US$ M",
                                "NPV against " + ("budget" if fk == "budget"
                                                  else "weighted supply"),
                                base=(fv.base_x, fv.base_y) if fv.base_x is not None else None,
                                flat=[(f.low, f.high) for f in fv.flats]),
        ))
    if v.kind == "monte_carlo" and ok:
        objs = [r.objective for r in ok if r.objective is not None]
        charts_out.append(dict(
            id="chart-objective", title="Objective across the draws",
            caption="The best NPV in each draw, re-optimised for that draw's data.",
            svg=charts.histogram(v.histogram(objs), "NPV, US$ M",
                                 "Best NPV per draw (re-optimised)",
                                 float(np.median(objs)) if objs else None, "median")))
        regrets = [r.base_regret for r in v.rows if r.base_regret is not None]
        if regrets:
            charts_out.append(dict(
                id="chart-regret", title="Regret of the base portfolio",
                caption="How much NPV the base case's portfolio, held fixed, loses against the "
                "best portfolio of each draw (all draws; a negative regret is a draw where it "
                "overspends a cap).",
                svg=charts.histogram(v.histogram(regrets), "regret, US$ M",
                                     "Regret of the base portfolio per draw", 0.0, "no regret")))
    grids = v.grid_tables()
    for k, g in enumerate(grids[:GRID_HEATMAPS]):
        fixed = "; ".join(f"{path_words(p)} = {value_text(x)}" for p, x in g.fixed.items())
        charts_out.append(dict(
            id=f"chart-grid-{k}", title="The objective over the grid" + (
                f" ({fixed})" if fixed else ""),
            caption=f"Rows: {path_words(g.row_field)}; columns: "
            + (path_words(g.col_field) if g.col_field else "none")
            + "; grey: no portfolio. The figures are in the table below.",
            svg=charts.heatmap(g.col_values if g.col_field else ["objective"], g.row_values,
                               g.values, path_words(g.col_field) if g.col_field else "",
                               path_words(g.row_field), "Best NPV by "
                               + path_words(g.row_field).split(" (")[0]
                               + (" and " + path_words(g.col_field).split(" (")[0]
                                  if g.col_field else ""), "NPV, US$ M"
                               if (v.spec.get("base") or {}).get("objective", "npv") == "npv"
                               else "objective")))
    sel = [s for s in v.selection if s["chosen"] > 0][:SELECTION_CHART_MAX]
    core_share = float((v.summary.get("robust_core") or {}).get("core_share", 0.9))
    if sel:
        charts_out.append(dict(
            id="chart-selection", title="Selection frequency",
            caption=f"Share of the {len(ok)} portfolios found that back each project "
            f"(the {len(sel)} most chosen); dashed: the robust-core threshold "
            f"{core_share:.0%}.",
            svg=charts.selection([s["project_id"] for s in sel], [s["share"] for s in sel],
                                 core_share)))
    shown = v.side_by_side()
    ids: list[str] = []
    order = {s["project_id"]: i for i, s in enumerate(v.selection)}
    for r in shown:
        ids += [p for p in r.stakes if p not in ids]
    ids.sort(key=lambda p: order.get(p, len(order)))
    frontier_rows = []
    if fk is not None:
        path = v.varied[0]
        frontier_rows = sorted(v.rows, key=lambda r: (r.varied.get(path) is None,
                                                      r.varied.get(path) or 0))
    objs = [r.objective for r in ok if r.objective is not None]
    n_within, regret_within = (v.regret_within() if v.kind == "monte_carlo" else (0, None))
    try:
        ounit = objective_unit(Scenario.model_validate(v.spec.get("base") or {}))
    except ValueError:  # a spec stored before a field changed: name the common case
        ounit = "US$ M"
    return dict(
        ounit=ounit,
        v=v, kind_words=KIND_WORDS.get(v.kind, v.kind), charts=charts_out, shown=shown,
        unit={"monte_carlo": "draw", "frontier": "point"}.get(v.kind, "scenario"),
        shown_ids=ids, frontier_rows=frontier_rows, core_share=core_share, fv=fv,
        objective_range=(min(objs), float(np.median(objs)), max(objs)) if objs else None,
        breaks=v.limit_breaks() if v.kind == "monte_carlo" else [],
        n_within=n_within, regret_within=regret_within, grids=grids,
        marginal_scale=marginal_scale, path_words=path_words,
        glossary=glossary(("Binding", "Regret", "Robust core", "TREO", "NdPr", "Dy+Tb",
                           "NPV", "Offtake")),
        spec_json=json.dumps(v.spec, indent=2, default=str),
        generated=generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_batch_html(view, *, generated: str | None = None) -> bytes:
    """A batch's report (from :func:`optimizer.reports.batch.load_batch`) as one
    self-contained HTML document."""
    html = environment().get_template("batch.html.j2").render(**batch_context(view, generated))
    return html.encode("utf-8")


__all__ = ["batch_context", "chart_svgs", "environment", "render_batch_html", "render_html"]
