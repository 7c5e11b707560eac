"""The HTTP service, in-process (FastAPI TestClient with the lifespan running).

One app for the whole module (starting it spawns a solver worker: ~1.5 s). It runs with
``workers=1, max_queue=0`` so a second concurrent solve is refused at once (503), with API
keys configured (every endpoint but /health needs one: the client sends KEY by default)
and with small body and time-limit caps, so
each of those paths can be hit without a second app.

Every response the client sees is checked by a hook: never a 500, never a traceback.
"""

from __future__ import annotations

import gc
import io
import json
import sys
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import optimizer
from api.config import Settings
from api.main import create_app
from optimizer import InputError, load_projects, load_scenario
from optimizer.data import scenario_sha256
from tests.conftest import TINY_ROWS
from tests.instances import subset_sum

KEYS = {"one": "k1-secret-0123456789", "two": "k2-secret-0123456789"}
KEY = KEYS["two"]  # one of the configured keys (analysts)
AUTH = {"X-API-Key": KEY}
MAX_TIME_LIMIT_S = 4.0
MAX_BODY_BYTES = 100_000
MAX_SAMPLE_CELLS = 3_000  # 1,000 draws of the three-project table
PROBLEM_JSON = "application/problem+json"

TINY_SHA = load_projects(TINY_ROWS).sha256


def check_response(response) -> None:
    """Runs on every response: no 500, no stack trace in the body."""
    response.read()
    text = response.text
    assert response.status_code != 500, f"500 from {response.request.url}: {text[:2000]}"
    assert "Traceback" not in text, text[:2000]
    assert 'File "' not in text, text[:2000]


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    db = tmp_path_factory.mktemp("api") / "t.db"
    return Settings(database_url=f"sqlite:///{db}", workers=1, max_queue=0,
                    api_keys=",".join(f"{n}:analyst:{k}" for n, k in KEYS.items()),
                    max_time_limit_s=MAX_TIME_LIMIT_S,
                    max_body_bytes=MAX_BODY_BYTES, retry_after_s=7,
                    max_sample_cells=MAX_SAMPLE_CELLS)


@pytest.fixture(scope="module")
def client(settings):
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.event_hooks = {"request": [], "response": [check_response]}
        c.headers.update(AUTH)
        yield c


@pytest.fixture
def keyless(client):
    """A client of the same running app that sends no key."""
    c = TestClient(client.app, raise_server_exceptions=False)
    c.event_hooks = {"request": [], "response": [check_response]}
    return c


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def optimize(client, body: dict[str, Any] | None = None, *, headers=None, **kw):
    return client.post("/optimize", json=body, headers={**AUTH, **(headers or {})}, **kw)


def tiny_body(**scenario) -> dict[str, Any]:
    scenario.setdefault("solver", {"mip_gap": 0, "time_limit_s": 30})
    return {"scenario": scenario, "projects": TINY_ROWS}


