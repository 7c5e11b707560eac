"""Committee reports: the analysis (sensitivity re-solves, alternatives) checked against
explicit re-solves and hand-worked figures, and the HTML and Excel reports checked figure by
figure against the result they came from."""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from html.parser import HTMLParser

import openpyxl
import pandas as pd
import pytest

from optimizer import Optimizer, load_projects, load_scenario
from optimizer.check import violations
from optimizer.data import validate_projects
from optimizer.reports import Analysis, AnalysisSettings, analyse
from optimizer.reports.excel import render_xlsx
from optimizer.reports.html import render_html
from optimizer.reports.text import render_text
from optimizer.results import objective_value, portfolio

from .conftest import INPUTS, TINY_ROWS, scenario
from .instances import subset_sum

SHEETS = ["Summary", "Portfolio", "Limits", "Doubts", "Uncertainty", "Sensitivity",
          "Alternatives", "Data", "Glossary", "Provenance"]


def fresh_objective(sc) -> float | None:
    """The objective of ``sc`` on the tiny table, solved by a newly built model (independent
    of the analysed model's state)."""
    r = Optimizer(validate_projects(pd.DataFrame(TINY_ROWS))).solve(sc)
    return r.objective if r.status in ("optimal", "feasible") else None


def changed(sc, **update):
    return type(sc).model_validate({**sc.model_dump(), **update})


# --- analysis on the hand-worked three-project table ---------------------------------------
#   A: cost 100 s (s in 0.5..1), value 40 s        B: cost 60, value 20 (stake 1)
#   C: cost 200 t + 5 (t in 0.1..0.3), value 100 t - 5
# Budget 120: C at 0.3 (65) + A at 0.55 (55) = 47. For budgets 115..165: 0.4 b - 1.


@pytest.fixture(scope="module")
def tiny_run(tiny_opt):
    sc = scenario(budget_musd=120)
    r = tiny_opt.solve(sc)
    a = analyse(tiny_opt, sc, r, AnalysisSettings(budget_curve_steps=2, forced_candidates=5,
                                                  alternatives=3, alternative_slack=0.1,
                                                  alternatives_method="no_good"))
    return sc, r, a


def test_tiny_alternatives_by_modelling_to_generate_alternatives(tiny_opt):
    """Budget 120, optimum A 0.55 + C 0.3 = 47; within 10 % the NPV floor is 42.3.
    First: the least money in {A, C} differing in 2 choices: A + B with A at the smallest
    stake keeping 40 s + 20 >= 42.3, s = 0.5575 (55.75 kept; B + C would keep 59.6).
    Second: the least money in {A, B, C}, differing from {A, C} and {A, B}: B + C with
    100 t - 5 + 20 >= 42.3, t = 0.273. Third: only the empty set differs enough: none."""
    sc = scenario(budget_musd=120)
    r = tiny_opt.solve(sc)
    a = analyse(tiny_opt, sc, r, AnalysisSettings(forced_candidates=0, alternatives=3,
                                                  alternative_slack=0.1))
    got = [(sorted(alt.stakes), round(alt.objective, 6)) for alt in a.alternatives]
    assert got == [(["A", "B"], 42.3), (["B", "C"], 42.3)]
    assert a.alternatives[0].stakes["A"] == pytest.approx(0.5575, abs=1e-9)
    assert a.alternatives[1].stakes["C"] == pytest.approx(0.273, abs=1e-9)
    assert "Modelling to generate alternatives" in a.alternatives_method
    assert all(alt.status == "feasible" for alt in a.alternatives)
    check_alternatives(tiny_opt, sc, r, a)


def test_budget_value_matches_hand_and_explicit_resolves(tiny_run):
    sc, r, a = tiny_run
    assert r.objective == pytest.approx(47.0, abs=1e-6)
    b = a.budget
    assert b.step_musd == 5.0  # 5 % of 120 rounded down to 1-2-5
    assert b.minus.budget_musd == 115 and b.minus.objective == pytest.approx(45.0, abs=1e-6)
    assert b.plus.budget_musd == 125 and b.plus.objective == pytest.approx(49.0, abs=1e-6)
    assert b.per_100_musd_below == pytest.approx(40.0, abs=1e-4)
    assert b.per_100_musd_above == pytest.approx(40.0, abs=1e-4)
    assert [p.budget_musd for p in b.curve] == [110, 115, 120, 125, 130]
    for p in b.curve:
        assert p.objective == pytest.approx(fresh_objective(changed(sc, budget_musd=p.budget_musd)),
                                            abs=1e-6)
        assert p.change == pytest.approx(p.objective - r.objective, abs=1e-9)
    for lo, hi in itertools.pairwise(b.curve):
        assert hi.marginal_per_100_musd == pytest.approx(
            (hi.objective - lo.objective) * 100 / (hi.budget_musd - lo.budget_musd), abs=1e-6)
    assert "115" in b.method and "125" in b.method  # says how it was computed


