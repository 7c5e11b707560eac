"""Access and failure modes on the real server (``python -m api``, uvicorn), on SQLite and
PostgreSQL: the role x route matrix read off the app's own route table (with the security
headers of every answer), a burst of batches against the per-key quota, hostile inputs whose
cost the client would choose (422 within a second, memory flat), a database that accepts
connections and never answers (at start, and under a running server), and a full disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from api.access import OpenRule, Role, routes_of, rules_of
from api.config import Settings
from api.main import create_app

from .conftest import TINY_ROWS, fresh_pg_database
from .test_e2e_server import ROOT, Server, _free_port, running_server

SECRETS = {"reader": "e2e-reader-secret-0000001", "analyst": "e2e-analyst-secret-000002",
           "analyst2": "e2e-analyst2-secret-00003", "admin": "e2e-admin-secret-00000004"}
ROLE_OF = {"reader": Role.reader, "analyst": Role.analyst, "analyst2": Role.analyst,
           "admin": Role.admin}
API_KEYS = ",".join(f"{n}:{ROLE_OF[n].name}:{s}" for n, s in SECRETS.items())
QUOTA = 2


def auth(name: str) -> dict[str, str]:
    return {"X-API-Key": SECRETS[name]}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def keyed(request, tmp_path_factory):
    with running_server(request, tmp_path_factory, request.param, "keyed",
                        OPTIMIZER_API_KEYS=API_KEYS, OPTIMIZER_WORKERS="1",
                        OPTIMIZER_BATCH_MAX_UNFINISHED_PER_KEY=str(QUOTA),
                        OPTIMIZER_BATCH_POLL_S="3600") as srv:
        yield srv


def _ready(srv: Server, headers: dict) -> None:
    with srv.client() as c:
        assert c.get("/ready", headers=headers).status_code == 200


# ---------------------------------------------------------------------------------------------
# the role x route matrix
# ---------------------------------------------------------------------------------------------

PARAMS = {"run_id": lambda: uuid.uuid4().hex, "batch_id": lambda: uuid.uuid4().hex,
          "share_id": lambda: uuid.uuid4().hex, "dataset_id": lambda: "ab" * 32,
          "token": lambda: "not-a-token", "name": lambda: "swagger-ui.css"}


def _requests():
    """(method, concrete path, rule) for every route of the app and each of its methods."""
    app = create_app(Settings(database_url="sqlite://"))  # not started: its table only
    out = []
    for route in routes_of(app):
        (rule,) = rules_of(route)
        path = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]](), route.path)
        for method in sorted(route.methods):
            out.append((method, path, rule))
    return out


def test_role_by_route_matrix_from_the_route_table(keyed):
    checked = 0
    with keyed.client() as c:
        for method, path, rule in _requests():
            for who in (None, *SECRETS):
                headers = auth(who) if who else {}
                body = {} if method == "POST" else None
                r = c.request(method, path, headers=headers, json=body)
                where = f"{method} {path} as {who or 'nobody'}: {r.status_code} {r.text[:200]}"
                assert r.headers["x-content-type-options"] == "nosniff", where
                assert "frame-ancestors 'none'" in r.headers["content-security-policy"], where
                assert r.status_code < 500, where
                if isinstance(rule, OpenRule):
                    if rule.level == "public":
                        assert r.status_code == 200, where
                    else:  # a share link: its own signature, never a key
                        assert r.status_code == 403 and "share link" in r.text, where
                elif who is None:
                    assert r.status_code == 401 and r.headers["www-authenticate"], where
                elif ROLE_OF[who] < rule.role:
                    assert r.status_code == 403, where
                else:
                    assert r.status_code not in (401, 403), where
                checked += 1
    assert checked > 150, checked


# ---------------------------------------------------------------------------------------------
# quotas under a burst
# ---------------------------------------------------------------------------------------------


def test_batch_quota_holds_under_a_burst(keyed):
    spec = {"name": "burst", "base": {"budget_musd": 120}, "projects": TINY_ROWS,
            "scenarios": [{"budget_musd": 100}, {"budget_musd": 60}]}

    async def fire(n: int, who: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=keyed.base_url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/batches", json=spec, headers=auth(who))
                                          for _ in range(n)])

    answers = asyncio.run(fire(8, "analyst"))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * QUOTA + [429] * (8 - QUOTA), [(r.status_code, r.text[:200])
                                                            for r in answers]
    for r in answers:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "60"
            assert r.headers["content-type"].startswith("application/problem+json")
    other = asyncio.run(fire(1, "analyst2"))  # another key is not held up
    assert other[0].status_code == 202, other[0].text
    with keyed.client() as c:
        for r in [*answers, *other]:
            if r.status_code == 202:
                bid = r.json()["batch_id"]
                assert c.delete(f"/batches/{bid}?purge=true",
                                headers=auth("admin")).status_code == 200


# ---------------------------------------------------------------------------------------------
# inputs whose cost the client would choose
# ---------------------------------------------------------------------------------------------


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])


HOSTILE = [
    ("path index", {"base": {"budget_musd": 100},
                    "grid": {"annual_budget_musd.1000000000": [1]}}),
    ("path index, digits", {"base": {"budget_musd": 100},
                            "grid": {"annual_budget_musd." + "9" * 4000: [1]}}),
    ("draws", {"base": {"budget_musd": 100}, "monte_carlo": {"draws": 10 ** 12}}),
    ("frontier points", {"base": {"budget_musd": 100},
                         "frontier": {"kind": "budget", "low": 1, "high": 9,
                                      "points": 10 ** 9}}),
    ("frontier budget", {"base": {"budget_musd": 100},
                         "frontier": {"kind": "budget", "values": [1, 1e308]}}),
    ("grid product", {"base": {"budget_musd": 100},
                      "grid": {"budget_musd": list(range(1, 1001)),
                               "max_projects": list(range(1, 1001))}}),
    ("plan years", {"base": {"budget_musd": 100, "annual_budget_musd": [1] * 10 ** 5},
                    "scenarios": [{}]}),
    ("time limit", {"base": {"budget_musd": 100, "solver": {"time_limit_s": 1e12}},
                    "scenarios": [{}]}),
]


@pytest.mark.parametrize("what, spec", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_specs_are_a_fast_422_with_flat_memory(keyed, what, spec):
    pid = keyed.proc.pid
    before = _rss_kb(pid)
    with keyed.client() as c:
        t0 = time.monotonic()
        r = c.post("/batches", json=spec, headers=auth("analyst"))
        took = time.monotonic() - t0
        assert c.get("/health").status_code == 200
    grown_mb = (_rss_kb(pid) - before) / 1024
    if what == "time limit":  # capped like POST /optimize's: accepted, then deleted
        assert r.status_code == 202, r.text
        with keyed.client() as c:
            c.delete(f"/batches/{r.json()['batch_id']}?purge=true", headers=auth("admin"))
    else:
        assert r.status_code == 422, r.text[:500]
        assert r.json()["errors"], r.text[:500]
    print(f"\n{what}: {r.status_code} in {took * 1000:.0f} ms, RSS {grown_mb:+.1f} MB")
    assert took < 1.0, f"{what}: {took:.2f} s"
    assert grown_mb < 50, f"{what}: RSS grew by {grown_mb:.0f} MB"


# ---------------------------------------------------------------------------------------------
# a database that accepts connections and never answers
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def black_hole():
    """A listening socket that never accepts: the kernel completes the handshake (backlog),
    nothing ever answers. Yields its port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def test_start_against_a_silent_database_fails_fast_with_a_clear_message(tmp_path):
    with black_hole() as port:
        env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
               "DATABASE_URL": f"postgresql+psycopg://u@127.0.0.1:{port}/db",
               "OPTIMIZER_API_KEYS": API_KEYS}
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "api", "--port", str(_free_port())],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
    print(f"\nsilent database: refused to start after {took:.1f} s")
    assert out.returncode != 0
    assert took < 12, took
    log = out.stdout + out.stderr
    assert f"127.0.0.1:{port}" in log and ("did not answer" in log or "timeout" in log), log


