"""Access (CONTRACT section 9) in-process: the route table's rules, ownership and deletion,
the audit table, share links, quotas and the storage budget, loopback-only serving without
keys, keys managed with ``python -m api keys``, security headers, local API docs, bodies that
cannot be parsed, a bare scenario, and a run solved but not stored.

One app with four keys for the module (TestClient; starting it spawns one solver worker).
The same rules on the real server, on SQLite and PostgreSQL: tests/test_e2e_access.py.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.access import Role, Rule, routes_of, rules_of
from api.config import Settings
from api.main import create_app
from optimizer.csvsafe import cell

from .conftest import ROOT, TINY_ROWS

SECRETS = {"alice": "alice-analyst-secret-0001", "bob": "bob-analyst-secret-00002",
           "rita": "rita-reader-secret-000003", "ada": "ada-admin-secret-0000004"}
ROLES = {"alice": "analyst", "bob": "analyst", "rita": "reader", "ada": "admin"}


def key(name: str) -> dict[str, str]:
    return {"X-API-Key": SECRETS[name]}


def tiny(name: str = "tiny", budget: float = 120) -> dict:
    return {"scenario": {"name": name, "budget_musd": budget,
                         "solver": {"mip_gap": 0, "time_limit_s": 10}},
            "projects": TINY_ROWS}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    db = tmp_path_factory.mktemp("access") / "a.db"
    return Settings(database_url=f"sqlite:///{db}", workers=1, max_queue=4,
                    api_keys=",".join(f"{n}:{ROLES[n]}:{s}" for n, s in SECRETS.items()),
                    batch_max_unfinished_per_key=2, batch_max_unfinished_rows_per_key=50,
                    batch_poll_s=3600, key_refresh_s=0.2, max_time_limit_s=5)


@pytest.fixture(scope="module")
def client(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False,
                    client=("127.0.0.1", 50000)) as c:
        yield c


@pytest.fixture(scope="module")
def alice_run(client) -> dict:
    r = client.post("/optimize", json=tiny("alice-run"), headers=key("alice"))
    assert r.status_code == 200, r.text
    return r.json()


# ---------------------------------------------------------------------------------------------
# the route table
# ---------------------------------------------------------------------------------------------


def test_every_route_declares_exactly_one_access_rule(client):
    """A route added without a rule fails here (the rules are read off the app itself)."""
    seen = set()
    routes = routes_of(client.app)
    assert len(routes) > 30
    for route in routes:
        assert isinstance(route, APIRoute), f"{route!r} is not an APIRoute: it has no rule"
        rules = rules_of(route)
        assert len(rules) == 1, (route.path, route.methods, rules)
        seen.add((route.path, rules[0].level))
    public = {p for p, level in seen if level == "public"}
    assert public == {"/health"}, public
    shared = {p for p, level in seen if level == "shared"}
    assert shared == {"/shared/{token}", "/shared/{token}/report.xlsx"}, shared
    # writes need the analyst role, reads the reader role
    for route in routes:
        rule = rules_of(route)[0]
        if rule.level in ("public", "shared"):
            continue
        if route.methods & {"POST", "DELETE", "PUT", "PATCH"}:
            assert rule.role >= Role.analyst, route.path
        else:
            assert rule.role == Role.reader, route.path


def test_a_route_without_a_rule_is_caught():
    """The check above can fail: an app with one rule-less route does not pass it."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/open")
    def open_route():
        return {}

    route = next(r for r in app.routes if isinstance(r, APIRoute) and r.path == "/open")
    assert rules_of(route) == []
    assert isinstance(Rule("read"), Rule)


# ---------------------------------------------------------------------------------------------
# ownership, deletion, audit
# ---------------------------------------------------------------------------------------------


