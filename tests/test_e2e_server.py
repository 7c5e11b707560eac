"""End to end: the real server (``python -m api``) in a subprocess, driven over HTTP.

One server per storage backend for the module (SQLite always; PostgreSQL when
``TEST_DATABASE_URL`` is set, on a fresh database made for this module and dropped after).
Worker processes are found as children of the server process through ``/proc`` (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from optimizer import optimize

from .conftest import TINY_ROWS
from .instances import subset_sum

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL")
PROBLEM_JSON = "application/problem+json"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="finds worker processes through /proc (Linux)")


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _children(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and int(st[1]) == ppid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cpu_ticks(pid: int) -> int:
    st = _stat(pid)
    return 0 if st is None else int(st[11]) + int(st[12])  # utime + stime


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


class Server:
    """``python -m api`` on a free loopback port; start/stop/restart on the same database."""

    def __init__(self, database_url: str, logdir: Path, **env: str) -> None:
        self.database_url = database_url
        self.logdir = logdir
        self.extra_env = env
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.starts = 0
        self._log_path: Path | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OPTIMIZER_") and k != "DATABASE_URL"}
        env.update(DATABASE_URL=self.database_url, OPTIMIZER_WORKERS="2",
                   PYTHONUNBUFFERED="1", **self.extra_env)
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.starts += 1
        self._log_path = self.logdir / f"server-{self.starts}.log"
        with open(self._log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"server exited with {self.proc.returncode} before /ready:\n"
                                + self.log())
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/ready").status_code == 200:
                        return
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"server not ready within {timeout_s} s:\n{self.log()}")

    def workers(self) -> list[int]:
        """Pids of the solver worker processes (spawned children, not the resource tracker)."""
        if self.proc is None:
            return []
        return [p for p in _children(self.proc.pid) if "spawn_main" in _cmdline(p)]

    def stop(self) -> None:
        if self.proc is None:
            return
        leftovers = _children(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in leftovers:  # workers normally exit with the server; never leave one behind
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-4000:]

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------

def _pg_admin_conninfo(url: str) -> tuple[str, object]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False), u


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL database for this module (dropped at the end), as a SQLAlchemy URL.

    Unset ``TEST_DATABASE_URL``: the PostgreSQL cases are skipped. Set but unreachable: fail.
    """
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL not set")
    import psycopg

    admin, url = _pg_admin_conninfo(PG_URL)
    name = f"optimizer_e2e_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is unusable: {exc}")
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(
    not PG_URL, reason="TEST_DATABASE_URL not set"))]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    logdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{logdir / 'e2e.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    srv = Server(url, logdir, OPTIMIZER_MAX_QUEUE="64")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def tiny_scenario(budget: float = 120, name: str = "tiny") -> dict:
    return {"name": name, "budget_musd": budget, "solver": {"mip_gap": 0, "time_limit_s": 30}}


def hard_request(time_limit_s: float) -> dict:
    data, budget = subset_sum(80)
    return {"projects": data.records(),
            "scenario": {"name": "hard", "budget_musd": budget, "min_output_t": {"ree": 1.0},
                         "solver": {"time_limit_s": time_limit_s, "mip_gap": 0,
                                    "presolve": "off"}}}


def stakes(result: dict) -> dict[str, float]:
    return {p["project_id"]: p["stake"] for p in result["selected"]}


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    body = resp.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body


def assert_tiny_ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "optimal"
    assert body["objective"] == pytest.approx(47, abs=1e-6)
    assert stakes(body) == pytest.approx({"A": 0.55, "C": 0.3}, abs=1e-6)
    return body


def wait_pool(client: httpx.Client, pred, timeout_s: float = 30.0) -> dict:
    """Poll /ready until ``pred(pool_load)``; returns the last body."""
    deadline = time.monotonic() + timeout_s
    body: dict = {}
    while time.monotonic() < deadline:
        r = client.get("/ready")
        body = r.json()
        if "pool" in body and pred(body["pool"]):
            return body
        time.sleep(0.05)
    raise AssertionError(f"pool never reached the expected state; last /ready: {body}")


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def test_optimize_then_get_run_round_trip(client):
    posted = assert_tiny_ok(client.post("/optimize", json={"scenario": tiny_scenario(),
                                                           "projects": TINY_ROWS}))
    got = client.get(f"/runs/{posted['run_id']}")
    assert got.status_code == 200, got.text
    got = got.json()
    p, g = dict(posted), dict(got)
    p_at, g_at = p.pop("created_at"), g.pop("created_at")
    assert g == p  # the stored result is the one answered, field for field
    assert datetime.fromisoformat(g_at).replace(tzinfo=None) == \
        datetime.fromisoformat(p_at).replace(tzinfo=None)
    assert client.get(f"/runs/{uuid.uuid4().hex}").status_code == 404


def test_created_at_is_the_same_utc_instant_in_post_and_get(client):
    """Regression: on SQLite, GET /runs/{id} used to print created_at without an offset (SQLite
    keeps no zone, so SQLAlchemy handed back a naive datetime) while POST printed +00:00."""
    posted = client.post("/optimize", json={"scenario": tiny_scenario(), "projects": TINY_ROWS})
    assert posted.status_code == 200, posted.text
    got = client.get(f"/runs/{posted.json()['run_id']}").json()
    listed = client.get("/runs", params={"limit": 1}).json()["items"][0]
    for stamp in (posted.json()["created_at"], got["created_at"], listed["created_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() is not None, stamp
    assert datetime.fromisoformat(got["created_at"]) == \
        datetime.fromisoformat(posted.json()["created_at"])


def test_twenty_concurrent_solves_match_the_library(server):
    budgets = [5.0 + 10.0 * i for i in range(20)]  # 5 .. 195: empty, partial and full picks
    scenarios = [tiny_scenario(b, name=f"concurrent-{i}") for i, b in enumerate(budgets)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as c:
            return await asyncio.gather(*[
                c.post("/optimize", json={"scenario": s, "projects": TINY_ROWS})
                for s in scenarios])

    answers = asyncio.run(fire())
    assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers
                                                            if r.status_code != 200]
    for s, r in zip(scenarios, answers, strict=True):
        body = r.json()
        want = optimize(TINY_ROWS, s)
        assert body["scenario"]["name"] == s["name"]
        assert body["status"] == want.status, s
        if want.objective is None:
            assert body["objective"] is None
        else:
            assert body["objective"] == pytest.approx(want.objective, abs=1e-6), s
        assert stakes(body) == pytest.approx(
            {p.project_id: p.stake for p in want.selected}, abs=1e-6), s
    assert len({r.json()["run_id"] for r in answers}) == 20


def test_worker_killed_mid_solve_answers_503_and_service_recovers(server, client):
    wait_pool(client, lambda p: p["ready"] == 2 and p["idle"] == 2)
    before = set(server.workers())
    assert len(before) == 2, (before, _children(server.proc.pid))
    with ThreadPoolExecutor(1) as ex, server.client() as c2:
        fut = ex.submit(c2.post, "/optimize", json=hard_request(time_limit_s=5))
        wait_pool(client, lambda p: p["running"] == 1, timeout_s=10)
        time.sleep(0.3)  # the worker is now building/solving the 5 s instance
        t0 = {p: _cpu_ticks(p) for p in before}
        time.sleep(0.5)
        used = {p: _cpu_ticks(p) - t0[p] for p in before}
        busy = max(used, key=used.get)
        assert used[busy] > 0, used
        os.kill(busy, signal.SIGKILL)
        killed_at = time.monotonic()
        resp = fut.result(timeout=30)
        answered_in = time.monotonic() - killed_at
    body = assert_problem(resp, 503)
    assert "died" in body["detail"]
    assert "Retry-After" in resp.headers
    assert answered_in < 3, f"answer came {answered_in:.1f} s after the kill"
    assert server.proc.poll() is None, server.log()
    assert client.get("/health").status_code == 200
    assert_tiny_ok(client.post("/optimize", json={"scenario": tiny_scenario(),
                                                  "projects": TINY_ROWS}))
    # the dead worker is replaced: two live workers again, the killed one gone
    wait_pool(client, lambda p: p["ready"] == 2 and p["idle"] == 2)
    after = set(server.workers())
    assert busy not in after and len(after) == 2, (busy, after)


def test_worker_dead_while_idle_does_not_fail_the_next_requests(server, client):
    """Regression: a worker that died while idle (OOM killer, crash) stayed in the idle queue,
    and the next request handed to it got 503 'died during the solve' though nothing ran."""
    wait_pool(client, lambda p: p["ready"] == 2 and p["idle"] == 2)
    workers = server.workers()
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.02)
    # two requests in a row take both idle workers (FIFO), so one of them meets the dead one
    codes = []
    for _ in range(2):
        r = client.post("/optimize", json={"scenario": tiny_scenario(), "projects": TINY_ROWS})
        codes.append((r.status_code, r.json().get("detail")))
    wait_pool(client, lambda p: p["ready"] == 2 and p["idle"] == 2)  # leave 2 live workers
    assert [c for c, _ in codes] == [200, 200], codes


def test_restart_keeps_stored_runs(server, client):
    posted = client.post("/optimize", json={"scenario": tiny_scenario(name="before-restart"),
                                            "projects": TINY_ROWS})
    assert posted.status_code == 200, posted.text
    run = client.get(f"/runs/{posted.json()['run_id']}").json()
    listing = client.get("/runs", params={"limit": 500}).json()
    assert listing["total"] >= 1
    server.restart()
    with server.client() as c:
        again = c.get(f"/runs/{run['run_id']}")
        assert again.status_code == 200, again.text
        assert again.json() == run
        relisted = c.get("/runs", params={"limit": 500}).json()
        assert relisted["total"] == listing["total"]
        assert relisted["items"] == listing["items"]
        # and the restarted server solves
        assert_tiny_ok(c.post("/optimize", json={"scenario": tiny_scenario(),
                                                 "projects": TINY_ROWS}))


def test_hard_deadline_overrun_answers_504_and_next_solve_works(tmp_path):
    srv = Server(f"sqlite:///{tmp_path / 'deadline.db'}", tmp_path,
                 OPTIMIZER_HARD_DEADLINE_S="1")
    srv.start()
    try:
        with srv.client() as c:
            t0 = time.monotonic()
            resp = c.post("/optimize", json=hard_request(time_limit_s=20))
            took = time.monotonic() - t0
            body = assert_problem(resp, 504)
            assert "deadline" in body["detail"]
            assert took < 10, f"504 took {took:.1f} s"
            assert c.get("/health").status_code == 200
            assert_tiny_ok(c.post("/optimize", json={"scenario": tiny_scenario(),
                                                     "projects": TINY_ROWS}))
            # nothing was stored for the stopped solve
            names = [i["scenario_name"] for i in c.get("/runs").json()["items"]]
            assert "hard" not in names
        assert srv.proc.poll() is None, srv.log()
    finally:
        srv.stop()


def test_problem_json_on_bad_input(client):
    r = client.post("/optimize", json={"scenario": {"budget_musd": -1}})
    body = assert_problem(r, 422)
    assert any("budget_musd" in json.dumps(e["loc"]) for e in body["errors"])


@pytest.mark.parametrize("path", ["/optimize", "/datasets"])
def test_non_utf8_json_body_is_a_client_error(client, path):
    """Bytes that are not UTF-8 under Content-Type application/json are the client's fault:
    4xx problem+json, never a 500 (POST /datasets decoded them with json.loads unguarded)."""
    r = client.post(path, content=b'\xff\xbc{"name": 1}',
                    headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_problem(r, r.status_code)
