#!/usr/bin/env python
"""Load benchmark of the HTTP service: latency and throughput of POST /optimize against the
library's own solve time for the same scenario.

1. Library: ``Optimizer(load_projects()).solve(base)`` in this process, first solve (build)
   apart, then ``--lib-repeat`` re-solves of the persistent model, which is what a warm
   worker does for every request. Measured before the server starts, on a quiet machine.
2. Service: ``python -m api`` (uvicorn, SQLite in a temp dir, ``--workers`` solver
   processes) on loopback; warm-up until every worker has built the shipped model; GET /health
   as the HTTP floor; then for each concurrency level, ``--requests`` POST /optimize with the
   shipped base scenario (no projects = the shipped dataset), each client a thread with its own
   httpx.Client, stopping early at ``--time-cap`` seconds.
3. Breakdown (in this process, approximate): the service's per-request steps outside the
   solve, timed one by one (request validation, pickling over the worker pipe, the SQLite
   insert, building and serialising the response).

Reports p50/p95 latency, throughput and errors per level, and service overhead = service
latency - library solve time, at p50. Usage: ``python bench/bench_service.py [--json out]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE = ROOT / "inputs" / "scenarios" / "base.json"


def pct(xs: list[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100); nan for no data."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(x: float) -> str:
    return f"{x * 1000:8.1f}"


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------

def library_times(scenario: dict, repeat: int) -> dict:
    from optimizer import Optimizer, load_projects

    t0 = time.perf_counter()
    opt = Optimizer(load_projects())
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = opt.solve(scenario)
    first_s = time.perf_counter() - t0
    walls, highs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = opt.solve(scenario)
        walls.append(time.perf_counter() - t0)
        highs.append(r.solver.solve_time_s)
    return {"load_and_build_s": build, "first_solve_s": first_s, "walls": walls,
            "highs": highs, "objective": r.objective, "status": r.status,
            "first_objective": first.objective}


def _lib_loop(scenario: dict, seconds: float) -> list[float]:
    from optimizer import Optimizer, load_projects

    opt = Optimizer(load_projects())
    opt.solve(scenario)
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        opt.solve(scenario)
        out.append(time.perf_counter() - t0)
    return out


def parallel_library(scenario: dict, procs: int, seconds: float) -> list[float]:
    """``procs`` processes re-solving side by side: what ``procs`` busy workers can do on this
    machine without any service around them (a shared VM may give less than its core count)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(procs) as pool:
        runs = pool.starmap(_lib_loop, [(scenario, seconds)] * procs)
    return [x for r in runs for x in r]


# ---------------------------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------------------------

