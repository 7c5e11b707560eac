"""Reports that answer the committee's question (issue 16): the reader's currency, which figures
to doubt, flags, assets really left out, offtake against a reference, batch reports (Monte Carlo
breaks, grids, frontiers, every row), the comparison pack, the index, file modes and progress.
Every figure is checked against an independent computation from the result, the data or the
batch folder's own rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import openpyxl
import pandas as pd
import pytest

from optimizer import Optimizer, load_projects, load_scenario, optimize
from optimizer.data import validate_projects
from optimizer.errors import InputError
from optimizer.reports import analyse
from optimizer.reports.batch import load_batch
from optimizer.reports.excel import render_batch_xlsx, render_xlsx
from optimizer.reports.facts import Currency, facts
from optimizer.reports.html import environment, render_batch_html, render_html

from .conftest import INPUTS, ROOT, TINY_ROWS, run_cli, scenario
from .test_reports import Page, table_rows

TODAY = dt.date(2026, 12, 5)

# The tiny table plus D: a money-losing Canadian deal that a four-country rule needs, partly
# Chinese-owned; study dates and levels on every row.
D = dict(project_id="D", name="Delta", country="CA", mineral="niobium", partner="US",
         india_share=0.0, equity_value_musd=20, min_stake=1.0, max_stake=1.0, deal_cost_musd=0,
         npv_musd=-5, output_tantalum_t=0, output_niobium_t=500, output_ree_t=0, risk_score=3,
         china_processing=False, spend_share_1=1.0, spend_share_2=0.0, chinese_ownership=0.4)
LEVELS = {"A": ("2020-01", "pfs"), "B": ("2025-06", "pea"), "C": ("", ""),
          "D": ("2026-01-15", "producing")}


@pytest.fixture(scope="module")
def four():
    rows = [dict(r) for r in TINY_ROWS] + [dict(D)]
    for r in rows:
        r["as_of"], r["study_level"] = LEVELS[r["project_id"]]
    data = validate_projects(pd.DataFrame(rows))
    opt = Optimizer(data)
    sc = scenario(budget_musd=220, min_countries=4, max_chinese_ownership=0.5,
                  description="Can the committee hold four host countries within the budget? "
                  "The rest is background, folded away.")
    r = opt.solve(sc)
    assert r.status == "optimal" and {p.project_id for p in r.selected} == {"A", "B", "C", "D"}
    return opt, sc, r, analyse(opt, sc, r)


# --- the reader's currency -----------------------------------------------------------------


def test_inr_crore_is_us_millions_times_rate_over_ten(monkeypatch):
    c = Currency()
    assert c.inr_per_usd == 84  # inputs/facts/parameters.csv inr_per_usd
    assert c.crore(1000) == pytest.approx(8400)  # US$1bn = INR 84bn = 8,400 crore
    assert c.inr(1488.8) == "INR 12,506 crore"
    monkeypatch.setenv("OPTIMIZER_INR_PER_USD", "86.5")
    monkeypatch.setenv("OPTIMIZER_INR_RATE_DATE", "2026-11-30")
    env = Currency.from_env()
    assert env.crore(100) == pytest.approx(865) and "2026-11-30" in env.statement
    monkeypatch.setenv("OPTIMIZER_INR_PER_USD", "eighty")
    with pytest.raises(InputError, match="OPTIMIZER_INR_PER_USD"):
        Currency.from_env()
    with pytest.raises(InputError, match="INR per US"):
        Currency(0.0)


def test_html_states_inr_beside_every_total_once(four):
    opt, sc, r, a = four
    cur = Currency(90.0, "2026-12-01", "a test")
    text = render_html(r, sc, opt.data, a, currency=cur, today=TODAY).decode()
    page = Page(text)
    t = r.totals
    for kf, v in (("kf-cost-inr", t.cost_musd), ("kf-npv-inr", t.npv_musd),
                  ("kf-kabil-inr", t.kabil_musd), ("kf-us-inr", t.us_musd)):
        assert page.cells["", "", kf] == pytest.approx(v * 9.0)
    for col in ("cost_musd", "kabil_musd", "us_musd", "npv_musd"):
        assert page.cells["portfolio-table", "TOTAL-INR", col] == pytest.approx(
            getattr(t, col) * 9.0)
    assert text.count("US$1 = INR 90 (2026-12-01; a test)") == 1  # stated once
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(r, sc, opt.data, a, currency=cur)),
                                data_only=True)
    key = {row["Key figure"].value: row["Value"].value
           for row in table_rows(wb["Summary"], "KeyFigures")}
    assert key["Total cost (INR crore)"] == pytest.approx(t.cost_musd * 9.0)
    assert key["Portfolio NPV (INR crore)"] == pytest.approx(t.npv_musd * 9.0)


def test_cli_rate_option(tmp_path):
    out = tmp_path / "r.html"
    p = run_cli("report", "--format", "html", "--out", str(out), "--alternatives", "0",
                "--inr-per-usd", "88", "--inr-rate-date", "2026-12-01")
    assert p.returncode == 0, p.stderr
    assert "US$1 = INR 88 (2026-12-01; set by --inr-per-usd)" in out.read_text()
    p = run_cli("report", "--format", "html", "--out", str(out), "--inr-rate-date", "x")
    assert p.returncode == 2 and "--inr-rate-date needs --inr-per-usd" in p.stderr


# --- which figures to doubt, flags, the question ---------------------------------------------


def test_doubts_dates_levels_and_the_weak_share(four):
    opt, sc, r, a = four
    fx = facts(r, sc, opt.data, a, today=TODAY)
    npv = {p.project_id: p.npv_musd for p in r.selected}
    # PEA-level or estimated: B (pea) and C (empty level reads as estimate)
    weak = npv["B"] + npv["C"]
    assert fx.doubts.weak_npv_musd == pytest.approx(weak)
    assert fx.doubts.weak_share == pytest.approx(weak / sum(npv.values()))
    rows = {d.project_id: d for d in fx.doubts.rows}
    assert rows["C"].as_of_text == "undated" and rows["C"].study_level == "estimate"
    assert any("undated" in w for w in rows["C"].warnings)
    assert any("6.9 years old" in w for w in rows["A"].warnings)  # 2020-01 to 2026-12-05
    assert not any("old" in w for w in rows["D"].warnings)
    assert rows["D"].warnings == []  # producing, dated this year
    page = Page(render_html(r, sc, opt.data, a, today=TODAY).decode())
    assert page.cells["", "", "weak-share"] == pytest.approx(weak / sum(npv.values()))
    assert "undated" in page.words("doubts") and "PEA (preliminary economic" in \
        page.words("doubts")


def test_shipped_data_without_dates_reads_undated_and_estimated():
    data = load_projects(INPUTS / "projects.csv")
    opt = Optimizer(data)
    sc = load_scenario(INPUTS / "scenarios" / "base.json")
    r = opt.solve(sc)
    fx = facts(r, sc, data, today=TODAY)
    levels = dict(zip(data.frame["project_id"], data.frame["study_level"], strict=True))
    weak = sum(p.npv_musd for p in r.selected if levels[p.project_id] in
               ("pea", "scoping", "estimate"))
    assert fx.doubts.weak_share == pytest.approx(weak / r.totals.npv_musd)
    dated = dict(zip(data.frame["project_id"], data.frame["as_of"].notna(), strict=True))
    assert fx.doubts.n_undated == sum(not dated[p.project_id] for p in r.selected)


def test_flags_negative_npv_and_chinese_ownership(four):
    opt, sc, r, a = four
    fx = facts(r, sc, opt.data, a, today=TODAY)
    by = {(f.kind, f.project_id): f.text for f in fx.flags}
    assert set(by) == {("negative_npv", "D"), ("chinese_ownership", "D")}
    why = by["negative_npv", "D"]
    assert "the only holding in Canada, one of the 4 host countries required" in why
    # the regret re-solve agrees: without D no portfolio meets the four-country rule
    again = Optimizer(opt.data).solve(sc.model_copy(update={"exclude_projects": ["D"]}))
    assert again.status == "infeasible" and "no portfolio meets the scenario" in why
    assert "40.0 %" in by["chinese_ownership", "D"] and "10 points under" in \
        by["chinese_ownership", "D"]


def test_flag_columns_are_read_when_the_table_has_them(four):
    """CONTRACT section 1 has no conflict or sanctions column yet; when the table carries
    one, the report flags the holdings it marks."""
    opt, sc, r, a = four
    data = opt.data
    frame = data.frame.copy()
    frame["conflict_affected"] = [pid == "B" for pid in frame["project_id"]]
    fx = facts(r, sc, dataclasses.replace(data, frame=frame), a, today=TODAY)
    assert [f.project_id for f in fx.flags if f.kind == "conflict_affected"] == ["B"]


def test_question_paragraph_and_folded_backstory(four):
    opt, sc, r, a = four
    text = render_html(r, sc, opt.data, a, today=TODAY).decode()
    page = Page(text)
    assert "Can the committee hold four host countries within the budget?" in \
        page.words("answer")
    assert re.search(r"<details class=\"backstory\"><summary>[^<]*</summary><p>The rest is "
                     r"background", text)
    for term in ("TREO", "NdPr", "Dy+Tb", "Binding", "Regret", "Robust core", "CVaR",
                 "Alternatives"):
        assert f"<dt>{term}</dt>" in text


def test_supply_objective_names_its_unit(tiny_opt):
    sc = scenario(budget_musd=120, objective="supply")
    r = tiny_opt.solve(sc)
    page = Page(render_html(r, sc, tiny_opt.data, analyse(tiny_opt, sc, r)).decode())
    unit = "t/y of oxide (Ta2O5 + Nb2O5 + TREO)"
    assert unit in page.words("answer") and unit in page.words("sure")
    assert unit in page.words("why")


# --- assets really left out; offtake against a reference ------------------------------------


def test_forced_in_are_assets_left_out_not_other_structures():
    data = load_projects(INPUTS / "projects.csv")
    opt = Optimizer(data)
    sc = load_scenario(INPUTS / "scenarios" / "base.json")
    r = opt.solve(sc)
    a = analyse(opt, sc, r)
    f = data.frame.set_index("project_id")
    group = f["exclusive_group"].fillna("")
    chosen = {p.project_id for p in r.selected}
    backed = {group[p] for p in chosen if group[p]}
    tried = [e.project_id for e in a.forced]
    assert tried and all(group[p] == "" or group[p] not in backed for p in tried)
    assert len({group[p] for p in tried if group[p]}) == sum(bool(group[p]) for p in tried)
    # independently: the best 3 allowed rows by own NPV, one structure per asset left out
    own = {pid: f.at[pid, "npv_musd"] * f.at[pid, "max_stake"] - f.at[pid, "deal_cost_musd"]
           for pid in f.index if pid not in chosen and (not group[pid] or group[pid] not in
                                                        backed)
           and f.at[pid, "chinese_ownership"] <= sc.max_chinese_ownership}
    best: dict[str, str] = {}
    for pid in sorted(own, key=lambda p: -own[p]):
        best.setdefault(group[pid] or pid, pid)
    assert sorted(tried) == sorted(sorted(best.values(), key=lambda p: -own[p])[:3])


def test_offtake_chart_has_a_reference_and_an_axis(tiny_opt):
    sc = scenario(budget_musd=200, min_output_t={"ree": 1500})
    r = tiny_opt.solve(sc)
    page_text = render_html(r, sc, tiny_opt.data).decode()
    fig = re.search(r'<figure id="chart-offtake">(.*?)</figure>', page_text, re.S).group(1)
    assert "% of the floor" in fig and "world mine production 2024" in fig
    ree = r.totals.output_t["ree"]
    assert f"{100 * ree / 1500:,.1f} % of 1,500" in fig
    ta = r.totals.output_t["tantalum"]
    assert f"{100 * ta / (2100 * 1.2211):,.1f} % of 2,564" in fig  # USGS 2024, as Ta2O5
    assert re.search(r"<text[^>]*>\s*0\s*</text>|>0<", fig)  # tick labels on the axis


# --- Excel: axis titles and names -----------------------------------------------------------


def test_every_excel_chart_has_axis_titles(four):
    opt, sc, r, a = four
    raw = render_xlsx(r, sc, opt.data, a, today=TODAY)
    z = zipfile.ZipFile(io.BytesIO(raw))
    charts = [n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
    assert charts
    for n in charts:
        xml = z.read(n).decode()
        for ax in re.findall(r"<c:(?:valAx|catAx)>.*?</c:(?:valAx|catAx)>", xml, re.S):
            if "<c:delete val=\"1\"/>" in ax:
                continue
            assert "<c:title>" in ax, (n, ax[:200])
    wb = openpyxl.load_workbook(io.BytesIO(raw), data_only=True)
    rows = table_rows(wb["Portfolio"], "Portfolio")
    by = {row["Project"].value: row for row in rows}
    assert by["A"]["Country"].value == "Malawi" and by["A"]["Mineral"].value == "rare earths"
    assert by["A"]["Country code"].value == "MW" and by["C"]["As of"].value == "undated"
    flags = table_rows(wb["Doubts"], "Flags")
    assert {(x["Project"].value, x["Flag"].value) for x in flags} == {
        ("D", "Negative NPV"), ("D", "Chinese ownership")}


# --- batches ----------------------------------------------------------------------------------

BASE = {"name": "base", "budget_musd": 120, "max_country_share": 0.6,
        "solver": {"mip_gap": 1e-9, "time_limit_s": 10}}


def make_batch(tmp_path_factory, name: str, generator: dict):
    from optimizer.batch.runner import run_to_folder

    d = tmp_path_factory.mktemp(name)
    csv_path = d / "projects.csv"
    pd.DataFrame(TINY_ROWS).to_csv(csv_path, index=False)
    spec = d / "spec.json"
    spec.write_text(json.dumps({"name": name, "base": BASE, **generator}))
    run_to_folder(spec, out=d / "out", projects=csv_path, workers=0, progress=False)
    rows = [json.loads(x) for x in (d / "out" / "results.jsonl").read_text().splitlines()
            if x.strip()]
    return d / "out", sorted(rows, key=lambda r: r["index"])


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return make_batch(tmp_path_factory, "grid", {"grid": {
        "budget_musd": [60, 120, 180], "max_country_share": [0.5, 0.7, 1.0]}})


def test_grid_table_equals_the_rows(grid):
    folder, raw = grid
    view = load_batch(folder)
    text = render_batch_html(view).decode()
    cells = re.findall(r'<td data-col="(\d+)" data-index="(\d+)"\s*(?:data-value="([^"]*)")?',
                       text)
    got = {int(i): (None if v == "" else float(v)) for _, i, v in cells}
    want = {r["index"]: r["objective"] if r["status"] in ("optimal", "feasible") else None
            for r in raw}
    assert got.keys() == want.keys()
    for i, v in want.items():
        assert got[i] == (pytest.approx(v) if v is not None else None)
    # each cell sits at its row's (budget, cap): rows = first field, columns = second
    budgets, caps = [60, 120, 180], [0.5, 0.7, 1.0]
    table = re.search(r'<table class="num grid" id="grid-table-0">(.*?)</table>', text, re.S)
    for i, tr in enumerate(re.findall(r"<tr data-row.*?</tr>", table.group(1), re.S)):
        for j, idx in enumerate(re.findall(r'data-index="(\d+)"', tr)):
            sc = raw[int(idx)]["scenario"]
            assert (sc["budget_musd"], sc["max_country_share"]) == (budgets[i], caps[j])
    assert "chart-grid-0" in text
    wb = openpyxl.load_workbook(io.BytesIO(render_batch_xlsx(view)), data_only=True)
    assert "Grid" in wb.sheetnames and "Frontier" not in wb.sheetnames
    ws = wb["Grid"]
    t = list(ws[ws.tables["Grid0"].ref])
    assert [c.value for c in t[0][1:]] == ["0.5", "0.7", "1"]
    by = {(r["scenario"]["budget_musd"], r["scenario"]["max_country_share"]): r["objective"]
          for r in raw}
    for line in t[1:]:
        b = line[0].value
        assert [c.value for c in line[1:]] == pytest.approx([by[b, c] for c in caps])
    # marginal value of the budget per US$100 M, from the rows themselves
    m = list(ws[ws.tables["Marginal0_0"].ref])
    first = [c.value for c in m[1][1:]]
    assert first == pytest.approx([(by[120, c] - by[60, c]) * 100 / 60 for c in caps])


@pytest.fixture(scope="module")
def frontier(tmp_path_factory):
    return make_batch(tmp_path_factory, "frontier", {"frontier": {
        "kind": "budget", "values": [60, 100, 120, 160, 250, 300]}})


def test_frontier_binding_explanations_equal_the_rows(frontier):
    folder, raw = frontier
    text = render_batch_html(load_batch(folder)).decode()
    got = dict(re.findall(r'<tr data-index="(\d+)">.*?data-binding="([^"]*)"', text, re.S))
    for r in raw:
        if r["status"] in ("optimal", "feasible"):
            assert (got[str(r["index"])].split(";") if got[str(r["index"])] else []) == \
                [b["field"] for b in r["binding"]]
    # flat stretches: consecutive points with equal NPV, explained by their rows' limits
    pts = sorted((r for r in raw if r["objective"] is not None),
                 key=lambda r: r["scenario"]["budget_musd"])
    flats = re.findall(r'<li data-low="([^"]+)" data-high="([^"]+)">(.*?)</li>', text, re.S)
    want = []
    k = 0
    while k < len(pts) - 1:
        j = k
        while j + 1 < len(pts) and abs(pts[j + 1]["objective"] - pts[k]["objective"]) < 1e-6:
            j += 1
        if j > k:
            want.append((pts[k]["scenario"]["budget_musd"], pts[j]["scenario"]["budget_musd"],
                         {b["field"] for r in pts[k:j + 1] for b in r["binding"]
                          if b["field"] != "budget_musd"}))
        k = j + 1
    assert want and [(float(lo), float(hi)) for lo, hi, _ in flats] == \
        [(lo, hi) for lo, hi, _ in want]
    for (_, _, words), (_, _, binds) in zip(flats, want, strict=True):
        assert set(re.findall(r"<code>([^<]+)</code>", words)) == binds
        if not binds:
            assert "no scenario limit binds" in words
    # the base scenario's budget (120) is a point: marked, with its NPV
    base = next(r for r in raw if r["scenario"]["budget_musd"] == 120)
    assert f"total budget (US$ M) 120 (NPV {base['objective']:,.1f})" in re.sub(
        r"\s+", " ", re.search(r'<p id="frontier-base">(.*?)</p>', text, re.S).group(1))
    summary = re.search(r'<p class="lead" id="summary-text">(.*?)</p>', text, re.S).group(1)
    assert "median" not in summary


@pytest.fixture(scope="module")
def mc(tmp_path_factory):
    return make_batch(tmp_path_factory, "mc", {"monte_carlo": {
        "draws": 16, "seed": 3, "capex_overrun": {"dist": "triangular", "low": 0.9,
                                                  "mode": 1.0, "high": 1.4},
        "price": {"ree": {"dist": "lognormal", "sigma": 0.3}}}})


def test_monte_carlo_names_the_limits_broken_and_compares_regret_fairly(mc):
    folder, raw = mc
    view = load_batch(folder)
    page = Page(render_batch_html(view).decode())
    over = []
    for r in raw:
        for b in r["base_portfolio"]["broken"]:
            m = re.fullmatch(r"budget_musd: ([0-9.e+-]+) exceeds ([0-9.e+-]+)", b)
            if m:
                over.append(float(m.group(1)) - float(m.group(2)))
    assert over, "the overruns should push the fixed portfolio over the budget in some draws"
    assert page.cells["breaks-table", "budget_musd", "draws"] == len(over)
    assert page.cells["breaks-table", "budget_musd", "share"] == pytest.approx(
        len(over) / len(raw))
    assert page.cells["breaks-table", "budget_musd", "median"] == pytest.approx(
        np.median(over))
    assert page.cells["breaks-table", "budget_musd", "p95"] == pytest.approx(
        np.quantile(over, 0.95))
    within = [r["base_portfolio"]["regret"] for r in raw if r["base_portfolio"]["meets_limits"]]
    q = {k[2]: v for k, v in page.cells.items()
         if k[0] == "quantiles-table" and k[1] == "base_regret_within"}
    if within:
        assert q["p50"] == pytest.approx(np.median(within))
        assert q["p0"] >= -1e-9  # within the limits no draw beats its own optimum
    words = page.words("scenarios")
    assert "rare-earth price factor" in words and "draw.price.ree" in words
    assert not re.search(r"\d\.\d{5,}", words)  # factors rounded
    wb = openpyxl.load_workbook(io.BytesIO(render_batch_xlsx(view)), data_only=True)
    assert "Frontier" not in wb.sheetnames and "Distribution" in wb.sheetnames
    brk = {row["field"].value: row for row in table_rows(wb["Distribution"], "Breaks")}
    assert brk["budget_musd"]["draws"].value == len(over)


def test_every_row_is_reachable(tmp_path_factory):
    folder, raw = make_batch(tmp_path_factory, "many", {"scenarios": [
        {"name": f"b{k}", "budget_musd": 60 + 10 * k} for k in range(15)]})
    page = Page(render_batch_html(load_batch(folder)).decode())
    objs = {k[1]: v for k, v in page.cells.items() if k[0] == "rows-table"}
    assert objs == pytest.approx({str(r["index"]): r["objective"] for r in raw
                                  if r["objective"] is not None})
    assert len(raw) == 15 and "all-rows" in page.ids


# --- the comparison pack --------------------------------------------------------------------


def test_compare_pack_of_the_shipped_scenarios(tmp_path):
    out = tmp_path / "pack.html"
    p = run_cli("report", "--compare", "inputs/scenarios", "--format", "html", "--out",
                str(out))
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    page = Page(text)
    files = sorted((INPUTS / "scenarios").glob("*.json"))
    data = load_projects(INPUTS / "projects.csv")
    opt = Optimizer(data)
    rows = dict(re.findall(r'<tr data-index="(\d+)" data-scenario="([^"]+)"', text))
    assert sorted(rows.values()) == sorted(load_scenario(f).name for f in files)
    for idx, name in rows.items():
        sc = load_scenario(INPUTS / "scenarios" / f"{name}.json")
        r = opt.solve(sc)
        key = ("compare-table", idx, "npv_musd")
        if r.status in ("optimal", "feasible"):
            assert page.cells[key] == pytest.approx(r.totals.npv_musd, rel=1e-6)
        else:
            assert key not in page.cells
    cut = re.search(r'data-scenario="budget_cut_40".*?</tr>', text, re.S).group(0)
    assert "budget_musd: US$1,600 M &rarr; <strong>US$960 M</strong>" in cut
    xlsx = tmp_path / "pack.xlsx"
    p = run_cli("report", "--compare", "inputs/scenarios/base.json",
                "inputs/scenarios/budget_cut_40.json", "--format", "xlsx", "--out", str(xlsx))
    assert p.returncode == 0, p.stderr
    wb = openpyxl.load_workbook(xlsx, data_only=True)
    assert wb.sheetnames == ["Scenarios", "Changes", "Stakes", "Provenance"]
    sc_rows = table_rows(wb["Scenarios"], "Scenarios")
    assert [r["Scenario"].value for r in sc_rows] == ["base", "budget_cut_40"]
    assert sc_rows[0]["Base"].value == "yes"
    p = run_cli("report", "--compare", "no/such/dir", "--format", "html", "--out",
                str(tmp_path / "x.html"))
    assert p.returncode == 2 and "neither a scenario file nor a folder" in p.stderr


# --- the index, file modes, progress, docs ---------------------------------------------------


def index_page(tmp_path) -> Path:
    data = load_projects(INPUTS / "projects.csv")
    opt = Optimizer(data)
    runs = []
    for name, rid in (("base", "a1" * 16), ("base", "b2" * 16), ("supply_value", "c3" * 16)):
        sc = load_scenario(INPUTS / "scenarios" / f"{name}.json")
        r = opt.solve(sc)
        runs.append(SimpleNamespace(run_id=rid, created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                                    scenario_name=sc.name, status=r.status,
                                    scenario=sc.model_dump(mode="json"),
                                    result=r.model_dump(mode="json")))
    html = environment().get_template("index.html.j2").render(
        runs=runs, total=3, limit=50, offset=0, batches=[], generated="now")
    path = tmp_path / "index.html"
    path.write_text(html)
    return path


def test_index_tells_runs_apart(tmp_path):
    text = index_page(tmp_path).read_text()
    assert text.count("<strong>base</strong>") == 2
    assert "a1a1a1a1" in text and "b2b2b2b2" in text  # two runs named base told apart
    base = optimize(INPUTS / "projects.csv", INPUTS / "scenarios" / "base.json")
    crore = f"INR {base.totals.cost_musd * 84 / 10:,.0f} crore"  # US$1 = INR 84 (rule C3)
    assert crore in text and "KABIL + US partners" in text
    assert "weight x t/y (tantalum x 170" in text  # the supply objective's unit


def test_report_files_follow_the_umask(tmp_path):
    sc = tmp_path / "s.json"
    sc.write_text(json.dumps({"budget_musd": 120}))
    csv_path = tmp_path / "p.csv"
    pd.DataFrame(TINY_ROWS).to_csv(csv_path, index=False)
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        out = tmp_path / f"r{mask:o}.html"
        p = subprocess.run(
            ["sh", "-c", f'umask {mask:03o} && exec "$0" "$@"', sys.executable, "-m",
             "optimizer", "report", "--projects", str(csv_path), "--scenario", str(sc),
             "--format", "html", "--out", str(out), "--alternatives", "0"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert out.stat().st_mode & 0o777 == mode


def test_progress_only_past_its_threshold():
    from optimizer.reports.command import Progress

    quiet = io.StringIO()
    with Progress(after=30, stream=quiet) as pr:
        pr("a quick step")
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    with Progress(after=0.05, stream=loud) as pr:
        pr("solving")
        import time

        time.sleep(0.2)  # the timer prints the step in hand once the threshold passes
        pr("writing")
    lines = loud.getvalue().splitlines()
    assert [x.split("] ", 1)[1] for x in lines] == ["solving", "writing", "done"]


def test_the_repository_documents_its_own_interface():
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "docs/contract.md" in readme
    contract = (ROOT / "docs" / "contract.md").read_text()
    for k in range(1, 10):
        assert re.search(rf"^## {k}\. ", contract, re.M), k
    assert "../shared" not in contract and "### 7a." in contract
    for ref in re.findall(r"`(docs/[^`]+)`", readme):
        assert (ROOT / ref).exists(), ref


def test_env_rate_reaches_the_stored_report(monkeypatch, four):
    """The service renders with the environment's rate (OPTIMIZER_INR_PER_USD)."""
    from optimizer.reports.stored import render_stored

    opt, sc, r, a = four
    monkeypatch.setenv("OPTIMIZER_INR_PER_USD", "80")
    text = render_stored("html", r.model_dump(mode="json"), sc.model_dump(mode="json"),
                         opt.data, a.model_dump(mode="json")).decode()
    assert "US$1 = INR 80 (date not stated; set by OPTIMIZER_INR_PER_USD)" in text
    assert os.environ["OPTIMIZER_INR_PER_USD"] == "80"
