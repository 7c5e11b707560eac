"""Speed benchmark of portfolios under uncertainty (issue 15, CONTRACT section 8): our Pyomo +
persistent-HiGHS library against the plain extensive form written straight into highspy from
numpy arrays, and against two cutting-plane forms of CVaR in highspy.

    .venv/bin/python bench/bench_uncertainty.py                     # every group (~45 min)
    .venv/bin/python bench/bench_uncertainty.py --groups shipped,chance --repeat 3 \
        --json /tmp/uncertainty.json

Cases: ``ours`` (``Optimizer(data).solve(scenario)``), ``plain`` (the extensive form from numpy
arrays), ``cuts`` (aggregated CVaR cuts, Kunzi-Bay and Mayer 2006), ``rows`` (a cut per draw:
the plain form's shortfall rows, added only once violated). Groups (``--groups``):

shipped    inputs/projects.csv (45 projects), inputs/scenarios/base.json, 1,000 draws of the
           data's default uncertainty model (seed 0), ``mean_cvar`` lambda 0.5, alpha 0.1, with
           the CVaR floor ``--cvar-floor`` (default -140: binding and feasible, bench/README.md)
           and without: all four cases. Target: ours <= 1.3x plain, whole process.
synthetic  ``optimizer.synthetic`` 1,000 projects (seed 0) and its scenario, ``mean_cvar``
           lambda 0.5 alpha 0.1, ``--synthetic-draws`` (default 200,1000), HiGHS limit
           ``--time-limit`` (300 s): all four cases, the gap over time. Target at 200: 1.0x.
chance     shipped data, ``expected_npv`` with ``budget_confidence`` 0.9, ``--chance-draws``
           (default 200,1000), limit ``--chance-time-limit`` (60 s): ours and plain with the
           gap over time; and ``expected_npv`` without the chance constraint (its cost).
memory     ours and plain on the shipped data (``--memory-shipped`` draws) and on 1,000
           synthetic projects (``--memory-synthetic`` draws), ``mean_cvar`` without a floor,
           limit ``--memory-time-limit`` (60 s): peak RSS (VmHWM) against draws x projects, and
           which samples solve within the limit.

Every timed case runs in a fresh ``python`` process (``--worker``): its whole wall time
("process": interpreter start, imports, reading the instance, the solve, exit) and its phases
are recorded. The parent makes each instance once (untimed): the data, the scenario and the
sample (``optimizer.sample.sample_for``, the very draws ours makes from the scenario) as numpy
arrays for the highspy workers. Ours gets the projects table (the CSV path or a DataFrame
pickle) and the scenario, and makes its own sample (timed as the phase ``sample``).

The plain form mirrors the LP ours hands to HiGHS row for row and column for column (minus the
diagnosis slacks ``relax[f]``, fixed at 0): the face-value rows of bench_solve.floor_model, then
``shortfall[s]`` (u_s - eta + R_s >= 0), ``cvar_floor``, ``caps_in_draw[s, cap]`` (big-M:
``sum_p w_p C_sp + S_s held_s <= cap + S_s``) and ``caps_held_count``; the parent checks that on
small instances before timing (``lp check``). HiGHS options as ``optimizer.highs_backend.
highs_options``: presolve off, random_seed 0, feasibility jump and root reduced cost off,
tolerances 1e-7 / 1e-6, threads as ``OPTIMIZER_HIGHS_THREADS`` (unset: HiGHS's default), gap
1e-4, the time limit.

``cuts`` replaces the N shortfall rows and u_s by one variable ``v`` (the CVaR) and aggregated
cuts ``v <= eta (1 - |K|/(alpha N)) + 1/(alpha N) sum_{s in K} R_s`` for draw sets K: two
initial cuts (K empty, K all), then Kelley iterations on the LP relaxation (solve, add the most
violated cut K = {s: R_s < eta*}, until none is violated by more than 1e-7 relative), then MIP
runs: every incumbent a run found (HiGHS's MIP-solution callback) is separated and its cut
added, each run warm-started with the best portfolio so far (feasible once its true CVaR
replaces v); stop when the run's own answer breaks no cut (its bound is then valid for the
true problem) or the best true objective is within the gap of the run's bound. ``rows`` does
the same with the plain form's own rows: u_s and eta as in the plain form, the shortfall rows
of the 2 alpha N worst draws to start, then every broken row; a MIP run stops at once on an
incumbent that breaks a row (emulated lazy constraints: highspy cannot add rows inside a run),
which pays off for rows and not for aggregated cuts (``BENCH_CUTS_EARLY_STOP``).

Every portfolio is checked by the parent: ``optimizer.check.violations`` against the
scenario, sampled limits included (1e-6 relative), objective recomputed on the sample
(``optimizer.limits.measure``), and the objectives of a case must agree within the gaps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from bench_solve import floor_model, machine_info  # noqa: E402  (numpy only inside)

T_STARTED = time.time()  # a worker's start-up ends here (interpreter, site, this module)

MIP_GAP = 1e-4
INF = math.inf
pc = time.perf_counter
SHIPPED_PROJECTS = ROOT / "inputs" / "projects.csv"
SHIPPED_SCENARIO = ROOT / "inputs" / "scenarios" / "base.json"

# =============================================================================================
# instances (parent side: imports the optimizer package)
# =============================================================================================


def make_instance(kind: str, draws: int, tmp: Path, *, objective: str, time_limit: float,
                  floor: float | None = None, confidence: float | None = None,
                  lam: float = 0.5, alpha: float = 0.1, seed: int = 0, n: int = 1000,
                  trace: bool = False) -> dict:
    """Write what the workers need for one case; return the parent's view (data, scenario,
    sample, file stem)."""
    import numpy as np
    import pandas as pd

    from optimizer.data import load_projects, load_scenario, validate_projects
    from optimizer.model import choice_bounds
    from optimizer.sample import sample_for
    from optimizer.schema import LIMITS
    from optimizer.synthetic import synthetic_projects, synthetic_scenario

    fields = {"objective": objective, "uncertainty": {"draws": draws, "seed": seed,
                                                      "fresh_draws": 0}}
    if objective == "mean_cvar":
        fields.update(risk_aversion=lam, cvar_alpha=alpha)
    if floor is not None:
        fields["min_cvar_npv"] = floor
    if confidence is not None:
        fields["budget_confidence"] = confidence
    solver = {"time_limit_s": time_limit, "mip_gap": MIP_GAP}
    if kind == "shipped":
        data = load_projects(SHIPPED_PROJECTS)
        raw = json.loads(SHIPPED_SCENARIO.read_text())
        raw.update(fields, solver=solver)
        sc = load_scenario(raw)
        projects = str(SHIPPED_PROJECTS)
    else:
        df = synthetic_projects(n, seed)
        sc = synthetic_scenario(df, **fields, solver=solver)
        data = validate_projects(df)
        projects = str(tmp / f"synthetic_{n}_{seed}.pkl")
        if not Path(projects).exists():
            pd.to_pickle(df, projects)
    smp = sample_for(data, sc)
    stem = tmp / (f"{kind}_{data.n}_{objective}_{draws}_{floor}_{confidence}_{time_limit}_"
                  f"{int(trace)}")
    scen = sc.model_dump(mode="json")
    f = data.frame
    countries = sorted(set(f["country"]))
    cidx = {k: i for i, k in enumerate(countries)}
    groups = sorted(data.groups)
    g_rows = np.concatenate([np.asarray(data.groups[g], dtype=np.int64) for g in groups]) \
        if groups else np.zeros(0, np.int64)
    g_ids = np.concatenate([np.full(len(data.groups[g]), j) for j, g in enumerate(groups)]) \
        if groups else np.zeros(0, np.int64)
    lb, ub = choice_bounds(data, sc)
    # every spend cap of the model (the table of limits, in the model's F order), its weights
    # and the scenario's value (inf where the scenario leaves it out: a free row, as in ours)
    cap_fields = [lim.field for lim in LIMITS if lim.kind == "cap" and lim.reads == "spend"]
    from optimizer.limits import slack_paths

    paths = [p for p in slack_paths(data.n_years) if p.split(".")[0] in cap_fields]
    W, rhs = [], []
    for path in paths:
        head, _, key = path.partition(".")
        lim = next(lim for lim in LIMITS if lim.field == head)
        W.append(np.ones(data.n) if lim.weight is None else np.asarray(
            lim.weight(data, int(key) if key else None), dtype=float))
        v = scen.get(head)
        if key:
            v = v[int(key)] if v is not None and int(key) < len(v) else None
        rhs.append(INF if v is None else float(v))
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
        choose_lb=lb, choose_ub=ub,
        A=smp.value_coefficients(data), C=smp.cost_coefficients(data),
        cap_w=np.array(W).reshape(len(W), data.n), cap_rhs=np.array(rhs),
    )
    spec = {"projects": projects, "scenario": scen, "objective": objective,
            "lam": lam if objective == "mean_cvar" else 0.0, "alpha": alpha, "floor": floor,
            "confidence": confidence, "time_limit": time_limit, "trace": trace,
            "draws": draws, "n": data.n}
    Path(f"{stem}.json").write_text(json.dumps(spec))
    return {"data": data, "sc": sc, "sample": smp, "stem": stem, "spec": spec}


# =============================================================================================
# the plain extensive form and the cutting-plane form as CSR arrays (workers; numpy only)
# =============================================================================================


def _csr_append(base: dict, blocks: list) -> dict:
    """Append row blocks (each: list of (cols, vals) per row as 2-D or ragged arrays, lo, up)
    to the CSR arrays ``base`` (start/index/value/row_lo/row_up)."""
    import numpy as np

    starts = [np.asarray(base["start"], dtype=np.int64)]
    index = [np.asarray(base["index"], dtype=np.int64)]
    value = [np.asarray(base["value"], dtype=float)]
    lo, up = [base["row_lo"]], [base["row_up"]]
    nnz = int(starts[0][-1])
    for cols, vals, blo, bup in blocks:
        cols = np.asarray(cols)
        vals = np.asarray(vals, dtype=float)
        if cols.ndim == 1:
            cols, vals = cols[None, :], vals[None, :]
        keep = vals != 0.0
        counts = keep.sum(axis=1)
        index.append(cols[keep].astype(np.int64))
        value.append(vals[keep])
        starts.append(nnz + np.cumsum(counts))
        nnz += int(counts.sum())
        lo.append(np.asarray(blo, dtype=float))
        up.append(np.asarray(bup, dtype=float))
    out = dict(base)
    out["start"] = np.concatenate(starts).astype(np.int32)
    out["index"] = np.concatenate(index).astype(np.int32)
    out["value"] = np.concatenate(value)
    out["row_lo"] = np.concatenate(lo)
    out["row_up"] = np.concatenate(up)
    out["nrow"] = len(out["row_lo"])
    out["nnz"] = int(nnz)
    return out


def _face(d, spec) -> dict:
    """The face-value rows (bench_solve.floor_model) with the scenario's filters as bounds."""
    fm = floor_model(d, spec["scenario"])
    fm["col_lo"][fm["xs"]] = d["choose_lb"]
    fm["col_up"][fm["xs"]] = d["choose_ub"]
    return fm


