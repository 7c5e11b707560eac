#!/usr/bin/env python
"""What the API-key check costs on POST /optimize.

1. The check alone, in this process: ``Rule("write")`` (the dependency every write route runs)
   on a request carrying the last of K keys, K = 1, 10, 100 (half of them as if stored in the
   database), timed over many calls; and the SHA-256 of the secret alone.
2. End to end on the real server (``python -m api``, uvicorn, SQLite in a temp dir, one solver
   worker): POST /optimize of a tiny hand-worked scenario, the same server binary started twice
   on the same machine: once without keys (loopback, the check is an address test) and once
   with 100 keys configured (the check hashes and compares against all 100). Requests
   alternate between the two servers so machine noise falls on both alike.

Usage: ``python bench/bench_access.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TINY = [
    dict(project_id="A", name="Alpha", country="MW", mineral="ree", partner="KABIL",
         india_share=1.0, equity_value_musd=100, min_stake=0.5, max_stake=1.0,
         deal_cost_musd=0, npv_musd=40, output_tantalum_t=0, output_niobium_t=0,
         output_ree_t=1000, risk_score=8),
    dict(project_id="C", name="Charlie", country="TZ", mineral="ree", partner="JOINT",
         india_share=0.5, equity_value_musd=200, min_stake=0.1, max_stake=0.3,
         deal_cost_musd=5, npv_musd=100, output_tantalum_t=0, output_niobium_t=0,
         output_ree_t=3000, risk_score=5),
]


def check_alone(k: int, calls: int = 20_000) -> tuple[float, float]:
    """Microseconds per Rule("write") call with K keys, and per SHA-256 of the secret."""
    from types import SimpleNamespace

    from api.access import Key, Keyring, Role, Rule, digest

    secrets_ = [f"bench-secret-{i:04d}-0123456789abcdef" for i in range(k)]
    keys = [Key(f"k{i}", Role.analyst, digest(s), "env") for i, s in enumerate(secrets_)]
    ring = Keyring(keys[: k // 2 or 1])
    ring.set_db_keys(keys[k // 2 or 1:])
    app = SimpleNamespace(state=SimpleNamespace(keyring=ring))
    request = SimpleNamespace(app=app, client=SimpleNamespace(host="127.0.0.1"),
                              state=SimpleNamespace())
    rule = Rule("write")

    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            await rule(request, x_api_key=secrets_[-1], bearer=None)
        return time.perf_counter() - t0

    took = asyncio.run(run())
    t0 = time.perf_counter()
    for _ in range(calls):
        digest(secrets_[-1])
    hashed = time.perf_counter() - t0
    return took / calls * 1e6, hashed / calls * 1e6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, name: str, keys: str) -> tuple[subprocess.Popen, str, dict]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMIZER_")}
    env.update(DATABASE_URL=f"sqlite:///{tmp / name}.db", OPTIMIZER_WORKERS="1",
               OPTIMIZER_API_KEYS=keys, PYTHONUNBUFFERED="1")
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "api", "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    headers = {"X-API-Key": keys.split(",")[-1].split(":", 2)[2]} if keys else {}
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", headers=headers, timeout=2).status_code == 200:
                return proc, url, headers
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{name} server did not start: {(tmp / f'{name}.log').read_text()}")


def end_to_end(requests: int) -> dict[str, list[float]]:
    keys = ",".join(f"k{i}:analyst:bench-secret-{i:04d}-0123456789abcdef" for i in range(100))
    body = {"scenario": {"name": "bench", "budget_musd": 120,
                         "solver": {"mip_gap": 0, "time_limit_s": 10}}, "projects": TINY}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        servers = {"no keys (loopback)": start(tmp, "open", ""),
                   "100 keys": start(tmp, "keyed", keys)}
        times: dict[str, list[float]] = {name: [] for name in servers}
        try:
            clients = {name: httpx.Client(base_url=url, headers=h, timeout=60)
                       for name, (_, url, h) in servers.items()}
            for c in clients.values():  # warm: the worker builds the model
                for _ in range(20):
                    assert c.post("/optimize", json=body).status_code == 200
            for _ in range(requests):
                for name, c in clients.items():
                    t0 = time.perf_counter()
                    r = c.post("/optimize", json=body)
                    times[name].append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text
        finally:
            for proc, _, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args()
    print("The check alone (this process):")
    for k in (1, 10, 100):
        per_call, per_hash = check_alone(k)
        print(f"  {k:>3} keys: {per_call:6.1f} us per request (SHA-256 alone {per_hash:.1f} us)")
    print(f"\nPOST /optimize end to end, {args.requests} requests per server, alternating:")
    times = end_to_end(args.requests)
    for name, t in times.items():
        q = statistics.quantiles(t, n=20)
        print(f"  {name:20} p50 {statistics.median(t):6.2f} ms   p95 {q[18]:6.2f} ms   "
              f"mean {statistics.fmean(t):6.2f} ms")
    a, b = times.values()
    print(f"  difference of medians: {statistics.median(b) - statistics.median(a):+.2f} ms")


if __name__ == "__main__":
    main()