def test_budget_curve_reaches_down_to_where_a_cut_starts_to_cost(tiny_opt):
    """One project at most: A at full stake (cost 100, value 40) out of a budget of 200. The
    step is 10; below 180 the curve adds 100 (A still whole) and 90 (A at 0.9: 36)."""
    sc = scenario(budget_musd=200, max_projects=1)
    r = tiny_opt.solve(sc)
    assert r.objective == pytest.approx(40.0, abs=1e-6) and r.totals.cost_musd == 100
    a = analyse(tiny_opt, sc, r, AnalysisSettings(forced_candidates=0, alternatives=0))
    curve = {p.budget_musd: p for p in a.budget.curve}
    assert sorted(curve) == [90, 100, 180, 190, 200, 210, 220]
    assert curve[100].objective == pytest.approx(40.0, abs=1e-6)
    assert curve[90].objective == pytest.approx(36.0, abs=1e-6)
    assert curve[100].marginal_per_100_musd == pytest.approx(40.0, abs=1e-4)
    assert curve[180].marginal_per_100_musd == pytest.approx(0.0, abs=1e-6)
    for b, p in curve.items():
        assert p.objective == pytest.approx(fresh_objective(changed(sc, budget_musd=b)),
                                            abs=1e-6)
    assert "under the portfolio's spend of 100" in a.budget.method


def test_regret_and_forced_match_hand_and_explicit_resolves(tiny_run):
    sc, r, a = tiny_run
    regret = {e.project_id: e for e in a.regrets}
    assert set(regret) == {"A", "C"}
    # without A: B + C at 0.275 = 20 + 22.5; without C: B + A at 0.6 = 20 + 24
    assert regret["A"].loss == pytest.approx(47 - 42.5, abs=1e-6)
    assert regret["C"].loss == pytest.approx(47 - 44.0, abs=1e-6)
    assert regret["A"].added == ["B"] and regret["A"].dropped == ["A"]
    for pid, e in regret.items():
        assert e.objective == pytest.approx(
            fresh_objective(changed(sc, exclude_projects=[pid])), abs=1e-6)
        assert e.loss_pct == pytest.approx(e.loss / 47.0)
    assert [e.project_id for e in a.regrets] == ["A", "C"]  # largest loss first
    forced = {e.project_id: e for e in a.forced}
    assert set(forced) == {"B"}  # the only rejected project
    assert forced["B"].objective == pytest.approx(44.0, abs=1e-6)  # B + A at 0.6
    assert forced["B"].objective == pytest.approx(
        fresh_objective(changed(sc, include_projects=["B"])), abs=1e-6)
    assert forced["B"].dropped == ["C"]


@pytest.mark.parametrize("fields, bound", [
    (dict(budget_musd=120, max_avg_risk=6.5, max_country_share=0.5,
          max_china_processing_share=0.5),
     {"budget_musd", "max_country_share", "max_avg_risk", "max_china_processing_share"}),
    (dict(budget_musd=200, annual_budget_musd=[60, 100], max_country_share=0.6,
          max_avg_risk=6.5, min_output_t={"ree": 1500}),
     {"annual_budget_musd.0", "min_output_t.ree"}),
    (dict(budget_musd=130, kabil_budget_musd=80, max_avg_risk=6.0, min_countries=2,
          max_projects=2), {"budget_musd", "min_countries", "max_projects"}),
], ids=["shares", "annual-floor", "counts"])
def test_binding_limit_values_equal_explicit_resolves(tiny_opt, fields, bound):
    sc = scenario(**fields)
    r = tiny_opt.solve(sc)
    assert r.status == "optimal"
    a = analyse(tiny_opt, sc, r, AnalysisSettings(budget_curve_steps=1, forced_candidates=0,
                                                  alternatives=0))
    covered = [b for lv in a.limits for b in lv.binding]
    assert sorted(covered) == sorted(b.field for b in r.binding)
    assert {lv.field for lv in a.limits} == bound  # country entries share one relaxation
    for lv in a.limits:
        head, _, tail = lv.field.partition(".")
        if head == "annual_budget_musd":
            caps = list(sc.annual_budget_musd)
            caps[int(tail)] = lv.relaxed_to
            upd = {head: caps}
        elif head == "min_output_t":
            upd = {head: {**sc.min_output_t, tail: lv.relaxed_to}}
        elif head in ("min_countries", "max_projects"):
            upd = {head: int(lv.relaxed_to)}
        else:
            upd = {head: lv.relaxed_to}
        expect = fresh_objective(changed(sc, **upd))
        assert lv.objective == pytest.approx(expect, abs=1e-6), lv.field
        assert lv.gain == pytest.approx(expect - r.objective, abs=1e-6)
        assert lv.relaxed_to != lv.limit


