"""The Excel report of one run (xlsxwriter): real numbers in cells with number formats,
frozen header rows, a filter on every table, and native Excel charts (editable, not images).

Sheets: Summary, Portfolio, Limits, Doubts, Sensitivity, Alternatives, Data, Glossary,
Provenance. Everything
it says comes from :func:`optimizer.reports.facts.facts`, like the HTML report.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import xlsxwriter
from xlsxwriter.utility import xl_range
from xlsxwriter.worksheet import Worksheet

from ..data import ProjectData
from ..schema import Result, Scenario
from .analysis import Analysis
from .facts import (
    PARTNER_NAMES,
    PARTNER_SHORT,
    Currency,
    Facts,
    alternatives_matrix,
    country_name,
    facts,
    product_name,
    product_short,
    product_unit,
)

MUSD = "#,##0.0"
PCT = "0.0%"
PCT2 = "0.00%"
TONNES = "#,##0"
NUM2 = "#,##0.00"
NUM3 = "#,##0.000"
INT = "0"
STYLE = "Table Style Light 9"


class _Book:
    """A workbook with the report's cell formats and a table helper."""

    def __init__(self, buf: io.BytesIO) -> None:
        # text from users (scenario names, descriptions, project names) stays text: never a
        # formula ("=HYPERLINK(...)") or a link
        self.wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False,
                                            "strings_to_urls": False,
                                            "strings_to_formulas": False})
        add = self.wb.add_format
        self.fmt = {k: add({"num_format": v}) for k, v in {
            "musd": MUSD, "pct": PCT, "pct2": PCT2, "t": TONNES, "num2": NUM2, "num3": NUM3,
            "int": INT, "text": "@"}.items()}
        for k, v in list(self.fmt.items()):
            self.fmt[f"bold_{k}"] = add({"num_format": v.num_format, "bold": True,
                                         "top": 2})
        self.fmt["bold"] = add({"bold": True, "top": 2})
        self.fmt["wrap"] = add({"text_wrap": True, "valign": "top"})
        self.fmt["title"] = add({"bold": True, "font_size": 14, "font_color": "#1f4e9a"})
        self.fmt["h"] = add({"bold": True, "font_size": 11, "font_color": "#1f4e9a"})
        self.fmt["lead"] = add({"font_size": 12, "text_wrap": True, "valign": "top"})
        self.fmt["label"] = add({"bold": True, "valign": "top"})
        self.fmt["note"] = add({"italic": True, "font_color": "#5b6773", "text_wrap": True,
                                "valign": "top"})
        self.n_tables = 0

    def close(self) -> None:
        """Every sheet printable (A4 landscape, one page wide, the header row on each page),
        then the workbook written."""
        for ws in self.wb.worksheets():
            ws.set_paper(9)
            ws.set_landscape()
            ws.fit_to_pages(1, 0)
            ws.repeat_rows(0)
        self.wb.close()

    def table(self, ws: Worksheet, row: int, col: int, columns: Sequence[tuple[str, str | None]],
              rows: Sequence[Sequence[Any]], name: str,
              totals: dict[int, float] | None = None, total_label: str = "Total") -> int:
        """An Excel table (header with filter buttons) at (row, col); ``columns`` are
        (header, format key). ``totals`` {column: value} adds a bold row under the table with
        ``=SUM(...)`` formulas whose cached values are the given totals (plain cell ranges,
        which every spreadsheet program evaluates). Returns the first row after it all."""
        self.n_tables += 1
        data = [list(r) for r in rows] or [[None] * len(columns)]
        cols = []
        for head, fk in columns:
            c: dict[str, Any] = {"header": head}
            if fk:
                c["format"] = self.fmt[fk]
            cols.append(c)
        last = row + len(data)
        ws.add_table(row, col, last, col + len(columns) - 1, {
            "data": data, "columns": cols, "name": name, "style": STYLE, "autofilter": True})
        if totals is None:
            return last + 1
        ws.write_string(last + 1, col, total_label, self.fmt["bold"])
        for j, value in totals.items():
            fk = columns[j][1] or "num3"
            rng = xl_range(row + 1, col + j, last, col + j)
            ws.write_formula(last + 1, col + j, f"=SUM({rng})", self.fmt[f"bold_{fk}"], value)
        return last + 2


def _widths(ws: Worksheet, widths: Sequence[float]) -> None:
    for j, w in enumerate(widths):
        ws.set_column(j, j, w)


def _chart(book: _Book, kind: str, title: str, subtype: str | None = None,
           size: tuple[int, int] = (560, 300)):
    opts = {"type": kind}
    if subtype:
        opts["subtype"] = subtype
    ch = book.wb.add_chart(opts)
    ch.set_title({"name": title, "name_font": {"size": 11}})
    ch.set_size({"width": size[0], "height": size[1]})
    ch.set_legend({"position": "bottom"})
    return ch


def _by(fx: Facts, key: str) -> list[tuple[str, float, float]]:
    k: dict[str, float] = defaultdict(float)
    u: dict[str, float] = defaultdict(float)
    for p in fx.portfolio:
        k[p[key]] += p["kabil_musd"]
        u[p[key]] += p["us_musd"]
    return sorted(((g, k[g], u[g]) for g in k), key=lambda x: -(x[1] + x[2]))