def test_analysts_delete_their_own_runs_admins_any(client):
    runs = {}
    for who in ("alice", "bob"):
        r = client.post("/optimize", json=tiny(f"own-{who}"), headers=key(who))
        assert r.status_code == 200 and r.json()["created_by"] == who, r.text
        runs[who] = r.json()["run_id"]
    assert client.delete(f"/runs/{runs['alice']}", headers=key("rita")).status_code == 403
    r = client.delete(f"/runs/{runs['alice']}", headers=key("bob"))
    assert r.status_code == 403 and "alice" in r.json()["detail"], r.text
    r = client.delete(f"/runs/{runs['alice']}", headers=key("alice"))
    assert r.status_code == 200 and r.json() == {"deleted": "run", "id": runs["alice"],
                                                 "runs": 0, "batches": 0}
    assert client.get(f"/runs/{runs['alice']}", headers=key("rita")).status_code == 404
    assert client.delete(f"/runs/{runs['bob']}", headers=key("ada")).status_code == 200
    assert client.delete(f"/runs/{runs['bob']}", headers=key("ada")).status_code == 404
    audit = client.app.state.store.list_audit(50)
    done = {(a.actor, a.action, a.kind, a.target) for a in audit}
    assert ("alice", "delete", "run", runs["alice"]) in done
    assert ("ada", "delete", "run", runs["bob"]) in done
    assert ("bob", "create", "run", runs["bob"]) in done


def test_a_dataset_in_use_is_deleted_only_with_cascade(client):
    rows = [dict(r, name=f"{r['name']} cascade") for r in TINY_ROWS]
    ds = client.post("/datasets", json={"name": "cascade", "projects": rows},
                     headers=key("alice"))
    assert ds.status_code == 201, ds.text
    ds_id = ds.json()["dataset_id"]
    assert ds.json()["created_by"] == "alice"
    run = client.post("/optimize", json={"scenario": tiny()["scenario"], "dataset_id": ds_id},
                      headers=key("alice"))
    assert run.status_code == 200, run.text
    r = client.delete(f"/datasets/{ds_id}", headers=key("alice"))
    assert r.status_code == 409 and "1 stored runs" in r.json()["detail"], r.text
    assert client.delete(f"/datasets/{ds_id}?cascade=true",
                         headers=key("bob")).status_code == 403
    # bob's run on alice's dataset: alice's cascade may not delete it, an admin's may
    bobs = client.post("/optimize", json={"scenario": tiny()["scenario"], "dataset_id": ds_id},
                       headers=key("bob"))
    assert bobs.status_code == 200
    r = client.delete(f"/datasets/{ds_id}?cascade=true", headers=key("alice"))
    assert r.status_code == 403 and "bob" in r.json()["detail"], r.text
    r = client.delete(f"/datasets/{ds_id}?cascade=true", headers=key("ada"))
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "dataset", "id": ds_id, "runs": 2, "batches": 0}
    for rid in (run.json()["run_id"], bobs.json()["run_id"]):
        assert client.get(f"/runs/{rid}", headers=key("rita")).status_code == 404
    assert client.get(f"/datasets/{ds_id}", headers=key("rita")).status_code == 404
    default = client.app.state.default_dataset.id
    assert client.delete(f"/datasets/{default}", headers=key("ada")).status_code == 409


