"""Reports over HTTP: a stored run's HTML and Excel reports, the analysis computed once in a
solver worker and stored, and the HTML index at ``/``."""

from __future__ import annotations

import io
import json
import re

import openpyxl
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from optimizer.batch.runner import run_to_folder

from .conftest import INPUTS, TINY_ROWS
from .test_reports import Page
from .test_reports_batch import stored_rows

KEY = {"X-API-Key": "k1-secret-0123456789"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("api-reports") / "t.db"
    settings = Settings(database_url=f"sqlite:///{db}", workers=1, max_queue=2,
                        api_keys=f"one:analyst:{KEY['X-API-Key']}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers.update(KEY)
        yield c


@pytest.fixture(scope="module")
def base_run(client):
    sc = json.loads((INPUTS / "scenarios" / "base.json").read_text())
    r = client.post("/optimize", json={"scenario": sc}, headers=KEY)
    assert r.status_code == 200, r.text
    return r.json()


def test_html_report_of_a_stored_run(client, base_run):
    run_id = base_run["run_id"]
    pool = client.app.state.pool
    before = pool.stats["solves"]
    r = client.get(f"/runs/{run_id}/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    page = Page(r.text)
    t = base_run["totals"]
    assert f"Back {len(base_run['selected'])} projects" in page.words("answer")
    assert f"US${t['cost_musd']:,.0f} M" in page.words("answer")
    for p in base_run["selected"]:
        assert page.cells["portfolio-table", p["project_id"], "cost_musd"] == pytest.approx(
            p["cost_musd"])
    assert {"why", "alternatives", "budget-value"} <= page.ids
    assert all(v.startswith("#") for _, _, v in page.links)  # self-contained
    assert run_id in r.text  # says which run it reports
    assert pool.stats["solves"] == before + 1  # the analysis: one task in a worker
    stored = client.app.state.store.get_analysis(run_id)
    assert stored is not None and stored["resolves"] > 0
    # asked again: rendered from the stored analysis, nothing solved
    again = client.get(f"/runs/{run_id}/report")
    assert again.status_code == 200 and pool.stats["solves"] == before + 1
    a = stored
    assert Page(again.text).cells["regret-table", a["regrets"][0]["project_id"], "loss"] == \
        pytest.approx(a["regrets"][0]["loss"])


def test_excel_report_of_a_stored_run(client, base_run):
    run_id = base_run["run_id"]
    r = client.get(f"/runs/{run_id}/report.xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert re.match(r'attachment; filename="base-[0-9a-f]{8}\.xlsx"',
                    r.headers["content-disposition"])
    wb = openpyxl.load_workbook(io.BytesIO(r.content), data_only=True)
    assert wb.sheetnames[:3] == ["Summary", "Portfolio", "Limits"]
    ids = [row[0] for row in wb["Portfolio"].iter_rows(min_row=2, values_only=True)]
    assert ids[:len(base_run["selected"])] == [p["project_id"] for p in base_run["selected"]]
    sens = wb["Sensitivity"]
    assert "BudgetCurve" in sens.tables


def test_report_of_an_infeasible_run_needs_no_worker(client):
    r = client.post("/optimize", headers=KEY, json={
        "projects": TINY_ROWS,
        "scenario": {"name": "too-tight", "budget_musd": 50, "min_output_t": {"tantalum": 50}}})
    assert r.status_code == 200 and r.json()["status"] == "infeasible"
    run = r.json()
    pool = client.app.state.pool
    before = pool.stats["solves"]
    rep = client.get(f"/runs/{run['run_id']}/report")
    assert rep.status_code == 200
    assert pool.stats["solves"] == before
    page = Page(rep.text)
    assert "diagnosis" in page.ids and run["diagnosis"]["message"] in page.words("diagnosis")


def test_unknown_runs_are_404(client):
    for path in ("/runs/0123456789abcdef0123456789abcdef/report",
                 "/runs/not-a-run/report.xlsx"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")


def test_index_lists_runs_with_links_to_their_reports(client, base_run):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    run_id = base_run["run_id"]
    assert f'href="/runs/{run_id}/report"' in r.text
    assert f'href="/runs/{run_id}/report.xlsx"' in r.text
    links = re.findall(r'(?:href|src)="([^"]*)"', r.text)
    assert links and all(u.startswith("/") and not u.startswith("//") for u in links)
    assert not re.search(r"<script|<link", r.text, re.I)
    # every link on the page answers
    for u in set(links):
        if u.startswith("/runs/") or u == "/docs":
            assert client.get(u.replace("&amp;", "&")).status_code == 200, u


def test_batch_reports_from_stored_rows(client, tmp_path):
    """A batch the service stored (rows in the database): its HTML and Excel reports, and
    its line in the index."""
    csv_path = tmp_path / "projects.csv"
    pd.DataFrame(TINY_ROWS).to_csv(csv_path, index=False)
    spec = {"name": "what-ifs", "base": {"budget_musd": 120},
            "scenarios": [{"name": "cut", "budget_musd": 70},
                          {"name": "impossible", "budget_musd": 50,
                           "min_output_t": {"tantalum": 50}}]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run_to_folder(tmp_path / "spec.json", out=tmp_path / "out", projects=csv_path, workers=0,
                  progress=False)
    rows = stored_rows(tmp_path / "out")
    store = client.app.state.store
    b = store.add_batch(spec=spec, dataset_id=rows[0]["provenance"]["dataset_sha256"],
                        name="what-ifs", kind="scenarios", total=len(rows))
    store.add_batch_rows(b.batch_id, rows)
    r = client.get(f"/batches/{b.batch_id}/report")
    assert r.status_code == 200, r.text
    page = Page(r.text)
    assert "2 scenarios solved: 1 infeasible, 1 optimal." in page.words("summary")
    assert rows[1]["diagnosis"]["message"] in page.words("failed")
    assert "has not finished" in r.text  # still queued: no summary yet
    x = client.get(f"/batches/{b.batch_id}/report.xlsx")
    assert x.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(x.content), data_only=True)
    cells = list(wb["Rows"][wb["Rows"].tables["Rows"].ref])
    assert [c[0].value for c in cells[1:]] == [0, 1]
    assert client.get("/batches/0123456789abcdef0123456789abcdef/report").status_code == 404
    index = client.get("/").text
    assert f'href="/batches/{b.batch_id}/report"' in index


def test_report_of_a_batch_run_by_the_service(client):
    """POST /batches, wait until it is done, then its report equals its own selection."""
    import time

    spec = {"name": "frontier", "base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "frontier": {"kind": "budget", "low": 60, "high": 300, "points": 4}}
    r = client.post("/batches", json=spec, headers=KEY)
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    for _ in range(300):
        st = client.get(f"/batches/{bid}").json()
        if st["status"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert st["status"] == "done", st
    rep = client.get(f"/batches/{bid}/report")
    assert rep.status_code == 200
    page = Page(rep.text)
    assert "has not finished" not in rep.text and "chart-frontier" in page.ids
    sel = client.get(f"/batches/{bid}/selection").json()
    want = {s["project_id"]: s["share"] for s in sel["projects"] if s["chosen"] > 0}
    assert "core" in page.words("summary") and all(
        p in page.words("summary") for p in sel["robust_core"]["core"])
    got = {k[1]: v for k, v in page.cells.items()
           if k[0] == "selection-table" and k[2] == "share"}
    assert got == pytest.approx(want)
    rows = client.get(f"/batches/{bid}/results").json()["rows"]
    objs = {int(k[1]): v for k, v in page.cells.items() if k[0] == "frontier-table"}
    assert objs == pytest.approx({x["index"]: x["objective"] for x in rows
                                  if x["objective"] is not None})