def _summary(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Summary")
    f = book.fmt
    r, sc, t = fx.result, fx.scenario, fx.result.totals
    _widths(ws, [30, 18, 14, 16, 4, 20, 14, 14, 14])
    ws.write(0, 0, f"Scenario \u201c{sc.name}\u201d: co-investment report", f["title"])
    ws.merge_range(1, 0, 1, 8, fx.answer, f["lead"])
    ws.set_row(1, 66)
    ws.write(2, 0, "Status", f["label"])
    ws.write(2, 1, fx.status_text)
    cur = fx.currency
    rows: list[tuple[str, Any, str]] = [
        ("Total cost (US$ M)", t.cost_musd if fx.solved else None, "musd"),
        ("KABIL pays (US$ M)", t.kabil_musd if fx.solved else None, "musd"),
        ("US partners pay (US$ M)", t.us_musd if fx.solved else None, "musd"),
        ("Portfolio NPV (US$ M)", t.npv_musd if fx.solved else None, "musd"),
        ("Total cost (INR crore)", cur.crore(t.cost_musd) if fx.solved else None, "musd"),
        ("KABIL pays (INR crore)", cur.crore(t.kabil_musd) if fx.solved else None, "musd"),
        ("US partners pay (INR crore)", cur.crore(t.us_musd) if fx.solved else None, "musd"),
        ("Portfolio NPV (INR crore)", cur.crore(t.npv_musd) if fx.solved else None, "musd"),
        ("Objective", r.objective, "num3"),
        ("Objective's unit", fx.objective_unit, "text"),
        ("Best bound", r.best_bound, "num3"),
        ("Gap", r.mip_gap, "pct2"),
        ("Projects", t.n_projects if fx.solved else None, "int"),
        ("Countries", t.n_countries if fx.solved else None, "int"),
        ("Spend-weighted risk", t.avg_risk if fx.solved else None, "num2"),
    ]
    for m in fx.products:
        rows.append((f"Offtake {product_name(m)} ({product_unit(m)})",
                     t.output_t.get(m) if fx.solved else None, "t"))
    nxt = book.table(ws, 4, 0, [("Key figure", None), ("Value", None)],
                     [(k, v) for k, v, _ in rows], "KeyFigures")
    for i, (_, v, fk) in enumerate(rows):  # per-row formats in the value column
        if isinstance(v, (int, float)):
            ws.write_number(5 + i, 1, v, f[fk])
    ws.freeze_panes(5, 0)
    ws.merge_range(nxt, 0, nxt, 8, cur.statement, f["note"])
    ws.set_row(nxt, 30)
    row = nxt + 1
    if fx.question_text:
        row += 1
        ws.write(row, 0, "The question", f["label"])
        ws.merge_range(row, 1, row, 8, fx.question_text, f["wrap"])
        ws.set_row(row, 15 * max(1, len(fx.question_text) // 90 + 1))
        row += 1
    if fx.backstory:
        ws.write(row, 0, "Background", f["label"])
        ws.merge_range(row, 1, row, 8, fx.backstory, f["wrap"])
        ws.set_row(row, 15 * max(1, len(fx.backstory) // 90 + 1))
        row += 1
    ws.write(row, 0, "The question in full", f["h"])
    row += 1
    for label, words in fx.question:
        ws.write(row, 0, label, f["label"])
        ws.merge_range(row, 1, row, 8, words, f["wrap"])
        ws.set_row(row, 15 * max(1, len(words) // 90 + 1))
        row += 1
    if fx.diagnosis or fx.fixes:
        row += 1
        ws.write(row, 0, "Why no portfolio is possible", f["h"])
        row += 1
        for line in fx.diagnosis:
            ws.write(row, 0, "Conflict", f["label"])
            ws.merge_range(row, 1, row, 8, line, f["wrap"])
            row += 1
        for line in fx.fixes:
            ws.write(row, 0, "Fix (any one alone)", f["label"])
            ws.merge_range(row, 1, row, 8, line, f["wrap"])
            row += 1
    if not (fx.solved and fx.portfolio):
        return
    # spend groupings below, each with its chart to the right
    col = 0
    trow = row + 2
    for key, title, name, label in (("country", "Spend by country", "ByCountry", country_name),
                                    ("mineral", "Spend by mineral", "ByMineral", product_name),
                                    ("partner", "Spend by lead partner", "ByLead",
                                     lambda p: PARTNER_NAMES.get(p, p))):
        groups = _by(fx, key)
        head = {"country": "Country", "mineral": "Mineral", "partner": "Lead partner"}[key]
        end = book.table(ws, trow, col, [(head, None), ("KABIL (US$ M)", "musd"),
                                         ("US partners (US$ M)", "musd"),
                                         ("Total (US$ M)", "musd")],
                         [(label(g), a, b, a + b) for g, a, b in groups], name)
        ch = _chart(book, "bar", title, "stacked", (520, 60 + 26 * len(groups) + 80))
        for j, who, colour in ((1, "KABIL", "#e07b00"), (2, "US partners", "#1f4e9a")):
            ch.add_series({"name": who,
                           "categories": ["Summary", trow + 1, col, trow + len(groups), col],
                           "values": ["Summary", trow + 1, col + j, trow + len(groups), col + j],
                           "fill": {"color": colour}})
        ch.set_y_axis({"reverse": True, "name": head})
        ch.set_x_axis({"name": "Spend (US$ M)", "num_format": "#,##0"})
        ws.write(trow - 1, 0, title, f["h"])
        ws.insert_chart(trow, col + 5, ch)
        trow = max(end + 1, trow + (60 + 26 * len(groups) + 80) // 20 + 2) + 1


def _portfolio(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Portfolio")
    t = fx.result.totals
    cols = [("Project", None), ("Name", None), ("Country", None), ("Mineral", None),
            ("Lead", None), ("Stake", "pct"), ("Cost (US$ M)", "musd"),
            ("KABIL (US$ M)", "musd"), ("US partners (US$ M)", "musd"), ("NPV (US$ M)", "musd")]
    cols += [(f"{product_name(m)} ({product_unit(m)})", "t") for m in fx.products]
    cols += [("Risk score", "num2"), ("China processing", None), ("Country code", None),
             ("As of", None), ("Study level", None)]
    doubt = {d.project_id: d for d in (fx.doubts.rows if fx.doubts else [])}
    # countries, minerals and leads named as the HTML report names them
    rows = [[p["project_id"], p["name"], p["country_name"], product_short(p["mineral"]),
             PARTNER_SHORT.get(p["partner"], p["partner"]), p["stake"],
             p["cost_musd"], p["kabil_musd"], p["us_musd"], p["npv_musd"],
             *(p["output_t"][m] for m in fx.products), p["risk_score"],
             "yes" if p["china_processing"] else "no", p["country"],
             doubt[p["project_id"]].as_of_text if p["project_id"] in doubt else "",
             doubt[p["project_id"]].study_level if p["project_id"] in doubt else ""]
            for p in fx.portfolio]
    totals = {6: t.cost_musd, 7: t.kabil_musd, 8: t.us_musd, 9: t.npv_musd}
    totals.update({10 + j: t.output_t[m] for j, m in enumerate(fx.products)})
    _widths(ws, [24, 46, 14, 12, 8, 8, 12, 12, 14, 12] + [16] * len(fx.products)
            + [10, 10, 8, 10, 12])
    book.table(ws, 0, 0, cols, rows, "Portfolio", totals=totals if rows else None)
    ws.freeze_panes(1, 1)


def _limits(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Limits")
    f = book.fmt
    cols = [("Limit", None), ("Scenario field", None), ("Kind", None), ("Unit", None),
            ("Scenario value", None), ("Portfolio value", None), ("Room left", None),
            ("Binding", None), ("Note", None)]
    rows = []
    for lr in fx.limits:
        unit = {"MUSD": "US$ M", "share": "share", "risk": "risk 1-10", "count": "count"}.get(
            lr.unit, lr.unit)
        rows.append([lr.label, lr.field, lr.kind, unit, lr.limit, lr.value, lr.headroom,
                     "binding" if lr.binding else "in conflict" if lr.conflict else "",
                     lr.note])
    _widths(ws, [34, 28, 7, 16, 15, 15, 13, 9, 40])
    end = book.table(ws, 0, 0, cols, rows, "Limits")
    for i, lr in enumerate(fx.limits):  # numbers keep their own unit's format
        fk = {"MUSD": "musd", "share": "pct", "risk": "num2", "count": "int"}.get(lr.unit, "t")
        for j, v in ((4, lr.limit), (5, lr.value), (6, lr.headroom)):
            if v is not None:
                ws.write_number(1 + i, j, v, f[fk])
    ws.freeze_panes(1, 0)
    if not fx.solved:
        return
    sc, t = fx.scenario, fx.result.totals
    # annual spend against caps
    row = end + 1
    ws.write(row, 0, "Spend by plan year against annual caps", f["h"])
    caps = list(sc.annual_budget_musd or [])
    yrs = [[f"plan year {k + 1}", v, caps[k] if k < len(caps) else None]
           for k, v in enumerate(t.annual_musd)]
    top = row + 1
    row = book.table(ws, top, 0, [("Plan year", None), ("Spend (US$ M)", "musd"),
                                  ("Cap (US$ M)", "musd")], yrs, "AnnualSpend")
    ch = _chart(book, "column", "Spend by plan year against annual caps")
    ch.add_series({"name": "Spend", "categories": ["Limits", top + 1, 0, top + len(yrs), 0],
                   "values": ["Limits", top + 1, 1, top + len(yrs), 1],
                   "fill": {"color": "#4c7a8c"}, "data_labels": {"value": True,
                                                                 "num_format": "#,##0"}})
    if any(c[2] is not None for c in yrs):
        cap = book.wb.add_chart({"type": "line"})
        cap.add_series({"name": "Cap", "categories": ["Limits", top + 1, 0, top + len(yrs), 0],
                        "values": ["Limits", top + 1, 2, top + len(yrs), 2],
                        "line": {"none": True}, "marker": {"type": "dash", "size": 14,
                                                           "fill": {"color": "#c0392b"},
                                                           "border": {"color": "#c0392b"}}})
        ch.combine(cap)
    ch.set_y_axis({"name": "Spend (US$ M)", "num_format": "#,##0"})
    ch.set_x_axis({"name": "Plan year"})
    ws.insert_chart(top, 4, ch)
    # offtake against floors
    row = max(row + 1, top + 16)
    ws.write(row, 0, "Offtake against security floors", f["h"])
    top = row + 1
    off = [[product_name(m), product_unit(m), t.output_t[m], sc.min_output_t.get(m)]
           for m in fx.products]
    row = book.table(ws, top, 0, [("Product", None), ("Unit", None), ("Offtake", "t"),
                                  ("Floor", "t")], off, "Offtake")
    ch = _chart(book, "bar", "Offtake against security floors (t/y)")
    for j, name, colour in ((2, "Offtake", "#4c7a8c"), (3, "Floor", "#c0392b")):
        ch.add_series({"name": name, "categories": ["Limits", top + 1, 0, top + len(off), 0],
                       "values": ["Limits", top + 1, j, top + len(off), j],
                       "fill": {"color": colour}})
    ch.set_y_axis({"reverse": True, "name": "Product"})
    ch.set_x_axis({"name": "Offtake and floor (t/y, each in its product's unit)",
                   "num_format": "#,##0"})
    ws.insert_chart(top, 4, ch)
    # risk against its cap
    row = max(row + 1, top + 16)
    ws.write(row, 0, "Spend-weighted risk against its cap", f["h"])
    top = row + 1
    book.table(ws, top, 0, [("Measure", None), ("Risk score", "num2")],
               [["Portfolio average", t.avg_risk], ["Cap", sc.max_avg_risk]], "Risk")
    ch = _chart(book, "bar", "Spend-weighted risk against its cap", size=(560, 200))
    ch.add_series({"name": "Risk", "categories": ["Limits", top + 1, 0, top + 2, 0],
                   "values": ["Limits", top + 1, 1, top + 2, 1],
                   "points": [{"fill": {"color": "#4c7a8c"}}, {"fill": {"color": "#c0392b"}}]})
    ch.set_x_axis({"min": 0, "max": 10, "name": "Risk score (1 best, 10 worst)"})
    ch.set_y_axis({"name": "Measure"})
    ch.set_legend({"none": True})
    ws.insert_chart(top, 4, ch)


def _sensitivity(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Sensitivity")
    f = book.fmt
    a = fx.analysis
    _widths(ws, [26, 16, 14, 16, 18, 16, 12, 60])
    ws.write(0, 0, "Why this portfolio: every figure is a re-solve with one thing changed",
             f["title"])
    ws.freeze_panes(1, 0)
    if a is None or not fx.solved:
        ws.write(2, 0, "Not computed for this run." if fx.solved
                 else "No portfolio: nothing to analyse.")
        return
    ws.write(1, 0, f"{a.resolves} re-solves of the built model in {a.resolve_s:.2f} s "
                   f"({a.solver_s:.2f} s inside HiGHS); the run's objective "
                   f"{fx.result.objective:,.3f}.", f["note"])
    row = 2
    for n in a.notes:
        ws.merge_range(row, 0, row, 7, n, f["note"])
        ws.set_row(row, 30)
        row += 1
    row += 1
    if a.budget:
        b = a.budget
        ws.write(row, 0, "What the budget is worth", f["h"])
        ws.merge_range(row + 1, 0, row + 1, 7, "How: " + b.method, f["note"])
        ws.set_row(row + 1, 45)
        top = row + 2
        pts = [[p.budget_musd, p.status, p.objective, p.change, p.marginal_per_100_musd,
                p.cost_musd, p.n_projects] for p in b.curve]
        row = book.table(ws, top, 0, [("Budget (US$ M)", "musd"), ("Status", None),
                                      ("Objective", "num3"), ("Change", "num3"),
                                      ("Marginal per US$100 M", "num3"),
                                      ("Spent (US$ M)", "musd"), ("Projects", "int")],
                         pts, "BudgetCurve")
        ch = _chart(book, "scatter", "Objective at other budgets (each point a re-solve)",
                    "straight_with_markers")
        ch.add_series({"name": "Objective", "categories": ["Sensitivity", top + 1, 0,
                                                          top + len(pts), 0],
                       "values": ["Sensitivity", top + 1, 2, top + len(pts), 2],
                       "marker": {"type": "circle"}, "line": {"color": "#4c7a8c"}})
        ch.set_x_axis({"name": "Total budget (US$ M)", "num_format": "#,##0"})
        ch.set_y_axis({"name": f"Objective ({fx.objective_unit})", "num_format": "#,##0"})
        ch.set_legend({"none": True})
        ws.insert_chart(top, 8, ch)
        row = max(row, top + 16) + 1
    ws.write(row, 0, "What each binding limit costs", f["h"])
    ws.merge_range(row + 1, 0, row + 1, 7, "How: " + a.limits_method, f["note"])
    ws.set_row(row + 1, 45)
    row = book.table(ws, row + 2, 0, [("Scenario field", None), ("Binding entries", None),
                                      ("Now", "num3"), ("Relaxed to", "num3"), ("Step", None),
                                      ("Status", None), ("Objective", "num3"), ("Gain", "num3")],
                     [[lv.field, ", ".join(lv.binding), lv.limit, lv.relaxed_to, lv.step,
                       lv.status, lv.objective, lv.gain] for lv in a.limits], "LimitValue")
    row += 1
    for title, effects, method, name in (
            ("Regret: the objective lost if a chosen project is excluded", a.regrets,
             a.regrets_method, "Regret"),
            ("The best rejected projects, forced in", a.forced, a.forced_method, "Forced")):
        ws.write(row, 0, title, f["h"])
        ws.merge_range(row + 1, 0, row + 1, 7, "How: " + method, f["note"])
        ws.set_row(row + 1, 45)
        top = row + 2
        rows = [[e.project_id, e.country, e.partner, e.status, e.objective, e.loss, e.loss_pct,
                 e.note or "; ".join(filter(None, [
                     "adds " + ", ".join(e.added) if e.added else "",
                     "drops " + ", ".join(e.dropped) if e.dropped else ""]))]
                for e in effects]
        row = book.table(ws, top, 0, [("Project", None), ("Country", None), ("Lead", None),
                                      ("Status", None), ("Objective", "num3"), ("Loss", "num3"),
                                      ("Loss %", "pct2"), ("What changes", None)], rows, name)
        if name == "Regret" and rows:
            ch = _chart(book, "bar", "Objective lost if each chosen project is excluded",
                        size=(560, 80 + 22 * len(rows)))
            ch.add_series({"name": "Loss", "categories": ["Sensitivity", top + 1, 0,
                                                         top + len(rows), 0],
                           "values": ["Sensitivity", top + 1, 5, top + len(rows), 5],
                           "fill": {"color": "#4c7a8c"}})
            ch.set_y_axis({"reverse": True, "name": "Project"})
            ch.set_x_axis({"name": f"Objective lost ({fx.objective_unit})",
                           "num_format": "#,##0"})
            ch.set_legend({"none": True})
            ws.insert_chart(top, 8, ch)
            row = max(row, top + (80 + 22 * len(rows)) // 20 + 1)
        row += 1


def _alternatives(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Alternatives")
    f = book.fmt
    a = fx.analysis
    _widths(ws, [24, 14, 14, 12, 14, 14, 14, 10, 10, 14, 50, 50])
    ws.write(0, 0, "The nearest alternative portfolios", f["title"])
    ws.freeze_panes(1, 0)
    if a is None or not fx.solved:
        ws.write(2, 0, "Not computed for this run." if fx.solved
                 else "No portfolio: no alternatives.")
        return
    ws.merge_range(1, 0, 1, 11, "How: " + a.alternatives_method, f["note"])
    ws.set_row(1, 60)
    ws.merge_range(2, 0, 2, 11, a.alternatives_note, f["note"])
    t, r = fx.result.totals, fx.result
    rows = [["Recommended", r.objective, 0.0, 0.0, t.cost_musd, t.kabil_musd, t.us_musd,
             t.n_projects, t.n_countries, 0.0, "", ""]]
    rows += [[f"Alternative {alt.rank}", alt.objective, alt.loss, alt.loss_pct,
              alt.totals.cost_musd, alt.totals.kabil_musd, alt.totals.us_musd,
              alt.totals.n_projects, alt.totals.n_countries, alt.moved_musd,
              ", ".join(alt.added), ", ".join(alt.dropped)] for alt in a.alternatives]
    top = 4
    row = book.table(ws, top, 0, [("Portfolio", None), ("Objective", "num3"),
                                  ("Below optimum", "num3"), ("Below optimum %", "pct2"),
                                  ("Cost (US$ M)", "musd"), ("KABIL (US$ M)", "musd"),
                                  ("US partners (US$ M)", "musd"), ("Projects", "int"),
                                  ("Countries", "int"), ("Money moved (US$ M)", "musd"),
                                  ("Adds", None), ("Drops", None)],
                     rows, "Alternatives")
    if a.alternatives:
        ch = _chart(book, "column", "Objective of the recommended portfolio and alternatives")
        ch.add_series({"name": "Objective", "categories": ["Alternatives", top + 1, 0,
                                                          top + len(rows), 0],
                       "values": ["Alternatives", top + 1, 1, top + len(rows), 1],
                       "fill": {"color": "#4c7a8c"}})
        lo = min(x[1] for x in rows)
        ch.set_y_axis({"min": round(lo * 0.95 if lo > 0 else lo * 1.05), "num_format": "#,##0",
                       "name": f"Objective ({fx.objective_unit})"})
        ch.set_x_axis({"name": "Portfolio"})
        ch.set_legend({"none": True})
        ws.insert_chart(row + 1, 0, ch)
        row += 17
        ws.write(row, 0, "Stakes side by side (blank: not backed)", f["h"])
        matrix = alternatives_matrix(fx)
        book.table(ws, row + 1, 0, [("Project", None), ("Recommended", "pct")]
                   + [(f"Alternative {alt.rank}", "pct") for alt in a.alternatives],
                   [[pid, here, *others] for pid, here, others in matrix], "Stakes")


def _doubts(book: _Book, fx: Facts) -> None:
    """Flags a reader must not miss, and which figures to doubt."""
    ws = book.wb.add_worksheet("Doubts")
    f = book.fmt
    _widths(ws, [26, 12, 22, 14, 90])
    ws.write(0, 0, "Flags a reader must not miss, and which figures to doubt", f["title"])
    ws.freeze_panes(1, 0)
    if not fx.solved:
        ws.write(2, 0, "No portfolio: nothing to flag.")
        book.table(ws, 3, 0, [("Project", None)], [], "Flags")
        return
    d = fx.doubts
    row = 1
    if d is not None and d.weak_share is not None:
        ws.write(row, 0, "Share of the NPV on PEA-level or estimated figures", f["label"])
        ws.write_number(row, 2, d.weak_share, f["pct"])
        row += 1
    ws.write(row + 1, 0, "Flags", f["h"])
    row = book.table(ws, row + 2, 0, [("Project", None), ("Flag", None), ("What it means", None)],
                     [[x.project_id, x.title, x.text] for x in fx.flags], "Flags")
    ws.write(row + 1, 0, "Which figures to doubt", f["h"])
    book.table(ws, row + 2, 0, [("Project", None), ("As of", None), ("Study level", None),
                                ("NPV (US$ M)", "musd"), ("To doubt", "wrap")],
               [[x.project_id, x.as_of_text, x.study_words, x.npv_musd,
                 "; ".join(x.warnings + ([f"estimated by rule: {x.estimated}"]
                                         if x.estimated else []))]
                for x in (d.rows if d else [])], "Doubts")


def _glossary(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Glossary")
    _widths(ws, [18, 110])
    book.table(ws, 0, 0, [("Term", None), ("Meaning", "wrap")],
               [list(g) for g in fx.glossary], "Glossary")
    ws.freeze_panes(1, 0)


def _uncertainty(book: _Book, fx: Facts) -> None:
    """CONTRACT 7a's sheet `Uncertainty`: one row per draw (draw, npv_musd, within_caps), the
    portfolio on the scenario's sample or the data's default model; a summary beside it."""
    u = fx.uncertainty
    ws = book.wb.add_worksheet("Uncertainty")
    _widths(ws, [8, 14, 12, 3, 44, 16, 16])
    if u is None:  # no portfolio to measure: the sheet is there, its table empty
        book.table(ws, 0, 0, [("draw", None), ("npv_musd", "musd"), ("within_caps", None)],
                   [], "Draws")
        ws.write(0, 4, "No portfolio, so nothing to measure on draws.", book.fmt["note"])
        ws.freeze_panes(1, 0)
        return
    book.table(ws, 0, 0, [("draw", None), ("npv_musd", "musd"), ("within_caps", None)],
               [[int(d), float(v), bool(w)] for d, v, w in
                zip(u.labels, u.npv, u.within_caps, strict=True)], "Draws")
    f = u.figures
    rows = [["Sample", f"{u.draws:,} draws of {u.source_words}"],
            ["Mean NPV, US$ M", f.mean], ["P5", f.p5], ["Median", f.p50], ["P95", f.p95],
            [f"CVaR at {u.alpha:.0%} (mean of the worst draws)", f.cvar],
            ["Share of draws within every spend cap", f.within_caps_share],
            ["NPV at face value, US$ M", u.face_npv]]
    for cap in u.caps:
        rows.append([f"{cap.path}: broken in share of draws", cap.share])
        rows.append([f"{cap.path}: median overspend where broken, US$ M", cap.median_musd])
        rows.append([f"{cap.path}: P95 overspend where broken, US$ M", cap.p95_musd])
    o = u.out_of_sample
    if o is not None and o.face_value is not None:
        rows += [[f"On {o.draws:,} fresh draws (seed {o.seed}): this portfolio's mean",
                  o.portfolio.mean], ["  the face-value optimum's mean", o.face_value.mean],
                 ["  value of the stochastic solution, US$ M", o.vss]]
    ws.write(0, 4, "How sure the money is", book.fmt["h"])
    for i, (label, value) in enumerate(rows, start=1):
        ws.write(i, 4, label)
        if isinstance(value, float):
            share = "share" in label
            ws.write_number(i, 5, value, book.fmt["pct" if share else "musd"])
        else:
            ws.write(i, 5, value)
    ws.freeze_panes(1, 0)


def _data(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Data")
    frame = fx.data.frame
    chosen = {p.project_id: p.stake for p in fx.result.selected}
    fmt_of = {"india_share": "pct", "min_stake": "pct", "max_stake": "pct",
              "equity_value_musd": "musd", "deal_cost_musd": "musd", "npv_musd": "musd",
              "risk_score": "num2"}
    names = list(frame.columns)
    cols = [("chosen", None), ("stake chosen", "pct")]
    for c in names:
        fk = fmt_of.get(c)
        if fk is None and c.startswith("output_"):
            fk = "t"
        if fk is None and c.startswith("spend_share_"):
            fk = "pct"
        cols.append((c, fk))
    rows = []
    for rec in fx.data.records():
        pid = rec["project_id"]
        rows.append(["yes" if pid in chosen else "", chosen.get(pid),
                     *(_cell(rec.get(c)) for c in names)])
    book.table(ws, 0, 0, cols, rows, "Data")
    _widths(ws, [8, 10, 24, 46] + [12] * (len(names) - 2))
    ws.set_column(2 + names.index("source"), 2 + names.index("source"), 80)
    ws.freeze_panes(1, 3)


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def _provenance(book: _Book, fx: Facts) -> None:
    ws = book.wb.add_worksheet("Provenance")
    r, sc = fx.result, fx.scenario
    a = fx.analysis
    rows: list[list[Any]] = [
        ["Dataset SHA-256", r.provenance.dataset_sha256],
        ["Dataset rows", fx.data.n],
        ["Rows with a stated source", int(fx.data.frame["source"].fillna("").astype(str)
                                          .str.strip().ne("").sum())],
        ["Scenario name", sc.name],
        ["Scenario SHA-256", r.provenance.scenario_sha256],
        ["Scenario (JSON, every default filled in)", json.dumps(sc.model_dump(mode="json"),
                                                               sort_keys=True)],
        ["Status", r.status],
        ["Status in words", fx.status_text],
        ["HiGHS termination", r.solver.termination],
        ["Objective", r.objective],
        ["Best bound", r.best_bound],
        ["Gap", r.mip_gap],
        ["Solver", f"HiGHS {r.solver.version}"],
        ["Solver options", json.dumps(r.solver.options, sort_keys=True)],
        ["Build time (s)", r.solver.build_s],
        ["Solve time (s)", r.solver.solve_time_s],
        ["Software version", r.provenance.software_version],
        ["Pyomo version", r.provenance.pyomo_version],
        ["Python version", r.provenance.python_version],
    ]
    if a is not None:
        rows += [["Re-solves for this report", a.resolves],
                 ["Re-solve time (s)", a.resolve_s],
                 ["HiGHS time in re-solves (s)", a.solver_s],
                 ["Analysis settings", json.dumps(a.settings.model_dump(), sort_keys=True)]]
    _widths(ws, [40, 100])
    book.table(ws, 0, 0, [("Item", None), ("Value", "wrap")], rows, "Provenance")
    ws.freeze_panes(1, 0)


def render_xlsx(result: Result, scenario: Scenario, data: ProjectData,
                analysis: Analysis | None = None, *, currency: Currency | None = None,
                today: dt.date | None = None) -> bytes:
    """The run's report as an Excel workbook (bytes); ``currency`` and ``today`` as for
    :func:`optimizer.reports.html.render_html`."""
    fx = facts(result, scenario, data, analysis, currency=currency, today=today)
    buf = io.BytesIO()
    book = _Book(buf)
    _summary(book, fx)
    _portfolio(book, fx)
    _limits(book, fx)
    _doubts(book, fx)
    _uncertainty(book, fx)
    _sensitivity(book, fx)
    _alternatives(book, fx)
    _data(book, fx)
    _glossary(book, fx)
    _provenance(book, fx)
    book.close()
    return buf.getvalue()




# --- a batch's report -------------------------------------------------------------------------


def _numeric(v: Any) -> Any:
    return v if v is None or isinstance(v, (int, float, str)) else str(v)


def _header(v: Any) -> str:
    """A grid value as a column header (headers are text)."""
    return f"{v:,.6g}" if isinstance(v, float) else str(v)


def render_batch_xlsx(view) -> bytes:
    """A batch's report (from :func:`optimizer.reports.batch.load_batch`) as an Excel
    workbook: Summary, Rows, Selection, then Frontier (a frontier), Grid (a grid) or
    Distribution (Monte Carlo), and Provenance."""
    from .batch import BatchView, path_words

    v: BatchView = view
    buf = io.BytesIO()
    book = _Book(buf)
    f = book.fmt
    ok = v.ok_rows
    # Summary ---------------------------------------------------------------------------
    ws = book.wb.add_worksheet("Summary")
    _widths(ws, [34, 18, 14, 14, 14, 14, 14, 14, 14])
    ws.write(0, 0, f"Batch \u201c{v.name}\u201d: {len(v.rows)} rows ({v.kind})", f["title"])
    if v.description:
        ws.merge_range(1, 0, 1, 8, v.description, f["wrap"])
    rows: list[list[Any]] = [["Rows", len(v.rows)]]
    rows += [[f"Rows {st}", n] for st, n in v.by_status.items()]
    rows += [["Complete", "yes" if v.complete else "no (the batch has not finished)"]]
    rc = v.summary.get("robust_core") or {}
    rows += [[f"Robust core (share >= {rc.get('core_share', 0.9)})", ", ".join(v.core)],
             ["Borderline projects", len(v.borderline)]]
    end = book.table(ws, 3, 0, [("Item", None), ("Value", None)], rows, "BatchSummary")
    ws.freeze_panes(4, 0)
    quant = [("Best objective per row", v.summary.get("objective"))]
    bp = v.summary.get("base_portfolio") or {}
    quant += [("Base portfolio value", bp.get("value")), ("Base portfolio regret",
                                                          bp.get("regret"))]
    keys = ["p0", "p5", "p25", "p50", "p75", "p95", "p100", "mean"]
    qrows = [[label, *(q.get(k) for k in keys)] for label, q in quant if q]
    if qrows and v.kind != "frontier":  # a frontier's quantiles mean nothing
        ws.write(end + 1, 0, "Distribution over the rows", f["h"])
        book.table(ws, end + 2, 0, [("Measure", None)] + [(k, "num3") for k in keys], qrows,
                   "Quantiles")
    # Rows ------------------------------------------------------------------------------
    ws = book.wb.add_worksheet("Rows")
    cols: list[tuple[str, str | None]] = [("index", "int"), ("name", None)]
    # the varied fields in words (a draw's factors to 2 decimals)
    cols += [(path_words(p), "num2" if p.startswith("draw.") and p != "draw.disrupted_countries"
              else None) for p in v.varied]
    cols += [("status", None), ("objective", "num3"), ("best_bound", "num3"),
             ("mip_gap", "pct2"), ("cost_musd", "musd"), ("kabil_musd", "musd"),
             ("us_musd", "musd"), ("npv_musd", "musd")]
    cols += [(f"output_t.{m}", "t") for m in v.products]
    base_cols = v.kind == "monte_carlo"
    if base_cols:
        cols += [("base_portfolio.value", "num3"), ("base_portfolio.regret", "num3"),
                 ("base_portfolio.meets_limits", None), ("base_portfolio.broken", None)]
    cols += [("n_projects", "int"), ("selected", None), ("why no portfolio", None)]
    data = []
    for r in v.rows:
        line = [r.index, r.name, *(_numeric(r.varied.get(p)) for p in v.varied), r.status,
                r.objective, r.best_bound, r.mip_gap, r.cost_musd, r.kabil_musd, r.us_musd,
                r.npv_musd, *(r.output_t.get(m) for m in v.products)]
        if base_cols:
            line += [r.base_value, r.base_regret,
                     None if r.base_meets_limits is None else
                     ("yes" if r.base_meets_limits else "no"), "; ".join(r.base_broken) or None]
        line += [len(r.stakes) if r.ok else None, ";".join(r.stakes), r.reason or None]
        data.append(line)
    book.table(ws, 0, 0, cols, data, "Rows")
    _widths(ws, [7, 16] + [14] * len(v.varied) + [10] + [13] * (len(cols) - len(v.varied) - 5)
            + [60, 60])
    ws.freeze_panes(1, 1)
    # Selection -------------------------------------------------------------------------
    ws = book.wb.add_worksheet("Selection")
    sel = v.selection
    book.table(ws, 0, 0, [("project_id", None), ("chosen", "int"), ("share", "pct"),
                          ("mean_stake", "pct"), ("class", None)],
               [[s["project_id"], s["chosen"], s["share"], s["mean_stake"], s["class"]]
                for s in sel], "Selection")
    _widths(ws, [28, 10, 10, 12, 12])
    ws.freeze_panes(1, 0)
    shown = [s for s in sel if s["chosen"] > 0][:30]
    if shown:
        ch = _chart(book, "bar", "Selection frequency (share of portfolios found)",
                    size=(560, 80 + 18 * len(shown)))
        ch.add_series({"name": "share", "categories": ["Selection", 1, 0, len(shown), 0],
                       "values": ["Selection", 1, 2, len(shown), 2],
                       "fill": {"color": "#4c7a8c"}})
        ch.set_y_axis({"reverse": True, "name": "Project"})
        ch.set_x_axis({"min": 0, "max": 1, "num_format": "0%",
                       "name": "Share of the portfolios found that back it"})
        ch.set_legend({"none": True})
        ws.insert_chart(0, 6, ch)
    # Frontier (a frontier batch only) ----------------------------------------------------
    fv = v.frontier_view()
    if fv is not None:
        ws = book.wb.add_worksheet("Frontier")
        path = fv.path
        pts = fv.points
        title = "The efficient frontier: NPV against " + path_words(path)
        ws.write(0, 0, title, f["title"])
        ws.freeze_panes(3, 0)
        if fv.base_x is not None:
            ws.write(1, 0, f"The base scenario: {path_words(path)} {fv.base_x:,.6g}"
                     + (f", NPV {fv.base_y:,.1f}" if fv.base_y is not None else
                        " (between the points computed)"), f["note"])
        if pts and v.frontier_kind == "risk":  # mean against CVaR, each point a portfolio
            rows = [r for r in pts if r.in_sample]
            end = book.table(ws, 2, 0, [("risk_aversion", "num3"), ("index", "int"),
                                        ("mean NPV (US$ M)", "musd"), ("CVaR (US$ M)", "musd"),
                                        ("P5 (US$ M)", "musd"), ("within caps", "pct"),
                                        ("portfolio", None)],
                             [[r.varied[path], r.index, r.in_sample["mean"],
                               r.in_sample["cvar"], r.in_sample["p5"],
                               r.in_sample["within_caps_share"],
                               "; ".join(f"{p} {st:.0%}" for p, st in r.stakes.items())]
                              for r in rows], "Frontier")
            _widths(ws, [14, 8, 16, 14, 14, 12, 100])
            ch = _chart(book, "scatter", "Mean against CVaR", "straight_with_markers")
            ch.add_series({"name": "mean", "categories": ["Frontier", 3, 3, 2 + len(rows), 3],
                           "values": ["Frontier", 3, 2, 2 + len(rows), 2],
                           "marker": {"type": "circle"}, "line": {"color": "#4c7a8c"}})
            ch.set_x_axis({"name": "CVaR of NPV (US$ M)", "num_format": "#,##0"})
            ch.set_y_axis({"name": "mean NPV (US$ M)", "num_format": "#,##0"})
            ch.set_legend({"none": True})
            ws.insert_chart(end + 1, 0, ch)
        elif pts:
            end = book.table(ws, 2, 0, [(path_words(path), "num3"), ("index", "int"),
                                        ("objective", "num3"), ("cost_musd", "musd"),
                                        ("n_projects", "int"), ("binding", None),
                                        ("portfolio", None)],
                             [[r.varied[path], r.index, r.objective, r.cost_musd,
                               len(r.stakes), "; ".join(r.binding),
                               "; ".join(f"{p} {st:.0%}" for p, st in r.stakes.items())]
                              for r in pts], "Frontier")
            _widths(ws, [22, 8, 14, 14, 10, 40, 100])
            ch = _chart(book, "scatter", title, "straight_with_markers")
            ch.add_series({"name": "objective",
                           "categories": ["Frontier", 3, 0, 2 + len(pts), 0],
                           "values": ["Frontier", 3, 2, 2 + len(pts), 2],
                           "marker": {"type": "circle"}, "line": {"color": "#4c7a8c"}})
            ch.set_x_axis({"name": path_words(path), "num_format": "#,##0"})
            ch.set_y_axis({"name": "NPV (US$ M)", "num_format": "#,##0"})
            ch.set_legend({"none": True})
            ws.insert_chart(end + 1, 0, ch)
            row = end + 17
            ws.write(row, 0, "Where the frontier is flat", f["h"])
            book.table(ws, row + 1, 0, [("from", "num3"), ("to", "num3"), ("NPV", "num3"),
                                        ("rows", None), ("limits that bind there", None)],
                       [[x.low, x.high, x.objective, ", ".join(map(str, x.indices)),
                         "; ".join(x.binding) or "none: every project worth having is at its "
                         "largest stake"] for x in fv.flats], "Flat")
        else:
            ws.write(2, 0, "No row with a portfolio.")
    # Grid (a grid batch: CONTRACT 7a) -----------------------------------------------------
    grids = v.grid_tables()
    if grids:
        ws = book.wb.add_worksheet("Grid")
        ws.freeze_panes(1, 0)
        g0 = grids[0]
        ws.write(0, 0, "Objective of each combination: " + path_words(g0.row_field)
                 + " down the rows" + (", " + path_words(g0.col_field) + " across the columns"
                                       if g0.col_field else ""), f["title"])
        ws.set_column(0, 0, 30)
        ws.set_column(1, 1 + max(len(g.col_values) for g in grids), 14)
        row = 2
        for k, g in enumerate(grids):
            if g.fixed:
                ws.write(row, 0, "; ".join(f"{path_words(p)} = {x}" for p, x in g.fixed.items()),
                         f["h"])
                row += 1
            top = row
            head = [(f"{g.row_field} \\ {g.col_field}" if g.col_field else g.row_field, None)]
            head += [(_header(x) if g.col_field else "objective", "num3")
                     for x in g.col_values]
            end = book.table(ws, top, 0, head,
                             [[_numeric(y), *g.values[i]] for i, y in enumerate(g.row_values)],
                             f"Grid{k}")
            ws.conditional_format(top + 1, 1, top + len(g.row_values), len(g.col_values),
                                  {"type": "3_color_scale"})
            row = end + 1
            for axis in (0, 1):
                unit, mv = g.marginals(axis)
                if not mv:
                    continue
                fld = g.row_field if axis == 0 else g.col_field
                ws.write(row, 0, f"Marginal value of {path_words(fld)}: NPV gained {unit}",
                         f["label"])
                if axis == 0:
                    labels = [f"{_header(g.row_values[i])} -> {_header(g.row_values[i + 1])}"
                              for i in range(len(mv))]
                    heads = [_header(x) if g.col_field else "objective" for x in g.col_values]
                else:
                    labels = [_header(y) for y in g.row_values]
                    heads = [f"{_header(g.col_values[j])} -> {_header(g.col_values[j + 1])}"
                             for j in range(len(g.col_values) - 1)]
                row = book.table(ws, row + 1, 0, [("step" if axis == 0 else g.row_field, None)]
                                 + [(h, "num3") for h in heads],
                                 [[lab, *line] for lab, line in zip(labels, mv, strict=True)],
                                 f"Marginal{k}_{axis}") + 1
            row += 1
    # Distribution (Monte Carlo) ---------------------------------------------------------
    if v.kind == "monte_carlo":
        ws = book.wb.add_worksheet("Distribution")
        ws.write(0, 0, "Across the draws", f["title"])
        ws.freeze_panes(3, 0)
        col = 0
        for label, values, name in (
                ("Best NPV per draw", [r.objective for r in ok], "ObjectiveBins"),
                ("Regret of the base portfolio", [r.base_regret for r in v.rows], "RegretBins")):
            bins = v.histogram([x for x in values if x is not None])
            if not bins:
                continue
            ws.write(1, col, label, f["h"])
            book.table(ws, 2, col, [("from", "num3"), ("to", "num3"), ("draws", "int")],
                       [list(b) for b in bins], name)
            ch = _chart(book, "column", label)
            ch.add_series({"name": "draws",
                           "categories": ["Distribution", 3, col, 2 + len(bins), col],
                           "values": ["Distribution", 3, col + 2, 2 + len(bins), col + 2],
                           "fill": {"color": "#4c7a8c"}, "gap": 10})
            ch.set_x_axis({"num_format": "#,##0", "name": "US$ M (bins of the measure)"})
            ch.set_y_axis({"name": "Draws"})
            ch.set_legend({"none": True})
            ws.insert_chart(4 + len(bins), col, ch)
            col += 9
        breaks = v.limit_breaks()
        n_within, rq = v.regret_within()
        row = 4 + 20 + 17  # below the bins (at most 20) and their charts (about 15 rows)
        ws.write(row, 0, "Which limits the base portfolio, held fixed, breaks", f["h"])
        row = book.table(ws, row + 1, 0, [("limit", None), ("field", None), ("draws", "int"),
                                          ("share of draws", "pct"), ("median excess", "num3"),
                                          ("P95 excess", "num3"), ("unit", None)],
                         [[b.words, b.field, b.draws, b.share, b.median, b.p95, b.unit]
                          for b in breaks], "Breaks")
        ws.write(row + 1, 0, f"Regret of the base portfolio where it stays within its limits "
                             f"({n_within} draws)", f["h"])
        keys = ["p0", "p5", "p25", "p50", "p75", "p95", "p100", "mean"]
        book.table(ws, row + 2, 0, [("measure", None)] + [(k, "num3") for k in keys],
                   [["regret within limits", *((rq or {}).get(k) for k in keys)]],
                   "RegretWithin")
    # Provenance ------------------------------------------------------------------------
    ws = book.wb.add_worksheet("Provenance")
    _widths(ws, [30, 100])
    prov = [["Dataset SHA-256", v.dataset_sha256], ["Spec SHA-256", v.spec_sha256],
            ["Source", v.source], ["Kind", v.kind],
            ["Spec (JSON)", json.dumps(v.spec, sort_keys=True, default=str)]]
    prov += [[f"summary.{k}", json.dumps(val, default=str) if not isinstance(
        val, (int, float, str)) else val] for k, val in v.summary.items()
        if k in ("wall_s", "workers", "chunk_size", "resumed_rows", "status")]
    book.table(ws, 0, 0, [("Item", None), ("Value", "wrap")], prov, "Provenance")
    ws.freeze_panes(1, 0)
    book.close()
    return buf.getvalue()


__all__ = ["render_batch_xlsx", "render_xlsx"]