def _caps_block(d, spec, held_cols):
    """caps_in_draw[s, cap] for every draw and spend cap (s outer, cap inner, as ours) and
    caps_held_count, exactly as optimizer/stochastic.py writes them."""
    import numpy as np

    C, deal, smax = d["C"], d["deal"], d["smax"]
    W, rhs = d["cap_w"], d["cap_rhs"]
    N, n = C.shape
    ncap = len(W)
    ss, xs = spec["_ss"], spec["_xs"]
    cols = np.empty((N, ncap, 2 * n + 1), dtype=np.int64)
    vals = np.empty((N, ncap, 2 * n + 1))
    up = np.empty((N, ncap))
    cols[:, :, :n] = ss
    cols[:, :, n:2 * n] = xs
    cols[:, :, 2 * n] = np.asarray(held_cols)[:, None]
    for s in range(N):
        for c in range(ncap):
            w = W[c]
            most = float(w @ (C[s] * smax + deal))  # S_s, as ours computes it
            vals[s, c, :n] = w * C[s]
            vals[s, c, n:2 * n] = w * deal
            vals[s, c, 2 * n] = most
            up[s, c] = rhs[c] + most
    need = float(math.ceil(spec["confidence"] * N - 1e-9))
    return [(cols.reshape(N * ncap, -1), vals.reshape(N * ncap, -1), np.full(N * ncap, -INF),
             up.ravel()),
            (np.asarray(held_cols), np.ones(N), [need], [INF])]


def extensive_form(d, spec) -> dict:
    """The plain extensive form: the LP ours hands to HiGHS, from numpy arrays."""
    import numpy as np

    fm = _face(d, spec)
    A, deal = d["A"], d["deal"]
    N, n = A.shape
    ss, xs = fm["ss"], fm["xs"]
    spec["_ss"], spec["_xs"] = ss, xs
    ncol0 = fm["ncol"]
    shortfall = spec["objective"] == "mean_cvar" or spec["floor"] is not None
    caps = spec["confidence"] is not None
    lam, alpha = spec["lam"], spec["alpha"]
    blocks = []
    new_lo, new_up, new_int, new_cost = [], [], [], []
    ncol = ncol0
    u = eta = None
    if shortfall:  # columns in the order ours meets them: u_0, eta, u_1, ..., u_{N-1}
        u = np.empty(N, dtype=np.int64)
        u[0] = ncol
        eta = ncol + 1
        u[1:] = ncol + 2 + np.arange(N - 1)
        ncol += N + 1
        tail_obj = (-lam) / (alpha * N)
        lo_, up_, cost_ = np.zeros(N + 1), np.full(N + 1, INF), np.full(N + 1, tail_obj)
        lo_[1], up_[1], cost_[1] = -INF, INF, lam
        new_lo.append(lo_)
        new_up.append(up_)
        new_cost.append(cost_)
        new_int.append(np.zeros(N + 1, dtype=np.int32))
        cols = np.empty((N, 2 * n + 2), dtype=np.int64)
        cols[:, :n] = ss
        cols[:, n:2 * n] = xs
        cols[:, 2 * n] = u
        cols[:, 2 * n + 1] = eta
        vals = np.empty((N, 2 * n + 2))
        vals[:, :n] = A
        vals[:, n:2 * n] = -deal
        vals[:, 2 * n] = 1.0
        vals[:, 2 * n + 1] = -1.0
        blocks.append((cols, vals, np.zeros(N), np.full(N, INF)))
        tail = -1.0 / (alpha * N)
        fl = spec["floor"]
        blocks.append((np.concatenate([[eta], u]), np.concatenate([[1.0], np.full(N, tail)]),
                       [-INF if fl is None else float(fl)], [INF]))
    if caps:
        held = ncol + np.arange(N)
        ncol += N
        new_lo.append(np.zeros(N))
        new_up.append(np.ones(N))
        new_cost.append(np.zeros(N))
        new_int.append(np.ones(N, dtype=np.int32))
        blocks += _caps_block(d, spec, held)
    out = _csr_append(fm, blocks)
    out["ncol"] = ncol
    keep_mean = 1 - lam
    cost = np.zeros(ncol0)
    cost[ss] = keep_mean * A.mean(axis=0)
    cost[xs] = keep_mean * (-deal)
    out["cost"] = np.concatenate([cost, *new_cost])
    out["col_lo"] = np.concatenate([fm["col_lo"], *new_lo])
    out["col_up"] = np.concatenate([fm["col_up"], *new_up])
    out["integrality"] = np.concatenate([fm["integrality"], *new_int]).astype(np.int32)
    out["u"], out["eta"] = u, eta
    return out