def test_batch_cancel_and_purge_by_owner(client):
    spec = {"name": "purge-me", "base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "scenarios": [{"budget_musd": 100}]}
    r = client.post("/batches", json=spec, headers=key("bob"))
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    assert client.delete(f"/batches/{bid}", headers=key("alice")).status_code == 403
    r = client.delete(f"/batches/{bid}", headers=key("bob"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert client.get(f"/batches/{bid}", headers=key("rita")).status_code == 200
    r = client.delete(f"/batches/{bid}?purge=true", headers=key("bob"))
    assert r.status_code == 200, r.text
    assert client.get(f"/batches/{bid}", headers=key("rita")).status_code == 404
    actions = [(a.actor, a.action, a.target) for a in client.app.state.store.list_audit(20)]
    assert ("bob", "cancel", bid) in actions and ("bob", "delete", bid) in actions


# ---------------------------------------------------------------------------------------------
# share links
# ---------------------------------------------------------------------------------------------


def _path(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_share_link_opens_one_report_without_a_key(client, alice_run):
    run_id = alice_run["run_id"]
    solves = client.app.state.pool.stats["solves"]
    r = client.post(f"/runs/{run_id}/share", headers=key("alice"))
    assert r.status_code == 201, r.text
    link = r.json()
    assert client.app.state.pool.stats["solves"] == solves + 1  # the analysis, computed now
    expires = datetime.fromisoformat(link["expires"])
    assert timedelta(days=6.9) < expires - datetime.now(UTC) < timedelta(days=7.1)
    anonymous = TestClient(client.app, raise_server_exceptions=False)  # no key, not loopback
    page = anonymous.get(_path(link["url"]))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "alice-run" in page.text and run_id in page.text
    xlsx = anonymous.get(_path(link["xlsx_url"]))
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert client.app.state.pool.stats["solves"] == solves + 1  # opening solves nothing
    # the token opens nothing else: not the run's JSON, not as an API key
    token = _path(link["url"]).removeprefix("/shared/")
    for path in (f"/runs/{run_id}", "/runs", f"/runs/{run_id}/report", "/"):
        assert anonymous.get(path).status_code == 401
        assert anonymous.get(path, headers={"X-API-Key": token}).status_code == 401
        assert anonymous.get(path, headers={"Authorization": f"Bearer {token}"}
                             ).status_code == 401
    assert anonymous.get(f"/shared/{token}/../../runs/{run_id}").status_code in (401, 404)


def test_share_link_tampered_expired_revoked(client, alice_run):
    run_id = alice_run["run_id"]
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    link = client.post(f"/runs/{run_id}/share", headers=key("alice")).json()
    path = _path(link["url"])
    # tampered: a changed character of the data or of the signature, a cut, an addition
    # (the signature's last base64 character is avoided: its two low bits are padding)
    token = path.removeprefix("/shared/")
    data, sig = token.rsplit(".", 1)

    def flip(text: str, i: int) -> str:
        return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]

    for bad_token in (flip(token, 6), f"{data}.{flip(sig, 0)}", f"{data}.{flip(sig, 20)}",
                      token[:-4], token + "x", "x" + token, f"{data}x.{sig}"):
        bad = f"/shared/{bad_token}"
        r = anonymous.get(bad)
        assert r.status_code == 403 and "not a valid share link" in r.json()["detail"], bad
    # a link signed for another resource: a run's token re-signed for a batch is not in the
    # table (ids are the row's), and a token from another secret is refused
    signer = client.app.state.signer
    grant = signer.verify(path.removeprefix("/shared/"))
    forged = signer.token(grant.share_id, "batch", grant.target, grant.expires)
    r = anonymous.get(f"/shared/{forged}")
    assert r.status_code == 404, r.text
    from api.shares import Signer

    other = Signer("another-server-secret-" + "x" * 32).token(grant.share_id, "run", run_id,
                                                             grant.expires)
    assert anonymous.get(f"/shared/{other}").status_code == 403
    # expired
    short = client.post(f"/runs/{run_id}/share", json={"expires_in_s": 1},
                        headers=key("alice")).json()
    time.sleep(1.2)
    r = anonymous.get(_path(short["url"]))
    assert r.status_code == 410 and "expired" in r.json()["detail"], r.text
    too_long = client.post(f"/runs/{run_id}/share", json={"expires_in_s": 1e9},
                           headers=key("alice"))
    assert too_long.status_code == 422
    # revoked: by its owner or an admin, not by another analyst
    assert client.delete(f"/shares/{link['share_id']}", headers=key("bob")).status_code == 403
    assert client.delete(f"/shares/{link['share_id']}", headers=key("alice")).status_code == 204
    assert anonymous.get(path).status_code == 404
    listed = client.get("/shares", params={"target": run_id}, headers=key("rita")).json()
    revoked = next(s for s in listed if s["share_id"] == link["share_id"])
    assert revoked["revoked_at"] is not None and revoked["created_by"] == "alice"
    assert "url" not in revoked and "token" not in revoked
    assert client.post(f"/runs/{run_id}/share", headers=key("rita")).status_code == 403


def test_batch_share_link(client):
    spec = {"name": "shared-batch", "base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "scenarios": [{"budget_musd": 100}]}
    bid = client.post("/batches", json=spec, headers=key("ada")).json()["batch_id"]
    link = client.post(f"/batches/{bid}/share", headers=key("ada")).json()
    anonymous = TestClient(client.app, raise_server_exceptions=False)
    page = anonymous.get(_path(link["url"]))
    assert page.status_code == 200 and "shared-batch" in page.text
    assert anonymous.get(_path(link["xlsx_url"])).content[:2] == b"PK"
    assert anonymous.get(f"/batches/{bid}").status_code == 401
    client.delete(f"/batches/{bid}?purge=true", headers=key("ada"))
    assert anonymous.get(_path(link["url"])).status_code == 404  # deleted with its batch


# ---------------------------------------------------------------------------------------------
# quotas, time limits, storage budget
# ---------------------------------------------------------------------------------------------


def test_batch_quota_per_key_with_retry_after(client, settings):
    spec = {"base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "scenarios": [{"budget_musd": 100}]}
    made = []
    for _ in range(settings.batch_max_unfinished_per_key):  # the runner is idle: all queued
        r = client.post("/batches", json=spec, headers=key("alice"))
        assert r.status_code == 202, r.text
        made.append(r.json()["batch_id"])
    r = client.post("/batches", json=spec, headers=key("alice"))
    assert r.status_code == 429 and r.headers["retry-after"] == "60", r.text
    assert "2 batches queued or running" in r.json()["detail"]
    assert client.post("/batches", json=spec, headers=key("bob")).status_code == 202
    # rows: 50 at most per key
    big = {**spec, "scenarios": [{"budget_musd": 100}] * 51}
    r = client.post("/batches", json=big, headers=key("ada"))
    assert r.status_code == 429 and "quota of 50" in r.json()["detail"], r.text
    for bid in made:  # cancelled batches no longer count
        client.delete(f"/batches/{bid}", headers=key("alice"))
    assert client.post("/batches", json=spec, headers=key("alice")).status_code == 202


def test_batch_time_limits_are_capped_like_optimize(client, settings):
    spec = {"base": {"budget_musd": 120, "solver": {"time_limit_s": 86_400}},
            "projects": TINY_ROWS, "grid": {"solver.time_limit_s": [1, 86_400]}}
    r = client.post("/batches", json=spec, headers=key("ada"))
    assert r.status_code == 202, r.text
    row = client.app.state.store.get_batch(r.json()["batch_id"])
    assert row.spec["base"]["solver"]["time_limit_s"] == settings.max_time_limit_s
    assert row.spec["grid"]["solver.time_limit_s"] == [1, settings.max_time_limit_s]
    client.delete(f"/batches/{row.batch_id}?purge=true", headers=key("ada"))


def test_storage_budget(tmp_path):
    s = Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", workers=1,
                 api_keys=f"alice:analyst:{SECRETS['alice']}", storage_budget_mb=0.002)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        first = c.post("/optimize", json=tiny(), headers=key("alice"))
        assert first.status_code == 200, first.text  # under budget before: ~2.5 kB after
        r = c.post("/optimize", json=tiny(), headers=key("alice"))
        assert r.status_code == 403, r.text
        assert "storage budget" in r.json()["detail"] and r.json()["type"].endswith("budget")
        c.delete(f"/runs/{first.json()['run_id']}", headers=key("alice"))
        c.app.state.db.usage._seen.clear()  # as after its 10 s
        assert c.post("/optimize", json=tiny(), headers=key("alice")).status_code == 200


# ---------------------------------------------------------------------------------------------
# no keys: loopback only; keys from the database
# ---------------------------------------------------------------------------------------------


def test_without_keys_only_loopback_clients_are_served(tmp_path):
    s = Settings(database_url=f"sqlite:///{tmp_path / 'n.db'}", workers=1)
    app = create_app(s)
    with TestClient(app, client=("127.0.0.1", 1234)) as local:
        assert local.get("/runs").status_code == 200
        r = local.post("/optimize", json=tiny())
        assert r.status_code == 200 and r.json()["created_by"] == "local"
        for host in ("192.0.2.7", "10.1.2.3", "::ffff:192.0.2.7", "testclient"):
            remote = TestClient(app, raise_server_exceptions=False, client=(host, 1234))
            r = remote.get("/runs")
            assert r.status_code == 403 and "loopback" in r.json()["detail"], (host, r.text)
            assert remote.get("/health").status_code == 200
        for host in ("::1", "127.0.0.2", "::ffff:127.0.0.1"):
            assert TestClient(app, client=(host, 1)).get("/runs").status_code == 200, host


def test_refuses_to_listen_elsewhere_without_keys(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"}
    out = subprocess.run([sys.executable, "-m", "api", "--host", "0.0.0.0", "--port", "9"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "refusing to listen on 0.0.0.0: no API keys are configured" in out.stderr


def test_keys_cli_add_list_revoke_and_the_server_follows(tmp_path, monkeypatch, capsys):
    """``python -m api keys ...`` (its main() in-process, and once as a real command)."""
    from api.__main__ import main

    url = f"sqlite:///{tmp_path / 'k.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("OPTIMIZER_API_KEYS", raising=False)

    def cli(*args) -> tuple[int, str, str]:
        code = main(["keys", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, secret, err = cli("add", "carol", "analyst")
    assert code == 0, err
    secret = secret.strip()
    assert len(secret) >= 40 and "shown once" in err
    assert cli("add", "carol", "reader")[0] == 2
    assert cli("add", "bad name", "reader")[0] == 2
    assert cli("add", "dave", "superuser")[0] == 2
    code, listed, _ = cli("list")
    assert "carol" in listed and "analyst" in listed and secret not in listed
    s = Settings(database_url=url, workers=1, key_refresh_s=0.2)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        store = c.app.state.store
        assert all(secret not in str(v) for k in store.list_keys() for v in vars(k).values())
        r = c.post("/optimize", json=tiny(), headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200 and r.json()["created_by"] == "carol", r.text
        assert c.get("/runs").status_code == 401  # keys exist now: loopback is not enough
        revoked = subprocess.run([sys.executable, "-m", "api", "keys", "revoke", "carol"],
                                 cwd=ROOT, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url},
                                 capture_output=True, text=True, timeout=60)
        assert revoked.returncode == 0 and "revoked" in revoked.stderr, revoked.stderr
        deadline = time.monotonic() + 5
        while c.get("/runs", headers={"X-API-Key": secret}).status_code != 403:
            assert time.monotonic() < deadline, "revocation not seen within 5 s"
            time.sleep(0.1)
        # the last key gone: loopback only again (this TestClient is not loopback)
    assert main(["audit"]) == 0
    audit = capsys.readouterr().out
    assert "key_add" in audit and "key_revoke" in audit and "carol" in audit


# ---------------------------------------------------------------------------------------------
# headers, docs, OpenAPI
# ---------------------------------------------------------------------------------------------


def test_security_headers_on_every_page_and_file(client, alice_run):
    rid = alice_run["run_id"]
    paths = ["/runs", f"/runs/{rid}", f"/runs/{rid}/report", f"/runs/{rid}/report.xlsx", "/",
             "/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui.css", "/health",
             "/runs/nope", "/datasets"]
    for path in paths:
        r = client.get(path, headers=key("rita"))
        assert r.status_code in (200, 404), (path, r.status_code)
        h = r.headers
        assert h["x-content-type-options"] == "nosniff", path
        assert h["x-frame-options"] == "DENY", path
        assert h["referrer-policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in h["content-security-policy"], path
        assert "default-src 'none'" in h["content-security-policy"], path
        if not path.startswith("/docs/assets"):
            assert h["cache-control"] == "no-store", path
    report = client.get(f"/runs/{rid}/report", headers=key("rita"))
    assert "script-src" not in report.headers["content-security-policy"]  # no script runs


def test_docs_load_nothing_from_elsewhere(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page, headers=key("rita")).text
        assert "http" not in html.lower() and "cdn" not in html.lower(), html
        for src in __import__("re").findall(r'(?:src|href)="([^"]+)"', html):
            r = client.get("/" + src, headers=key("rita"))
            assert r.status_code == 200 and len(r.content) > 100, src
    assert client.get("/docs/assets/../config.py", headers=key("rita")).status_code == 404


def test_openapi_documents_csv_and_required_fields(client):
    spec = client.get("/openapi.json", headers=key("rita")).json()
    csv_get = spec["paths"]["/batches/{batch_id}/results.csv"]["get"]["responses"]["200"]
    assert list(csv_get["content"]) == ["text/csv"]
    body = spec["paths"]["/batches"]["post"]["requestBody"]
    assert body["required"] and "base" in body["content"]["application/json"]["schema"][
        "required"]
    schemas = spec["components"]["schemas"]
    assert "scenario" in schemas["OptimizeRequest"]["required"]
    assert "budget_musd" in schemas["Scenario"]["required"]
    assert {"batch_id", "status", "total"} <= set(schemas["BatchAccepted"]["required"])
    # responses always carry every field: all marked required
    for name in ("RunResult", "RunSummary", "BatchStatus", "DatasetInfo", "ShareCreated"):
        sc = schemas[name]
        assert set(sc["properties"]) == set(sc["required"]), name
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])
    assert "security" not in spec["paths"]["/health"]["get"]


# ---------------------------------------------------------------------------------------------
# bodies, a bare scenario, formula cells
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/optimize", "/datasets", "/batches", "/runs/x/share"])
def test_deeply_nested_json_is_a_4xx_with_line_and_column(client, path):
    body = b'{"scenario":\n' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}"
    r = client.post(path, content=body, headers={**key("alice"),
                                                 "content-type": "application/json"})
    assert r.status_code in (400, 404, 422), (r.status_code, r.text[:300])
    if r.status_code != 404:  # the share route looks the run up first
        detail = r.json()["detail"]
        assert "nested too deeply" in detail and "line 2, column" in detail, detail


def test_a_bare_scenario_gets_one_hint(client):
    r = client.post("/optimize", json={"name": "base", "budget_musd": 1600,
                                       "max_country_share": 0.3}, headers=key("alice"))
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert len(errors) == 1, errors
    assert '{"scenario": {...}}' in errors[0]["msg"] and errors[0]["loc"] == ["body"]


def test_idempotency_keys_belong_to_the_api_key(client):
    body = tiny("idem-scope")
    a = client.post("/optimize", json=body, headers={**key("alice"), "Idempotency-Key": "k-1"})
    b = client.post("/optimize", json=body, headers={**key("bob"), "Idempotency-Key": "k-1"})
    a2 = client.post("/optimize", json=body, headers={**key("alice"), "Idempotency-Key": "k-1"})
    assert a.status_code == b.status_code == a2.status_code == 200
    assert a.json()["run_id"] != b.json()["run_id"]  # bob does not get alice's run
    assert a2.json()["run_id"] == a.json()["run_id"]
    other = tiny("idem-scope", budget=100)
    r = client.post("/optimize", json=other, headers={**key("bob"), "Idempotency-Key": "k-1"})
    assert r.status_code == 409


def test_formula_cells_are_written_as_text(client):
    evil = '=HYPERLINK("http://example.invalid","x")'
    spec = {"name": "formula", "base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "scenarios": [{"name": evil, "budget_musd": 100}, {"name": "-2+3", "budget_musd": 90},
                          {"name": "@SUM(A1)", "budget_musd": 80}]}
    from api.db import Store

    store: Store = client.app.state.store
    r = client.post("/batches", json=spec, headers=key("ada"))
    assert r.status_code == 202, r.text
    bid = r.json()["batch_id"]
    rows = [{"index": i, "status": "infeasible", "scenario": {"name": s["name"]},
             "selected": [], "totals": {}} for i, s in enumerate(spec["scenarios"])]
    store.add_batch_rows(bid, rows)  # as the runner stores them
    text = client.get(f"/batches/{bid}/results.csv", headers=key("rita")).text
    names = [line["name"] for line in csv.DictReader(io.StringIO(text))]
    assert names == ["'" + evil, "'-2+3", "'@SUM(A1)"], names
    assert cell("-12.5") == "-12.5" and cell("\t=1") == "'\t=1" and cell(3) == 3
    client.delete(f"/batches/{bid}?purge=true", headers=key("ada"))


# ---------------------------------------------------------------------------------------------
# a run solved but not stored
# ---------------------------------------------------------------------------------------------


def test_a_failed_store_is_retried_then_a_503_naming_the_run_not_stored(client, monkeypatch):
    store = client.app.state.store
    real = store.add_run
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= fails:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "add_run", flaky)
    fails = 2  # retried: the third attempt stores it
    r = client.post("/optimize", json=tiny("flaky"), headers=key("alice"))
    assert r.status_code == 200 and calls["n"] == 3, r.text
    calls["n"], fails = 0, 99
    r = client.post("/optimize", json=tiny("lost"), headers=key("alice"))
    assert r.status_code == 503 and calls["n"] == 3, r.text
    body = r.json()
    assert "could NOT be stored" in body["detail"] and "disk is full" in body["detail"]
    assert body["stored"] is False and body["result"]["objective"] == pytest.approx(47)
    assert r.headers["retry-after"]
    ready = client.get("/ready", headers=key("rita"))
    # the probe write works (the disk is not really full): ready again
    assert ready.status_code == 200 and ready.json()["checks"]["writes"] == "ok"
