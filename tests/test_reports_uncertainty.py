"""How sure the money is (CONTRACT 7a): a run report's uncertainty figures equal an
independent evaluation of the reported stakes on the draws ``python -m optimizer draws``
writes; the Excel sheet `Uncertainty` holds one row per draw; a run solved under uncertainty
shows the face-value optimum beside it on fresh draws."""

from __future__ import annotations

import io
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest

from optimizer import Optimizer, load_projects, load_scenario
from optimizer.reports.excel import render_xlsx
from optimizer.reports.html import render_html

from .conftest import INPUTS, run_cli


def independent(result, data, sc, draws: pd.DataFrame) -> dict:
    """NPV per draw and caps held, from the draws table and the data (numpy, no library)."""
    f = data.frame.set_index("project_id")
    stake = {p.project_id: p.stake for p in result.selected}
    d = draws[draws.project_id.isin(stake)].copy()
    d["stake"] = d.project_id.map(stake)
    eq = d.project_id.map(f["equity_value_musd"])
    value = d.project_id.map(f["npv_musd"]) + eq
    d["npv"] = (d.available * value * d.price - eq * d.overrun) * d.stake
    d["paid"] = eq * d.overrun * d.stake + d.project_id.map(f["deal_cost_musd"])
    india = d.project_id.map(f["india_share"])
    years = [c for c in f.columns if c.startswith("spend_share_")]
    deal = sum(f.loc[p, "deal_cost_musd"] for p in stake)
    per = d.groupby("draw")
    npv = per.npv.sum() - deal
    ok = per.paid.sum() <= sc.budget_musd * (1 + 1e-9)
    if sc.kabil_budget_musd is not None:
        ok &= (d.paid * india).groupby(d.draw).sum() <= sc.kabil_budget_musd * (1 + 1e-9)
    if sc.us_budget_musd is not None:
        ok &= (d.paid * (1 - india)).groupby(d.draw).sum() <= sc.us_budget_musd * (1 + 1e-9)
    for k, cap in enumerate(sc.annual_budget_musd or []):
        if cap is not None and k < len(years):
            share = d.project_id.map(f[years[k]])
            ok &= (d.paid * share).groupby(d.draw).sum() <= cap * (1 + 1e-9)
    return {"npv": npv.to_numpy(), "within": ok.to_numpy()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("draws") / "draws.csv"
    p = run_cli("draws", "--out", str(out))
    assert p.returncode == 0, p.stderr
    data = load_projects(INPUTS / "projects.csv")
    sc = load_scenario(INPUTS / "scenarios" / "base.json")
    r = Optimizer(data).solve(sc)
    return data, sc, r, pd.read_csv(out), independent(r, data, sc, pd.read_csv(out))


def test_html_figures_equal_an_independent_evaluation(base):
    data, sc, r, draws, ind = base
    text = render_html(r, sc, data).decode()
    row = re.search(r'<tr data-row="portfolio">(.*?)</tr>', text, re.S).group(1)
    got = [float(v) for v in re.findall(r'data-value="([^"]+)"', row)]
    npv = ind["npv"]
    k = int(0.1 * len(npv))  # CVaR at 10 % of 1,000 draws: the mean of the worst 100
    want = [np.quantile(npv, 0.05), np.quantile(npv, 0.5), npv.mean(), np.quantile(npv, 0.95),
            np.sort(npv)[:k].mean(), ind["within"].mean()]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert "1,000 draws of the data&#39;s default uncertainty model" in text
    assert len(draws) == 1000 * data.n


def test_excel_sheet_has_every_draw(base):
    data, sc, r, draws, ind = base
    wb = openpyxl.load_workbook(io.BytesIO(render_xlsx(r, sc, data)))
    ws = wb["Uncertainty"]
    head = [c.value for c in ws[1][:3]]
    assert head == ["draw", "npv_musd", "within_caps"]
    rows = list(ws.iter_rows(min_row=2, max_col=3, values_only=True))
    assert [int(d) for d, _, _ in rows] == sorted(draws.draw.unique().tolist())
    assert np.array([v for _, v, _ in rows]) == pytest.approx(ind["npv"], rel=1e-12)
    assert [w for _, _, w in rows] == ind["within"].tolist()


def test_a_run_under_uncertainty_is_shown_beside_the_face_value_one():
    data = load_projects(INPUTS / "projects.csv")
    sc = load_scenario(INPUTS / "scenarios" / "base.json").model_dump()
    sc.update(objective="mean_cvar", uncertainty={"draws": 100, "seed": 2, "fresh_draws": 200})
    sc = load_scenario(sc)
    r = Optimizer(data).solve(sc)
    text = render_html(r, sc, data).decode()
    o = r.uncertainty.out_of_sample
    assert 'id="uncertainty-fresh"' in text and 'id="vss"' in text
    assert f"{o.vss:+,.1f}" in text
    # the sample shown is the scenario's own: its in-sample mean
    row = re.search(r'<tr data-row="portfolio">(.*?)</tr>', text, re.S).group(1)
    mean = float(re.findall(r'data-value="([^"]+)"', row)[2])
    assert mean == pytest.approx(r.uncertainty.mean, rel=1e-12)
