"""Speed benchmark: our Pyomo + persistent-HiGHS library against the raw-highspy floor and
PuLP + its bundled CBC, on seeded synthetic instances of the CONTRACT model.

    .venv/bin/python bench/bench_solve.py                       # sizes 100,1000,10000, seed 0
    .venv/bin/python bench/bench_solve.py --sizes 1000,10000 --seeds 0,1,2 --presolve off,on \
        --cases ours,highspy --repeat 1 --json out.json         # presolve study

Every timed case runs in a fresh ``python`` subprocess (``--worker``), so no case inherits
another's imports, HiGHS scheduler threads, memory or warmed caches. The parent process
generates the instance once per (size, seed) (``optimizer.synthetic``, untimed), hands it
to the workers through files, then checks every returned portfolio against the scenario with
``optimizer.check.violations`` and compares objectives.

What each worker times (``time.perf_counter``; medians over repeats are printed):

ours     import_pyomo (``import pyomo.environ``), import_rest (``import optimizer``: pandas,
         pydantic, highspy, pyomo's HiGHS interface), validate (``validate_projects``), build
         (``build_model``, = ``Optimizer(data)``), transfer (Pyomo ``set_instance``: walking the
         model and ``addVars``/``addRows`` into HiGHS), pyomo_solve_other (the rest of Pyomo's
         ``solve`` around HiGHS: config, output capture, postsolve), solve (wall of
         ``Highs.run()``, Pyomo's ``optimize`` timer), extract (everything in
         ``Optimizer.solve`` outside Pyomo's ``solve``: scenario validation and
         ``apply_scenario`` before; reading stakes, ``portfolio``, ``violations``,
         ``binding``, building the ``Result`` after). Then a re-solve on the same
         ``Optimizer`` with budget -20 % (persistent model: only bounds move).
highspy  import (highspy + numpy), build (numpy -> CSR arrays of the same rows and columns),
         pass (``Highs.passModel``), solve (wall of ``run()``), extract (``getSolution`` ->
         stakes); re-solve: ``changeRowBounds`` on the budget row and ``run()`` again.
pulp     import (pulp + numpy), build (``LpProblem`` from the same arrays, affine expressions
         built from (var, coef) lists -- PuLP's fast path), solve (``prob.solve(PULP_CBC_CMD)``:
         write MPS, run CBC, read the solution back; the MPS write and read are timed
         separately inside it), extract (``varValue`` -> stakes).

Totals exclude the import rows (they are shown on their own: a long-lived service pays them
once, a CLI run pays them every time); "total+imp" includes them.

Also: before timing, ``verify_floor`` checks on a small instance that the floor's LP is the
one ours hands to HiGHS (same matrix, bounds, costs, integrality, column order; ours has the
extra relax columns fixed at 0), so the two HiGHS runs are comparable. With several
``--presolve`` values, a presolve study (ours and the floor, sizes >= 1000). Finally a
model-side scaling section (``--scaling-sizes``): validate, build_model and the hand-over to
HiGHS without solving, with Python's garbage collector on (as shipped) and off.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIP_GAP = 1e-4
RESOLVE_BUDGET_FACTOR = 0.8

# =============================================================================================
# instance files (parent side)
# =============================================================================================


def write_instance(n: int, seed: int, presolve: str, time_limit: float, tmp: Path):
    """Generate the seeded instance; write what each worker needs. Returns (data, scenario,
    paths). Imports the optimizer package: only ever called in the parent."""
    import numpy as np

    from optimizer.data import validate_projects
    from optimizer.synthetic import synthetic_projects, synthetic_scenario

    df = synthetic_projects(n, seed)
    sc = synthetic_scenario(df, solver={"time_limit_s": time_limit, "mip_gap": MIP_GAP,
                                        "presolve": presolve, "random_seed": 0})
    data = validate_projects(df)
    stem = tmp / f"inst_{n}_{seed}_{presolve}"
    df.to_pickle(f"{stem}.pkl")
    scen = sc.model_dump(mode="json")
    Path(f"{stem}.json").write_text(json.dumps(scen))
    f = data.frame
    countries = sorted(set(f["country"]))
    cidx = {k: i for i, k in enumerate(countries)}
    groups = sorted(data.groups)
    g_rows = np.concatenate([np.asarray(data.groups[g], dtype=np.int64) for g in groups]) \
        if groups else np.zeros(0, np.int64)
    g_ids = np.concatenate([np.full(len(data.groups[g]), j) for j, g in enumerate(groups)]) \
        if groups else np.zeros(0, np.int64)
    np.savez(
        f"{stem}.npz",
        equity=data.col("equity_value_musd"), deal=data.col("deal_cost_musd"),
        npv=data.col("npv_musd"), india=data.col("india_share"), risk=data.col("risk_score"),
        smin=data.col("min_stake"), smax=data.col("max_stake"), out=data.output(),
        china=f["china_processing"].to_numpy(dtype=bool),
        country=np.array([cidx[c] for c in f["country"]], dtype=np.int64),
        n_countries=len(countries), spend=data.spend,
        g_rows=g_rows, g_ids=g_ids, n_groups=len(groups),
        requires=np.asarray(data.requires, dtype=np.int64).reshape(-1, 2),
    )
    return data, sc, stem


# =============================================================================================
# shared formulation helpers (workers; numpy only)
# =============================================================================================

INF = math.inf
PRODUCTS = ("tantalum", "niobium", "ree", "ndpr", "dytb")
NP = len(PRODUCTS)


def _cap(v):
    return INF if v is None else float(v)


def scenario_numbers(scen: dict, n_years: int) -> dict:
    """Row bounds and share coefficients for the CONTRACT model from the scenario JSON."""
    annual = list(scen.get("annual_budget_musd") or [])
    return {
        "budget": float(scen["budget_musd"]),
        "kabil": _cap(scen.get("kabil_budget_musd")),
        "us": _cap(scen.get("us_budget_musd")),
        "annual": [_cap(annual[k] if k < len(annual) else None) for k in range(n_years)],
        "country_share": scen.get("max_country_share"),
        "avg_risk": scen.get("max_avg_risk"),
        "china": scen.get("max_china_processing_share"),
        "min_countries": scen.get("min_countries"),
        "max_projects": _cap(scen.get("max_projects")),
        "min_output": [scen.get("min_output_t", {}).get(m) for m in PRODUCTS],
        "min_india": [(scen.get("min_india_output_t") or {}).get(m) for m in PRODUCTS],
        "min_us": [(scen.get("min_us_output_t") or {}).get(m) for m in PRODUCTS],
        "weights": [float((scen.get("supply_weights") or {}).get(
            m, 0.0 if m in ("ndpr", "dytb") else 1.0)) for m in PRODUCTS],
        "min_supply": scen.get("min_weighted_supply"),
    }


def floor_model(d, scen: dict):
    """The CONTRACT model as CSR arrays for highspy: the same rows in the same order and the
    same columns as ``optimizer.model`` builds, minus the diagnosis slacks ``relax[f]`` (fixed
    at 0). Rows whose scenario limit is null keep an infinite bound, as in ours.

    Columns follow the Pyomo model's declaration order (x block, s block, T, O[m], u[k]),
    which is the order ours hands them to HiGHS, so HiGHS runs the same search on both and
    the comparison measures the modelling layer rather than luck in branching; the parent
    verifies this (``verify_floor``). ``BENCH_FLOOR_ORDER=interleaved`` gives s0, x0, s1, x1,
    ..., T, u, O instead (what stock Pyomo, which meets columns row by row, would send).
    """
    import numpy as np

    n = len(d["equity"])
    eq, deal = d["equity"], d["deal"]
    K = int(d["n_countries"])
    Y = d["spend"].shape[1]
    sn = scenario_numbers(scen, Y)
    T = 2 * n
    if os.environ.get("BENCH_FLOOR_ORDER", "model") == "interleaved":
        ss = 2 * np.arange(n)
        xs = ss + 1
        uu = 2 * n + 1 + np.arange(K)
        oo = 2 * n + 1 + K + np.arange(NP)
    else:
        xs = np.arange(n)
        ss = n + np.arange(n)
        oo = 2 * n + 1 + np.arange(NP)
        uu = 2 * n + 1 + NP + np.arange(K)
    ncol = 2 * n + 1 + K + NP

    rows_r, rows_c, rows_v, lo, up = [], [], [], [], []
    nrow = 0

    def add_block(r, c, v, lb, ub):
        """r: row offsets within the block (0..len(lb)-1), same length as c and v."""
        nonlocal nrow
        v = np.asarray(v, dtype=float)
        keep = v != 0.0
        rows_r.append(np.asarray(r)[keep] + nrow)
        rows_c.append(np.asarray(c)[keep])
        rows_v.append(v[keep])
        lo.append(np.asarray(lb, dtype=float))
        up.append(np.asarray(ub, dtype=float))
        nrow += len(lb)

    def cost_row(idx, w, extra_c=(), extra_v=()):
        c = np.concatenate([ss[idx], xs[idx], np.asarray(extra_c, dtype=np.int64)])
        v = np.concatenate([eq[idx] * w, deal[idx] * w, np.asarray(extra_v, dtype=float)])
        return c, v

    every = np.arange(n)
    two = np.repeat(np.arange(n), 2)
    # stake_min / stake_max
    add_block(two, np.column_stack([ss, xs]).ravel(),
              np.column_stack([np.ones(n), -d["smin"]]).ravel(), np.zeros(n), np.full(n, INF))
    add_block(two, np.column_stack([ss, xs]).ravel(),
              np.column_stack([np.ones(n), -d["smax"]]).ravel(), np.full(n, -INF), np.zeros(n))
    # total_cost_def: T - sum c = 0
    c, v = cost_row(every, -1.0, [T], [1.0])
    add_block(np.zeros(len(c), int), c, v, [0.0], [0.0])
    # budget, side budgets, annual caps
    add_block([0], [T], [1.0], [-INF], [sn["budget"]])
    c, v = cost_row(every, d["india"])
    add_block(np.zeros(len(c), int), c, v, [-INF], [sn["kabil"]])
    c, v = cost_row(every, 1.0 - d["india"])
    add_block(np.zeros(len(c), int), c, v, [-INF], [sn["us"]])
    for k in range(Y):
        c, v = cost_row(every, d["spend"][:, k])
        add_block(np.zeros(len(c), int), c, v, [-INF], [sn["annual"][k]])
    # country shares (sparse thanks to T)
    country = d["country"]
    a = sn["country_share"]
    for k in range(K):
        idx = np.flatnonzero(country == k)
        c, v = cost_row(idx, 1.0, [T], [-(1.0 if a is None else a)])
        add_block(np.zeros(len(c), int), c, v, [-INF], [INF if a is None else 0.0])
    a = sn["avg_risk"]
    c, v = cost_row(every, d["risk"], [T], [-(10.0 if a is None else a)])
    add_block(np.zeros(len(c), int), c, v, [-INF], [INF if a is None else 0.0])
    a = sn["china"]
    c, v = cost_row(np.flatnonzero(d["china"]), 1.0, [T], [-(1.0 if a is None else a)])
    add_block(np.zeros(len(c), int), c, v, [-INF], [INF if a is None else 0.0])
    # country_used links, min_countries, max_projects
    for k in range(K):
        idx = np.flatnonzero(country == k)
        add_block(np.zeros(len(idx) + 1, int), np.concatenate([[uu[k]], xs[idx]]),
                  np.concatenate([[1.0], -np.ones(len(idx))]), [-INF], [0.0])
    mc = sn["min_countries"]
    add_block(np.zeros(K, int), uu, np.ones(K), [-INF if mc is None else float(mc)], [INF])
    add_block(np.zeros(n, int), xs, np.ones(n), [-INF], [sn["max_projects"]])
    # outputs, their floors, the weighted-supply floor
    for j in range(NP):
        add_block(np.zeros(n + 1, int), np.concatenate([[oo[j]], ss]),
                  np.concatenate([[1.0], -d["out"][:, j]]), [0.0], [0.0])
    for j in range(NP):
        fl = sn["min_output"][j]
        add_block([0], [oo[j]], [1.0], [-INF if fl is None else float(fl)], [INF])
    for key, share in (("min_india", d["india"]), ("min_us", 1.0 - d["india"])):
        for j in range(NP):  # each side's entitlement, on the stakes
            fl = sn[key][j]
            add_block(np.zeros(n, int), ss, share * d["out"][:, j],
                      [-INF if fl is None else float(fl)], [INF])
    ms = sn["min_supply"]
    add_block(np.zeros(NP, int), oo, sn["weights"], [-INF if ms is None else float(ms)], [INF])
    # exclusive groups, requires
    G = int(d["n_groups"])
    if G:
        order = np.argsort(d["g_ids"], kind="stable")
        add_block(d["g_ids"][order], xs[d["g_rows"][order]], np.ones(len(order)),
                  np.full(G, -INF), np.ones(G))
    req = d["requires"]
    if len(req):
        R = len(req)
        add_block(np.repeat(np.arange(R), 2),
                  np.column_stack([xs[req[:, 0]], xs[req[:, 1]]]).ravel(),
                  np.tile([1.0, -1.0], R), np.full(R, -INF), np.zeros(R))

    r = np.concatenate(rows_r)
    cidx = np.concatenate(rows_c)
    val = np.concatenate(rows_v)
    order = np.argsort(r, kind="stable")
    r, cidx, val = r[order], cidx[order], val[order]
    start = np.zeros(nrow + 1, dtype=np.int32)
    np.cumsum(np.bincount(r, minlength=nrow), out=start[1:])
    cost = np.zeros(ncol)
    cost[ss] = d["npv"]
    cost[xs] = -deal
    col_lo = np.zeros(ncol)
    col_up = np.full(ncol, INF)
    col_up[xs] = 1.0
    col_up[ss] = d["smax"]
    col_up[uu] = 1.0
    integ = np.zeros(ncol, dtype=np.int32)
    integ[xs] = 1
    integ[uu] = 1
    return {
        "ncol": ncol, "nrow": nrow, "nnz": len(val), "cost": cost,
        "col_lo": col_lo, "col_up": col_up, "row_lo": np.concatenate(lo),
        "row_up": np.concatenate(up), "start": start, "index": cidx.astype(np.int32),
        "value": val, "integrality": integ, "xs": xs, "ss": ss, "budget_row": 2 * n + 1,
    }


def stakes_from(x, s, smin, smax):
    """Chosen rows and their stakes clipped into [min, max] (as the library reports them)."""
    import numpy as np

    rows = np.flatnonzero(x > 0.5)
    return {int(i): float(min(max(s[i], smin[i]), smax[i])) for i in rows}


# =============================================================================================
# workers (each in a fresh process)
# =============================================================================================

pc = time.perf_counter


def worker_ours(stem: str, presolve: str) -> dict:
    t0 = pc()
    import pyomo.environ  # noqa: F401

    t1 = pc()
    import optimizer
    import optimizer.solve as osolve
    from optimizer.data import validate_projects

    t2 = pc()
    ph = {"import_pyomo": t1 - t0, "import_rest": t2 - t1}

    # instrumentation: wrap the steps Optimizer.solve calls (this process only)
    acc: dict[str, float] = {}

    def timed(name, fn):
        def w(*a, **k):
            t = pc()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + pc() - t
        return w

    import optimizer.session as osession

    for name in ("load_scenario", "check_scenario_against", "portfolio", "violations",
                 "binding", "objective_value"):
        setattr(osolve, name, timed(name, getattr(osolve, name)))
    osession.apply_scenario = timed("apply_scenario", osession.apply_scenario)
    osession.Session.stakes_of = timed("read_stakes", osession.Session.stakes_of)

    import pandas as pd

    df = pd.read_pickle(stem + ".pkl")
    scen = json.loads(Path(stem + ".json").read_text())

    t = pc()
    data = validate_projects(df)
    ph["validate"] = pc() - t
    t = pc()
    opt = optimizer.Optimizer(data)
    ph["build_wall"] = pc() - t
    ph["build"] = opt.built.build_s
    t = pc()
    res = opt.solve(scen)
    first = pc() - t
    stats = opt.session.stats
    timer = stats.timer  # Pyomo's timer of the last HiGHS run
    ph["transfer"] = stats.transfer_s
    ph["solve"] = timer.get_total_time("optimize")
    ph["pyomo_solve_other"] = stats.wall_s - ph["solve"]
    ph["extract"] = first - stats.wall_s - ph["transfer"]
    for k, v in acc.items():
        ph["x_" + k] = v
    ph["first_solve_wall"] = first
    ph["reported_build_s"] = res.solver.build_s
    ph["reported_solve_time_s"] = res.solver.solve_time_s
    ph["total"] = ph["validate"] + ph["build_wall"] + first
    ph["mip_nodes"] = stats.nodes
    stakes = {s.project_id: s.stake for s in res.selected}

    # re-solve on the persistent model: budget -20 %
    scen2 = dict(scen, budget_musd=scen["budget_musd"] * RESOLVE_BUDGET_FACTOR)
    t = pc()
    res2 = opt.solve(scen2)
    ph["resolve_total"] = pc() - t
    timer2 = opt.session.stats.timer
    ph["resolve_solve"] = timer2.get_total_time("optimize")
    ph["resolve_update"] = timer2.get_total_time("update")
    ph["resolve_overhead"] = ph["resolve_total"] - ph["resolve_solve"]
    return {
        "phases": ph, "status": res.status, "objective": res.objective,
        "bound": res.best_bound, "stakes": stakes,
        "resolve": {"status": res2.status, "objective": res2.objective,
                    "stakes": {s.project_id: s.stake for s in res2.selected}},
        "termination": res.solver.termination,
    }


def worker_highspy(stem: str, presolve: str) -> dict:
    t0 = pc()
    import highspy
    import numpy as np

    ph = {"import": pc() - t0}
    d = dict(np.load(stem + ".npz"))
    scen = json.loads(Path(stem + ".json").read_text())

    t = pc()
    fm = floor_model(d, scen)
    ph["build"] = pc() - t

    t = pc()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", presolve)
    h.setOptionValue("mip_rel_gap", MIP_GAP)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("time_limit", float(scen["solver"]["time_limit_s"]))
    # the heuristics the library switches off (optimizer/solve.py; bench/README.md), so that
    # both run the same search and the difference is the modelling layer
    h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    h.setOptionValue("mip_heuristic_run_root_reduced_cost", False)
    st = h.passModel(fm["ncol"], fm["nrow"], fm["nnz"], int(highspy.MatrixFormat.kRowwise),
                     int(highspy.ObjSense.kMaximize), 0.0, fm["cost"], fm["col_lo"],
                     fm["col_up"], fm["row_lo"], fm["row_up"], fm["start"], fm["index"],
                     fm["value"], fm["integrality"])
    assert st == highspy.HighsStatus.kOk, st
    ph["pass"] = pc() - t

    def run_and_read():
        t = pc()
        h.run()
        solve = pc() - t
        t = pc()
        info = h.getInfo()
        status = h.getModelStatus()
        has = info.primal_solution_status == 2
        stakes = {}
        if has:
            col = np.asarray(h.getSolution().col_value)
            stakes = stakes_from(col[fm["xs"]], col[fm["ss"]], d["smin"], d["smax"])
        obj = info.objective_function_value if has else None
        ph["mip_nodes"] = info.mip_node_count
        return solve, pc() - t, h.modelStatusToString(status), obj, info.mip_dual_bound, stakes

    ph["solve"], ph["extract"], status, obj, bound, stakes = run_and_read()
    nodes = ph["mip_nodes"]
    ph["total"] = ph["build"] + ph["pass"] + ph["solve"] + ph["extract"]
    ph["highs_run_clock"] = h.getRunTime()

    t = pc()
    h.changeRowBounds(fm["budget_row"], -highspy.kHighsInf,
                      scen["budget_musd"] * RESOLVE_BUDGET_FACTOR)
    s2, _, status2, obj2, _, stakes2 = run_and_read()
    ph["resolve_total"] = pc() - t
    ph["resolve_solve"] = s2
    ph["resolve_overhead"] = ph["resolve_total"] - s2
    ph["mip_nodes"] = nodes
    return {"phases": ph, "status": status, "objective": obj, "bound": bound,
            "stakes_rows": stakes, "resolve": {"status": status2, "objective": obj2,
                                               "stakes_rows": stakes2}}


def worker_pulp(stem: str, presolve: str) -> dict:
    t0 = pc()
    import numpy as np
    import pulp

    ph = {"import": pc() - t0}
    d = dict(np.load(stem + ".npz"))
    scen = json.loads(Path(stem + ".json").read_text())

    # time PuLP's MPS write and solution read inside prob.solve()
    acc: dict[str, float] = {}

    def timed(name, fn):
        def w(*a, **k):
            t = pc()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + pc() - t
        return w

    pulp.LpProblem.writeMPS = timed("write_mps", pulp.LpProblem.writeMPS)
    pulp.PULP_CBC_CMD.readsol_MPS = timed("read_sol", pulp.PULP_CBC_CMD.readsol_MPS)

    t = pc()
    n = len(d["equity"])
    eq, deal, india = d["equity"], d["deal"], d["india"]
    Y = d["spend"].shape[1]
    K = int(d["n_countries"])
    sn = scenario_numbers(scen, Y)
    Aff = pulp.LpAffineExpression
    LE, GE, EQ = pulp.LpConstraintLE, pulp.LpConstraintGE, pulp.LpConstraintEQ
    prob = pulp.LpProblem("portfolio", pulp.LpMaximize)
    x = [pulp.LpVariable(f"x{i}", cat=pulp.LpBinary) for i in range(n)]
    s = [pulp.LpVariable(f"s{i}", lowBound=0.0, upBound=float(d["smax"][i])) for i in range(n)]
    T = pulp.LpVariable("T", lowBound=0.0)
    out_v = [pulp.LpVariable(f"O{j}", lowBound=0.0) for j in range(NP)]
    u = [pulp.LpVariable(f"u{k}", cat=pulp.LpBinary) for k in range(K)]

    def con(name, terms, sense, rhs):
        prob.addConstraint(pulp.LpConstraint(Aff(terms), sense=sense, rhs=rhs), name)

    def cost_terms(idx, w):
        w = np.broadcast_to(np.asarray(w, dtype=float), (len(idx),))
        return ([(s[i], float(eq[i] * wi)) for i, wi in zip(idx, w, strict=True)
                 if eq[i] * wi != 0.0]
                + [(x[i], float(deal[i] * wi)) for i, wi in zip(idx, w, strict=True)
                   if deal[i] * wi != 0.0])

    prob.setObjective(Aff([(s[i], float(d["npv"][i])) for i in range(n)]
                          + [(x[i], -float(deal[i])) for i in range(n)]))
    smin, smax = d["smin"], d["smax"]
    for i in range(n):
        con(f"smin{i}", [(s[i], 1.0), (x[i], -float(smin[i]))], GE, 0.0)
        con(f"smax{i}", [(s[i], 1.0), (x[i], -float(smax[i]))], LE, 0.0)
    every = np.arange(n)
    con("total_cost", [(T, 1.0)] + [(v, -c) for v, c in cost_terms(every, 1.0)], EQ, 0.0)
    con("budget", [(T, 1.0)], LE, sn["budget"])
    if sn["kabil"] < INF:
        con("kabil", cost_terms(every, india), LE, sn["kabil"])
    if sn["us"] < INF:
        con("us", cost_terms(every, 1.0 - india), LE, sn["us"])
    for k in range(Y):
        if sn["annual"][k] < INF:
            con(f"annual{k}", cost_terms(every, d["spend"][:, k]), LE, sn["annual"][k])
    country = d["country"]
    members = [np.flatnonzero(country == k) for k in range(K)]
    if sn["country_share"] is not None:
        for k in range(K):
            con(f"share{k}", cost_terms(members[k], 1.0) + [(T, -sn["country_share"])], LE, 0.0)
    if sn["avg_risk"] is not None:
        con("avg_risk", cost_terms(every, d["risk"]) + [(T, -sn["avg_risk"])], LE, 0.0)
    if sn["china"] is not None:
        con("china", cost_terms(np.flatnonzero(d["china"]), 1.0) + [(T, -sn["china"])], LE, 0.0)
    for k in range(K):
        con(f"link{k}", [(u[k], 1.0)] + [(x[i], -1.0) for i in members[k]], LE, 0.0)
    if sn["min_countries"] is not None:
        con("min_countries", [(u[k], 1.0) for k in range(K)], GE, float(sn["min_countries"]))
    if sn["max_projects"] < INF:
        con("max_projects", [(x[i], 1.0) for i in range(n)], LE, sn["max_projects"])
    for j in range(NP):
        col = d["out"][:, j]
        con(f"out{j}", [(out_v[j], 1.0)] + [(s[i], -float(col[i])) for i in np.flatnonzero(col)],
            EQ, 0.0)
        if sn["min_output"][j] is not None:
            con(f"min_out{j}", [(out_v[j], 1.0)], GE, float(sn["min_output"][j]))
    for g in range(int(d["n_groups"])):
        con(f"excl{g}", [(x[i], 1.0) for i in d["g_rows"][d["g_ids"] == g]], LE, 1.0)
    for j, (p, q) in enumerate(d["requires"]):
        con(f"req{j}", [(x[p], 1.0), (x[q], -1.0)], LE, 0.0)
    ph["build"] = pc() - t

    t = pc()
    solver = pulp.PULP_CBC_CMD(msg=False, gapRel=MIP_GAP,
                               timeLimit=float(scen["solver"]["time_limit_s"]))
    prob.solve(solver)
    ph["solve_wall"] = pc() - t
    ph["write_mps"] = acc.get("write_mps", 0.0)
    ph["read_sol"] = acc.get("read_sol", 0.0)
    ph["solve"] = ph["solve_wall"] - ph["write_mps"] - ph["read_sol"]  # CBC process
    t = pc()
    status = pulp.LpStatus[prob.status]
    sol_status = pulp.LpSolution[prob.sol_status] if hasattr(prob, "sol_status") else ""
    xv = np.array([v.varValue or 0.0 for v in x])
    sv = np.array([v.varValue or 0.0 for v in s])
    stakes = stakes_from(xv, sv, smin, smax)
    obj = pulp.value(prob.objective)
    ph["extract"] = pc() - t
    ph["total"] = ph["build"] + ph["solve_wall"] + ph["extract"]
    return {"phases": ph, "status": f"{status}/{sol_status}", "objective": obj, "bound": None,
            "stakes_rows": stakes}


def worker_scale(stem: str, gc_mode: str) -> dict:
    """Model-side scaling without solving: validate, build_model, Pyomo -> HiGHS hand-over
    (``set_instance`` of the library's own HiGHS interface), with Python's cyclic garbage
    collector on (as shipped) or off (``gc.disable()`` around the three steps)."""
    import gc

    t0 = pc()
    import optimizer  # noqa: F401
    from optimizer.data import validate_projects
    from optimizer.model import apply_scenario

    ph = {"import": pc() - t0}
    import pandas as pd

    df = pd.read_pickle(stem + ".pkl")
    sc = optimizer.load_scenario(json.loads(Path(stem + ".json").read_text()))
    if gc_mode == "off":
        gc.disable()
    t = pc()
    data = validate_projects(df)
    ph["validate"] = pc() - t
    t = pc()
    opt = optimizer.Optimizer(data)
    ph["build"] = pc() - t
    apply_scenario(opt.built, sc)
    from optimizer.highs_backend import FastHighs as cls
    hs = cls()
    t = pc()
    hs.set_instance(opt.built.model)
    ph["transfer"] = pc() - t
    gc.enable()
    ph["gc_collections"] = sum(st["collections"] for st in gc.get_stats())
    return {"phases": ph}


WORKERS = {"ours": worker_ours, "highspy": worker_highspy, "pulp": worker_pulp,
           "scale": worker_scale}


def worker_main(args) -> None:
    import resource

    out = WORKERS[args.worker](args.stem, args.worker_presolve)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sys.stdout.write("\n@@RESULT@@" + json.dumps(out) + "\n")


# =============================================================================================
# parent: run, check, tabulate
# =============================================================================================


def run_worker(case: str, stem: Path, presolve: str, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--stem", str(stem),
           "--worker-presolve", presolve]
    t = pc()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT),
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = pc() - t
    if p.returncode != 0 or "@@RESULT@@" not in p.stdout:
        return {"error": (p.stderr or p.stdout)[-2000:]}
    res = json.loads(p.stdout.rsplit("@@RESULT@@", 1)[1])
    res["process_wall"] = wall  # interpreter start-up + imports + everything, as a CLI run
    return res


def check(res: dict, data, sc) -> None:
    """Add stakes by project_id, the recomputed objective and the violation list."""
    from optimizer.check import violations

    if "error" in res:
        return
    ids = data.ids
    if "stakes" not in res:
        res["stakes"] = {ids[int(i)]: v for i, v in res.pop("stakes_rows").items()}
    pos = {p: i for i, p in enumerate(ids)}
    npv, deal = data.col("npv_musd"), data.col("deal_cost_musd")
    obj = sum(npv[pos[p]] * st - deal[pos[p]] for p, st in res["stakes"].items())
    res["objective_recomputed"] = float(obj)
    res["violations"] = violations(data, sc, res["stakes"]) if res["stakes"] else ["no portfolio"]
    res["n_selected"] = len(res["stakes"])
    del res["stakes"]
    if "resolve" in res:
        r2 = res["resolve"]
        st2 = r2.pop("stakes", None) or {ids[int(i)]: v for i, v in
                                         r2.pop("stakes_rows", {}).items()}
        sc2 = sc.model_copy(update={"budget_musd": sc.budget_musd * RESOLVE_BUDGET_FACTOR})
        r2["violations"] = violations(data, sc2, st2) if st2 else ["no portfolio"]
        r2["objective_recomputed"] = float(sum(npv[pos[p]] * v - deal[pos[p]]
                                               for p, v in st2.items()))


def verify_floor(n: int = 200, seed: int = 0) -> str:
    """Compare the LP ours hands to HiGHS with the floor's LP on a small instance: same
    matrix, bounds, costs, integrality and column order once ours' relax[f] columns are
    dropped? Reads Optimizer/Pyomo internals; says so if they moved."""
    import numpy as np

    import optimizer

    with tempfile.TemporaryDirectory(prefix="bench_verify_") as t:
        data, sc, stem = write_instance(n, seed, "off", 60.0, Path(t))
        d = dict(np.load(f"{stem}.npz"))
        scen = json.loads(Path(f"{stem}.json").read_text())
    opt = optimizer.Optimizer(data)
    opt.solve(sc)
    try:
        hs = opt.session._solver
        lp = hs._solver_model.getLp()
        vm = hs._pyomo_var_to_solver_var_map
        relax = sorted(vm[id(v)] for v in opt.built.model.relax.values())
    except AttributeError as exc:
        return f"not verified (internals changed: {exc})"
    keep = np.setdiff1d(np.arange(lp.num_col_), relax)
    fm = floor_model(d, scen)

    def dense(start, index, value, outer, inner, rowwise):
        M = np.zeros((outer, inner))
        for i in range(outer):
            for k in range(start[i], start[i + 1]):
                M[i, index[k]] += value[k]
        return M if rowwise else M.T

    A = lp.a_matrix_
    rowwise = A.format_ == __import__("highspy").MatrixFormat.kRowwise
    Mo = dense(np.asarray(A.start_), np.asarray(A.index_), np.asarray(A.value_),
               lp.num_row_ if rowwise else lp.num_col_,
               lp.num_col_ if rowwise else lp.num_row_, rowwise)[:, keep]
    Mf = dense(fm["start"], fm["index"], fm["value"], fm["nrow"], fm["ncol"], True)

    def inf(a):
        a = np.asarray(a, dtype=float).copy()
        a[a >= 1e20] = np.inf
        a[a <= -1e20] = -np.inf
        return a

    problems = []
    if Mo.shape != Mf.shape:
        return f"DIFFERENT shapes: ours {Mo.shape} (+{len(relax)} relax) vs floor {Mf.shape}"
    if not np.array_equal(Mo, Mf):
        problems.append(f"matrix (max diff {np.abs(Mo - Mf).max():.3g})")
    for name, a, b in (("row_lower", inf(lp.row_lower_), fm["row_lo"]),
                       ("row_upper", inf(lp.row_upper_), fm["row_up"]),
                       ("col_lower", inf(lp.col_lower_)[keep], fm["col_lo"]),
                       ("col_upper", inf(lp.col_upper_)[keep], fm["col_up"]),
                       ("cost", np.asarray(lp.col_cost_)[keep], fm["cost"])):
        if not np.array_equal(a, b):
            problems.append(name)
    integ = np.array([int(v) for v in lp.integrality_])[keep]
    if not np.array_equal(integ, fm["integrality"]):
        problems.append("integrality")
    tail = list(relax) == list(range(lp.num_col_ - len(relax), lp.num_col_))
    if problems:
        return "DIFFERENT: " + ", ".join(problems) + " (solve times are not comparable)"
    return (f"identical LP (n={n}: {fm['nrow']} rows, {fm['ncol']} columns, same order); ours "
            f"also has {len(relax)} relax columns fixed at 0, "
            + ("after all others" if tail else "interleaved with the others"))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def fmt(v, w=8, nd=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-".rjust(w)
    return f"{v:{w}.{nd}f}"


def machine_info() -> dict:
    from importlib.metadata import version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def v(name):
        try:
            return version(name)
        except Exception:  # noqa: BLE001
            return "n/a"

    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "pyomo": v("pyomo"), "highspy": v("highspy"), "pulp": v("pulp"),
            "numpy": v("numpy"), "pandas": v("pandas"), "platform": platform.platform()}


def gmean(xs):
    xs = [x for x in xs if x is not None and x > 0 and not math.isnan(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def ok_runs(runs, **where):
    return [r for r in runs if "error" not in r and all(r.get(k) == v for k, v in where.items())]


def P(runs, key, **where):
    """Median of phase ``key`` over the matching successful runs."""
    return med([r["phases"].get(key) for r in ok_runs(runs, **where)])


def agree(runs: list[dict], n: int, seed: int) -> str:
    """'ok' if every case's objective (all presolve settings) is within the MIP gap of the
    best one found for this instance and no portfolio breaks the scenario."""
    objs = {}
    for r in ok_runs(runs, n=n, seed=seed):
        key = f"{r['case']}/{r['presolve']}" if r["case"] != "pulp" else "pulp"
        objs.setdefault(key, []).append(r["objective_recomputed"])
    if not objs:
        return "n/a"
    best = max(max(v) for v in objs.values())
    bad = [f"{k} {min(v):.4f}" for k, v in objs.items()
           if best - min(v) > MIP_GAP * abs(best) * 1.001 + 1e-6]
    viol = sorted({f"{r['case']}: {v}" for r in ok_runs(runs, n=n, seed=seed)
                   for v in r.get("violations", [])})
    msg = "ok" if not bad else (f"WARNING objective below best {best:.4f} - MIP gap: "
                                + ", ".join(bad))
    if viol:
        msg += " | VIOLATIONS: " + "; ".join(viol[:4])
    return msg


def tool_row(runs, case, **where) -> dict | None:
    """The whole-process row of one tool: import, build, pass, solve, extract, totals."""
    rs = ok_runs(runs, case=case, **where)
    if not rs:
        return None

    def p(k):
        return P(rs, k)

    if case == "ours":
        imp = p("import_pyomo") + p("import_rest")
        build = p("validate") + p("build_wall")
        pas = p("transfer") + p("pyomo_solve_other")
        extract = p("extract")
    elif case == "highspy":
        imp, build, pas, extract = p("import"), p("build"), p("pass"), p("extract")
    else:
        imp, build, pas = p("import"), p("build"), p("write_mps")
        extract = p("extract") + p("read_sol")
    total = p("total")
    return {"import": imp, "build": build, "pass": pas, "solve": p("solve"), "extract": extract,
            "total": total, "total_with_import": total + imp, "overhead": total - p("solve"),
            "resolve": p("resolve_total"), "resolve_solve": p("resolve_solve"),
            "process_wall": med([r.get("process_wall") for r in rs]),
            "rss_mb": med([r["max_rss_mb"] + (r.get("children_max_rss_mb", 0.0)
                                              if case == "pulp" else 0.0) for r in rs]),
            "objective": med([r["objective_recomputed"] for r in rs]),
            "status": sorted({str(r["status"]) for r in rs}),
            "nodes": med([r["phases"].get("mip_nodes") for r in rs]), "runs": len(rs)}


OURS_PHASES = ["validate", "build", "transfer", "pyomo_solve_other", "solve", "extract"]
OURS_HDR = ["validate", "build", "transfer", "pyo_other", "solve", "extract"]


def print_size(runs: list[dict], n: int, presolve: str, seeds: list[int]) -> dict:
    """Tables for one size and presolve setting (medians over seeds and repeats)."""
    pr = [r for r in runs if r["n"] == n and (r["presolve"] == presolve or r["case"] == "pulp")]
    cases = [c for c in ("ours", "highspy", "pulp") if ok_runs(pr, case=c)]
    print(f"\n=== n = {n:,} projects, presolve={presolve} (pulp: CBC defaults), seeds {seeds}, "
          "medians over seeds x repeats, seconds ===")
    for r in pr:
        if "error" in r:
            print(f"  {r['case']} seed {r['seed']}: ERROR {r['error'][-600:]}")
    out: dict = {"n": n, "presolve": presolve}
    ours = ok_runs(pr, case="ours")
    if ours:
        print("  ours by phase:")
        print("    " + "".join(f"{h:>10}" for h in ["import", *OURS_HDR, "TOTAL", "re-solve",
                                                     "(HiGHS)"]))
        imp = P(ours, "import_pyomo") + P(ours, "import_rest")
        print("    " + fmt(imp, 10) + "".join(fmt(P(ours, k), 10) for k in OURS_PHASES)
              + fmt(P(ours, "total"), 10) + fmt(P(ours, "resolve_total"), 10)
              + fmt(P(ours, "resolve_solve"), 10))
        pre = sum(P(ours, "x_" + k) for k in ("load_scenario", "check_scenario_against",
                                                "apply_scenario"))
        post = P(ours, "extract") - pre
        rest = max(0.0, post - P(ours, "x_read_stakes") - P(ours, "x_portfolio")
                   - P(ours, "x_violations"))
        print(f"    import = pyomo.environ {P(ours, 'import_pyomo'):.3f} + rest of `import "
              f"optimizer` {P(ours, 'import_rest'):.3f}; extract = scenario validation/apply "
              f"{pre:.3f} + after the run {post:.3f} (read stakes {P(ours, 'x_read_stakes'):.3f},"
              f" portfolio {P(ours, 'x_portfolio'):.3f}, violations {P(ours, 'x_violations'):.3f},"
              f" binding+objective+Result {rest:.3f});"
              f" re-solve overhead {P(ours, 'resolve_overhead'):.3f} (Pyomo update "
              f"{P(ours, 'resolve_update'):.3f})")
        print(f"    Result.solver reports build_s {P(ours, 'reported_build_s'):.3f} (build_model"
              f" + everything in Pyomo's solve call but the HiGHS run), solve_time_s "
              f"{P(ours, 'reported_solve_time_s'):.3f}")
        out["ours_phases"] = {k: P(ours, k) for k in {k for r in ours for k in r["phases"]}}
    hdr = ["import", "build", "pass", "solve", "extract", "total", "total+imp", "overhead",
           "re-solve", "(HiGHS)", "process", "RSS MB"]
    print("  whole process per tool:")
    print("    " + f"{'case':<9}" + "".join(f"{h:>10}" for h in hdr) + "  nodes  objective  status")
    for c in cases:
        t = tool_row(pr, c)
        out[c] = t
        print("    " + f"{c:<9}" + "".join(fmt(t[k], 10) for k in
                                           ["import", "build", "pass", "solve", "extract",
                                            "total", "total_with_import", "overhead",
                                            "resolve", "resolve_solve", "process_wall"])
              + fmt(t["rss_mb"], 10, 0) + f"  {t['nodes'] if t['nodes'] == t['nodes'] else '-':>5}"
              + f"  {t['objective']:.3f}  {'/'.join(t['status'])}")
    print("    build: ours = validate + build_model, others = arrays / LpProblem from the same "
          "numbers; pass: ours = Pyomo set_instance + rest of Pyomo's solve call, highspy = "
          "passModel, pulp = MPS write; extract: pulp includes reading CBC's solution file; "
          "overhead = total - solve; process = wall of the whole worker process (interpreter "
          "start, imports, reading the instance file, first solve and re-solve)")
    if "ours" in out:
        for other in ("pulp", "highspy"):
            if other in out:
                o, t = out["ours"], out[other]
                print(f"  ours/{other:<8} total {o['total'] / t['total']:6.2f}x   incl. imports "
                      f"{o['total_with_import'] / t['total_with_import']:6.2f}x   overhead "
                      f"(total - solve) {o['overhead'] / max(t['overhead'], 1e-9):6.1f}x")
    print("  build per 1,000 projects: " + ", ".join(
        f"{c} {out[c]['build'] / n * 1000:.4f} s" for c in cases)
        + (f" (ours build_model alone {P(ours, 'build') / n * 1000:.4f} s, transfer "
           f"{P(ours, 'transfer') / n * 1000:.4f} s)" if ours else ""))
    for seed in seeds:
        print(f"  seed {seed}: objectives and constraint check: {agree(runs, n, seed)}")
    return out


def print_seed_summary(runs: list[dict], sizes, seeds, presolves) -> list[dict]:
    print("\n=== summary per instance (seconds; totals exclude imports; median over repeats) ===")
    hdr = ["n", "seed", "presolve", "ours", "highspy", "pulp+cbc", "ours slv", "floor slv",
           "cbc slv", "ours/pulp", "ours/floor", "ours ovh", "check"]
    print("  " + "".join(f"{h:>11}" for h in hdr))
    rows = []
    for n in sizes:
        for presolve in presolves:
            for seed in seeds:
                t = {c: tool_row([r for r in runs if r["n"] == n and r["seed"] == seed and
                                  (r["presolve"] == presolve or c == "pulp")], c)
                     for c in ("ours", "highspy", "pulp")}

                def g(c, k="total", t=t):
                    return t[c][k] if t[c] else None

                rp = g("ours") / g("pulp") if g("ours") and g("pulp") else None
                rf = g("ours") / g("highspy") if g("ours") and g("highspy") else None
                chk = agree(runs, n, seed)
                rows.append({"n": n, "seed": seed, "presolve": presolve,
                             "ours": g("ours"), "highspy": g("highspy"), "pulp": g("pulp"),
                             "ours_solve": g("ours", "solve"), "floor_solve": g("highspy", "solve"),
                             "cbc_solve": g("pulp", "solve"), "ours_over_pulp": rp,
                             "ours_over_highspy": rf, "ours_overhead": g("ours", "overhead"),
                             "check": chk})
                print("  " + f"{n:>11,}{seed:>11}{presolve:>11}" + "".join(
                    fmt(v, 11) for v in (g("ours"), g("highspy"), g("pulp"), g("ours", "solve"),
                                         g("highspy", "solve"), g("pulp", "solve")))
                    + fmt(rp, 11, 2) + fmt(rf, 11, 2) + fmt(g("ours", "overhead"), 11)
                    + f"  {'ok' if chk == 'ok' else 'SEE ABOVE'}")
            sel = [r for r in rows if r["n"] == n and r["presolve"] == presolve]
            if len(seeds) > 1:
                print("  " + f"{n:>11,}{'geomean':>11}{presolve:>11}" + " " * 66
                      + fmt(gmean([r["ours_over_pulp"] for r in sel]), 11, 2)
                      + fmt(gmean([r["ours_over_highspy"] for r in sel]), 11, 2))
    return rows


def print_presolve(runs: list[dict], sizes, seeds, presolves) -> list[dict]:
    if len(presolves) < 2:
        return []
    print("\n=== presolve study: HiGHS run time (s) and total (s), per instance ===")
    cases = [c for c in ("ours", "highspy") if ok_runs(runs, case=c)]
    hdr = ["n", "seed"] + [f"{c[:5]} {k} {p}" for c in cases for k in ("solve",)
                           for p in presolves] + ["ours total " + p for p in presolves] + ["faster"]
    print("  " + "".join(f"{h:>16}" for h in hdr))
    rows = []
    for n in sizes:
        for seed in seeds:
            sv = {(c, p): P(runs, "solve", case=c, n=n, seed=seed, presolve=p)
                  for c in cases for p in presolves}
            tv = {p: P(runs, "total", case="ours", n=n, seed=seed, presolve=p) for p in presolves}
            best = min(presolves, key=lambda p: gmean([sv[(c, p)] for c in cases]))
            rows.append({"n": n, "seed": seed, "solve": {f"{c}/{p}": v for (c, p), v in sv.items()},
                         "ours_total": tv, "faster": best})
            print("  " + f"{n:>16,}{seed:>16}" + "".join(fmt(sv[(c, p)], 16) for c in cases
                                                        for p in presolves)
                  + "".join(fmt(tv[p], 16) for p in presolves) + f"{best:>16}")
        sel = [r for r in rows if r["n"] == n]
        print(f"  {'':>16}{'sum':>16}" + "".join(
            fmt(sum(r['solve'].get(f'{c}/{p}', 0.0) for r in sel), 16)
            for c in cases for p in presolves))
    return rows


def print_scaling(rows: list[dict]) -> None:
    if not rows:
        return
    print("\n=== model-side scaling, no solve (fresh process each; seconds, and seconds per "
          "1,000 projects) ===")
    hdr = ["n", "gc", "validate", "build", "transfer", "sum", "val/1k", "build/1k",
           "transf/1k", "sum/1k"]
    print("  " + "".join(f"{h:>10}" for h in hdr))
    for r in rows:
        ph = r["phases"]
        if "error" in r:
            print(f"  {r['n']:>10,}{r['gc']:>10}  ERROR {r['error'][-300:]}")
            continue
        tot = ph["validate"] + ph["build"] + ph["transfer"]
        k = 1000 / r["n"]
        print("  " + f"{r['n']:>10,}{r['gc']:>10}" + "".join(
            fmt(v, 10) for v in (ph["validate"], ph["build"], ph["transfer"], tot))
            + "".join(fmt(v * k, 10, 4) for v in (ph["validate"], ph["build"], ph["transfer"],
                                                   tot)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (fresh process each)")
    ap.add_argument("--repeat-large", type=int, default=1,
                    help="runs per case for sizes >= --large (default 1)")
    ap.add_argument("--large", type=int, default=5000)
    ap.add_argument("--presolve", default="off",
                    help="off|on|choose, or a comma list: the first is the main setting, the "
                         "others add a presolve study for ours and highspy on sizes >= "
                         "--presolve-min-size (pulp runs once, with CBC's own defaults)")
    ap.add_argument("--presolve-min-size", type=int, default=1000)
    ap.add_argument("--cases", default="ours,highspy,pulp")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--scaling-sizes", default="1000,3000,10000,20000",
                    help="model-side scaling section (validate/build/transfer, GC on and off); "
                         "'' to skip")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip checking that the floor's LP equals the one ours hands to HiGHS")
    ap.add_argument("--json", help="write every run and the summaries here")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--stem", help=argparse.SUPPRESS)
    ap.add_argument("--worker-presolve", default="off", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0

    sys.path.insert(0, str(ROOT))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    presolves = args.presolve.split(",")
    for p in presolves:
        if p not in ("off", "on", "choose"):
            ap.error(f"--presolve: {p!r} is not off, on or choose")
    cases = args.cases.split(",")
    for c in cases:
        if c not in ("ours", "highspy", "pulp"):
            ap.error(f"--cases: unknown case {c!r}")
    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"mip_gap {MIP_GAP:g}, random_seed 0, time limit {args.time_limit:g} s, sizes {sizes}, "
          f"seeds {seeds}, presolve {presolves}, cases {cases}, repeat {args.repeat} "
          f"({args.repeat_large} for n >= {args.large})")
    t_all = pc()
    everything: dict = {"machine": info, "args": vars(args), "runs": []}
    if not args.no_verify and "highspy" in cases:
        everything["floor_verification"] = verify_floor()
        print(f"floor check: {everything['floor_verification']}")
    timeout = args.time_limit * 3 + 120
    runs = everything["runs"]
    with tempfile.TemporaryDirectory(prefix="bench_solve_") as tmpd:
        tmp = Path(tmpd)
        for n in sizes:
            reps = args.repeat_large if n >= args.large else args.repeat
            for seed in seeds:
                for pi, presolve in enumerate(presolves):
                    if pi > 0 and n < args.presolve_min_size:
                        continue
                    data, sc, stem = write_instance(n, seed, presolve, args.time_limit, tmp)
                    for rep in range(reps):
                        for case in cases:
                            if case == "pulp" and pi > 0:
                                continue  # CBC does not see HiGHS's presolve option
                            res = run_worker(case, stem, presolve, timeout)
                            check(res, data, sc)
                            res.update(case=case, n=n, seed=seed, presolve=presolve, rep=rep)
                            runs.append(res)
                            ph = res.get("phases", {})
                            print(f"  . n={n} seed={seed} {case:<8} presolve={presolve} rep={rep}"
                                  f" total {ph.get('total', float('nan')):7.3f} s"
                                  f" solve {ph.get('solve', float('nan')):7.3f} s"
                                  f" obj {res.get('objective_recomputed', float('nan')):.3f}"
                                  f" nodes {ph.get('mip_nodes', '-')}"
                                  + (" ERROR" if "error" in res else ""), flush=True)
        everything["sizes"] = [print_size(runs, n, presolves[0], seeds) for n in sizes]
        everything["per_instance"] = print_seed_summary(runs, sizes, seeds, presolves[:1])
        everything["presolve_study"] = print_presolve(
            runs, [n for n in sizes if n >= args.presolve_min_size], seeds, presolves)
        scale = []
        for n in [int(s) for s in args.scaling_sizes.split(",") if s]:
            data, sc, stem = write_instance(n, 0, "off", args.time_limit, tmp)
            for gcm in ("on", "off"):
                res = run_worker("scale", stem, gcm, timeout)
                res.update(n=n, gc=gcm)
                scale.append(res)
        everything["scaling"] = scale
        print_scaling(scale)
    print(f"\nbenchmark wall time {pc() - t_all:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
