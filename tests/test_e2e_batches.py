"""Batches on the real server (``python -m api``), on SQLite and PostgreSQL: accepted with 202,
rows stored as they finish and equal to the library's, paged results, CSV and selection; a bad
spec is a 422 with nothing stored; DELETE cancels within seconds keeping finished rows; a
server killed with SIGKILL mid-batch and started again resumes it to the end, every row once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import time

import pytest

from optimizer import Optimizer, load_projects

from .conftest import fresh_pg_database
from .test_e2e_server import BACKENDS, Server, _alive, _children

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"),
                                reason="finds worker processes through /proc (Linux)")

BASE = {"name": "base", "budget_musd": 1600, "kabil_budget_musd": 500,
        "max_country_share": 0.3, "min_countries": 4, "max_avg_risk": 6,
        "solver": {"mip_gap": 1e-9, "time_limit_s": 20}}
GRID = {"name": "e2e-grid", "base": BASE,
        "grid": {"budget_musd": [700, 1100, 1600], "max_country_share": [0.25, 0.4]}}


def long_mc(draws: int) -> dict:
    return {"name": "e2e-mc", "base": BASE, "diagnose": False, "monte_carlo": {
        "draws": draws, "seed": 5, "price": {"ree": {"dist": "lognormal", "sigma": 0.3}},
        "capex_overrun": {"dist": "lognormal", "sigma": 0.1}}}


@pytest.fixture(scope="module", params=BACKENDS)
def batch_server(request, tmp_path_factory):
    logdir = tmp_path_factory.mktemp(f"e2e-batches-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{logdir / 'e2e.db'}"
        else:
            url = stack.enter_context(fresh_pg_database(
                request.getfixturevalue("pg_server"), "optimizer_batches"))
        srv = Server(url, logdir, OPTIMIZER_BATCH_WORKERS="2", OPTIMIZER_BATCH_POLL_S="0.2",
                     OPTIMIZER_BATCH_HEARTBEAT_S="0.5", OPTIMIZER_BATCH_STALE_AFTER_S="3")
        srv.start()
        stack.callback(srv.stop)
        yield srv


def wait_status(c, batch_id: str, done: set[str], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = c.get(f"/batches/{batch_id}").json()
        if body["status"] in done:
            return body
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {body['status']} ({body['done']}/"
                         f"{body['total']})")


def test_grid_batch_end_to_end(batch_server):
    with batch_server.client() as c:
        r = c.post("/batches", json=GRID)
        assert r.status_code == 202, r.text
        bid = r.json()["batch_id"]
        assert r.json()["total"] == 6
        body = wait_status(c, bid, {"done"})
        assert (body["done"], body["failed"]) == (6, 0)
        assert body["summary"]["by_status"] == {"optimal": 6}
        page1 = c.get(f"/batches/{bid}/results", params={"limit": 4}).json()["rows"]
        page2 = c.get(f"/batches/{bid}/results", params={"offset": 4}).json()["rows"]
        rows = page1 + page2
        assert [r["index"] for r in rows] == list(range(6))
        opt = Optimizer(load_projects(None))
        for row in rows:
            single = opt.solve(row["scenario"])
            assert row["status"] == single.status
            assert row["objective"] == pytest.approx(single.objective, rel=1e-9)
        table = list(csv.DictReader(io.StringIO(c.get(f"/batches/{bid}/results.csv").text)))
        assert [(t["budget_musd"], t["max_country_share"]) for t in table] == [
            ("700", "0.25"), ("700", "0.4"), ("1100", "0.25"), ("1100", "0.4"),
            ("1600", "0.25"), ("1600", "0.4")]
        assert float(table[5]["objective"]) == pytest.approx(rows[5]["objective"])
        sel = c.get(f"/batches/{bid}/selection").json()
        assert sel["rows"] == 6 and {p["class"] for p in sel["projects"]} <= {
            "core", "borderline", "exterior"}


@pytest.mark.parametrize(("spec", "field"), [
    ({**GRID, "grid": {"budget_musd": [1600, True]}}, "grid 'budget_musd' value 1"),
    ({**GRID, "grid": {"budget_mus": [1]}}, "budget_mus"),
    ({"base": BASE, "scenarios": [{"budget_musd": 10}, {"exclude_projects": ["NOPE"]}]},
     "scenarios[1]"),
    ({"base": BASE, "monte_carlo": {"draws": 10**7}}, "over the cap"),
    ({"base": {**BASE, "name": "a\u0000b"}, "grid": {"budget_musd": [1]}}, "NUL"),
])
def test_bad_spec_is_422_and_nothing_is_stored(batch_server, spec, field):
    with batch_server.client() as c:
        before = c.get("/batches").json()["total"]
        r = c.post("/batches", json=spec)
        assert r.status_code == 422, r.text
        assert field in r.text
        assert c.get("/batches").json()["total"] == before


def test_delete_cancels_within_seconds_and_keeps_rows(batch_server):
    with batch_server.client() as c:
        bid = c.post("/batches", json=long_mc(2000)).json()["batch_id"]
        deadline = time.monotonic() + 60
        while c.get(f"/batches/{bid}").json()["done"] < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        t0 = time.monotonic()
        assert c.delete(f"/batches/{bid}").json()["status"] == "cancelled"
        time.sleep(2.0)
        settled = c.get(f"/batches/{bid}").json()["done"]
        time.sleep(2.0)
        after = c.get(f"/batches/{bid}").json()
        assert after["status"] == "cancelled"
        assert after["done"] == settled, "rows kept coming after the cancel"
        assert 10 <= settled < 2000
        assert time.monotonic() - t0 < 10
        rows = c.get(f"/batches/{bid}/results", params={"limit": 5000}).json()["rows"]
        assert len(rows) == settled


def test_sigkill_mid_batch_then_restart_resumes(batch_server):
    with batch_server.client() as c:
        bid = c.post("/batches", json=long_mc(300)).json()["batch_id"]
        deadline = time.monotonic() + 60
        while c.get(f"/batches/{bid}").json()["done"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    family = _children(batch_server.proc.pid)
    os.kill(batch_server.proc.pid, signal.SIGKILL)
    batch_server.proc.wait()
    for pid in family:  # its worker processes go down with it (as with a machine crash)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    batch_server.proc = None
    batch_server.start()
    with batch_server.client() as c:
        body = wait_status(c, bid, {"done"}, timeout_s=240)
        assert body["done"] == 300
        rows = c.get(f"/batches/{bid}/results", params={"limit": 5000}).json()["rows"]
        assert [r["index"] for r in rows] == list(range(300))  # each row once