def test_resolves_are_counted_timed_and_reuse_the_model(tiny_opt, monkeypatch):
    sc = scenario(budget_musd=120)
    r = tiny_opt.solve(sc)
    built = tiny_opt.built
    calls = []
    real = tiny_opt.solve

    def counting(s, **kw):
        calls.append(s)
        return real(s, **kw)

    monkeypatch.setattr(tiny_opt, "solve", counting)
    a = analyse(tiny_opt, sc, r, AnalysisSettings(alternatives=0))
    assert a.resolves == len(calls) > 0
    assert len({c.model_dump_json() for c in calls}) == len(calls)  # no re-solve twice
    assert a.resolve_s > 0 and a.elapsed_s >= a.resolve_s
    assert tiny_opt.built is built  # never rebuilt
    # re-solves keep the scenario's settings but the analysis's own time limit
    assert all(c.solver.mip_gap == sc.solver.mip_gap for c in calls)


def test_analysis_round_trips_through_json(tiny_run):
    _, _, a = tiny_run
    assert Analysis.model_validate_json(a.model_dump_json()) == a


def test_time_budget_stops_and_says_so(tiny_opt):
    sc = scenario(budget_musd=120)
    r = tiny_opt.solve(sc)
    a = analyse(tiny_opt, sc, r, AnalysisSettings(time_budget_s=1e-9))
    assert a.resolves == 0 and a.budget is None
    assert any("Time budget" in n for n in a.notes)


def test_infeasible_run_has_nothing_to_analyse(tiny_opt):
    sc = scenario(budget_musd=50, min_output_t={"tantalum": 50})
    r = tiny_opt.solve(sc)
    a = analyse(tiny_opt, sc, r)
    assert r.status == "infeasible" and a.resolves == 0 and a.budget is None
    assert a.notes and not a.regrets


def test_tiny_alternatives_are_the_next_best_distinct_portfolios(tiny_opt, tiny_run):
    sc, r, a = tiny_run
    got = [(sorted(alt.stakes), round(alt.objective, 6)) for alt in a.alternatives]
    # {A,B} = 44, {B,C} = 42.5; then only the empty set differs from all three in 2 choices
    assert got == [(["A", "B"], 44.0), (["B", "C"], 42.5)]
    assert "outside" in a.alternatives_note
    # A 55 -> 60, B 0 -> 60, C 65 -> 0: 65 moved; then A 55 -> 0, B 0 -> 60, C 65 -> 60: 60
    assert [alt.moved_musd for alt in a.alternatives] == pytest.approx([65.0, 60.0])
    check_alternatives(tiny_opt, sc, r, a)


def test_the_model_still_solves_after_an_analysis_with_alternatives(tiny_opt, tiny_run):
    sc, r, a = tiny_run
    assert a.alternatives
    again = tiny_opt.solve(changed(sc, budget_musd=115))
    assert again.objective == pytest.approx(45.0, abs=1e-6)


def check_alternatives(opt: Optimizer, sc, r, a: Analysis) -> None:
    st = a.settings
    sets = [{p.project_id for p in r.selected}]
    for alt in a.alternatives:
        assert violations(opt.data, sc, alt.stakes) == []  # the independent check
        _, totals = portfolio(opt.data, alt.stakes)
        assert objective_value(opt.data, sc, totals) == pytest.approx(alt.objective, rel=1e-9)
        assert alt.objective >= r.objective - st.alternative_slack * abs(r.objective) - 1e-9
        assert alt.loss == pytest.approx(r.objective - alt.objective)
        here = set(alt.stakes)
        for other in sets:
            assert len(here ^ other) >= st.min_difference
        assert alt.added == sorted(here - sets[0]) and alt.dropped == sorted(sets[0] - here)
        # money moved, recomputed from the data: the larger of spend added and spend removed
        cost = dict(zip(opt.data.frame["project_id"], opt.data.col("equity_value_musd"),
                        strict=True))
        deal = dict(zip(opt.data.frame["project_id"], opt.data.col("deal_cost_musd"),
                        strict=True))
        base = {p.project_id: p.stake for p in r.selected}
        delta = [(cost[p] * alt.stakes.get(p, 0) + deal[p] * (p in alt.stakes))
                 - (cost[p] * base.get(p, 0) + deal[p] * (p in base))
                 for p in set(base) | set(alt.stakes)]
        assert alt.moved_musd == pytest.approx(max(sum(d for d in delta if d > 0),
                                                   -sum(d for d in delta if d < 0)), abs=1e-6)
        sets.append(here)
    assert len(a.alternatives) <= st.alternatives