class Server:
    def __init__(self, workdir: Path, workers: int, log_level: str,
                 extra_env: dict[str, str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OPTIMIZER_") and k != "DATABASE_URL"}
        env.update(DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
                   OPTIMIZER_WORKERS=str(workers), OPTIMIZER_MAX_QUEUE="256", **extra_env)
        self.log_path = workdir / "server.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", log_level], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 90) -> float:
        t0 = time.perf_counter()
        with httpx.Client(base_url=self.url, timeout=2) as c:
            while time.perf_counter() - t0 < timeout_s:
                if self.proc.poll() is not None:
                    raise SystemExit("server exited:\n" + self.log_path.read_text()[-3000:])
                with contextlib.suppress(httpx.TransportError):
                    if c.get("/ready").status_code == 200:
                        return time.perf_counter() - t0
                time.sleep(0.05)
        raise SystemExit("server not ready:\n" + self.log_path.read_text()[-3000:])

    def worker_pids(self) -> set[int]:
        """Solver worker processes now: spawned children of the server (Linux /proc)."""
        out = set()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) != self.proc.pid:
                    continue
                if b"spawn_main" in (d / "cmdline").read_bytes():
                    out.add(int(d.name))
            except (OSError, ValueError):
                continue
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def load_level(url: str, body: dict, clients: int, n: int, cap_s: float,
               want_objective: float, server: Server | None = None) -> dict:
    """``n`` POST /optimize from ``clients`` threads (stop issuing at ``cap_s``). With
    ``server``, a sampler counts worker processes that appear during the level (replacements:
    a worker retired after OPTIMIZER_WORKER_MAX_TASKS solves, or one that died)."""
    lock = threading.Lock()
    issued = 0
    lat: list[float] = []
    highs: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()

    def client() -> None:
        nonlocal issued
        with httpx.Client(base_url=url, timeout=120) as c:
            while True:
                with lock:
                    if issued >= n or time.perf_counter() - start > cap_s:
                        return
                    issued += 1
                t0 = time.perf_counter()
                try:
                    r = c.post("/optimize", json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}")
                        continue
                    res = r.json()
                    if abs(res["objective"] - want_objective) > 1e-6:
                        errors.append(f"objective {res['objective']}")
                        continue
                    lat.append(dt)
                    highs.append(res["solver"]["solve_time_s"])

    seen: set[int] = set(server.worker_pids()) if server and Path("/proc").is_dir() else set()
    first_seen = set(seen)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            seen.update(server.worker_pids())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    if seen:
        threads.append(threading.Thread(target=sample))
    for t in threads:
        t.start()
    for t in threads[:clients]:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    for t in threads[clients:]:
        t.join()
    return {"clients": clients, "requests": issued, "ok": len(lat), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "wall_s": wall,
            "throughput_rps": len(lat) / wall if wall else 0.0,
            "p50_s": pct(lat, 50), "p95_s": pct(lat, 95), "max_s": max(lat, default=0.0),
            "highs_p50_s": pct(highs, 50),
            "highs_p95_s": pct(highs, 95), "highs_max_s": max(highs, default=0.0),
            "worker_replacements": len(seen - first_seen) if seen else None, "capped": issued < n,
            "latencies_s": [round(x, 5) for x in lat], "highs_s": [round(x, 5) for x in highs]}


