"""Human-readable rendering of a Result (the CLI's ``--format table``)."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .schema import MAGNET_PRODUCTS, PRODUCTS, WITH_PORTFOLIO, Result

HEADERS = {"tantalum": "Ta2O5 t/y", "niobium": "Nb2O5 t/y", "ree": "TREO t/y",
           "ndpr": "NdPr t/y", "dytb": "DyTb t/y"}


def field_label(field: str) -> str:
    """A scenario field path as people read it: 0-based list paths get their plan year."""
    if field.startswith("annual_budget_musd."):
        return f"{field} (plan year {int(field.split('.')[1]) + 1})"
    return field


def render_table(result: Result, width: int = 200) -> str:
    """The result as text: status line, portfolio table with totals, binding limits, and the
    diagnosis when infeasible."""
    console = Console(width=width, record=True, force_terminal=False, color_system=None,
                      file=io.StringIO())  # recorded, not printed
    parts: list = []
    head = f"Scenario {result.scenario_name!r}: {result.status.upper()}"
    if result.objective is not None:
        head += f"   objective {result.objective:,.2f}"
    if result.mip_gap is not None:
        head += f"   gap {result.mip_gap:.2e}"
    head += (f"   (HiGHS {result.solver.version}, build {result.solver.build_s:.2f} s, "
             f"solve {result.solver.solve_time_s:.2f} s)")
    parts.append(Text(head))
    if result.selected:
        t = Table(box=box.SIMPLE_HEAD, show_footer=True, pad_edge=False)
        tot = result.totals
        t.add_column("project", footer="TOTAL", no_wrap=True)
        t.add_column("country")
        t.add_column("mineral")
        t.add_column("lead")
        t.add_column("stake", justify="right")
        t.add_column("cost MUSD", justify="right", footer=f"{tot.cost_musd:,.1f}")
        t.add_column("KABIL", justify="right", footer=f"{tot.kabil_musd:,.1f}")
        t.add_column("US", justify="right", footer=f"{tot.us_musd:,.1f}")
        t.add_column("NPV MUSD", justify="right", footer=f"{tot.npv_musd:,.1f}")
        # the magnet rare earths only when the portfolio holds some (most tables have none)
        shown = [m for m in PRODUCTS if m not in MAGNET_PRODUCTS or tot.output_t.get(m)]
        for m in shown:
            t.add_column(HEADERS[m], justify="right", footer=f"{tot.output_t[m]:,.0f}")
        for p in result.selected:
            t.add_row(p.project_id, p.country, p.mineral, p.partner, f"{p.stake:.1%}",
                      f"{p.cost_musd:,.1f}", f"{p.kabil_musd:,.1f}", f"{p.us_musd:,.1f}",
                      f"{p.npv_musd:,.1f}", *(f"{p.output_t[m]:,.0f}" for m in shown))
        parts.append(t)
        spread = ", ".join(f"{k} {v / tot.cost_musd:.0%}" for k, v in tot.by_country_musd.items())
        lines = [f"{tot.n_projects} projects in {tot.n_countries} countries. "
                 f"Spend by country: {spread}"]
        if tot.avg_risk is not None:
            lines.append(f"Spend-weighted risk {tot.avg_risk:.2f}; China-processed share "
                         f"{tot.china_processing_share:.0%}; spend by plan year: "
                         + ", ".join(f"{v:,.1f}" for v in tot.annual_musd))
        parts.append(Text("\n".join(lines)))
    elif result.status in WITH_PORTFOLIO:
        parts.append(Text("The best portfolio under this scenario is to back nothing."))
    if result.binding:
        bt = Table(title="Binding limits (met exactly)", box=box.SIMPLE_HEAD, pad_edge=False,
                   title_justify="left")
        bt.add_column("scenario field")
        bt.add_column("limit", justify="right")
        bt.add_column("portfolio", justify="right")
        for b in result.binding:
            bt.add_row(field_label(b.field), f"{b.limit:,.4g}", f"{b.value:,.4g}")
        parts.append(bt)
    if result.uncertainty is not None:
        parts.append(Text(uncertainty_lines(result.uncertainty)))
    if result.diagnosis is not None:
        parts.append(Text("Why: " + result.diagnosis.message))
    if result.status == "no_solution":
        parts.append(Text("The solver stopped at its time limit before finding any portfolio; "
                          "raise solver.time_limit_s."))
    console.print(Group(*parts))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


def uncertainty_lines(u) -> str:
    """The result's uncertainty block in a few lines (CONTRACT section 8)."""
    def fig(f) -> str:
        return (f"mean {f.mean:,.1f}, P5 {f.p5:,.1f}, median {f.p50:,.1f}, CVaR {f.cvar:,.1f} "
                f"MUSD; within every spend cap in {f.within_caps_share:.0%} of draws, floors met "
                f"in {f.floors_met_share:.0%}")

    seed = "" if u.seed is None else f", seed {u.seed}"
    lines = [f"Under uncertainty ({u.draws:,} draws, {u.source}{seed}; CVaR at "
             f"{u.alpha:.0%}), on the draws it was chosen on: {fig(u)}"]
    o = u.out_of_sample
    if o is not None:
        lines.append(f"On {o.draws:,} fresh draws ({o.source}, seed {o.seed}): this portfolio "
                     f"{fig(o.portfolio)}")
        if o.face_value is not None:
            lines.append(f"  the face-value optimum there: {fig(o.face_value)}")
            lines.append(f"  value of the stochastic solution (difference of the means): "
                         f"{o.vss:+,.1f} MUSD")
    return "\n".join(lines)
