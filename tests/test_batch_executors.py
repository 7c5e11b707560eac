"""The batch engine on real executors: local worker processes (1 and 2) and a Dask
``LocalCluster`` with worker processes give the same table as each other, for a grid and for
Monte Carlo (reproducible from (seed, index) whatever the worker count or chunking)."""

from __future__ import annotations

import pytest

from optimizer.batch import parse_spec, run_batch
from optimizer.batch.executors import DaskCluster, LocalProcesses

from .conftest import ListSink

BASE = {"name": "base", "budget_musd": 1600, "kabil_budget_musd": 500,
        "max_country_share": 0.3, "min_countries": 4, "max_avg_risk": 6,
        "solver": {"mip_gap": 1e-9, "time_limit_s": 30}}
GRID = {"base": BASE, "grid": {"budget_musd": [700, 1100, 1600, 2400],
                               "max_country_share": [0.25, 0.5]}}
MC = {"base": BASE, "diagnose": False, "monte_carlo": {
    "draws": 16, "seed": 3, "price": {"ree": {"dist": "lognormal", "sigma": 0.3}},
    "capex_overrun": {"dist": "triangular", "low": 0.9, "mode": 1.0, "high": 1.4},
    "disruption": {"default": 0.05, "countries": {"MW": 0.4}}}}

# under uncertainty: a risk frontier on the data's default model (each worker makes the same
# draws from the seed) and a grid over the new fields
RISK = {"base": {**BASE, "objective": "mean_cvar",
                 "uncertainty": {"draws": 40, "seed": 5, "fresh_draws": 60}},
        "frontier": {"kind": "risk", "points": 4}}
RISK_GRID = {"base": {**BASE, "objective": "expected_npv",
                      "uncertainty": {"draws": 40, "seed": 5, "fresh_draws": 0}},
             "grid": {"budget_confidence": [0.5, 0.9], "min_cvar_npv": [-500]}}


def table(executor, spec: dict, shipped, chunk_size=None) -> list[tuple]:
    sink = ListSink()
    try:
        run_batch(parse_spec(spec), shipped, executor=executor, sink=sink,
                  chunk_size=chunk_size)
    finally:
        executor.close()
    rows = sorted(sink.rows, key=lambda r: r["index"])
    return [(r["index"], r["status"], round(r["objective"], 6) if r["objective"] else None,
             tuple(sorted(p["project_id"] for p in r["selected"])), str(r.get("draw")),
             str((r.get("uncertainty") or {}).get("sample_sha256")),
             round(((r.get("uncertainty") or {}).get("out_of_sample") or {}).get("vss") or 0, 6))
            for r in rows]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.parametrize(("spec", "n"), [(GRID, 8), (MC, 16), (RISK, 4), (RISK_GRID, 2)],
                         ids=["grid", "monte_carlo", "risk_frontier", "uncertain_grid"])
def test_one_two_workers_and_dask_give_the_same_table(spec, n, shipped, dask_cluster):
    one = table(LocalProcesses(1), spec, shipped, chunk_size=3)
    two = table(LocalProcesses(2), spec, shipped, chunk_size=1)
    dask = table(DaskCluster(dask_cluster.scheduler_address), spec, shipped)
    assert len(one) == len(two) == len(dask) == n
    assert two == one
    assert dask == one