def health_floor(url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get("/health").raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


# ---------------------------------------------------------------------------------------------
# breakdown of the per-request work outside the solve (in this process)
# ---------------------------------------------------------------------------------------------

def pool_round_trip(scenario: dict, n: int) -> dict[str, float]:
    """The service's own dispatch without HTTP or storage: ``SolverPool.run`` of the service's
    worker task on one warm spawned worker (pebble's pipes and threads, pickling, the
    event-loop wake-up, the worker's solve), paired with the library in this process (each
    wall minus the HiGHS time it reports)."""
    import asyncio

    from api import worker
    from api.pool import SolverPool
    from api.schemas import OptimizeRequest
    from optimizer import Optimizer, load_projects
    from optimizer.parallel import LocalExecutor

    data = load_projects()
    sc = OptimizeRequest.model_validate({"scenario": scenario}).model_dump(mode="json")

    async def go() -> tuple[list[float], list[float]]:
        executor = LocalExecutor(1)
        try:
            await asyncio.to_thread(executor.start)
            ref = executor.dataset_ref(data.sha256, data.records())
            pool = SolverPool(executor, max_queue=4)
            for _ in range(3):  # build the model in the worker
                await pool.run(worker.solve, ref, sc["scenario"], deadline_s=120)
            walls, outside = [], []
            for _ in range(n):
                t0 = time.perf_counter()
                answer = await pool.run(worker.solve, ref, sc["scenario"], deadline_s=120)
                walls.append(time.perf_counter() - t0)
                assert isinstance(answer, worker.Solved), answer
                outside.append(walls[-1] - answer.result["solver"]["solve_time_s"])
            return walls, outside
        finally:
            executor.close()

    walls, outside = asyncio.run(go())
    opt = Optimizer(data)
    opt.solve(sc["scenario"])
    lib_outside = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = opt.solve(sc["scenario"])
        lib_outside.append(time.perf_counter() - t0 - r.solver.solve_time_s)
    return {"pool_p50_s": pct(walls, 50), "pool_p95_s": pct(walls, 95),
            "pool_outside_highs_p50_s": pct(outside, 50),
            "library_outside_highs_p50_s": pct(lib_outside, 50),
            "pool_adds_p50_s": pct(outside, 50) - pct(lib_outside, 50)}


def breakdown(scenario: dict, workdir: Path, n: int = 50) -> dict[str, float]:
    from api import worker
    from api.db import Store, make_engine, migrate
    from api.routes.runs import to_run_result
    from api.schemas import OptimizeRequest, RunResult
    from optimizer import Optimizer, load_projects

    solved = Optimizer(load_projects()).solve(scenario)
    result = solved.model_dump(mode="json")
    body = {"scenario": scenario}
    raw = json.dumps(body).encode()
    engine = make_engine(f"sqlite:///{workdir / 'breakdown.db'}")
    migrate(engine)
    store = Store(engine)

    def timed(fn) -> float:
        fn()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    def parse():
        payload = OptimizeRequest.model_validate_json(raw).model_dump(mode="json")
        return payload["scenario"]

    sc = parse()
    job = {"dataset_id": "x" * 64, "records": None, "scenario": sc}

    def pipe():
        pickle.loads(pickle.dumps(job))
        pickle.loads(pickle.dumps(worker.Solved(result)))

    row = store.add_run(dataset_id="x" * 64, scenario=sc, result=result,
                        idempotency_key=None, request_sha256=None)

    def respond():  # to_run_result, then FastAPI's response_model pass and JSON encoding
        rr = to_run_result(row)
        RunResult.model_validate(rr.model_dump()).model_dump_json()

    out = {
        "validate request (OptimizeRequest)": timed(parse),
        "pickle job + result (pipe payload)": timed(pipe),
        "SQLite insert of the run (add_run)": timed(
            lambda: store.add_run(dataset_id="x" * 64, scenario=sc, result=result,
                                  idempotency_key=None, request_sha256=None)),
        "response: to_run_result + serialise": timed(respond),
        "result.model_dump in the worker": timed(lambda: solved.model_dump(mode="json")),
    }
    out["_sizes"] = {"request_bytes": len(raw), "result_json_bytes": len(json.dumps(result)),
                     "result_pickle_bytes": len(pickle.dumps(result))}
    engine.dispose()
    return out


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", default="1,8", help="concurrent clients, comma list")
    p.add_argument("--requests", type=int, default=200, help="POST /optimize per level")
    p.add_argument("--time-cap", type=float, default=120, help="seconds per level at most")
    p.add_argument("--workers", type=int, default=2, help="OPTIMIZER_WORKERS")
    p.add_argument("--warmup", type=int, default=20, help="warm-up requests (2 at a time)")
    p.add_argument("--lib-repeat", type=int, default=100, help="library re-solves")
    p.add_argument("--server-log-level", default="info",
                   help="python -m api --log-level (info = as shipped, with access log)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server, e.g. OPTIMIZER_WORKER_MAX_TASKS=1000")
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument("--parallel-s", type=float, default=5,
                   help="seconds of the side-by-side library run (0 skips)")
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x]
    scenario = json.loads(BASE.read_text())
    body = {"scenario": scenario}

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"scenario {BASE.relative_to(ROOT)}, {args.workers} solver workers")
    lib = library_times(scenario, args.lib_repeat)
    lib_p50 = pct(lib["walls"], 50)
    print(f"\nlibrary: load+build {lib['load_and_build_s']:.3f} s, first solve "
          f"{lib['first_solve_s']:.3f} s; re-solve x{args.lib_repeat}: wall p50 {ms(lib_p50)} ms"
          f" p95 {ms(pct(lib['walls'], 95))} ms; HiGHS solve_time_s p50 "
          f"{ms(pct(lib['highs'], 50))} ms; {lib['status']} objective {lib['objective']:.6f}")

    report: dict = {"library": {k: v for k, v in lib.items() if k not in ("walls", "highs")}
                    | {"wall_p50_s": lib_p50, "wall_p95_s": pct(lib["walls"], 95),
                       "highs_p50_s": pct(lib["highs"], 50)}, "levels": []}
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        tmpdir = Path(tmp)
        extra = dict(kv.split("=", 1) for kv in args.server_env)
        srv = Server(tmpdir, args.workers, args.server_log_level, extra)
        try:
            ready_s = srv.wait_ready()
            print(f"\nserver {srv.url}: /ready after {ready_s:.2f} s")
            t0 = time.perf_counter()
            warm = load_level(srv.url, body, min(2, args.workers), args.warmup, 120,
                              lib["objective"])
            print(f"warm-up: {warm['ok']} requests in {time.perf_counter() - t0:.2f} s, "
                  f"{warm['errors']} errors")
            floor = health_floor(srv.url, 200)
            print(f"GET /health (HTTP floor): p50 {ms(pct(floor, 50))} ms, p95 "
                  f"{ms(pct(floor, 95))} ms")
            report["health_p50_s"] = pct(floor, 50)
            report["health_p95_s"] = pct(floor, 95)

            print(f"\n{'clients':>7} {'ok':>5} {'err':>4} {'req/s':>7} {'p50 ms':>8} "
                  f"{'p95 ms':>8} {'max ms':>8} {'HiGHS p50':>9} {'overhead p50 ms':>15} "
                  f"{'respawns':>8}")
            for c in levels:
                r = load_level(srv.url, body, c, args.requests, args.time_cap,
                               lib["objective"], srv)
                r["overhead_p50_s"] = r["p50_s"] - lib_p50
                # paired: each answer's latency minus the HiGHS time it reports, against the
                # library's wall minus its HiGHS time (immune to the machine's speed drifting
                # between the library run and the service run)
                r["overhead_paired_p50_s"] = pct(
                    [a - b for a, b in zip(r["latencies_s"], r["highs_s"], strict=True)], 50) \
                    - pct([a - b for a, b in zip(lib["walls"], lib["highs"], strict=True)], 50)
                report["levels"].append(r)
                print(f"{c:>7} {r['ok']:>5} {r['errors']:>4} {r['throughput_rps']:>7.1f} "
                      f"{ms(r['p50_s'])} {ms(r['p95_s'])} {ms(r['max_s'])} "
                      f"{ms(r['highs_p50_s']):>9} {ms(r['overhead_p50_s']):>15} "
                      f"{r['worker_replacements']!s:>8}"
                      + (f"  errors: {r['error_kinds']}" if r["errors"] else "")
                      + ("  (time cap hit)" if r["capped"] else ""))
            if args.parallel_s > 0:  # the server is idle now
                par = parallel_library(scenario, args.workers, args.parallel_s)
                report["parallel_library_p50_s"] = pct(par, 50)
                report["parallel_library_rps"] = len(par) / args.parallel_s
                print(f"\nlibrary, {args.workers} processes side by side for {args.parallel_s:g} s"
                      f" (no service): re-solve p50 {ms(pct(par, 50))} ms, "
                      f"{len(par) / args.parallel_s:.1f} solves/s in all "
                      f"(the ceiling for {args.workers} busy workers on this machine now)")
        finally:
            srv.stop()
        if not args.no_breakdown:
            print("\nper-request work outside the solve, measured in-process (median ms):")
            bd = breakdown(scenario, tmpdir)
            for k, v in bd.items():
                if not k.startswith("_"):
                    print(f"  {k:<40} {v * 1000:8.2f}")
            print(f"  sizes: {bd['_sizes']}")
            report["breakdown"] = bd
            rt = pool_round_trip(scenario, args.lib_repeat)
            report["pool_round_trip"] = rt
            print(f"SolverPool.run on one warm worker (no HTTP, no storage), x{args.lib_repeat}:"
                  f" p50 {ms(rt['pool_p50_s'])} ms; outside HiGHS "
                  f"{ms(rt['pool_outside_highs_p50_s'])} ms vs the library in-process "
                  f"{ms(rt['library_outside_highs_p50_s'])} ms: the pool adds "
                  f"{rt['pool_adds_p50_s'] * 1000:.2f} ms")

    one = next((r for r in report["levels"] if r["clients"] == 1), None)
    eight = next((r for r in report["levels"] if r["clients"] == 8), None)
    print("\ntargets:")
    if one:
        print(f"  overhead p50 at 1 client < 30 ms: {one['overhead_p50_s'] * 1000:.1f} ms "
              f"(paired, outside HiGHS: {one['overhead_paired_p50_s'] * 1000:.1f} ms) -> "
              + ("met" if one["overhead_p50_s"] < 0.030 else "NOT met"))
    if eight:
        print(f"  no errors at 8 clients: {eight['errors']} errors -> "
              + ("met" if eight["errors"] == 0 else "NOT met"))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