class PausableProxy:
    """TCP proxy to PostgreSQL that can go silent: while paused it forwards nothing and
    accepts new connections without ever answering them (a database that hangs)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        while not self.stop.is_set():
            for k, _ in sel.select(timeout=0.05):
                if k.data is None:
                    if self.paused.is_set():
                        continue  # leave it in the backlog: never answered
                    client, _ = self.listener.accept()
                    server = socket.create_connection(self.upstream)
                    self.socks += [client, server]
                    sel.register(client, selectors.EVENT_READ, server)
                    sel.register(server, selectors.EVENT_READ, client)
                elif not self.paused.is_set():
                    try:
                        data = k.fileobj.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        for s in (k.fileobj, k.data):
                            with contextlib.suppress(KeyError, ValueError):
                                sel.unregister(s)
                            s.close()
                        continue
                    k.data.sendall(data)
            if self.paused.is_set():
                time.sleep(0.05)
        for s in self.socks:
            s.close()
        self.listener.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def test_requests_get_503_while_the_database_hangs_then_recover(request, tmp_path_factory):
    from sqlalchemy.engine import make_url

    server_url = request.getfixturevalue("pg_server")
    with fresh_pg_database(server_url, "optimizer_hang") as url:
        u = make_url(url)
        proxy = PausableProxy((u.host or "127.0.0.1", u.port or 5432))
        try:
            via = u.set(host="127.0.0.1", port=proxy.port).render_as_string(
                hide_password=False)
            srv = Server(via, tmp_path_factory.mktemp("hang"), OPTIMIZER_API_KEYS=API_KEYS,
                         OPTIMIZER_WORKERS="1", OPTIMIZER_DB_TIMEOUT_S="3",
                         OPTIMIZER_DB_CONNECT_TIMEOUT_S="2", OPTIMIZER_RETRY_AFTER_S="4")
            srv.start()
            try:
                with srv.client(timeout=30) as c:
                    body = {"scenario": {"name": "hang", "budget_musd": 120}, "projects": TINY_ROWS}
                    assert c.post("/optimize", json=body, headers=auth("analyst")
                                  ).status_code == 200
                    proxy.paused.set()
                    for method, path, b in (("GET", "/runs", None), ("POST", "/optimize", body),
                                            ("GET", "/ready", None)):
                        t0 = time.monotonic()
                        r = c.request(method, path, json=b, headers=auth("analyst"))
                        took = time.monotonic() - t0
                        assert r.status_code == 503, (path, r.status_code, r.text[:300])
                        assert took < 3 + 5, (path, took)
                        if path != "/ready":
                            assert r.headers["retry-after"] == "4", path
                            assert "database" in r.json()["detail"], r.text
                    assert c.get("/health").status_code == 200  # the process itself is fine
                    proxy.paused.clear()
                    deadline = time.monotonic() + 30
                    while c.get("/runs", headers=auth("reader")).status_code != 200:
                        assert time.monotonic() < deadline, "no recovery within 30 s"
                        time.sleep(0.5)
                    assert c.post("/optimize", json=body, headers=auth("analyst")
                                  ).status_code == 200
            finally:
                srv.stop()
        finally:
            proxy.close()


# ---------------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int):
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                          str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or out.returncode}); "
                    "the full-disk test needs root or CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(path: Path) -> Path:
    """Write a file until the filesystem is full (to the last block)."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_disk_answers_503_naming_the_run_not_stored_and_ready_says_so(tmp_path):
    with small_tmpfs(tmp_path / "disk", 24) as disk:
        srv = Server(f"sqlite:///{disk / 'full.db'}", tmp_path, OPTIMIZER_WORKERS="1",
                     OPTIMIZER_DATASET_CACHE_DIR=str(tmp_path / "cache"))
        srv.start()
        try:
            with srv.client() as c:
                body = {"scenario": {"name": "disk", "budget_musd": 120}, "projects": TINY_ROWS}
                assert c.post("/optimize", json=body).status_code == 200
                filler = _fill(disk)
                r = c.post("/optimize", json={**body, "scenario": {**body["scenario"],
                                                                   "name": "lost"}})
                assert r.status_code == 503, r.text[:500]
                got = r.json()
                assert "could NOT be stored" in got["detail"], got["detail"]
                assert "full" in got["detail"].lower(), got["detail"]
                assert got["stored"] is False and got["result"]["objective"] == pytest.approx(47)
                assert r.headers["retry-after"]
                ready = c.get("/ready")
                assert ready.status_code == 503, ready.text
                assert "failed" in ready.json()["checks"]["writes"], ready.text
                names = [i["scenario_name"] for i in c.get("/runs").json()["items"]]
                assert "lost" not in names
                filler.unlink()  # space again: the next probe writes, the next run is stored
                assert c.get("/ready").status_code == 200
                assert c.post("/optimize", json=body).status_code == 200
            assert srv.proc.poll() is None, srv.log()
        finally:
            srv.stop()