def cutting_plane_form(d, spec, mode: str) -> dict:
    """The face-value rows (plus the chance rows, if any) and the CVaR columns, without the
    N shortfall rows. ``mode`` "cuts" (aggregated, Kunzi-Bay and Mayer): columns eta, v;
    objective (1 - lam) E[R] + lam v; v >= floor as a bound. ``mode`` "rows" (a cut per
    draw): columns eta, u_0..u_{N-1} as in the plain form, the floor row, and no shortfall row
    until one is violated."""
    import numpy as np

    fm = _face(d, spec)
    A, deal = d["A"], d["deal"]
    N, n = A.shape
    ss, xs = fm["ss"], fm["xs"]
    spec["_ss"], spec["_xs"] = ss, xs
    ncol0 = fm["ncol"]
    lam, alpha, fl = spec["lam"], spec["alpha"], spec["floor"]
    eta = ncol0
    cost_new = [[lam]]
    if mode == "cuts":
        v = ncol0 + 1
        ncol = ncol0 + 2
        col_lo = [fm["col_lo"], [-INF, -INF if fl is None else float(fl)]]
        col_up = [fm["col_up"], [INF, INF]]
        integ = [fm["integrality"], [0, 0]]
        cost_new = [[0.0, lam]]
        u = None
    else:
        u = ncol0 + 1 + np.arange(N)
        v = None
        ncol = ncol0 + 1 + N
        col_lo = [fm["col_lo"], [-INF], np.zeros(N)]
        col_up = [fm["col_up"], [INF], np.full(N, INF)]
        integ = [fm["integrality"], [0], np.zeros(N, dtype=np.int32)]
        cost_new = [[lam], np.full(N, (-lam) / (alpha * N))]
    blocks = []
    if mode == "rows" and fl is not None:
        blocks.append((np.concatenate([[eta], u]),
                       np.concatenate([[1.0], np.full(N, -1.0 / (alpha * N))]),
                       [float(fl)], [INF]))
    if spec["confidence"] is not None:
        held = ncol + np.arange(N)
        ncol += N
        col_lo.append(np.zeros(N))
        col_up.append(np.ones(N))
        integ.append(np.ones(N, dtype=np.int32))
        cost_new.append(np.zeros(N))
        blocks += _caps_block(d, spec, held)
    out = _csr_append(fm, blocks)
    out["ncol"] = ncol
    cost = np.zeros(ncol0)
    cost[ss] = (1 - lam) * A.mean(axis=0)
    cost[xs] = (1 - lam) * (-deal)
    out["cost"] = np.concatenate([cost, *[np.asarray(c, dtype=float) for c in cost_new]])
    out["col_lo"] = np.concatenate([np.asarray(c, dtype=float) for c in col_lo])
    out["col_up"] = np.concatenate([np.asarray(c, dtype=float) for c in col_up])
    out["integrality"] = np.concatenate([np.asarray(c) for c in integ]).astype(np.int32)
    out["eta"], out["v"], out["u"] = eta, v, u
    return out


def cvar_cut(A, deal, K, alpha, ss, xs, eta, v):
    """The aggregated cut of draw set K (bool mask) as (cols, vals, lo, up):
    v - (1 - |K|/(alpha N)) eta - 1/(alpha N) (sum_K a_s) s + |K|/(alpha N) deal x <= 0."""
    import numpy as np

    N = A.shape[0]
    k = int(K.sum())
    q = 1.0 / (alpha * N)
    cols = np.concatenate([ss, xs, [eta, v]])
    vals = np.concatenate([-q * A[K].sum(axis=0), k * q * deal, [-(1.0 - k * q), 1.0]])
    return cols, vals, -INF, 0.0


def shortfall_row(A, deal, s, ss, xs, u, eta):
    """The plain form's row of draw s: u_s - eta + a_s s - deal x >= 0."""
    import numpy as np

    cols = np.concatenate([ss, xs, [u[s], eta]])
    vals = np.concatenate([A[s], -deal, [1.0, -1.0]])
    return cols, vals, 0.0, INF


def cvar_of(R, alpha):
    """CVaR_alpha of equally likely values (as optimizer.risk.cvar) and the VaR."""
    import numpy as np

    r = np.sort(R)
    N = len(r)
    k = alpha * N
    whole = math.floor(k + 1e-12)
    tail = r[:whole].sum()
    if whole < N and k - whole > 1e-12:
        tail += (k - whole) * r[whole]
    return float(tail / k), float(r[min(whole, N - 1)])


# =============================================================================================
# workers (each in a fresh process)
# =============================================================================================