# --- the shipped base run: analysis and both reports ---------------------------------------


@pytest.fixture(scope="module")
def base_run():
    data = load_projects(INPUTS / "projects.csv")
    opt = Optimizer(data)
    sc = load_scenario(INPUTS / "scenarios" / "base.json")
    r = opt.solve(sc)
    a = analyse(opt, sc, r)
    return opt, sc, r, a


def test_base_alternatives_distinct_feasible_within_slack(base_run):
    opt, sc, r, a = base_run
    assert a.alternatives, a.alternatives_note
    check_alternatives(opt, sc, r, a)


def test_base_regret_spot_checks_equal_explicit_resolves(base_run):
    opt, sc, r, a = base_run
    assert {e.project_id for e in a.regrets} == {p.project_id for p in r.selected}
    data = opt.data
    for e in (a.regrets[0], a.regrets[-1]):  # the largest and the smallest
        again = Optimizer(data).solve(changed(sc, exclude_projects=[e.project_id]))
        assert e.objective == pytest.approx(again.objective, rel=2 * sc.solver.mip_gap)


def limit_rows_of(binding) -> set[str]:
    """The limits-table rows of binding entries: one row for the country cap, whichever
    countries meet it (max_country_share.US -> max_country_share)."""
    return {b.field.split(".")[0] if b.field.startswith("max_country_share.") else b.field
            for b in binding}


