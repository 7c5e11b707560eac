"""Reports of batches, read from real output folders of the batch engine (in-process): every
figure checked against the folder's own files (results.jsonl, selection.csv, summary.json)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import openpyxl
import pandas as pd
import pytest

from optimizer.batch.runner import run_to_folder
from optimizer.reports.batch import load_batch
from optimizer.reports.excel import render_batch_xlsx
from optimizer.reports.html import render_batch_html

from .conftest import TINY_ROWS
from .test_cli import run
from .test_reports import Page

BASE = {"name": "base", "budget_musd": 120, "solver": {"mip_gap": 1e-9, "time_limit_s": 10}}


def make_batch(tmp_path_factory, name: str, generator: dict) -> tuple:
    d = tmp_path_factory.mktemp(name)
    csv_path = d / "projects.csv"
    pd.DataFrame(TINY_ROWS).to_csv(csv_path, index=False)
    spec = d / "spec.json"
    spec.write_text(json.dumps({"name": name, "base": BASE, **generator}))
    out = d / "out"
    run_to_folder(spec, out=out, projects=csv_path, workers=0, progress=False)
    return out, load_batch(out)


def stored_rows(folder) -> list[dict]:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()
            if line.strip()]
    return sorted(rows, key=lambda r: r["index"])


@pytest.fixture(scope="module")
def scenarios_batch(tmp_path_factory):
    return make_batch(tmp_path_factory, "what-ifs", {"scenarios": [
        {"name": "cut", "budget_musd": 70},
        {"name": "more", "budget_musd": 200},
        {"name": "impossible", "budget_musd": 50, "min_output_t": {"tantalum": 50}},
    ]})


@pytest.fixture(scope="module")
def frontier_batch(tmp_path_factory):
    return make_batch(tmp_path_factory, "frontier",
                      {"frontier": {"kind": "budget", "low": 60, "high": 300, "points": 5}})


@pytest.fixture(scope="module")
def mc_batch(tmp_path_factory):
    return make_batch(tmp_path_factory, "mc", {"monte_carlo": {
        "draws": 12, "seed": 3, "capex_overrun": {"dist": "triangular", "low": 0.9,
                                                  "mode": 1.0, "high": 1.4}}})


def test_load_batch_equals_the_folder(scenarios_batch):
    folder, view = scenarios_batch
    raw = stored_rows(folder)
    assert [r.index for r in view.rows] == [r["index"] for r in raw] == [0, 1, 2]
    for r, s in zip(view.rows, raw, strict=True):
        assert r.status == s["status"] and r.objective == s["objective"]
        assert r.stakes == {p["project_id"]: p["stake"] for p in s["selected"]}
        assert r.name == s["scenario"]["name"]
    assert view.kind == "scenarios" and view.complete
    assert view.varied == ["budget_musd", "min_output_t.tantalum"]
    assert view.rows[0].varied["budget_musd"] == 70
    bad = view.rows[2]
    assert bad.status == "infeasible" and bad.reason == raw[2]["diagnosis"]["message"]
    with open(folder / "selection.csv", newline="") as fh:
        sel = list(csv.DictReader(fh))
    assert [s["project_id"] for s in view.selection] == [s["project_id"] for s in sel]


def test_batch_html_equals_the_folder(scenarios_batch):
    folder, view = scenarios_batch
    text = render_batch_html(view).decode()
    page = Page(text)
    for sid in ("summary", "selection", "scenarios", "failed", "provenance"):
        assert sid in page.ids, sid
    raw = stored_rows(folder)
    summary = page.words("summary")
    assert "3 scenarios solved: 1 infeasible, 2 optimal." in summary
    failed = page.words("failed")
    assert raw[2]["diagnosis"]["message"] in failed and "impossible" in failed
    shares = {k[1]: val for k, val in page.cells.items()
              if k[0] == "selection-table" and k[2] == "share"}
    assert shares == pytest.approx({s["project_id"]: s["share"] for s in view.selection
                                    if s["chosen"] > 0})
    objs = re.findall(r'<tr data-row="objective">(.*?)</tr>', text, re.S)[0]
    values = [float(x) for x in re.findall(r'data-value="([^"]+)"', objs)]
    assert values == pytest.approx([r["objective"] for r in raw if r["objective"] is not None])
    assert all(v.startswith("#") for _, _, v in page.links)
    assert not re.search(r"<script|<link|@import", text, re.I)


def test_batch_frontier_report(frontier_batch):
    folder, view = frontier_batch
    raw = stored_rows(folder)
    page = Page(render_batch_html(view).decode())
    assert "frontier" in page.ids and "chart-frontier" in page.ids
    assert page.svgs.get("charts", 0) >= 2  # frontier and selection
    objs = {int(k[1]): val for k, val in page.cells.items() if k[0] == "frontier-table"}
    assert objs == pytest.approx({r["index"]: r["objective"] for r in raw
                                  if r["objective"] is not None})
    for r in raw:  # the portfolio at each point
        for p in r["selected"]:
            assert p["project_id"] in page.words("frontier")
    wb = openpyxl.load_workbook(io.BytesIO(render_batch_xlsx(view)), data_only=True)
    assert wb.sheetnames == ["Summary", "Rows", "Selection", "Frontier", "Provenance"]
    ws = wb["Frontier"]
    t = ws.tables["Frontier"]
    cells = list(ws[t.ref])
    pts = [[c.value for c in row] for row in cells[1:]]
    ok = sorted((r for r in raw if r["status"] in ("optimal", "feasible")),
                key=lambda r: r["scenario"]["budget_musd"])
    assert [p[0] for p in pts] == [r["scenario"]["budget_musd"] for r in ok]
    assert [p[2] for p in pts] == pytest.approx([r["objective"] for r in ok])


def test_batch_xlsx_rows_and_selection_equal_the_folder(scenarios_batch):
    folder, view = scenarios_batch
    raw_xlsx = render_batch_xlsx(view)
    wb = openpyxl.load_workbook(io.BytesIO(raw_xlsx), data_only=True)
    for ws in wb:
        assert ws.freeze_panes is not None and ws.tables, ws.title
    ws = wb["Rows"]
    cells = list(ws[ws.tables["Rows"].ref])
    head = [c.value for c in cells[0]]
    rows = [dict(zip(head, (c.value for c in row), strict=True)) for row in cells[1:]]
    raw = stored_rows(folder)
    assert [r["index"] for r in rows] == [r["index"] for r in raw]
    for got, want in zip(rows, raw, strict=True):
        assert got["status"] == want["status"]
        assert got["objective"] == (pytest.approx(want["objective"])
                                    if want["objective"] is not None else None)
        assert (got["selected"] or "") == ";".join(p["project_id"] for p in want["selected"])
        if want["status"] == "infeasible":
            assert got["why no portfolio"] == want["diagnosis"]["message"]
    assert ws.cell(2, head.index("objective") + 1).number_format == "#,##0.000"
    ws = wb["Selection"]
    cells = list(ws[ws.tables["Selection"].ref])
    sel = [(row[0].value, row[2].value) for row in cells[1:]]
    assert sel == [(s["project_id"], pytest.approx(s["share"])) for s in view.selection]
    z = zipfile.ZipFile(io.BytesIO(raw_xlsx))
    assert [n for n in z.namelist() if re.fullmatch(r"xl/charts/chart\d+\.xml", n)]
    assert not [n for n in z.namelist() if n.startswith("xl/media/")]


def test_monte_carlo_distributions(mc_batch):
    folder, view = mc_batch
    raw = stored_rows(folder)
    summary = json.loads((folder / "summary.json").read_text())
    page = Page(render_batch_html(view).decode())
    assert {"chart-objective", "chart-regret", "distribution"} <= page.ids
    q = {(k[1], k[2]): val for k, val in page.cells.items() if k[0] == "quantiles-table"}
    for key, src in (("objective", summary["objective"]),
                     ("base_value", summary["base_portfolio"]["value"]),
                     ("base_regret", summary["base_portfolio"]["regret"])):
        for p in ("p0", "p50", "p100", "mean"):
            assert q[key, p] == pytest.approx(src[p]), (key, p)
    wb = openpyxl.load_workbook(io.BytesIO(render_batch_xlsx(view)), data_only=True)
    assert "Distribution" in wb.sheetnames
    ws = wb["Distribution"]
    cells = list(ws[ws.tables["ObjectiveBins"].ref])
    assert sum(row[2].value for row in cells[1:]) == sum(
        r["objective"] is not None for r in raw)
    regrets = list(ws[ws.tables["RegretBins"].ref])
    assert sum(row[2].value for row in regrets[1:]) == sum(
        (r.get("base_portfolio") or {}).get("regret") is not None for r in raw)


def test_an_unfinished_batch_still_reports(scenarios_batch, tmp_path):
    folder, _ = scenarios_batch
    part = tmp_path / "part"
    part.mkdir()
    (part / "spec.json").write_text((folder / "spec.json").read_text())
    lines = (folder / "results.jsonl").read_text().splitlines()
    (part / "results.jsonl").write_text(lines[0] + "\n" + lines[1][:40])  # a torn last line
    view = load_batch(part)
    assert len(view.rows) == 1 and not view.complete and view.selection
    assert "has not finished" in render_batch_html(view).decode()


def test_report_cli_batch(scenarios_batch, tmp_path):
    folder, view = scenarios_batch
    out = tmp_path / "b.xlsx"
    p = run("report", "--batch", str(folder), "--format", "xlsx", "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "Batch 'what-ifs': 3 rows (1 infeasible, 2 optimal)." in p.stdout
    # a what-if batch has no frontier and no grid: no sheet of either
    assert openpyxl.load_workbook(out).sheetnames == ["Summary", "Rows", "Selection",
                                                      "Provenance"]
    p = run("report", "--batch", str(tmp_path), "--format", "html",
            "--out", str(tmp_path / "x.html"))
    assert p.returncode == 2 and "not a batch output folder" in p.stderr
    p = run("report", "--batch", str(folder), "--scenario", "x.json", "--format", "html",
            "--out", str(tmp_path / "x.html"))
    assert p.returncode == 2 and "do not apply" in p.stderr