def _highs_options(h, spec, presolve="off"):
    """The library's options (optimizer.highs_backend.highs_options and Pyomo's solve)."""
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", presolve)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("mip_heuristic_run_feasibility_jump", False)
    h.setOptionValue("mip_heuristic_run_root_reduced_cost", False)
    h.setOptionValue("primal_feasibility_tolerance", 1e-7)
    h.setOptionValue("mip_feasibility_tolerance", 1e-6)
    threads = os.environ.get("OPTIMIZER_HIGHS_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        h.setOptionValue("threads", int(threads))
    h.setOptionValue("mip_rel_gap", MIP_GAP)
    h.setOptionValue("time_limit", float(spec["time_limit"]))


class Trace:
    """The incumbent and bound over time, from HiGHS's MIP interrupt callback (recorded when
    either moves; ``running_time`` is HiGHS's clock of the run)."""

    def __init__(self):
        self.points = []
        self.run = 0

    def __call__(self, e):
        o = e.data_out
        p, b = o.mip_primal_bound, o.mip_dual_bound
        if not self.points or self.points[-1][2:] != [p, b] or self.points[-1][0] != self.run:
            self.points.append([self.run, o.running_time, p, b])


def _pass(h, highspy, fm):
    st = h.passModel(fm["ncol"], fm["nrow"], fm["nnz"], int(highspy.MatrixFormat.kRowwise),
                     int(highspy.ObjSense.kMaximize), 0.0, fm["cost"], fm["col_lo"],
                     fm["col_up"], fm["row_lo"], fm["row_up"], fm["start"], fm["index"],
                     fm["value"], fm["integrality"])
    assert st == highspy.HighsStatus.kOk, st


def _stakes(col, fm, d):
    import numpy as np

    x, s = col[fm["xs"]], col[fm["ss"]]
    rows = np.flatnonzero(x > 0.5)
    return {int(i): float(min(max(s[i], d["smin"][i]), d["smax"][i])) for i in rows}


def worker_plain(stem: str) -> dict:
    t0 = pc()
    import highspy
    import numpy as np

    ph = {"import": pc() - t0}
    d = dict(np.load(stem + ".npz"))
    spec = json.loads(Path(stem + ".json").read_text())
    t = pc()
    fm = extensive_form(d, spec)
    ph["build"] = pc() - t
    t = pc()
    h = highspy.Highs()
    _highs_options(h, spec)
    _pass(h, highspy, fm)
    ph["pass"] = pc() - t
    trace = None
    if spec["trace"]:
        trace = Trace()
        h.cbMipInterrupt.subscribe(trace)
    t = pc()
    h.run()
    ph["solve"] = pc() - t
    t = pc()
    info = h.getInfo()
    if trace:  # where the run ended (the callback need not fire after the last change)
        trace.points.append([0, h.getRunTime(), info.objective_function_value if
                             info.primal_solution_status == 2 else INF, info.mip_dual_bound])
    has = info.primal_solution_status == 2
    stakes = _stakes(np.asarray(h.getSolution().col_value), fm, d) if has else {}
    ph["extract"] = pc() - t
    ph["total"] = ph["build"] + ph["pass"] + ph["solve"] + ph["extract"]
    return {"phases": ph, "status": h.modelStatusToString(h.getModelStatus()),
            "objective": info.objective_function_value if has else None,
            "bound": info.mip_dual_bound, "gap": info.mip_gap, "nodes": info.mip_node_count,
            "simplex": info.simplex_iteration_count,
            "stakes_rows": stakes, "size": [fm["nrow"], fm["ncol"], fm["nnz"]],
            "trace": trace.points if trace else None}


def worker_cuts(stem: str, mode: str = "cuts") -> dict:
    """CVaR by cutting planes in highspy (module doc): ``mode`` "cuts", aggregated cuts
    (Kunzi-Bay and Mayer); "rows", a cut per draw (the plain form's shortfall rows, added
    when violated). An LP phase (Kelley on the relaxation), then MIP iterations: every
    incumbent a run found (HiGHS's MIP-solution callback) is separated, the violated cuts
    added, the next run warm-started with the best portfolio so far; stop when the run's own
    answer violates no cut or the best true objective is within the gap of the run's bound."""
    t0 = pc()
    import highspy
    import numpy as np

    ph = {"import": pc() - t0}
    d = dict(np.load(stem + ".npz"))
    spec = json.loads(Path(stem + ".json").read_text())
    A, deal = d["A"], d["deal"]
    N = A.shape[0]
    alpha, lam = spec["alpha"], spec["lam"]
    fl = spec["floor"]
    q = 1.0 / (alpha * N)
    t = pc()
    fm = cutting_plane_form(d, spec, mode)
    ss, xs, eta, v, u = fm["ss"], fm["xs"], fm["eta"], fm["v"], fm["u"]
    mean_a = A.mean(axis=0)
    in_model = np.zeros(N, dtype=bool)  # "rows": draws whose shortfall row is in the model
    if mode == "cuts":  # K empty and K all: eta and v bounded
        init = [cvar_cut(A, deal, np.zeros(N, bool), alpha, ss, xs, eta, v),
                cvar_cut(A, deal, np.ones(N, bool), alpha, ss, xs, eta, v)]
    else:  # the worst 2 alpha N draws of a 100 % stake in everything: eta bounded
        worst = np.argsort(A.sum(axis=1) - deal.sum())[:max(1, math.ceil(2 * alpha * N))]
        in_model[worst] = True
        init = [shortfall_row(A, deal, s, ss, xs, u, eta) for s in worst]
    fm = _csr_append(fm, [(c, vv, [lo], [up]) for c, vv, lo, up in init])
    ph["build"] = pc() - t
    t = pc()
    h = highspy.Highs()
    _highs_options(h, spec)
    _pass(h, highspy, fm)
    ph["pass"] = pc() - t
    t_solve = time.monotonic()
    deadline = t_solve + float(spec["time_limit"])
    sep = {"t": 0.0}
    tol_rel = 1e-7

    def separate(col):
        """At a point: the true objective, the true CVaR, the VaR and the violated cuts
        (aggregated: K = {s: R_s < eta*} when v* exceeds the tail term at eta* by more than
        1e-7 relative; per draw: every draw whose shortfall row is broken by that much)."""
        ts = pc()
        s, x = col[ss], col[xs]
        R = A @ s - float(deal @ x)
        cv, var = cvar_of(R, alpha)
        true = (1 - lam) * float(mean_a @ s - deal @ x) + lam * cv
        e = col[eta]
        cuts, keys = [], []
        if mode == "cuts":
            K = R < e
            f = e - q * float((e - R[K]).sum())
            if col[v] - f > tol_rel * max(1.0, abs(f)):
                cuts.append(cvar_cut(A, deal, K, alpha, ss, xs, eta, v))
                keys.append(K.tobytes())
        else:
            broken = (e - R - col[u] > tol_rel * max(1.0, abs(e))) & ~in_model
            for s_ in np.flatnonzero(broken):
                cuts.append(shortfall_row(A, deal, s_, ss, xs, u, eta))
                keys.append(int(s_))
        sep["t"] += pc() - ts
        return true, cv, var, R, cuts, keys

    added = [len(init)]

    def add(cut, key):
        added[0] += 1
        if mode == "rows":
            in_model[key] = True
        c, vv, lo, up = cut
        keep = vv != 0.0
        h.addRow(lo, up, int(keep.sum()), c[keep].astype(np.int32), vv[keep])

    iters = {"lp": 0, "mip": 0}
    lp_s = mip_s = 0.0
    log: list = []
    trace: list = []  # [0, seconds since the solve began, best true objective, bound]
    # LP phase: Kelley on the relaxation (simplex warm-starts after each added row)
    h.setOptionValue("solve_relaxation", True)
    while time.monotonic() < deadline:
        h.setOptionValue("time_limit", max(1e-3, deadline - time.monotonic()))
        tt = pc()
        h.run()
        lp_s += pc() - tt
        iters["lp"] += 1
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        _, _, _, _, cuts, keys = separate(np.asarray(h.getSolution().col_value))
        if not cuts:
            break
        for cut, key in zip(cuts, keys, strict=True):
            add(cut, key)
    lp_cuts = added[0]
    h.setOptionValue("solve_relaxation", False)
    # MIP phase
    best, best_col, bound, status, nodes = -INF, None, INF, "no_solution", 0
    simplex = h.getInfo().simplex_iteration_count  # the LP phase's last run
    found: list = []
    # emulated lazy constraints: a run stops as soon as it finds an incumbent that breaks a
    # cut (its root work is lost, but no tree is searched on a model known to be too loose)
    # (on for a cut per draw; off for aggregated cuts, where almost every incumbent breaks
    # one: measured 162 restarts and 276 s against 18 runs and 66 s at 300 projects x 200)
    early = os.environ.get("BENCH_CUTS_EARLY_STOP", "1" if mode == "rows" else "0") == "1"
    dirty = [False]

    def on_solution(e):
        col = np.array(e.data_out.mip_solution)
        found.append(col)
        if early and separate(col)[4]:
            dirty[0] = True
        e.interrupt(dirty[0])  # always stated: HiGHS keeps the flag from the last run

    def on_interrupt(e):
        e.interrupt(dirty[0])

    h.cbMipSolution.subscribe(on_solution)
    h.cbMipInterrupt.subscribe(on_interrupt)
    gap = None
    schedule = os.environ.get("BENCH_CUTS_GAP_SCHEDULE", "0") == "1"
    while time.monotonic() < deadline:
        h.setOptionValue("time_limit", max(1e-3, deadline - time.monotonic()))
        if schedule:  # optional: a loose gap while cuts still move the answer
            h.setOptionValue("mip_rel_gap", max(MIP_GAP, min(1e-2, (gap or 1.0) / 10)))
        if best_col is not None:  # the best portfolio so far, its CVaR terms exact: feasible
            sol = highspy.HighsSolution()
            sol.col_value = best_col.copy()
            h.setSolution(sol)
        found.clear()
        dirty[0] = False
        tt = pc()
        h.run()
        mip_s += pc() - tt
        iters["mip"] += 1
        info = h.getInfo()
        nodes += info.mip_node_count
        simplex += info.simplex_iteration_count
        ms = h.getModelStatus()
        if info.primal_solution_status != 2:
            status = h.modelStatusToString(ms)
            break
        bound = info.mip_dual_bound
        final = np.asarray(h.getSolution().col_value)
        todo, seen, final_clean = [], set(), True
        for col in [final, *found]:
            true, cv, var, R, cuts, keys = separate(col)
            if col is final:
                final_clean = not cuts
            if fl is None or cv >= fl - 1e-7 * max(1.0, abs(fl)):
                if true > best:
                    best, best_col = true, col.copy()
                    best_col[eta] = var
                    if mode == "cuts":
                        best_col[v] = cv
                    else:
                        best_col[u] = np.maximum(0.0, var - R)
            for cut, key in zip(cuts, keys, strict=True):
                if key not in seen:
                    seen.add(key)
                    todo.append((cut, key))
        gap = (bound - best) / max(abs(best), 1e-9) if best > -INF else None
        trace.append([0, time.monotonic() - t_solve, best, bound])
        log.append([iters["mip"], round(pc() - tt, 3), info.mip_node_count, bound, best,
                    len(found), len(todo), dirty[0]])
        if (final_clean and not dirty[0]) or (gap is not None and gap <= MIP_GAP):
            status = "Optimal" if ms == highspy.HighsModelStatus.kOptimal else \
                h.modelStatusToString(ms)
            break
        for cut, key in todo:
            add(cut, key)
        status = "Time limit reached"
    ph["lp_phase"] = lp_s
    ph["mip_phase"] = mip_s
    ph["solve"] = lp_s + mip_s
    ph["separation"] = sep["t"]
    ph["total"] = ph["build"] + ph["pass"] + ph["solve"] + ph["separation"]
    stakes = _stakes(best_col, fm, d) if best_col is not None else {}
    return {"phases": ph, "status": status, "objective": best if best > -INF else None,
            "bound": bound, "gap": gap, "nodes": nodes, "stakes_rows": stakes,
            "simplex": simplex,
            "iterations": iters, "cuts": added[0], "cuts_after_lp": lp_cuts, "log": log,
            "size": [h.getNumRow(), h.getNumCol(), h.getNumNz()], "trace": trace}


def worker_rows(stem: str) -> dict:
    return worker_cuts(stem, "rows")


def worker_ours(stem: str) -> dict:
    t0 = pc()
    import pyomo.environ  # noqa: F401

    t1 = pc()
    import optimizer
    import optimizer.sample as osample
    import optimizer.session as osession
    import optimizer.solve as osolve
    import optimizer.stochastic as ostoch
    from optimizer.data import load_projects, validate_projects

    t2 = pc()
    ph = {"import_pyomo": t1 - t0, "import_rest": t2 - t1}
    spec = json.loads(Path(stem + ".json").read_text())
    acc: dict[str, float] = {}

    def timed(name, fn):
        def w(*a, **k):
            t = pc()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + pc() - t
        return w

    # this process only: wrap what Optimizer.solve calls, to split its time (a name that
    # moved is skipped, and its phase reads 0)
    for mod, name, label in (
            (osample, "make_sample", "sample"),  # once (in the scenario check or apply)
            (osession, "sample_for", "sample_apply"),  # Session.apply's (cached) look-up
            (osolve, "check_scenario_against", "scenario_check"),
            (osolve, "load_scenario", "scenario_load"),
            (osession, "attach_sample", "attach_sample"),
            (osession, "apply_uncertainty", "apply_uncertainty"),
            (osession, "apply_scenario", "apply_scenario"),
            (ostoch, "_add_shortfall", "rows_shortfall"),
            (ostoch, "_add_caps", "rows_caps"),
            (ostoch, "_risk_objective", "rows_objective"),
            (osolve, "certify", "certify"),
            (osolve, "violations", "final_check"),
            (osolve.Optimizer, "uncertainty_of", "in_sample_figures"),
            (osolve.Optimizer, "result_for", "result_for")):
        if hasattr(mod, name):
            setattr(mod, name, timed(label, getattr(mod, name)))
    runs: list[dict] = []
    holder: list = []
    # one HiGHS run each (Session.run loops over them while it generates CVaR rows)
    target = "_run_once" if hasattr(osession.Session, "_run_once") else "run"
    plain_run = getattr(osession.Session, target)

    def run(self, settings, *more, **kw):
        t = pc()
        out = plain_run(self, settings, *more, **kw)
        exact = bool(more[0] if more else kw.get("exact", False))
        tm = self.stats.timer
        upd = {k: tm.get_total_time("update." + k) for k in ("cons", "objective", "vars")}
        if holder:  # the gap trace: the first run is the search, later ones certification
            tr = holder[0]
            if tr.run == 0:  # where the run ended
                tr.points.append([0, tm.get_total_time("optimize"),
                                  out.objective if out.has_solution else INF,
                                  INF if out.bound is None else out.bound])
            tr.run += 1
        runs.append({"wall": pc() - t, "highs": tm.get_total_time("optimize"),
                     "update": tm.get_total_time("update"), "update_parts": upd,
                     "nodes": self.stats.nodes, "exact": exact,
                     "simplex": int(self._solver._highspy().getInfo().simplex_iteration_count),
                     "termination": out.termination.name})
        return out

    setattr(osession.Session, target, run)

    projects = spec["projects"]
    t = pc()
    if projects.endswith(".csv"):
        data = load_projects(projects)
    else:
        import pandas as pd

        data = validate_projects(pd.read_pickle(projects))
    ph["validate"] = pc() - t
    t = pc()
    opt = optimizer.Optimizer(data)
    ph["build"] = pc() - t
    t = pc()
    opt.hand_over()  # what the first solve would do first (reported as build time)
    ph["transfer"] = pc() - t
    trace = None
    if spec["trace"]:
        trace = Trace()
        holder.append(trace)
        opt.session._solver._highspy().cbMipInterrupt.subscribe(trace)
    t = pc()
    res = opt.solve(spec["scenario"])
    ph["solve_call"] = pc() - t
    ph["total"] = ph["validate"] + ph["build"] + ph["transfer"] + ph["solve_call"]
    ph["runs"] = len(runs)
    ph["highs"] = sum(r["highs"] for r in runs)
    ph["update"] = sum(r["update"] for r in runs)
    ph["pyomo_other"] = sum(r["wall"] - r["highs"] - r["update"] for r in runs)
    ph["update_cons"] = sum(r["update_parts"]["cons"] for r in runs)
    ph["update_objective"] = sum(r["update_parts"]["objective"] for r in runs)
    for k, val in acc.items():
        ph[k] = val
    ph["rows"] = acc.get("attach_sample", 0.0) + acc.get("apply_uncertainty", 0.0)
    ph["rest"] = (ph["solve_call"] - ph["rows"] - acc.get("sample_apply", 0.0)
                  - acc.get("scenario_check", 0.0)
                  - acc.get("scenario_load", 0.0) - acc.get("apply_scenario", 0.0)
                  - sum(r["wall"] for r in runs))
    hs = opt.session._solver._highspy()
    u = res.uncertainty
    return {"phases": ph, "status": res.status, "objective": res.objective,
            "bound": res.best_bound, "gap": res.mip_gap,
            "nodes": sum(r["nodes"] or 0 for r in runs), "runs": runs,
            "simplex": sum(r["simplex"] for r in runs),
            "certification": res.solver.certification,
            "stakes": {p.project_id: p.stake for p in res.selected},
            "in_sample": None if u is None else {"mean": u.mean, "cvar": u.cvar,
                                                 "within_caps": u.within_caps_share},
            "size": [hs.getNumRow(), hs.getNumCol(), hs.getNumNz()],
            "trace": trace.points if trace else None}


WORKERS = {"ours": worker_ours, "plain": worker_plain, "cuts": worker_cuts,
           "rows": worker_rows}


def worker_main(args) -> None:
    import resource

    out = WORKERS[args.worker](args.stem)
    # peak RSS of this process image: VmHWM (ru_maxrss keeps the high-water mark of the
    # forked copy of the parent across exec, so it reads at least the parent's size)
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["max_rss_mb"] = out["ru_maxrss_mb"]
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out["max_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out["t_started"] = T_STARTED  # wall clock when this script began to run in the worker
    out["t_done"] = time.time()  # ... and when its work was done (then: exit, teardown)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(out) + "\n")
    sys.stdout.flush()


# =============================================================================================
# parent: run, check, tabulate
# =============================================================================================


def run_worker(case: str, stem: Path, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--stem", str(stem)]
    t = pc()
    t_wall = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT),
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = pc() - t
    t_end = time.time()
    if p.returncode != 0 or "@@RESULT@@" not in p.stdout:
        return {"error": (p.stderr or p.stdout)[-2000:]}
    res = json.loads(p.stdout.rsplit("@@RESULT@@", 1)[1])
    res["process"] = wall
    # the process's wall time = start-up (interpreter, site-packages, this script) + the
    # worker's own work (its imports, reading the instance, the timed phases) + exit
    res["startup"] = res.pop("t_started") - t_wall
    res["exit"] = t_end - res.pop("t_done")
    return res


def check(res: dict, inst: dict) -> None:
    """Recompute the portfolio's objective on the sample and check it against the scenario
    (sampled limits included)."""
    from optimizer.check import violations

    try:
        from optimizer.limits import measure
    except ImportError:  # before the lead's move of measure() out of optimizer.risk
        from optimizer.risk import measure

    if "error" in res:
        return
    data, sc, smp, spec = inst["data"], inst["sc"], inst["sample"], inst["spec"]
    ids = data.ids
    stakes = res.pop("stakes", None)
    if stakes is None:
        stakes = {ids[int(i)]: val for i, val in res.pop("stakes_rows").items()}
    if not stakes:
        res["violations"] = ["no portfolio"]
        return
    fig = measure(data, sc, smp, stakes)
    res["figures"] = {"mean": fig.mean, "cvar": fig.cvar, "within_caps": fig.within_caps_share}
    lam = spec["lam"]
    res["objective_recomputed"] = (1 - lam) * fig.mean + lam * fig.cvar
    res["violations"] = violations(data, sc, stakes, rel_tol=1e-6)
    res["n_selected"] = len(stakes)


def agreement(results: list[dict]) -> str:
    """Do the recomputed objectives agree within the gaps? Every portfolio's value must lie
    below every run's bound (to 1e-6), and two runs that both closed the gap must agree
    within it."""
    ok = [r for r in results if "error" not in r and "objective_recomputed" in r]
    if len(ok) < len(results):
        return "MISSING (a run failed or has no portfolio)"
    problems = []
    for r in ok:
        if r["violations"]:
            problems.append(f"{r['case']} breaks: {r['violations'][:3]}")
    for a in ok:
        for b in ok:
            if a is b or b.get("bound") is None:
                continue
            va, ub = a["objective_recomputed"], b["bound"]
            if va > ub + 1e-6 * max(1.0, abs(ub)):
                problems.append(f"{a['case']} value {va:.6f} above {b['case']} bound {ub:.6f}")
    closed = [r for r in ok if (r.get("gap") is not None and r["gap"] <= MIP_GAP * 1.01)]
    for a in closed:
        for b in closed:
            va, vb = a["objective_recomputed"], b["objective_recomputed"]
            if abs(va - vb) > MIP_GAP * max(1.0, abs(va), abs(vb)) * 1.01:
                problems.append(f"{a['case']} {va:.6f} vs {b['case']} {vb:.6f}")
    return "ok" if not problems else "; ".join(sorted(set(problems)))


def verify_lp(kind: str, tmp: Path, **kw) -> str:
    """The plain form's LP against the LP ours hands to HiGHS (after a solve, so the sample
    rows came through Pyomo's update as in a timed run), on a small instance with every row
    family: same columns (by name and position, relax[f] left out), matrix, bounds, costs and
    integrality."""
    import numpy as np

    import optimizer

    inst = make_instance(kind, kw.pop("draws"), tmp, **kw)
    d = dict(np.load(f"{inst['stem']}.npz"))
    spec = json.loads(Path(f"{inst['stem']}.json").read_text())
    import optimizer.stochastic as ostoch

    # the library generates CVaR rows as needed; for the check it holds every row, in draw
    # order, as the plain form does (the generated model is a subset of these rows)
    # and the caps' big-M at S_s, the plain form's (the library's is tighter: the quantile)
    tail_rows, work = ostoch._ensure_tail_rows, ostoch.QUANTILE_WORK
    ostoch._ensure_tail_rows = lambda built, alpha: ostoch._add_shortfall_rows(
        built, range(built.sample.n_draws))
    ostoch.QUANTILE_WORK = 0
    try:
        opt = optimizer.Optimizer(inst["data"])
        opt.solve(inst["sc"])
    finally:
        ostoch._ensure_tail_rows, ostoch.QUANTILE_WORK = tail_rows, work
    try:
        hs = opt.session._solver
        lp = hs._solver_model.getLp()
        vm = hs._pyomo_var_to_solver_var_map
        relax = sorted(vm[id(v)] for v in opt.built.model.relax.values())
    except AttributeError as exc:
        return f"not verified (internals changed: {exc})"
    keep = np.setdiff1d(np.arange(lp.num_col_), relax)
    fm = extensive_form(d, spec)
    import highspy

    A = lp.a_matrix_
    rowwise = A.format_ == highspy.MatrixFormat.kRowwise
    outer = lp.num_row_ if rowwise else lp.num_col_
    inner = lp.num_col_ if rowwise else lp.num_row_
    M = np.zeros((outer, inner))
    st, ix, va = np.asarray(A.start_), np.asarray(A.index_), np.asarray(A.value_)
    for i in range(outer):
        M[i, ix[st[i]:st[i + 1]]] += va[st[i]:st[i + 1]]
    Mo = (M if rowwise else M.T)[:, keep]
    Mf = np.zeros((fm["nrow"], fm["ncol"]))
    for i in range(fm["nrow"]):
        s0, s1 = fm["start"][i], fm["start"][i + 1]
        Mf[i, fm["index"][s0:s1]] += fm["value"][s0:s1]
    if Mo.shape != Mf.shape:
        return f"DIFFERENT shapes: ours {Mo.shape} (+{len(relax)} relax) vs plain {Mf.shape}"

    def inf(a):
        a = np.asarray(a, dtype=float).copy()
        a[a >= 1e20] = np.inf
        a[a <= -1e20] = -np.inf
        return a

    def same(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        fin = np.isfinite(a) & np.isfinite(b)
        return (np.array_equal(np.isinf(a), np.isinf(b)) and np.array_equal(a[~fin], b[~fin])
                and np.allclose(a[fin], b[fin], rtol=1e-13, atol=1e-13))

    problems = []
    if not same(Mo, Mf):
        problems.append(f"matrix (max diff {np.abs(Mo - Mf).max():.3g})")
    sense = -1.0 if int(lp.sense_) == int(highspy.ObjSense.kMinimize) else 1.0
    for name, a, b in (("row_lower", inf(lp.row_lower_), fm["row_lo"]),
                       ("row_upper", inf(lp.row_upper_), fm["row_up"]),
                       ("col_lower", inf(lp.col_lower_)[keep], fm["col_lo"]),
                       ("col_upper", inf(lp.col_upper_)[keep], fm["col_up"]),
                       ("cost", sense * np.asarray(lp.col_cost_)[keep], fm["cost"])):
        if not same(a, b):
            problems.append(name)
    integ = np.array([int(v) for v in lp.integrality_])[keep] if len(lp.integrality_) else \
        np.zeros(len(keep), int)
    if not np.array_equal(integ, fm["integrality"]):
        problems.append("integrality")
    bits = np.array_equal(Mo, Mf)
    what = (f"{kind} n={inst['data'].n} x {spec['draws']} draws, {spec['objective']}"
            + (f", floor {spec['floor']}" if spec["floor"] is not None else "")
            + (f", budget_confidence {spec['confidence']}" if spec["confidence"] else ""))
    if problems:
        return f"{what}: DIFFERENT: " + ", ".join(problems) + " (times are not comparable)"
    return (f"{what}: identical LP ({fm['nrow']} rows, {fm['ncol']} columns, {fm['nnz']} "
            f"nonzeros, same order{', bit for bit' if bits else ', to 1e-13'}; ours also has "
            f"{len(relax)} relax columns fixed at 0)")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def fmt(v, w=8, nd=3):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-".rjust(w)
    if isinstance(v, str):
        return v.rjust(w)
    return f"{v:{w}.{nd}f}"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "n/a"


def ok_runs(runs, **kw):
    return [r for r in runs if "error" not in r and all(r.get(k) == v for k, v in kw.items())]


def P(runs, key, **kw):
    return med([r["phases"].get(key, 0.0) for r in ok_runs(runs, **kw)])


def V(runs, key, **kw):
    return med([r.get(key) for r in ok_runs(runs, **kw)])


# ---------------------------------------------------------------------------------------------


def run_case(label: str, inst: dict, cases: list[str], repeat: int, all_runs: list,
             timeout: float) -> list[dict]:
    """Run every case ``repeat`` times (interleaved: ours, plain, cuts, ours, ...)."""
    got = []
    for rep in range(repeat):
        for case in cases:
            load = loadavg()
            res = run_worker(case, inst["stem"], timeout)
            check(res, inst)
            res.update(case=case, label=label, rep=rep, loadavg=load,
                       draws=inst["spec"]["draws"], n=inst["spec"]["n"])
            got.append(res)
            all_runs.append(res)
            ph = res.get("phases", {})
            highs_s = ph.get("highs", ph.get("solve"))
            print(f"  . {label:<28} {case:<6} rep={rep} process {fmt(res.get('process'), 7)} s "
                  f"total {fmt(ph.get('total'), 7)} s HiGHS {fmt(highs_s, 7)} s "
                  f"{res.get('status', 'ERROR')} obj {fmt(res.get('objective_recomputed'), 10, 4)}"
                  f" gap {fmt(res.get('gap'), 8, 6)} nodes {res.get('nodes', '-')} "
                  f"RSS {fmt(res.get('max_rss_mb'), 6, 0)} MB (load {load.split()[0]})"
                  + (f" ERROR {res['error'][-400:]}" if "error" in res else ""), flush=True)
    return got


def print_case(label: str, runs: list[dict], cases: list[str]) -> dict:
    """One case's table: medians over repeats."""
    print(f"\n=== {label}: medians over {max(1, len(runs) // max(1, len(cases)))} run(s), "
          "seconds ===")
    hdr = ["import", "build", "pass", "solve", "extract", "total", "process", "RSS MB", "nodes",
           "simplex", "gap", "objective"]
    print("    " + f"{'case':<7}" + "".join(f"{h:>11}" for h in hdr) + "  status")
    out = {}
    for c in cases:
        rs = ok_runs(runs, case=c)
        if not rs:
            errs = [r.get("error", "")[-300:] for r in runs if r["case"] == c]
            print(f"    {c:<7} ERROR {errs[:1]}")
            continue
        if c == "ours":
            imp = P(rs, "import_pyomo") + P(rs, "import_rest")
            build = (P(rs, "validate") + P(rs, "build") + P(rs, "scenario_load")
                     + P(rs, "scenario_check") + P(rs, "sample_apply")
                     + P(rs, "apply_scenario") + P(rs, "rows"))
            pas = P(rs, "transfer") + P(rs, "update") + P(rs, "pyomo_other")
            solve = P(rs, "highs")
        else:
            imp, build, pas, solve = (P(rs, "import"), P(rs, "build"), P(rs, "pass"),
                                      P(rs, "solve"))
        total = P(rs, "total")
        row = {"import": imp, "build": build, "pass": pas, "solve": solve,
               "extract": total - build - pas - solve, "total": total,
               "process": V(rs, "process"), "rss": V(rs, "max_rss_mb"), "nodes": V(rs, "nodes"),
               "simplex": V(rs, "simplex"),
               "gap": V(rs, "gap"), "objective": V(rs, "objective_recomputed"),
               "status": sorted({r["status"] for r in rs}),
               "process_all": [r["process"] for r in rs], "solve_all":
               [r["phases"].get("highs", r["phases"].get("solve")) for r in rs]}
        out[c] = row
        print("    " + f"{c:<7}" + "".join(fmt(row[k], 11) for k in
                                          ("import", "build", "pass", "solve", "extract",
                                           "total", "process"))
              + fmt(row["rss"], 11, 0) + fmt(row["nodes"], 11, 0) + fmt(row["simplex"], 11, 0)
              + fmt(row["gap"], 11, 6)
              + fmt(row["objective"], 11, 3) + "  " + "/".join(row["status"]))
        if c in ("cuts", "rows"):
            it = rs[0]["iterations"]
            print(f"            {c}: {it['lp']} LP and {it['mip']} MIP runs (run 1), "
                  f"{rs[0]['cuts_after_lp']} then {rs[0]['cuts']} "
                  f"{'cuts' if c == 'cuts' else 'shortfall rows'} of {rs[0]['draws']} draws; "
                  f"LP phase {P(rs, 'lp_phase'):.3f} s, MIP phase {P(rs, 'mip_phase'):.3f} s, "
                  f"separation {P(rs, 'separation'):.3f} s")
        print("            process per run: " + ", ".join(f"{x:.2f}" for x in row["process_all"])
              + "; HiGHS per run: " + ", ".join(f"{x:.2f}" for x in row["solve_all"]))
    if "ours" in out:
        rs = ok_runs(runs, case="ours")
        print("    ours by phase: import {:.3f} (pyomo {:.3f}); validate {:.3f}, build_model "
              "{:.3f}, hand-over of the face-value model {:.3f}, scenario load+check+sample "
              "{:.3f} (making the sample {:.3f}), apply_scenario {:.3f}, sample rows "
              "{:.3f} (shortfall {:.3f}, caps {:.3f}, risk objective {:.3f}), Pyomo update "
              "(new rows to HiGHS) {:.3f} (rows {:.3f}, objective {:.3f}), rest of Pyomo's "
              "solve {:.3f}, HiGHS {:.3f} in {:.0f} run(s), certify outside HiGHS + result {:.3f}"
              " (in-sample figures {:.3f})".format(
                  P(rs, "import_pyomo") + P(rs, "import_rest"), P(rs, "import_pyomo"),
                  P(rs, "validate"), P(rs, "build"), P(rs, "transfer"),
                  P(rs, "scenario_load") + P(rs, "scenario_check") + P(rs, "sample_apply"),
                  P(rs, "sample"),
                  P(rs, "apply_scenario"),
                  P(rs, "rows"), P(rs, "rows_shortfall"), P(rs, "rows_caps"),
                  P(rs, "rows_objective"), P(rs, "update"), P(rs, "update_cons"),
                  P(rs, "update_objective"), P(rs, "pyomo_other"), P(rs, "highs"),
                  P(rs, "runs"), P(rs, "rest"), P(rs, "in_sample_figures")))
        notes = {n for r in rs for n in r.get("certification", [])}
        if notes:
            print(f"    ours certification: {sorted(notes)}")
    if all("startup" in r for c in out for r in ok_runs(runs, case=c)):
        split = []
        for c in out:
            up, down = V(ok_runs(runs, case=c), "startup"), V(ok_runs(runs, case=c), "exit")
            split.append(f"{c} {up:.3f} + {out[c]['process'] - up - down:.3f} + {down:.3f}")
        print("    process = start-up (interpreter, site, script) + the worker's work + exit: "
              + "; ".join(split))
    sizes = {c: ok_runs(runs, case=c)[0].get("size") for c in out}
    print("    LP size (rows, columns, nonzeros): " + "; ".join(f"{c} {s}" for c, s in
                                                                 sizes.items()))
    base = "plain" if "plain" in out else None
    for c in out:
        if base and c != base:
            print(f"    {c}/{base}: process {out[c]['process'] / out[base]['process']:.2f}x, "
                  f"total {out[c]['total'] / out[base]['total']:.2f}x, "
                  f"HiGHS {out[c]['solve'] / max(out[base]['solve'], 1e-9):.2f}x")
    by_rep = {}
    for r in runs:
        by_rep.setdefault(r["rep"], []).append(r)
    checks = [agreement(rs) for rs in by_rep.values()]
    print("    check (portfolios within every limit at 1e-6, sampled ones included; objectives "
          "recomputed on the sample agree within the gaps): "
          + ("ok" if all(c == "ok" for c in checks) else " | ".join(checks)))
    return {"label": label, "by_case": out, "check": checks, "sizes": sizes}


def gap_at(trace, t):
    """The relative gap |bound - incumbent| / |incumbent| at time t of the search (ours and
    plain: HiGHS's clock of the first run; cuts and rows: seconds since the solve began, at the
    end of each MIP run, the best true objective against the run's bound)."""
    if not trace:
        return None
    pts = [p for p in trace if p[0] == 0 and p[1] <= t]
    if not pts:
        return None
    _, _, pb, db = pts[-1]
    if not (math.isfinite(pb) and abs(pb) < 1e19):
        return math.inf
    return abs(db - pb) / max(abs(pb), 1e-9)


def print_trace(label: str, runs: list[dict]) -> None:
    marks = [1, 2, 5, 10, 20, 30, 45, 60]
    print(f"    gap over HiGHS time ({label}): " + " ".join(f"{m:>7}s" for m in marks))
    for r in runs:
        if "error" in r or not r.get("trace"):
            continue
        g = [gap_at(r["trace"], m) for m in marks]
        print(f"      {r['case']:<6} rep {r['rep']}: " + " ".join(
            "      -" if x is None else ("    inf" if x == math.inf else f"{100 * x:7.3f}%")
            for x in g))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="shipped,synthetic,chance,memory")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (fresh process each)")
    ap.add_argument("--repeat-long", type=int, default=1,
                    help="runs per case for the synthetic group")
    ap.add_argument("--repeat-chance", type=int, default=2,
                    help="runs per case for the chance-constrained cases")
    ap.add_argument("--cvar-floor", type=float, default=-140.0)
    ap.add_argument("--shipped-draws", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=300.0,
                    help="HiGHS limit of the shipped and synthetic groups (s)")
    ap.add_argument("--synthetic-draws", default="200,1000")
    ap.add_argument("--ours-synthetic-draws", default="200,1000")
    ap.add_argument("--synthetic-cases", default="ours,plain,cuts,rows")
    ap.add_argument("--chance-draws", default="200,1000")
    ap.add_argument("--chance-time-limit", type=float, default=60.0)
    ap.add_argument("--memory-shipped", default="100,300,1000,3000,10000")
    ap.add_argument("--memory-synthetic", default="100,200,400")
    ap.add_argument("--memory-time-limit", type=float, default=60.0)
    ap.add_argument("--memory-cases", default="ours,plain")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--json", help="write every run and the summaries here")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--stem", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0

    sys.path.insert(0, str(ROOT))
    groups = args.groups.split(",")
    info = machine_info()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"loadavg at start: {loadavg()}")
    print(f"mip_gap {MIP_GAP:g}, groups {groups}, repeat {args.repeat} (long {args.repeat_long})")
    t_all = pc()
    everything: dict = {"machine": info, "args": vars(args), "runs": [], "cases": [],
                        "loadavg_start": loadavg()}
    runs = everything["runs"]
    with tempfile.TemporaryDirectory(prefix="bench_unc_") as tmpd:
        tmp = Path(tmpd)
        if not args.no_verify:
            checks = [
                verify_lp("shipped", tmp, draws=20, objective="mean_cvar", time_limit=60,
                          floor=args.cvar_floor, confidence=0.9),
                verify_lp("synthetic", tmp, draws=20, objective="mean_cvar", time_limit=60,
                          n=100),
                verify_lp("shipped", tmp, draws=30, objective="expected_npv", time_limit=60,
                          confidence=0.9),
            ]
            everything["lp_check"] = checks
            for c in checks:
                print(f"lp check: {c}")

        def case(label, inst, cases, repeat, trace_label=None):
            timeout = inst["spec"]["time_limit"] * 4 + 300
            got = run_case(label, inst, cases, repeat, runs, timeout)
            summary = print_case(label, got, cases)
            summary.update(draws=inst["spec"]["draws"], n=inst["spec"]["n"],
                           objective=inst["spec"]["objective"])
            if trace_label:
                print_trace(trace_label, got)
            everything["cases"].append(summary)
            return summary

        if "shipped" in groups:
            inst = make_instance("shipped", args.shipped_draws, tmp, objective="mean_cvar",
                                 time_limit=args.time_limit, floor=args.cvar_floor)
            case(f"shipped x {args.shipped_draws} mean_cvar floor {args.cvar_floor:g}", inst,
                 ["ours", "plain", "cuts", "rows"], args.repeat)
            inst = make_instance("shipped", args.shipped_draws, tmp, objective="mean_cvar",
                                 time_limit=args.time_limit)
            case(f"shipped x {args.shipped_draws} mean_cvar no floor", inst,
                 ["ours", "plain", "cuts", "rows"], args.repeat)
        if "synthetic" in groups:
            ours_at = {int(x) for x in args.ours_synthetic_draws.split(",") if x}
            for draws in [int(x) for x in args.synthetic_draws.split(",") if x]:
                inst = make_instance("synthetic", draws, tmp, objective="mean_cvar",
                                     time_limit=args.time_limit, trace=True)
                cases = [c for c in args.synthetic_cases.split(",")
                         if c != "ours" or draws in ours_at]
                case(f"synthetic 1000 x {draws} mean_cvar", inst, cases, args.repeat_long,
                     trace_label=f"1000 x {draws}")
        if "chance" in groups:
            for draws in [int(x) for x in args.chance_draws.split(",") if x]:
                inst = make_instance("shipped", draws, tmp, objective="expected_npv",
                                     time_limit=args.chance_time_limit)
                case(f"shipped x {draws} expected_npv", inst, ["ours", "plain"], args.repeat)
                inst = make_instance("shipped", draws, tmp, objective="expected_npv",
                                     time_limit=args.chance_time_limit, confidence=0.9,
                                     trace=True)
                case(f"shipped x {draws} expected_npv budget_confidence 0.9", inst,
                     ["ours", "plain"], args.repeat_chance, trace_label=f"{draws} draws")
        if "memory" in groups:
            mem = []
            mcases = args.memory_cases.split(",")
            for kind, lst in (("shipped", args.memory_shipped),
                              ("synthetic", args.memory_synthetic)):
                for draws in [int(x) for x in lst.split(",") if x]:
                    inst = make_instance(kind, draws, tmp, objective="mean_cvar",
                                         time_limit=args.memory_time_limit)
                    timeout = args.memory_time_limit * 4 + 300
                    got = run_case(f"memory {kind} x {draws}", inst, mcases, 1, runs, timeout)
                    for r in got:
                        mem.append({"kind": kind, "n": inst["spec"]["n"], "draws": draws,
                                    "case": r["case"], "rss": r.get("max_rss_mb"),
                                    "process": r.get("process"), "status": r.get("status"),
                                    "gap": r.get("gap"), "highs": (r.get("phases") or {}).get(
                                        "highs", (r.get("phases") or {}).get("solve")),
                                    "error": r.get("error")})
            everything["memory"] = mem
            print("\n=== memory: peak RSS of the whole process against draws x projects "
                  f"(mean_cvar, time limit {args.memory_time_limit:g} s) ===")
            print("    " + "".join(f"{h:>12}" for h in ("data", "draws", "cells", "case",
                                                         "RSS MB", "KB/cell", "process s",
                                                         "HiGHS s", "gap", "status")))
            for m in mem:
                cells = m["n"] * m["draws"]
                base = [x["rss"] for x in mem if x["kind"] == m["kind"] and
                        x["case"] == m["case"] and x["rss"]]
                per = None
                if m["rss"] and len(base) > 1:
                    lo = min((x for x in mem if x["kind"] == m["kind"] and
                              x["case"] == m["case"] and x["rss"]), key=lambda x: x["draws"])
                    if m["draws"] > lo["draws"]:
                        per = (m["rss"] - lo["rss"]) * 1024 / (cells - lo["n"] * lo["draws"])
                print("    " + "".join(fmt(v, 12, 0) if isinstance(v, (int, float)) else
                                       f"{str(v):>12}" for v in
                                       (m["kind"], m["draws"], cells, m["case"], m["rss"]))
                      + fmt(per, 12, 3) + fmt(m["process"], 12, 2) + fmt(m["highs"], 12, 2)
                      + fmt(m["gap"], 12, 6) + f"{str(m['status'] or m['error']):>14}")
            print("    KB/cell: extra peak RSS per extra draw x project over the smallest "
                  "sample of the same data and case")
    everything["loadavg_end"] = loadavg()
    print(f"\nloadavg at end: {loadavg()}")
    print(f"benchmark wall time {pc() - t_all:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
