"""End to end: the real server (``python -m api``, uvicorn with its default event loop, which
is uvloop here) in a subprocess, driven over HTTP, on SQLite and on PostgreSQL.

Three server set-ups per backend, each started once for the module: the default one (two
workers, a long queue), a ``burst`` one (two workers, queue 2) and a ``strict`` one (one
worker recycled every 3 tasks, 2 s hard deadline). PostgreSQL: ``TEST_DATABASE_URL``, else the
local server (the ``pg_server`` fixture in conftest.py), a fresh database per server.
Worker processes are found as children of the server process through ``/proc`` (Linux).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
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

from optimizer import load_projects, optimize
from optimizer.synthetic import synthetic_projects

from .conftest import BACKENDS, TINY_ROWS, fresh_pg_database
from .instances import subset_sum

ROOT = Path(__file__).resolve().parent.parent
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
                   PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.starts += 1
        self._log_path = self.logdir / f"server-{self.starts}.log"
        with open(self._log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        keys = self.extra_env.get("OPTIMIZER_API_KEYS", "")  # /ready needs one when set
        headers = {"X-API-Key": keys.split(",")[0].split(":", 2)[2]} if keys else {}
        with httpx.Client(base_url=self.base_url, timeout=2, headers=headers) as c:
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
        """Pids of the live solver worker processes (spawned children, not the resource
        tracker)."""
        if self.proc is None:
            return []
        return sorted(p for p in _children(self.proc.pid)
                      if "spawn_main" in _cmdline(p) and _alive(p))

    def wait_workers(self, n: int, timeout_s: float = 30.0) -> list[int]:
        """Wait until exactly ``n`` workers are alive; their pids."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == n:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"expected {n} live workers, have {self.workers()}:\n"
                             + self.log())

    def wait_replaced(self, before: list[int], n: int, timeout_s: float = 30.0) -> list[int]:
        """Wait until ``n`` of the workers ``before`` are gone and as many new ones are alive
        (the pool is back to full strength); the live pids."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == len(before) and len(set(pids) - set(before)) == n:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"expected {n} of {before} replaced, have {self.workers()}:\n"
                             + self.log())

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

    def log(self, tail: int | None = 4000) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        text = self._log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=timeout)



# ---------------------------------------------------------------------------------------------
# fixtures: one server per set-up and backend
# ---------------------------------------------------------------------------------------------

STRICT_MAX_TASKS = 3
STRICT_DEADLINE_S = 2


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@contextlib.contextmanager
def running_server(request, tmp_path_factory, backend: str, name: str, **env: str):
    logdir = tmp_path_factory.mktemp(f"e2e-{backend}-{name}")
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{logdir / 'e2e.db'}"
        else:
            url = stack.enter_context(fresh_pg_database(
                request.getfixturevalue("pg_server"), "optimizer_e2e"))
        srv = Server(url, logdir, **env)
        srv.start()
        stack.callback(srv.stop)
        yield srv


@pytest.fixture(scope="module")
def server(request, tmp_path_factory, backend):
    with running_server(request, tmp_path_factory, backend, "default",
                        OPTIMIZER_MAX_QUEUE="64") as srv:
        yield srv


@pytest.fixture(scope="module")
def burst_server(request, tmp_path_factory, backend):
    with running_server(request, tmp_path_factory, backend, "burst",
                        OPTIMIZER_MAX_QUEUE="2", OPTIMIZER_RETRY_AFTER_S="3") as srv:
        yield srv


@pytest.fixture(scope="module")
def strict_server(request, tmp_path_factory, backend):
    with running_server(request, tmp_path_factory, backend, "strict", OPTIMIZER_WORKERS="1",
                        OPTIMIZER_WORKER_MAX_TASKS=str(STRICT_MAX_TASKS),
                        OPTIMIZER_HARD_DEADLINE_S=str(STRICT_DEADLINE_S)) as srv:
        yield srv


@pytest.fixture
def client(server):
    with server.client() as c:
        yield c


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def tiny_scenario(budget: float = 120, name: str = "tiny") -> dict:
    return {"name": name, "budget_musd": budget, "solver": {"mip_gap": 0, "time_limit_s": 30}}


def tiny_request(**kw) -> dict:
    return {"scenario": tiny_scenario(**kw), "projects": TINY_ROWS}


def hard_request(time_limit_s: float) -> dict:
    data, budget = subset_sum(80)
    return {"projects": data.records(),
            "scenario": {"name": "hard", "budget_musd": budget, "min_output_t": {"ree": 1.0},
                         "solver": {"time_limit_s": time_limit_s, "mip_gap": 0,
                                    "presolve": "off"}}}


def stakes(result: dict) -> dict[str, float]:
    return {p["project_id"]: p["stake"] for p in result["selected"]}


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text[:2000]
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


def pool_load(client: httpx.Client) -> dict:
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    return r.json()["pool"]


def wait_load(client: httpx.Client, pred, timeout_s: float = 30.0) -> dict:
    """Poll /ready until ``pred(pool_load)``; returns the last load."""
    deadline = time.monotonic() + timeout_s
    load: dict = {}
    while time.monotonic() < deadline:
        load = pool_load(client)
        if pred(load):
            return load
        time.sleep(0.05)
    raise AssertionError(f"pool never reached the expected state; last load: {load}")


def busiest(pids: list[int], window_s: float = 0.5) -> int:
    """The pid among ``pids`` that used the most CPU over ``window_s`` (it must use some)."""
    t0 = {p: _cpu_ticks(p) for p in pids}
    time.sleep(window_s)
    used = {p: _cpu_ticks(p) - t0[p] for p in pids}
    pid = max(used, key=used.get)
    assert used[pid] > 0, used
    return pid


def all_chosen_rows(n: int) -> list[dict]:
    """``n`` small profitable projects; a budget of ``n`` buys all of them at full stake."""
    countries = ["AU", "BR", "CA", "MW", "TZ", "NA", "ZA", "GL"]
    return [dict(project_id=f"Q{i:05d}", name=f"Quarry {i}", country=countries[i % 8],
                 mineral="ree", partner="JOINT", india_share=0.5, equity_value_musd=0.9,
                 min_stake=0.1, max_stake=1.0, deal_cost_musd=0.05, npv_musd=1 + i % 7,
                 output_tantalum_t=0, output_niobium_t=0, output_ree_t=10 + i % 5,
                 risk_score=3) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# the server itself
# ---------------------------------------------------------------------------------------------

def test_server_runs_uvloop(server):
    """The pool bug of issue 6 showed only under uvloop (uvicorn's default when installed):
    these tests must run the server as users do."""
    assert "event loop uvloop.Loop" in server.log(tail=None), server.log()


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_head_probes(client, path):
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_optimize_then_get_run_round_trip(client):
    posted = assert_tiny_ok(client.post("/optimize", json=tiny_request()))
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
    posted = client.post("/optimize", json=tiny_request())
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


# ---------------------------------------------------------------------------------------------
# large payloads (issue 6 section 2: the old pool failed on anything over a pipe buffer)
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_twenty_thousand_row_inline_dataset_is_solved(client):
    frame = synthetic_projects(20_000, seed=6, years=1)
    rows = json.loads(frame.to_json(orient="records"))
    full = float((frame["equity_value_musd"] * frame["max_stake"]
                  + frame["deal_cost_musd"]).sum())
    budget = round(0.05 * full, 2)
    body = json.dumps({"projects": rows, "scenario": {
        "name": "twenty-thousand", "budget_musd": budget,
        "solver": {"time_limit_s": 30, "mip_gap": 0.02}}}).encode()
    assert 5_000_000 < len(body) < 20_000_000  # far over a pipe buffer, under the body limit
    t0 = time.monotonic()
    r = client.post("/optimize", content=body, headers={"content-type": "application/json"},
                    timeout=180)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text[:2000]
    got = r.json()
    print(f"\n20,000 rows, {len(body) / 1e6:.1f} MB: answered in {took:.1f} s "
          f"({got['status']}, {len(got['selected'])} projects, build {got['solver']['build_s']}"
          f" s, solve {got['solver']['solve_time_s']} s)")
    assert got["status"] in ("optimal", "feasible")
    assert got["dataset_id"] == got["provenance"]["dataset_sha256"] == \
        load_projects(rows).sha256
    assert 0 < got["totals"]["cost_musd"] <= budget * (1 + 1e-9)
    assert sum(p["cost_musd"] for p in got["selected"]) == pytest.approx(
        got["totals"]["cost_musd"], rel=1e-9)
    # the same dataset by id: the worker that built it re-solves without the rows
    r2 = client.post("/optimize", json={"dataset_id": got["dataset_id"], "scenario": {
        "name": "twenty-thousand-again", "budget_musd": budget / 2,
        "solver": {"time_limit_s": 30, "mip_gap": 0.01}}}, timeout=180)
    assert r2.status_code == 200, r2.text[:2000]
    assert 0 < r2.json()["totals"]["cost_musd"] <= budget / 2 * (1 + 1e-9)


@pytest.mark.parametrize("n", [200, 3000])
def test_results_with_many_selected_projects_come_back_intact(client, n):
    rows = all_chosen_rows(n)
    r = client.post("/optimize", json={"projects": rows, "scenario": {
        "name": f"all-{n}", "budget_musd": n, "solver": {"time_limit_s": 30}}}, timeout=120)
    assert r.status_code == 200, r.text[:2000]
    assert len(r.content) > 64 * 1024 or n < 1000
    got = r.json()
    assert got["status"] == "optimal"
    assert sorted(p["project_id"] for p in got["selected"]) == [p["project_id"] for p in rows]
    assert all(p["stake"] == pytest.approx(1.0, abs=1e-9) for p in got["selected"])
    assert got["objective"] == pytest.approx(sum(p["npv_musd"] - p["deal_cost_musd"]
                                                 for p in rows), rel=1e-9)
    stored = client.get(f"/runs/{got['run_id']}")
    assert stored.status_code == 200
    assert stored.json()["selected"] == got["selected"]


# ---------------------------------------------------------------------------------------------
# admission, deadlines, crashes, recycling, disconnects
# ---------------------------------------------------------------------------------------------

def test_burst_admits_exactly_workers_plus_queue(burst_server):
    """2 workers + queue 2 = 4 places: of 10 concurrent requests exactly 4 are solved and 6
    are refused at once with 503 + Retry-After. (The old pool admitted 7.)"""
    slow = hard_request(time_limit_s=2)

    async def fire() -> list[tuple[httpx.Response, float]]:
        async with httpx.AsyncClient(base_url=burst_server.base_url, timeout=120) as c:
            async def one():
                t0 = time.monotonic()
                r = await c.post("/optimize", json=slow)
                return r, time.monotonic() - t0
            return await asyncio.gather(*[one() for _ in range(10)])

    answers = asyncio.run(fire())
    codes = sorted(r.status_code for r, _ in answers)
    assert codes == [200] * 4 + [503] * 6, [(r.status_code, r.text[:200]) for r, _ in answers]
    for r, took in answers:
        if r.status_code == 503:
            body = assert_problem(r, 503)
            assert r.headers["retry-after"] == "3"
            assert "capacity" in body["detail"] and "retry in 3 s" in body["detail"]
            assert "-" not in body["detail"].split("capacity")[1], body["detail"]
            assert took < 2, f"refused after {took:.1f} s: not at once"
        else:
            assert r.json()["status"] in ("optimal", "feasible")
    with burst_server.client() as c:
        load = wait_load(c, lambda p: p["admitted"] == 0)
        assert load["capacity"] == 4 and load["busy"] >= 6


def test_hard_deadline_overrun_answers_504_and_a_new_worker_serves_the_next(strict_server):
    with strict_server.client() as c:
        (before,) = strict_server.wait_workers(1)
        t0 = time.monotonic()
        resp = c.post("/optimize", json=hard_request(time_limit_s=20))
        took = time.monotonic() - t0
        body = assert_problem(resp, 504)
        print(f"\n504 after {took:.2f} s on a {STRICT_DEADLINE_S} s hard deadline")
        assert f"{STRICT_DEADLINE_S} s hard deadline" in body["detail"]
        assert took < STRICT_DEADLINE_S + 8, f"504 took {took:.1f} s"
        assert c.get("/health").status_code == 200
        assert_tiny_ok(c.post("/optimize", json=tiny_request()))
        (after,) = strict_server.wait_workers(1)
        assert after != before and not _alive(before)
        # nothing was stored for the stopped solve
        names = [i["scenario_name"] for i in c.get("/runs").json()["items"]]
        assert "hard" not in names
        assert pool_load(c)["deadline_kills"] >= 1
    assert strict_server.proc.poll() is None, strict_server.log()


def test_worker_is_recycled_after_max_tasks(strict_server):
    """OPTIMIZER_WORKER_MAX_TASKS=3: one worker never serves more than 3 tasks, and its
    replacement takes over without a failed request."""
    seen = []
    with strict_server.client() as c:
        for i in range(2 * STRICT_MAX_TASKS + 1):
            (pid,) = strict_server.wait_workers(1)
            seen.append(pid)
            assert_tiny_ok(c.post("/optimize", json=tiny_request(name=f"recycle-{i}")))
    runs = [len(list(g)) for _, g in __import__("itertools").groupby(seen)]
    assert len(runs) >= 2 and max(runs) <= STRICT_MAX_TASKS, seen


def test_worker_killed_mid_solve_answers_503_and_is_replaced(server, client):
    before = server.wait_workers(2)
    with ThreadPoolExecutor(1) as ex, server.client() as c2:
        fut = ex.submit(c2.post, "/optimize", json=hard_request(time_limit_s=5))
        wait_load(client, lambda p: p["running"] == 1, timeout_s=10)
        time.sleep(0.3)  # the worker is now building/solving the 5 s instance
        busy = busiest(before)
        os.kill(busy, signal.SIGKILL)
        killed_at = time.monotonic()
        resp = fut.result(timeout=30)
        answered_in = time.monotonic() - killed_at
    body = assert_problem(resp, 503)
    assert "died" in body["detail"] and "signal 9" in body["detail"]
    assert "Retry-After" in resp.headers
    assert answered_in < 3, f"answer came {answered_in:.1f} s after the kill"
    assert server.proc.poll() is None, server.log()
    assert_tiny_ok(client.post("/optimize", json=tiny_request()))
    after = server.wait_replaced(before, 1)
    assert busy not in after, (busy, after)


def test_worker_dead_while_idle_does_not_fail_the_next_requests(server, client):
    """Regression: a worker that died while idle (OOM killer, crash) made the next request
    fail. pebble even declares its whole pool broken then; the executor replaces it."""
    workers = server.wait_workers(2)
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.02)
    codes = []
    for _ in range(2):
        r = client.post("/optimize", json=tiny_request())
        codes.append((r.status_code, r.json().get("detail")))
    assert [c for c, _ in codes] == [200, 200], codes
    assert workers[0] not in server.wait_replaced(workers, 2)  # a whole new pebble pool


def test_client_disconnect_stops_the_solve_and_frees_the_worker(server, client):
    before = server.wait_workers(2)
    cancelled = pool_load(client)["cancelled"]
    with server.client(timeout=1.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/optimize", json=hard_request(time_limit_s=30))
    load = wait_load(client, lambda p: p["cancelled"] == cancelled + 1 and p["running"] == 0,
                     timeout_s=10)
    assert load["admitted"] == 0
    # the solving worker is stopped and replaced; the idle one stays
    after = server.wait_replaced(before, 1)
    assert len(set(before) & set(after)) == 1, (before, after)
    assert_tiny_ok(client.post("/optimize", json=tiny_request()))


def test_restart_keeps_stored_runs(server, client):
    posted = client.post("/optimize", json=tiny_request(name="before-restart"))
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
        assert_tiny_ok(c.post("/optimize", json=tiny_request()))


def test_readme_curl_example_sends_base_json_and_matches_the_cli(server):
    """README's curl example named "base" is exactly inputs/scenarios/base.json: same answer
    as ``python -m optimizer solve`` (it was a different scenario: 537.03 against 526.78)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The HTTP service"):]
    command = re.search(r"(curl -s -X POST localhost:8000/optimize .*?)\n(?:curl|```)",
                        section, re.S).group(1)
    assert "inputs/scenarios/base.json" in command
    out = subprocess.run(["bash", "-c", command.replace("localhost:8000", server.base_url)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    want = optimize(ROOT / "inputs" / "projects.csv", ROOT / "inputs" / "scenarios" / "base.json")
    assert got["status"] == want.status
    assert got["objective"] == pytest.approx(want.objective, rel=1e-9)
    assert got["provenance"]["scenario_sha256"] == want.provenance.scenario_sha256


# ---------------------------------------------------------------------------------------------
# input errors on the real stack
# ---------------------------------------------------------------------------------------------

def test_problem_json_on_bad_input(client):
    r = client.post("/optimize", json={"scenario": {"budget_musd": -1}})
    body = assert_problem(r, 422)
    assert any("budget_musd" in json.dumps(e["loc"]) for e in body["errors"])


def test_malformed_json_names_line_and_column(client):
    r = client.post("/optimize", content=b'{"scenario":\n {"budget_musd": 1,}}',
                    headers={"content-type": "application/json"})
    body = assert_problem(r, 422)
    assert "not valid JSON" in body["detail"] and "line 2, column 20" in body["detail"], body


@pytest.mark.parametrize("path", ["/optimize", "/datasets"])
def test_non_utf8_json_body_is_a_client_error(client, path):
    """Bytes that are not UTF-8 under Content-Type application/json are the client's fault:
    4xx problem+json, never a 500 (POST /datasets decoded them with json.loads unguarded)."""
    r = client.post(path, content=b'\xff\xbc{"name": 1}',
                    headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_problem(r, r.status_code)


@pytest.mark.parametrize("path, status", [
    ("/runs/%00", 404), ("/runs/a%00b", 404), ("/runs?scenario_name=%00", 422),
    ("/runs?scenario_name=x%00y&status=optimal", 422), ("/datasets/%00", 422),
])
def test_nul_in_paths_and_queries(client, path, status):
    """PostgreSQL cannot store or compare text with NUL: these gave a 500 or a reset
    connection there. Now: 404 for an id, 422 naming the parameter, on both databases."""
    r = client.get(path)
    body = assert_problem(r, status)
    if status == 422:
        name = "scenario_name" if "scenario_name" in path else "dataset_id"
        assert any(e["loc"][-1] == name for e in body["errors"]), body


def test_nul_in_a_csv_dataset_name(client):
    r = client.post("/datasets", params={"name": "x\x00"},
                    content=(ROOT / "inputs" / "projects.csv").read_bytes(),
                    headers={"content-type": "text/csv"})
    body = assert_problem(r, 422)
    assert body["errors"][0]["loc"] == ["query", "name"]



def test_nul_in_the_scenario_name_is_a_422_before_any_solve(client):
    r = client.post("/optimize", json=tiny_request(name="a\x00b"))
    body = assert_problem(r, 422)
    assert any(e["loc"][:3] == ["body", "scenario", "name"] for e in body["errors"]), body