class Page(HTMLParser):
    """The parts of a report page the tests read: element ids, every (table id, row key,
    column) -> data-value, every src/href, the text of each section, svg counts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.cells: dict[tuple[str, str, str], float] = {}
        self.links: list[tuple[str, str, str]] = []
        self.text: dict[str, list[str]] = {}
        self.svgs: dict[str, int] = {}
        self.shapes = 0
        self.section = ""
        self.table = ""
        self.row = ""
        self.tags: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "action", "poster", "data", "srcset"):
                self.links.append((tag, k, v or ""))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "section":
            self.section = a.get("id", "")
        if tag == "table":
            self.table = a.get("id", "")
        if tag == "tr":
            self.row = a.get("data-project") or a.get("data-field") or a.get("data-budget") \
                or a.get("data-alt") or a.get("data-index") or ""
        if tag in ("td", "span", "strong", "code") and "data-value" in a and a["data-value"]:
            key = (self.table, self.row, a.get("data-col") or a.get("id", ""))
            self.cells[key] = float(a["data-value"])
        if tag == "svg":
            self.svgs[self.section] = self.svgs.get(self.section, 0) + 1
        if tag in ("path", "rect", "use", "line", "polyline"):
            self.shapes += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = ""
        if tag == "tr":
            self.row = ""

    def handle_data(self, data):
        self.text.setdefault(self.section, []).append(data)

    def words(self, section: str) -> str:
        return re.sub(r"\s+", " ", "".join(self.text.get(section, [])))


@pytest.fixture(scope="module")
def base_html(base_run):
    opt, sc, r, a = base_run
    text = render_html(r, sc, opt.data, a).decode("utf-8")
    return text, Page(text)


def test_html_has_every_section(base_html):
    _, page = base_html
    for sid in ("answer", "question", "portfolio", "limits", "charts", "why", "budget-value",
                "limit-value", "regret", "forced", "alternatives", "sure", "provenance"):
        assert sid in page.ids, sid


def test_html_answer_and_portfolio_equal_the_result(base_run, base_html):
    opt, sc, r, a = base_run
    text, page = base_html
    t = r.totals
    answer = page.words("answer")
    assert (f"Back {len(r.selected)} projects in {len({p.country for p in r.selected})} "
            f"countries for US${sum(p.cost_musd for p in r.selected):,.0f} M") in answer
    assert f"KABIL {t.kabil_musd:,.0f}, US partners {t.us_musd:,.0f}" in answer
    inr = t.npv_musd * 84 / 10  # the data's convention, US$1 = INR 84; 1 crore = 1e7 rupees
    assert f"NPV US${t.npv_musd:,.0f} M (INR {inr:,.0f} crore); proven optimal" in answer
    rows = {key[1] for key in page.cells if key[0] == "portfolio-table"}
    assert rows == {p.project_id for p in r.selected} | {"TOTAL", "TOTAL-INR"}
    for col in ("cost_musd", "kabil_musd", "us_musd", "npv_musd"):  # the totals in INR crore
        assert page.cells["portfolio-table", "TOTAL-INR", col] == pytest.approx(
            getattr(t, col) * 8.4)
    for p in r.selected:
        for col in ("stake", "cost_musd", "kabil_musd", "us_musd", "npv_musd"):
            assert page.cells["portfolio-table", p.project_id, col] == pytest.approx(
                getattr(p, col), rel=1e-12), (p.project_id, col)
        for m, v in p.output_t.items():
            assert page.cells["portfolio-table", p.project_id, f"output_t.{m}"] == \
                pytest.approx(v, rel=1e-12)
    for col in ("cost_musd", "kabil_musd", "us_musd", "npv_musd", "avg_risk"):
        assert page.cells["portfolio-table", "TOTAL", col] == pytest.approx(getattr(t, col))
    for m in t.output_t:  # every product the result has, not a fixed three
        assert page.cells["portfolio-table", "TOTAL", f"output_t.{m}"] == pytest.approx(
            t.output_t[m])
    # the displayed figures are those numbers, formatted
    assert f"{t.cost_musd:,.1f}" in page.words("portfolio")


def test_html_limits_equal_scenario_and_result(base_run, base_html):
    _, sc, r, _ = base_run
    text, page = base_html
    lim = {k[1]: v for k, v in page.cells.items() if k[0] == "limits-table" and k[2] == "limit"}
    val = {k[1]: v for k, v in page.cells.items() if k[0] == "limits-table" and k[2] == "value"}
    assert lim["budget_musd"] == sc.budget_musd and val["budget_musd"] == pytest.approx(
        r.totals.cost_musd)
    assert lim["kabil_budget_musd"] == sc.kabil_budget_musd
    assert val["kabil_budget_musd"] == pytest.approx(r.totals.kabil_musd)
    assert lim["us_budget_musd"] == sc.us_budget_musd
    for k, cap in enumerate(sc.annual_budget_musd):
        assert lim[f"annual_budget_musd.{k}"] == cap
        assert val[f"annual_budget_musd.{k}"] == pytest.approx(r.totals.annual_musd[k])
    top = max(r.totals.by_country_musd.values()) / r.totals.cost_musd
    assert val["max_country_share"] == pytest.approx(top)
    assert val["min_countries"] == r.totals.n_countries
    assert val["max_avg_risk"] == pytest.approx(r.totals.avg_risk)
    binding_rows = set(re.findall(r'<tr data-field="([^"]+)" class="binding"', text))
    assert binding_rows == limit_rows_of(r.binding)


def test_html_sensitivity_and_alternatives_equal_the_analysis(base_run, base_html):
    _, sc, r, a = base_run
    _, page = base_html
    assert page.cells["", "", "budget-minus"] == pytest.approx(a.budget.minus.change)
    for p in a.budget.curve:
        key = ("budget-table", repr(p.budget_musd), "objective")
        assert page.cells[key] == pytest.approx(p.objective)
    for lv in a.limits:
        assert page.cells["limit-value-table", lv.field, "gain"] == pytest.approx(lv.gain)
    for e in a.regrets:
        assert page.cells["regret-table", e.project_id, "loss"] == pytest.approx(e.loss)
    for e in a.forced:
        assert page.cells["forced-table", e.project_id, "loss"] == pytest.approx(e.loss)
    for alt in a.alternatives:
        assert page.cells["alternatives-table", str(alt.rank), "objective"] == pytest.approx(
            alt.objective)
        assert page.cells["alternatives-table", str(alt.rank), "moved_musd"] == pytest.approx(
            alt.moved_musd)
    why = page.words("why")
    assert f"{a.resolves} re-solves" in why and "How:" in why
    sure = page.words("sure")
    assert "proven optimal" in sure and r.solver.version in sure
    assert page.cells["sure-table", "", "sure-bound"] == pytest.approx(r.best_bound)
    assert page.cells["sure-table", "", "sure-gap"] == pytest.approx(r.mip_gap)


def test_html_question_and_provenance(base_run, base_html):
    opt, sc, r, _ = base_run
    _, page = base_html
    q = page.words("question")
    assert (f"a total budget of US${sc.budget_musd:,.0f} M (INR {sc.budget_musd * 8.4:,.0f} "
            "crore)") in q
    for k, cap in enumerate(sc.annual_budget_musd):
        assert f"a spending cap of US${cap:,.0f} M in plan year {k + 1}" in q
    assert f"a KABIL budget of US${sc.kabil_budget_musd:,.0f} M" in q
    assert f"no country above {sc.max_country_share * 100:.0f} %" in q
    assert f"at least {sc.min_countries} host countries" in q
    assert "maximise the portfolio's NPV" in q
    if sc.max_chinese_ownership is not None:
        assert f"more than {sc.max_chinese_ownership * 100:.0f} % Chinese-owned" in q
    prov = page.words("provenance")
    assert r.provenance.dataset_sha256 in prov and r.provenance.scenario_sha256 in prov
    assert f"{opt.data.n} candidate projects" in prov
    for p in r.selected:
        assert p.project_id in prov  # the source of every chosen project is listed


def test_html_is_self_contained(base_html):
    text, page = base_html
    assert all(v.startswith("#") for _, _, v in page.links), page.links
    assert not re.search(r"<script|<link|<iframe|<object|<embed|@import", text, re.I)
    assert not re.search(r"url\(\s*['\"]?(?!#)", text)  # CSS may only point inside the page
    assert not re.search(r"(?:src|href)\s*=\s*['\"]?\s*(?:https?:|//|ftp:|file:)", text, re.I)


def test_html_charts_are_inline_svg(base_html):
    _, page = base_html
    assert page.svgs.get("charts", 0) >= 6  # country, mineral, lead, offtake, risk, annual
    assert page.svgs.get("why", 0) == 1  # the budget curve
    assert page.shapes > 100
    for cid in ("chart-country", "chart-mineral", "chart-lead", "chart-offtake",
                "chart-risk", "chart-annual", "chart-budget"):
        assert cid in page.ids


def test_text_summary(base_run):
    opt, sc, r, a = base_run
    text = render_text(r, sc, opt.data, a)
    assert text.startswith(f"Scenario 'base': Back {len(r.selected)} projects")
    assert "proven optimal" in text and f"{a.resolves} re-solves" in text
    assert len(text.splitlines()) <= 20


# --- Excel -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_xlsx(base_run):
    opt, sc, r, a = base_run
    raw = render_xlsx(r, sc, opt.data, a)
    return raw, openpyxl.load_workbook(io.BytesIO(raw), data_only=True)


def table_rows(ws, name: str) -> list[dict]:
    """The rows of Excel table ``name`` as dicts keyed by its headers (no totals row)."""
    t = ws.tables[name]
    cells = list(ws[t.ref])
    head = [c.value for c in cells[0]]
    body = cells[1:-1] if t.totalsRowCount else cells[1:]
    return [dict(zip(head, (c for c in row), strict=True)) for row in body]


def test_xlsx_sheets_frozen_filtered(base_xlsx):
    _, wb = base_xlsx
    assert wb.sheetnames == SHEETS
    for ws in wb:
        assert ws.freeze_panes is not None, ws.title
        assert ws.tables, ws.title
        for t in ws.tables.values():
            assert t.autoFilter is not None, (ws.title, t.name)


def test_xlsx_portfolio_equals_the_result(base_run, base_xlsx):
    _, _, r, _ = base_run
    _, wb = base_xlsx
    ws = wb["Portfolio"]
    rows = table_rows(ws, "Portfolio")
    assert [row["Project"].value for row in rows] == [p.project_id for p in r.selected]
    for row, p in zip(rows, r.selected, strict=True):
        assert row["Stake"].value == pytest.approx(p.stake, rel=1e-12)
        assert row["Stake"].number_format == "0.0%"
        assert row["Cost (US$ M)"].value == pytest.approx(p.cost_musd, rel=1e-12)
        assert row["Cost (US$ M)"].number_format == "#,##0.0"
        assert isinstance(row["Cost (US$ M)"].value, (int, float))  # a number, not text
        assert row["KABIL (US$ M)"].value == pytest.approx(p.kabil_musd, rel=1e-12)
        assert row["US partners (US$ M)"].value == pytest.approx(p.us_musd, rel=1e-12)
        assert row["NPV (US$ M)"].value == pytest.approx(p.npv_musd, rel=1e-12)
        outs = [v for k, v in row.items() if k.endswith(")") and "t/y" in k]
        assert [c.value for c in outs] == pytest.approx(list(p.output_t.values()))
    t = ws.tables["Portfolio"]
    cells = list(ws[t.ref])
    head = [c.value for c in cells[0]]
    below = cells[-1][0].row + 1  # the totals row under the table
    tot = {h: ws.cell(below, c.column).value for h, c in zip(head, cells[0], strict=True)}
    assert tot["Project"] == "Total"
    assert tot["Cost (US$ M)"] == pytest.approx(r.totals.cost_musd)
    assert tot["KABIL (US$ M)"] == pytest.approx(r.totals.kabil_musd)
    assert tot["NPV (US$ M)"] == pytest.approx(r.totals.npv_musd)
    raw, _ = base_xlsx
    formulas = openpyxl.load_workbook(io.BytesIO(raw))["Portfolio"]  # live formulas, too
    col = head.index("Cost (US$ M)") + 1
    letter = openpyxl.utils.get_column_letter(col)
    assert formulas.cell(below, col).value == f"=SUM({letter}2:{letter}{below - 1})"


def test_xlsx_summary_limits_and_provenance(base_run, base_xlsx):
    opt, sc, r, _ = base_run
    _, wb = base_xlsx
    key = {row["Key figure"].value: row["Value"] for row in table_rows(wb["Summary"],
                                                                      "KeyFigures")}
    assert key["Total cost (US$ M)"].value == pytest.approx(r.totals.cost_musd)
    assert key["Total cost (US$ M)"].number_format == "#,##0.0"
    assert key["KABIL pays (US$ M)"].value == pytest.approx(r.totals.kabil_musd)
    assert key["US partners pay (US$ M)"].value == pytest.approx(r.totals.us_musd)
    assert key["Objective"].value == pytest.approx(r.objective)
    assert key["Gap"].value == pytest.approx(r.mip_gap) and "%" in key["Gap"].number_format
    assert key["Projects"].value == len(r.selected)
    by = {row["Country"].value: row["Total (US$ M)"].value
          for row in table_rows(wb["Summary"], "ByCountry")}
    from optimizer.reports.facts import country_name

    assert by == pytest.approx({country_name(k): v for k, v in r.totals.by_country_musd.items()})
    lim = {row["Scenario field"].value: row for row in table_rows(wb["Limits"], "Limits")}
    assert lim["budget_musd"]["Scenario value"].value == sc.budget_musd
    assert lim["budget_musd"]["Portfolio value"].value == pytest.approx(r.totals.cost_musd)
    assert lim["max_avg_risk"]["Portfolio value"].value == pytest.approx(r.totals.avg_risk)
    assert lim["max_country_share"]["Scenario value"].number_format == "0.0%"
    assert {f for f, row in lim.items() if row["Binding"].value == "binding"} == \
        limit_rows_of(r.binding)
    prov = {row["Item"].value: row["Value"].value
            for row in table_rows(wb["Provenance"], "Provenance")}
    assert prov["Dataset SHA-256"] == r.provenance.dataset_sha256
    assert prov["Dataset rows"] == opt.data.n
    assert prov["Scenario SHA-256"] == r.provenance.scenario_sha256
    data = table_rows(wb["Data"], "Data")
    assert len(data) == opt.data.n
    assert {row["project_id"].value for row in data if row["chosen"].value == "yes"} == \
        {p.project_id for p in r.selected}


def test_xlsx_sensitivity_and_alternatives_equal_the_analysis(base_run, base_xlsx):
    _, _, r, a = base_run
    _, wb = base_xlsx
    ws = wb["Sensitivity"]
    curve = table_rows(ws, "BudgetCurve")
    assert [row["Budget (US$ M)"].value for row in curve] == [p.budget_musd for p in a.budget.curve]
    assert [row["Objective"].value for row in curve] == pytest.approx(
        [p.objective for p in a.budget.curve])
    reg = {row["Project"].value: row["Loss"].value for row in table_rows(ws, "Regret")}
    assert reg == pytest.approx({e.project_id: e.loss for e in a.regrets})
    lv = {row["Scenario field"].value: row["Gain"].value for row in table_rows(ws, "LimitValue")}
    assert lv == pytest.approx({x.field: x.gain for x in a.limits})
    alts = table_rows(wb["Alternatives"], "Alternatives")
    assert alts[0]["Objective"].value == pytest.approx(r.objective)
    assert [row["Objective"].value for row in alts[1:]] == pytest.approx(
        [x.objective for x in a.alternatives])


def test_xlsx_charts_are_native(base_xlsx):
    raw, _ = base_xlsx
    z = zipfile.ZipFile(io.BytesIO(raw))
    names = z.namelist()
    charts = [n for n in names if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
    assert len(charts) >= 7  # country, mineral, lead, annual, offtake, risk, budget, regret
    assert not [n for n in names if n.startswith("xl/media/")]  # no pictures
    kinds = "".join(z.read(n).decode() for n in charts)
    for kind in ("<c:barChart>", "<c:scatterChart>", "<c:lineChart>"):
        assert kind in kinds


# --- infeasible and time-limited runs ------------------------------------------------------


def test_reports_of_an_infeasible_run(tiny_opt):
    sc = scenario(budget_musd=50, min_output_t={"tantalum": 50})
    r = tiny_opt.solve(sc)
    assert r.status == "infeasible"
    a = analyse(tiny_opt, sc, r)
    text = render_html(r, sc, tiny_opt.data, a).decode()
    page = Page(text)
    assert "diagnosis" in page.ids and "portfolio" not in page.ids and "why" not in page.ids
    diag = page.words("diagnosis")
    assert r.diagnosis.message in diag
    for fx in r.diagnosis.fixes:
        assert fx["change"] in diag
    for c in r.diagnosis.conflicts:
        assert f"({c})" in diag
    assert "No portfolio meets every limit" in page.words("answer")
    assert set(re.findall(r'<tr data-field="([^"]+)" class="conflict"', text)) == set(
        r.diagnosis.conflicts)
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(r, sc, tiny_opt.data, a)),
                                data_only=True)
    assert wb.sheetnames == SHEETS
    cells = [c.value for row in wb["Summary"].iter_rows() for c in row if c.value]
    for fx in r.diagnosis.fixes:
        assert fx["change"] in cells
    assert "Fix (any one alone)" in cells


def test_reports_of_a_run_stopped_at_its_time_limit():
    data, budget = subset_sum(80)
    opt = Optimizer(data)
    sc = scenario(budget_musd=budget, min_output_t={"ree": 1.0},
                  solver={"time_limit_s": 0.5, "mip_gap": 0})
    r = opt.solve(sc)
    assert r.status == "feasible" and r.mip_gap > 0
    a = analyse(opt, sc, r, AnalysisSettings(time_budget_s=1.0, resolve_time_limit_s=0.2,
                                             alternatives=0))
    page = Page(render_html(r, sc, data, a).decode())
    words = f"within {r.mip_gap * 100:.2g} % of the best possible"
    assert words in page.words("answer") and words in page.words("sure")
    assert page.cells["sure-table", "", "sure-bound"] == pytest.approx(r.best_bound)
    assert "may not be the best" in page.words("why")
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(r, sc, data, a)), data_only=True)
    key = {row["Key figure"].value: row["Value"].value
           for row in table_rows(wb["Summary"], "KeyFigures")}
    assert key["Best bound"] == pytest.approx(r.best_bound)
    assert key["Gap"] == pytest.approx(r.mip_gap)


def test_stored_run_renders_the_same_report_from_json(base_run):
    """A stored run (result, scenario, rows and analysis as JSON) gives the very report the
    live objects give, without solving."""
    import json

    from optimizer.reports.stored import render_stored

    opt, sc, r, a = base_run
    stored = {k: json.loads(json.dumps(v)) for k, v in {
        "result": r.model_dump(mode="json"), "scenario": sc.model_dump(mode="json"),
        "rows": opt.data.records(), "analysis": a.model_dump(mode="json")}.items()}
    live = render_html(r, sc, opt.data, a, generated="2026-01-01 00:00 UTC")
    again = render_stored("html", stored["result"], stored["scenario"], stored["rows"],
                          stored["analysis"], generated="2026-01-01 00:00 UTC")
    assert again == live
    wb = openpyxl.load_workbook(io.BytesIO(render_stored(
        "xlsx", stored["result"], stored["scenario"], stored["rows"], stored["analysis"])))
    assert wb.sheetnames == SHEETS
    with pytest.raises(ValueError, match="not the one"):
        render_stored("html", stored["result"], stored["scenario"], TINY_ROWS, None)


def test_user_text_stays_text(tiny_opt):
    """A scenario name or description that looks like a formula or markup is shown as text in
    both reports (no formula injection in Excel, no markup in HTML)."""
    sc = scenario(name="=HYPERLINK(\"http://x.example\",\"y\")",
                  description="<script>alert(1)</script> & =1+1", budget_musd=120)
    r = tiny_opt.solve(sc)
    html = render_html(r, sc, tiny_opt.data).decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="http' not in html
    raw = render_xlsx(r, sc, tiny_opt.data)
    wb = openpyxl.load_workbook(io.BytesIO(raw))  # formulas as written, not values
    cells = [c for ws in wb for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and ("HYPERLINK" in c.value or "=1+1" in c.value)]
    assert cells and all(c.data_type == "s" for c in cells)