def assert_problem(r, status: int) -> dict[str, Any]:
    """An RFC 9457 problem document with the given status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = r.json()
    for field in ("type", "title", "status", "detail"):
        assert field in body, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def assert_input_problem(r, *locs: list) -> dict[str, Any]:
    """422 problem whose ``errors`` name each of ``locs`` (as a prefix of some error's loc)."""
    body = assert_problem(r, 422)
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, body
    for e in errors:
        assert set(e) >= {"loc", "msg"} and isinstance(e["loc"], list) and e["msg"], e
    for loc in locs:
        assert any(e["loc"][:len(loc)] == loc for e in errors), (loc, errors)
    return body


def library_problems(call, *args) -> InputError:
    with pytest.raises(InputError) as info:
        call(*args)
    return info.value


def selected(result) -> list[tuple[str, float]]:
    if isinstance(result, dict):
        return [(s["project_id"], s["stake"]) for s in result["selected"]]
    return [(s.project_id, s.stake) for s in result.selected]


# ---------------------------------------------------------------------------------------------
# health, readiness, docs
# ---------------------------------------------------------------------------------------------


def test_health_and_ready(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "writes": "ok", "solver": "ok"}
    assert body["pool"]["workers"] == 1 and body["pool"]["capacity"] == 1


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_head_answers_like_get_without_a_body(client, path):
    """Load balancers probe with HEAD: same status and content type as GET, no body."""
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_docs_and_openapi_document_every_endpoint_with_examples(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "swagger" in r.text.lower()
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    expected = {"/optimize": {"post"}, "/runs": {"get"}, "/runs/{run_id}": {"get"},
                "/datasets": {"get", "post"}, "/datasets/{dataset_id}": {"get"},
                "/health": {"get"}, "/ready": {"get"}}
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, paths[path].keys())
        for m in methods:
            assert paths[path][m].get("summary") or paths[path][m].get("description"), (path, m)
    schemas = spec["components"]["schemas"]
    assert schemas["OptimizeRequest"].get("examples"), "POST /optimize body has no example"
    assert schemas["Scenario"].get("examples"), "Scenario has no example"
    upload = paths["/datasets"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "multipart/form-data"} <= set(upload)
    assert upload["application/json"]["schema"].get("examples"), "dataset upload: no example"
    # documented error responses
    opt = paths["/optimize"]["post"]["responses"]
    assert {"200", "401", "409", "413", "422", "503"} <= set(opt), opt.keys()
    ds = paths["/datasets"]["post"]["responses"]
    assert {"200", "201", "401", "413", "415", "422"} <= set(ds), ds.keys()
    assert "404" in paths["/runs/{run_id}"]["get"]["responses"]
    assert "404" in paths["/datasets/{dataset_id}"]["get"]["responses"]
    # the documented example request actually works
    example = schemas["OptimizeRequest"]["examples"][1]
    r = optimize(client, example)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------
# POST /optimize: the three data sources, each the library's answer
# ---------------------------------------------------------------------------------------------


def test_optimize_inline_projects_matches_library_and_hand_worked(client):
    body = tiny_body(name=unique("inline"), budget_musd=120)
    r = optimize(client, body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "optimal"
    assert got["objective"] == pytest.approx(47.0, abs=1e-6)
    assert dict(selected(got)) == pytest.approx({"A": 0.55, "C": 0.3}, abs=1e-6)
    lib = optimizer.optimize(TINY_ROWS, body["scenario"])
    assert got["objective"] == pytest.approx(lib.objective, abs=1e-6)
    assert [p for p, _ in selected(got)] == [p for p, _ in selected(lib)]
    assert dict(selected(got)) == pytest.approx(dict(selected(lib)), abs=1e-6)
    assert got["dataset_id"] == TINY_SHA == lib.provenance.dataset_sha256
    # the scenario as solved (time limit capped to the server's maximum) is what is hashed
    assert got["scenario"]["solver"]["time_limit_s"] == MAX_TIME_LIMIT_S
    assert got["provenance"]["scenario_sha256"] == scenario_sha256(load_scenario(got["scenario"]))
    assert got["totals"]["cost_musd"] == pytest.approx(lib.totals.cost_musd, abs=1e-6)
    assert got["run_id"] and got["created_at"]
    assert got["scenario"]["name"] == body["scenario"]["name"]
    # the stored run is the same object (created_at: see test_timestamps_carry_a_timezone)
    stored = client.get(f"/runs/{got['run_id']}")
    assert stored.status_code == 200
    assert {**stored.json(), "created_at": None} == {**got, "created_at": None}


def test_timestamps_carry_a_timezone(client):
    """BUG (api/db.py + api/routes/runs.py): runs and datasets are stamped with an aware UTC
    time and POST /optimize answers ``...Z``, but SQLite's DateTime(timezone=True) drops the
    zone, so GET /runs/{id}, GET /runs and GET /datasets answer naive local-looking times,
    and the same run has two different created_at strings."""
    got = optimize(client, tiny_body(name=unique("tz"), budget_musd=120)).json()
    stored = client.get(f"/runs/{got['run_id']}").json()
    listed = client.get("/runs", params={"scenario_name": got["scenario"]["name"]}).json()
    datasets = client.get("/datasets").json()["items"]
    stamps = [got["created_at"], stored["created_at"], listed["items"][0]["created_at"],
              datasets[0]["created_at"]]
    for stamp in stamps:
        assert datetime.fromisoformat(stamp).tzinfo is not None, stamps
    assert stored["created_at"] == got["created_at"] == listed["items"][0]["created_at"]


def test_optimize_shipped_default_matches_library(client, settings):
    scenario = {"name": unique("default"), "budget_musd": 2000, "kabil_budget_musd": 1000,
                "max_country_share": 0.3, "min_countries": 4, "max_avg_risk": 6,
                "solver": {"mip_gap": 0, "time_limit_s": 3}}
    r = optimize(client, {"scenario": scenario})
    assert r.status_code == 200, r.text
    got = r.json()
    lib = optimizer.optimize(settings.default_projects, scenario)
    assert got["status"] == lib.status == "optimal"
    assert got["objective"] == pytest.approx(lib.objective, rel=1e-7)
    assert sorted(p for p, _ in selected(got)) == sorted(p for p, _ in selected(lib))
    shipped_sha = load_projects(settings.default_projects).sha256
    assert got["dataset_id"] == shipped_sha == got["provenance"]["dataset_sha256"]


def test_optimize_on_stored_dataset_matches_inline(client):
    r = client.post("/datasets", json={"name": "tiny", "projects": TINY_ROWS}, headers=AUTH)
    assert r.status_code in (200, 201), r.text
    dataset_id = r.json()["dataset_id"]
    assert dataset_id == TINY_SHA
    scenario = {"name": unique("stored"), "budget_musd": 120,
                "solver": {"mip_gap": 0, "time_limit_s": 30}}
    r = optimize(client, {"scenario": scenario, "dataset_id": dataset_id})
    assert r.status_code == 200, r.text
    got = r.json()
    lib = optimizer.optimize(TINY_ROWS, scenario)
    assert got["objective"] == pytest.approx(lib.objective, abs=1e-6) == 47.0
    assert dict(selected(got)) == pytest.approx(dict(selected(lib)), abs=1e-6)
    assert got["dataset_id"] == dataset_id


def test_infeasible_is_an_answer_with_a_diagnosis(client):
    body = tiny_body(name=unique("infeasible"), budget_musd=50, min_output_t={"tantalum": 50})
    r = optimize(client, body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "infeasible"
    assert got["objective"] is None and got["selected"] == []
    assert {"budget_musd", "min_output_t.tantalum"} <= set(got["diagnosis"]["conflicts"])
    assert got["diagnosis"]["message"]
    lib = optimizer.optimize(TINY_ROWS, body["scenario"])
    assert set(got["diagnosis"]["conflicts"]) == set(lib.diagnosis.conflicts)


def test_time_limit_is_capped_by_the_server(client):
    body = tiny_body(name=unique("cap"), budget_musd=120,
                     solver={"time_limit_s": 1000, "mip_gap": 0})
    r = optimize(client, body)
    assert r.status_code == 200, r.text
    run = client.get(f"/runs/{r.json()['run_id']}").json()
    assert run["scenario"]["solver"]["time_limit_s"] == MAX_TIME_LIMIT_S
    assert r.json()["scenario"]["solver"]["time_limit_s"] == MAX_TIME_LIMIT_S
    # a limit below the cap is kept
    body["scenario"]["solver"]["time_limit_s"] = 2.5
    r = optimize(client, body)
    assert r.json()["scenario"]["solver"]["time_limit_s"] == 2.5


# ---------------------------------------------------------------------------------------------
# GET /runs: paging, order, filters
# ---------------------------------------------------------------------------------------------


def test_runs_paging_newest_first_and_filters(client):
    name = unique("paging")
    ids = []
    for budget in (120, 100, 90):
        r = optimize(client, tiny_body(name=name, budget_musd=budget))
        assert r.status_code == 200, r.text
        ids.append(r.json()["run_id"])
    r = optimize(client, tiny_body(name=name, budget_musd=50, min_output_t={"tantalum": 50}))
    assert r.json()["status"] == "infeasible"
    ids.append(r.json()["run_id"])
    newest_first = ids[::-1]

    page = client.get("/runs", params={"scenario_name": name, "limit": 2}).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0
    assert [i["run_id"] for i in page["items"]] == newest_first[:2]
    page2 = client.get("/runs", params={"scenario_name": name, "limit": 2, "offset": 2}).json()
    assert [i["run_id"] for i in page2["items"]] == newest_first[2:]
    assert page2["total"] == 4 and page2["offset"] == 2
    past = client.get("/runs", params={"scenario_name": name, "offset": 10}).json()
    assert past["items"] == [] and past["total"] == 4
    for item in page["items"] + page2["items"]:
        assert item["scenario_name"] == name
        assert item["dataset_id"] == TINY_SHA
        assert set(item) >= {"run_id", "created_at", "scenario_name", "status", "objective"}
    stamps = [i["created_at"] for i in page["items"] + page2["items"]]
    assert stamps == sorted(stamps, reverse=True)

    infeasible = client.get("/runs", params={"scenario_name": name,
                                             "status": "infeasible"}).json()
    assert infeasible["total"] == 1 and infeasible["items"][0]["run_id"] == ids[-1]
    assert infeasible["items"][0]["objective"] is None
    optimal = client.get("/runs", params={"scenario_name": name, "status": "optimal"}).json()
    assert optimal["total"] == 3
    assert [i["run_id"] for i in optimal["items"]] == newest_first[1:]
    assert optimal["items"][-1]["objective"] == pytest.approx(47.0, abs=1e-6)

    everything = client.get("/runs", params={"limit": 500}).json()
    assert everything["total"] >= 4
    all_stamps = [i["created_at"] for i in everything["items"]]
    assert all_stamps == sorted(all_stamps, reverse=True)
    assert client.get("/runs", params={"scenario_name": unique("none")}).json() == {
        "items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"offset": -1}, "offset"),
    ({"status": "done"}, "status"), ({"limit": "ten"}, "limit"),
])
def test_runs_bad_query_parameters(client, params, field):
    assert_input_problem(client.get("/runs", params=params), ["query", field])


def test_unknown_run_is_404(client):
    body = assert_problem(client.get(f"/runs/{uuid.uuid4().hex}"), 404)
    assert "errors" not in body or body["errors"] is None
    assert_problem(client.get("/runs/not-a-run"), 404)


# ---------------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------------


LEAK_OK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@LEAK_OK
def test_dataset_json_csv_and_multipart_share_one_content_hash(client):
    rows = [dict(r, name=r["name"] + " (datasets test)") for r in TINY_ROWS]
    expected = load_projects(rows)
    name = unique("ds")
    r = client.post("/datasets", json={"name": name, "projects": rows}, headers=AUTH)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["dataset_id"] == expected.sha256
    assert info["n_projects"] == 3 and info["name"] == name and info["created"] is True
    assert r.headers["content-type"].startswith("application/json")

    again = client.post("/datasets", json={"name": name, "projects": rows}, headers=AUTH)
    assert again.status_code == 200, again.text
    assert again.json()["dataset_id"] == expected.sha256 and again.json()["created"] is False

    csv_text = pd.DataFrame(rows).to_csv(index=False)
    r = client.post("/datasets", content=csv_text.encode(),
                    headers={**AUTH, "content-type": "text/csv"})
    assert r.status_code == 200, r.text  # same content as the JSON rows: already stored
    assert r.json()["dataset_id"] == expected.sha256

    r = client.post("/datasets", headers=AUTH, data={"name": "upload"},
                    files={"file": ("projects.csv", csv_text.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["dataset_id"] == expected.sha256

    detail = client.get(f"/datasets/{expected.sha256}")
    assert detail.status_code == 200
    d = detail.json()
    assert d["dataset_id"] == expected.sha256 and d["n_projects"] == 3 and d["name"] == name
    assert d["projects"] == expected.records()
    gc.collect()  # a leaked upload file (see test_multipart_upload_closes_its_file) shows here


def test_provenance_dataset_sha256_is_the_dataset_id(client):
    """BUG (optimizer/data.py): the worker re-validates the stored canonical records, and
    ``load_projects(rows).records()`` hashes differently from ``rows`` when optional columns
    are absent (absent column: object None; present-but-empty: str/Int64 NA). So a run's
    provenance.dataset_sha256 differs from its dataset_id and from the library's own result."""
    body = tiny_body(name=unique("prov"), budget_musd=120)
    got = optimize(client, body).json()
    lib = optimizer.optimize(TINY_ROWS, body["scenario"])
    assert got["dataset_id"] == TINY_SHA
    assert got["provenance"]["dataset_sha256"] == lib.provenance.dataset_sha256 == TINY_SHA
    stored = client.get(f"/datasets/{TINY_SHA}").json()["projects"]
    assert load_projects(stored).sha256 == TINY_SHA


@LEAK_OK
def test_dataset_csv_and_multipart_create_new_ids(client):
    rows = [dict(r, npv_musd=r["npv_musd"] + 1) for r in TINY_ROWS]
    expected = load_projects(rows).sha256
    csv_bytes = pd.DataFrame(rows).to_csv(index=False).encode()
    r = client.post("/datasets", content=csv_bytes, params={"name": "from csv"},
                    headers={**AUTH, "content-type": "text/csv; charset=utf-8"})
    assert r.status_code == 201, r.text
    assert r.json()["dataset_id"] == expected and r.json()["name"] == "from csv"
    assert client.post("/datasets", content=csv_bytes,
                       headers={**AUTH, "content-type": "text/csv"}).status_code == 200

    rows2 = [dict(r, npv_musd=r["npv_musd"] + 2) for r in TINY_ROWS]
    expected2 = load_projects(rows2).sha256
    csv2 = pd.DataFrame(rows2).to_csv(index=False).encode()
    r = client.post("/datasets", headers=AUTH, data={"name": "multi"},
                    files={"file": ("p.csv", io.BytesIO(csv2), "text/csv")})
    assert r.status_code == 201, r.text
    assert r.json()["dataset_id"] == expected2 and r.json()["name"] == "multi"
    r = client.post("/datasets", headers=AUTH,
                    files={"file": ("p.csv", io.BytesIO(csv2), "text/csv")})
    assert r.status_code == 200 and r.json()["dataset_id"] == expected2
    gc.collect()


@pytest.mark.parametrize("files", [{"file": ("p.csv", b"x", "text/csv")},
                                   {"other": ("p.csv", b"x", "text/csv")}])
def test_multipart_upload_closes_its_file(client, files):
    """BUG (api/routes/datasets.py, create_dataset): ``form = await request.form()`` is never
    closed, so each multipart upload leaks its SpooledTemporaryFile (ResourceWarning when it
    is garbage-collected; a file descriptor once the upload is over 1 MB)."""
    gc.collect()
    leaked = []
    old = sys.unraisablehook
    sys.unraisablehook = leaked.append
    try:
        r = client.post("/datasets", headers=AUTH, files=files)
        assert r.status_code == 422  # not a valid table / no 'file' part
        del r
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert not [u for u in leaked if isinstance(u.exc_value, ResourceWarning)], \
        [str(u.exc_value) for u in leaked]


def test_dataset_listing(client, settings):
    rows = [dict(r, npv_musd=r["npv_musd"] + 3) for r in TINY_ROWS]
    r = client.post("/datasets", json={"name": "listed", "projects": rows}, headers=AUTH)
    assert r.status_code == 201
    newest = r.json()["dataset_id"]
    page = client.get("/datasets").json()
    assert page["limit"] == 50 and page["offset"] == 0 and page["total"] >= 2
    ids = [i["dataset_id"] for i in page["items"]]
    assert ids[0] == newest  # newest first
    assert load_projects(settings.default_projects).sha256 in ids  # the shipped default
    stamps = [i["created_at"] for i in page["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert "projects" not in page["items"][0]
    one = client.get("/datasets", params={"limit": 1, "offset": 1}).json()
    assert one["total"] == page["total"] and [i["dataset_id"] for i in one["items"]] == ids[1:2]
    assert_input_problem(client.get("/datasets", params={"limit": 0}), ["query", "limit"])


def test_unknown_dataset_is_404(client):
    missing = "0" * 64
    assert_problem(client.get(f"/datasets/{missing}"), 404)
    r = optimize(client, {"scenario": {"budget_musd": 100}, "dataset_id": missing})
    assert_problem(r, 404)
    # not a content hash at all: an input error naming the parameter
    assert_input_problem(client.get("/datasets/xyz"), ["path", "dataset_id"])


def test_dataset_bad_rows_name_row_and_column(client):
    rows = [dict(r) for r in TINY_ROWS]
    rows[1]["min_stake"] = 1.5
    lib = library_problems(load_projects, rows)
    r = client.post("/datasets", json={"projects": rows}, headers=AUTH)
    body = assert_input_problem(r, ["body", "projects", 1, "min_stake"])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]
    # the same rows as CSV: same message
    r = client.post("/datasets", content=pd.DataFrame(rows).to_csv(index=False).encode(),
                    headers={**AUTH, "content-type": "text/csv"})
    body = assert_input_problem(r, ["body", "projects", 1, "min_stake"])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]


@LEAK_OK
@pytest.mark.parametrize("kind", ["no-file", "empty-list", "not-json", "extra-field", "csv-junk"])
def test_dataset_upload_input_errors(client, kind):
    if kind == "no-file":
        r = client.post("/datasets", headers=AUTH, data={"name": "x"},
                        files={"other": ("a.csv", b"a,b\n1,2\n", "text/csv")})
        assert_input_problem(r, ["body", "file"])
        gc.collect()
    elif kind == "empty-list":
        r = client.post("/datasets", json={"projects": []}, headers=AUTH)
        assert_input_problem(r, ["body", "projects"])
    elif kind == "not-json":
        r = client.post("/datasets", content=b"{not json",
                        headers={**AUTH, "content-type": "application/json"})
        assert_problem(r, 422)
    elif kind == "extra-field":
        r = client.post("/datasets", json={"projects": TINY_ROWS, "nme": "x"}, headers=AUTH)
        assert_input_problem(r, ["body", "nme"])
    else:
        r = client.post("/datasets", content=b"\x00\xff\xfe garbage",
                        headers={**AUTH, "content-type": "text/csv"})
        assert_input_problem(r, ["body", "projects"])


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", None])
def test_dataset_unsupported_media_type_is_415(client, ctype):
    headers = dict(AUTH)
    if ctype:
        headers["content-type"] = ctype
    r = client.post("/datasets", content=b"project_id\nA\n", headers=headers)
    assert_problem(r, 415)


# ---------------------------------------------------------------------------------------------
# input errors on POST /optimize
# ---------------------------------------------------------------------------------------------

BAD_SCENARIOS = [
    {"budget_musd": -1},
    {"budget_musd": 0},
    {},
    {"budget_musd": "lots"},
    {"budget_musd": 100, "budgt_musd": 5},
    {"budget_musd": 100, "kabil_budget_musd": -3},
    {"budget_musd": 100, "annual_budget_musd": [100, -1]},
    {"budget_musd": 100, "max_country_share": 0},
    {"budget_musd": 100, "max_country_share": 1.5},
    {"budget_musd": 100, "min_countries": 2.5},
    {"budget_musd": 100, "max_projects": -1},
    {"budget_musd": 100, "min_output_t": {"gold": 5}},
    {"budget_musd": 100, "min_output_t": {"ree": -5}},
    {"budget_musd": 100, "max_avg_risk": 11},
    {"budget_musd": 100, "max_china_processing_share": 2},
    {"budget_musd": 100, "objective": "profit"},
    {"budget_musd": 100, "supply_weights": {"ree": -1}},
    {"budget_musd": 100, "solver": {"mip_gap": 2}},
    {"budget_musd": 100, "solver": {"time_limit_s": 0}},
    {"budget_musd": 100, "solver": {"threads": 4}},
    {"budget_musd": 100, "exclude_countries": ["india"]},
    {"budget_musd": 100, "include_projects": ["bad id!"]},
    {"budget_musd": -1, "max_avg_risk": 0, "min_output_t": {"ree": -1}},
]


@pytest.mark.parametrize("scenario", BAD_SCENARIOS, ids=lambda s: ",".join(s) or "empty")
def test_bad_scenario_is_422_worded_as_the_library(client, scenario):
    lib = library_problems(load_scenario, scenario)
    r = optimize(client, {"scenario": scenario, "projects": TINY_ROWS})
    body = assert_input_problem(r, *[["body", *p.loc] for p in lib.problems])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]
    assert [e["loc"] for e in body["errors"]] == [["body", *p.loc] for p in lib.problems]
    if len(lib.problems) == 1:
        assert body["detail"] == str(lib)
    for p in lib.problems:
        assert p.msg in body["detail"]


BAD_ROWS = [
    (1, "min_stake", "abc"),
    (0, "equity_value_musd", 0),
    (2, "risk_score", 11),
    (0, "country", "India"),
    (1, "mineral", "gold"),
    (2, "partner", "EU"),
    (1, "project_id", "A"),  # duplicate
    (1, "requires", "Z"),
    (2, "spend_share_1", 0.5),
    (0, "india_share", None),
    (1, "first_production_year", 1850),
    (0, "china_processing", "maybe"),
]


@pytest.mark.parametrize("row, column, value", BAD_ROWS, ids=lambda v: str(v))
def test_bad_row_is_422_naming_row_and_column(client, row, column, value):
    rows = [dict(r) for r in TINY_ROWS]
    rows[row][column] = value
    lib = library_problems(load_projects, rows)
    r = optimize(client, {"scenario": {"budget_musd": 100}, "projects": rows})
    body = assert_input_problem(r, ["body", "projects", row, column])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]
    assert [e["loc"] for e in body["errors"]] == [["body", *p.loc] for p in lib.problems]
    assert body["detail"].startswith(lib.problems[0].msg)


def test_missing_and_unknown_columns(client):
    rows = [{k: v for k, v in r.items() if k != "npv_musd"} for r in TINY_ROWS]
    rows[0]["npv_musd_typo"] = 1
    lib = library_problems(load_projects, rows)
    r = optimize(client, {"scenario": {"budget_musd": 100}, "projects": rows})
    body = assert_input_problem(r, ["body", "projects", "npv_musd"],
                                ["body", "projects", "npv_musd_typo"])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]


@pytest.mark.parametrize("body, loc", [
    ({"scenario": {"budget_musd": 100}, "projects": TINY_ROWS, "dataset_id": TINY_SHA},
     ["body", "dataset_id"]),
    ({"scenario": {"budget_musd": 100}, "projects": [1, 2]}, ["body", "projects", 0]),
    ({"scenario": {"budget_musd": 100}, "projects": []}, ["body", "projects"]),
    ({"scenario": {"budget_musd": 100}, "dataset_id": "abc"}, ["body", "dataset_id"]),
    ({"scenario": {"budget_musd": 100}, "extra": 1}, ["body", "extra"]),
    ({"projects": TINY_ROWS}, ["body", "scenario"]),
    ({"scenario": [1]}, ["body", "scenario"]),
])
def test_bad_request_shapes(client, body, loc):
    assert_input_problem(optimize(client, body), loc)


def test_not_json_and_not_an_object(client):
    r = client.post("/optimize", content=b"{scenario", headers={**AUTH,
                                                               "content-type": "application/json"})
    assert_problem(r, 422)
    assert "line 1, column 2" in r.json()["detail"]
    r = client.post("/optimize", content=b"[1, 2]", headers={**AUTH,
                                                            "content-type": "application/json"})
    assert_problem(r, 422)
    r = client.post("/optimize", content=b"", headers={**AUTH, "content-type": "application/json"})
    assert_problem(r, 422)


@pytest.mark.parametrize("path", ["/optimize", "/datasets"])
def test_malformed_json_is_reported_with_line_and_column(client, path):
    """Regression: a malformed body was reported as "field '14': JSON decode error" (14 being
    a character offset). Now: what is wrong and where, in words."""
    body = b'{"scenario": {"budget_musd": 100,\n  "name": "a" "b"}}'
    if path == "/datasets":
        body = b'{"projects": [\n  {"project_id": "A"},,\n]}'
    r = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    problem = assert_input_problem(r, ["body"])
    where = "line 2, column 15" if path == "/optimize" else "line 2, column 23"
    assert problem["detail"] == problem["errors"][0]["msg"]
    assert problem["detail"].startswith("the request body is not valid JSON: ")
    assert where in problem["detail"], problem["detail"]
    assert "field '" not in problem["detail"]
    assert problem["errors"] == [{"loc": ["body"], "msg": problem["detail"]}]


@pytest.mark.parametrize("path, status, loc", [
    ("/runs/%00", 404, None),
    ("/runs/abc%00def", 404, None),
    ("/runs?scenario_name=%00", 422, ["query", "scenario_name"]),
    ("/runs?scenario_name=base%00", 422, ["query", "scenario_name"]),
    ("/datasets/%00", 422, ["path", "dataset_id"]),
])
def test_nul_in_path_and_query_is_refused_before_the_database(client, path, status, loc):
    """PostgreSQL cannot hold NUL: it used to answer 500 or reset the connection. The
    end-to-end tests repeat this against both databases."""
    r = client.get(path)
    if loc is None:
        assert_problem(r, status)
    else:
        body = assert_input_problem(r, loc)
        if loc[-1] == "scenario_name":
            assert "NUL" in body["detail"]


@LEAK_OK
@pytest.mark.parametrize("how", ["json", "csv-query", "multipart"])
def test_nul_in_a_dataset_name_is_refused(client, how):
    if how == "json":
        r = client.post("/datasets", json={"name": "a\x00b", "projects": TINY_ROWS},
                        headers=AUTH)
        loc = ["body", "name"]
    elif how == "csv-query":
        r = client.post("/datasets", content=pd.DataFrame(TINY_ROWS).to_csv(index=False),
                        params={"name": "a\x00b"}, headers={**AUTH, "content-type": "text/csv"})
        loc = ["query", "name"]
    else:
        r = client.post("/datasets", headers=AUTH, data={"name": "a\x00b"},
                        files={"file": ("p.csv", pd.DataFrame(TINY_ROWS).to_csv(index=False),
                                        "text/csv")})
        loc = ["body", "name"]
        gc.collect()
    body = assert_input_problem(r, loc)
    assert "NUL" in body["errors"][0]["msg"]



@pytest.mark.parametrize("where", ["scenario", "projects"])
def test_nul_in_body_text_is_a_422_naming_the_field(client, where):
    body = tiny_body(name="a\x00b", budget_musd=120)
    loc = ["body", "scenario", "name"]
    if where == "projects":
        body = tiny_body(budget_musd=120)
        body["projects"] = [dict(r) for r in TINY_ROWS]
        body["projects"][1]["name"] = "Bravo\x00"
        loc = ["body", "projects", 1, "name"]
    assert_input_problem(optimize(client, body), loc)


def test_unknown_include_and_exclude_projects(client):
    scenario = {"budget_musd": 120, "include_projects": ["A", "Q"], "exclude_projects": ["c"]}
    lib = library_problems(optimizer.optimize, TINY_ROWS, scenario)
    r = optimize(client, {"scenario": scenario, "projects": TINY_ROWS})
    body = assert_input_problem(r, ["body", "scenario", "include_projects", 1],
                                ["body", "scenario", "exclude_projects", 0])
    assert [e["msg"] for e in body["errors"]] == [p.msg for p in lib.problems]
    assert any("'Q'" in e["msg"] for e in body["errors"])
    # on the shipped default too
    r = optimize(client, {"scenario": {"budget_musd": 100, "include_projects": ["NOPE"]}})
    assert_input_problem(r, ["body", "scenario", "include_projects", 0])


# ---------------------------------------------------------------------------------------------
# body size, API keys, idempotency
# ---------------------------------------------------------------------------------------------


def _big_rows(n_bytes: int) -> list[dict]:
    row = dict(TINY_ROWS[0], source="x" * 1000)
    n = n_bytes // 1000 + 1
    return [dict(row, project_id=f"P{i}") for i in range(n)]


@pytest.mark.parametrize("path", ["/optimize", "/datasets"])
def test_body_over_the_limit_is_413_with_content_length(client, path):
    body = json.dumps({"scenario": {"budget_musd": 100},
                       "projects": _big_rows(MAX_BODY_BYTES)}).encode()
    if path == "/datasets":
        body = json.dumps({"projects": _big_rows(MAX_BODY_BYTES)}).encode()
    assert len(body) > MAX_BODY_BYTES
    r = client.post(path, content=body, headers={**AUTH, "content-type": "application/json"})
    assert r.request.headers.get("content-length") == str(len(body))
    assert_problem(r, 413)


@pytest.mark.parametrize("path, ctype", [("/optimize", "application/json"),
                                         ("/datasets", "application/json"),
                                         ("/datasets", "text/csv")])
def test_streamed_body_over_the_limit_is_413(client, path, ctype):
    if ctype == "text/csv":
        data = pd.DataFrame(_big_rows(MAX_BODY_BYTES)).to_csv(index=False).encode()
    elif path == "/datasets":
        data = json.dumps({"projects": _big_rows(MAX_BODY_BYTES)}).encode()
    else:
        data = json.dumps({"scenario": {"budget_musd": 100},
                           "projects": _big_rows(MAX_BODY_BYTES)}).encode()
    assert len(data) > MAX_BODY_BYTES

    def chunks():
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    r = client.post(path, content=chunks(), headers={**AUTH, "content-type": ctype})
    assert "content-length" not in r.request.headers
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_problem(r, 413)


def test_body_under_the_limit_is_accepted(client):
    rows = [dict(r, source="y" * 100) for r in TINY_ROWS]
    r = client.post("/datasets", json={"projects": rows}, headers=AUTH)
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""},
                                     {"X-API-Key": ",".join(KEYS.values())},
                                     {"X-Api-Key": "k3"}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {KEY}"}])
def test_every_endpoint_but_health_needs_a_key(keyless, headers):
    r = keyless.post("/optimize", json=tiny_body(budget_musd=120), headers=headers)
    body = assert_problem(r, 401)
    assert "X-API-Key" in body["detail"]
    assert r.headers.get("www-authenticate")
    r = keyless.post("/datasets", json={"projects": TINY_ROWS}, headers=headers)
    assert_problem(r, 401)
    r = keyless.post("/datasets", content=b"a,b\n",
                     headers={**headers, "content-type": "text/csv"})
    assert_problem(r, 401)
    for path in ("/runs", "/datasets", f"/datasets/{TINY_SHA}", "/ready", "/openapi.json",
                 "/docs", "/"):
        assert_problem(keyless.get(path, headers=headers), 401)
    assert keyless.get("/health", headers=headers).status_code == 200


def test_both_keys_work_as_header_or_bearer(client, keyless):
    total = client.get("/runs").json()["total"]
    for path in ("/runs", "/datasets", f"/datasets/{TINY_SHA}", "/health", "/ready",
                 "/openapi.json", "/docs"):
        assert keyless.get(path, headers={"Authorization": f"Bearer {KEYS['one']}"}
                           ).status_code == 200, path
    for name, key in KEYS.items():
        r = keyless.post("/optimize", json=tiny_body(budget_musd=120),
                         headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert r.json()["created_by"] == name
        assert client.get(f"/runs/{r.json()['run_id']}").status_code == 200
        r = keyless.post("/datasets", json={"projects": TINY_ROWS}, headers={"X-API-Key": key})
        assert r.status_code in (200, 201)
    assert client.get("/runs").json()["total"] == total + 2


def test_idempotency_key(client):
    key = unique("idem")
    body = tiny_body(name=unique("idem"), budget_musd=120)
    first = optimize(client, body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    total = client.get("/runs").json()["total"]
    again = optimize(client, body, headers={"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["objective"] == first.json()["objective"]
    assert client.get("/runs").json()["total"] == total  # no new run stored

    other = tiny_body(name=body["scenario"]["name"], budget_musd=100)
    r = optimize(client, other, headers={"Idempotency-Key": key})
    assert_problem(r, 409)
    r = optimize(client, {**body, "projects": None}, headers={"Idempotency-Key": key})
    assert_problem(r, 409)
    assert client.get("/runs").json()["total"] == total

    # another key with the same body is a new run
    r = optimize(client, body, headers={"Idempotency-Key": unique("idem")})
    assert r.status_code == 200 and r.json()["run_id"] != first.json()["run_id"]
    assert client.get("/runs").json()["total"] == total + 1
    # without a key every call is a new run
    r1, r2 = optimize(client, body), optimize(client, body)
    assert r1.json()["run_id"] != r2.json()["run_id"]


def test_idempotency_key_too_long(client):
    r = optimize(client, tiny_body(budget_musd=120), headers={"Idempotency-Key": "x" * 201})
    assert_input_problem(r, ["header", "idempotency-key"])


# ---------------------------------------------------------------------------------------------
# a slow solve: the second one is refused (503), other requests carry on
# ---------------------------------------------------------------------------------------------


def test_busy_503_and_health_stays_fast_during_a_slow_solve(client):
    data, budget = subset_sum(80)
    slow = {"scenario": {"name": unique("slow"), "budget_musd": budget,
                         "min_output_t": {"ree": 1.0},
                         "solver": {"time_limit_s": 3, "mip_gap": 0, "presolve": "off"}},
            "projects": data.records()}
    assert len(json.dumps(slow)) < MAX_BODY_BYTES
    out: dict[str, Any] = {}

    def run():
        t0 = time.perf_counter()
        out["response"] = optimize(client, slow)
        out["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=run, daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        # wait until the slow solve occupies the only worker
        while client.get("/ready").json()["pool"]["running"] < 1:
            assert time.perf_counter() - started < 3, "the slow solve never started"
            assert thread.is_alive(), out
            time.sleep(0.02)

        latencies = []
        for _ in range(5):
            t0 = time.perf_counter()
            r = client.get("/health")
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200
        assert max(latencies) < 1.0, latencies

        t0 = time.perf_counter()
        busy = optimize(client, tiny_body(budget_musd=120))
        refused_in = time.perf_counter() - t0
        body = assert_problem(busy, 503)
        assert busy.headers["retry-after"] == "7"
        assert "busy" in body["detail"]
        assert refused_in < 1.0  # refused at once, not after waiting for the slow one

        for path in ("/runs", "/datasets", "/ready"):
            t0 = time.perf_counter()
            assert client.get(path).status_code == 200
            assert time.perf_counter() - t0 < 1.0, path
        assert thread.is_alive(), "the slow solve was not slow: the test proves nothing"
    finally:
        thread.join(timeout=30)
    r = out["response"]
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("feasible", "optimal")
    assert out["seconds"] >= 2.5
    # the worker is free again
    assert optimize(client, tiny_body(budget_musd=120)).status_code == 200


# ---------------------------------------------------------------------------------------------
# under uncertainty (CONTRACT section 8): an inline draws table, caps, bad samples
# ---------------------------------------------------------------------------------------------


def tiny_draws(n_draws: int = 4) -> list[dict[str, Any]]:
    """Draws for the hand-worked table: C's value swings, A's price paid overruns in half."""
    return [{"draw": s, "project_id": p, "price": {"C": (0.5, 1.5)[s % 2]}.get(p, 1.0),
             "overrun": {"A": (1.0, 1.2)[s % 2]}.get(p, 1.0)}
            for s in range(n_draws) for p in ("A", "B", "C")]


def test_optimize_with_an_inline_draws_table_matches_the_library(client):
    body = tiny_body(name=unique("draws"), budget_musd=120, objective="mean_cvar",
                     risk_aversion=0.5, cvar_alpha=0.5,
                     uncertainty={"draws_table": tiny_draws(), "fresh_draws": 0})
    r = optimize(client, body)
    assert r.status_code == 200, r.text
    got = r.json()
    lib = optimizer.optimize(TINY_ROWS, body["scenario"])
    assert got["objective"] == pytest.approx(lib.objective, abs=1e-6)
    assert got["uncertainty"]["draws"] == 4 and got["uncertainty"]["source"] == "table"
    assert got["uncertainty"]["cvar"] == pytest.approx(lib.uncertainty.cvar, abs=1e-6)
    stored = client.get(f"/runs/{got['run_id']}").json()
    assert stored["uncertainty"] == got["uncertainty"]


@pytest.mark.parametrize(("uncertainty", "more", "loc"), [
    ({"draws_table": [{"draw": 0, "project_id": "NOPE"}]}, {},
     ["body", "scenario", "uncertainty", "draws_table", 0, "project_id"]),
    ({"draws_table": [{"draw": 0, "project_id": "A", "price": -1}]}, {},
     ["body", "scenario", "uncertainty", "draws_table", 0, "price"]),
    ({"draws_table": [{"draw": 0, "project_id": "A", "available": 2}]}, {},
     ["body", "scenario", "uncertainty", "draws_table", 0, "available"]),
    ({"draws": 10}, {"budget_confidence": 0}, ["body", "scenario", "budget_confidence"]),
    ({"draws": 10}, {"cvar_alpha": 0.7}, ["body", "scenario", "cvar_alpha"]),
])
def test_bad_samples_are_422_and_nothing_is_stored(client, uncertainty, more, loc):
    name = unique("bad-sample")
    body = tiny_body(name=name, budget_musd=120, objective="expected_npv",
                     uncertainty=uncertainty, **more)
    assert_input_problem(optimize(client, body), loc)
    assert name not in client.get("/runs", params={"limit": 500}).text


def test_a_sample_over_the_server_cap_is_413_before_anything_is_built(client, settings):
    """draws x projects over OPTIMIZER_MAX_SAMPLE_CELLS: refused from the spec alone (the
    library's own cap is higher), and nothing stored."""
    name = unique("huge")
    draws = settings.max_sample_cells // len(TINY_ROWS) + 1
    for u in ({"draws": draws, "fresh_draws": 0}, {"draws": 10, "fresh_draws": draws}):
        body = tiny_body(name=name, budget_musd=120, objective="expected_npv", uncertainty=u)
        t0 = time.perf_counter()
        problem = assert_problem(optimize(client, body), 413)
        assert time.perf_counter() - t0 < 2.0
        assert "OPTIMIZER_MAX_SAMPLE_CELLS" in problem["detail"]
    assert name not in client.get("/runs", params={"limit": 500}).text
    ok = tiny_body(name=unique("at-cap"), budget_musd=120, objective="expected_npv",
                   uncertainty={"draws": draws - 1, "fresh_draws": 0})
    assert optimize(client, ok).status_code == 200


def test_a_batch_whose_rows_ask_for_too_large_a_sample_is_413(client, settings):
    """A grid over uncertainty.draws is sized value by value before the batch is stored."""
    draws = settings.max_sample_cells // len(TINY_ROWS) + 1
    spec = {"name": unique("sample-grid"), "projects": TINY_ROWS,
            "base": {"budget_musd": 120, "objective": "expected_npv",
                     "uncertainty": {"draws": 10, "fresh_draws": 0}},
            "grid": {"uncertainty.draws": [10, draws]}}
    problem = assert_problem(client.post("/batches", json=spec), 413)
    assert "OPTIMIZER_MAX_SAMPLE_CELLS" in problem["detail"]
    assert spec["name"] not in client.get("/batches", params={"limit": 500}).text
