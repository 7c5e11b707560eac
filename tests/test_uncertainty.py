"""Portfolios under uncertainty (CONTRACT section 8), checked against hand-worked cases, an
independent brute force and identities of the model.

The hand-worked table: three projects, each bought whole (stake exactly 1), no deal costs,
100 t/y of TREO each; at face value each costs 10 and the budget (20) takes at most two:

    project  value  equity  npv    NPV in draws 0..3 (a_s = value x price - equity x overrun)
    P1       20     10      10     25   15    5   -5      mean 10
    P2       16     10       6      8    8    4    4      mean  6
    P3       12     10       2     -4    2    3    7      mean  2

Overruns: P1 costs 15 in draw 2, P2 costs 12 in draw 1 (their prices are set so the NPVs above
hold: P1 draw 2 price (5 + 15)/20 = 1, P2 draw 1 price (8 + 12)/16 = 1.25). Outputs: P1 gives
half in draw 2, P2 half in draw 3. The pairs, draw by draw:

    pair     NPV in draws       mean  worst  worst two  caps held (<= 20)  200 t met
    P1+P2    33  23   9  -1      16    -1      4          draws 0, 3        draws 0, 1
    P1+P3    21  17   8   2      12     2      5          0, 1, 3           0, 1, 3
    P2+P3     4  10   7  11       8     4      5.5        0, 2, 3           0, 1, 2
    singles: P1 mean 10 worst -5; P2 mean 6 worst 4 (worst two 4); P3 mean 2 worst -4.
"""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from optimizer import InputError, Optimizer, Scenario, load_scenario
from optimizer.data import validate_projects
from optimizer.risk import cvar
from optimizer.sample import to_table

from .conftest import run_cli

ROW = dict(country="AU", mineral="ree", partner="JOINT", india_share=0.5, min_stake=1.0,
           max_stake=1.0, deal_cost_musd=0.0, output_tantalum_t=0, output_niobium_t=0,
           output_ree_t=100, risk_score=5)
PROJECTS = [dict(ROW, project_id="P1", name="One", equity_value_musd=10, npv_musd=10),
            dict(ROW, project_id="P2", name="Two", equity_value_musd=10, npv_musd=6),
            dict(ROW, project_id="P3", name="Three", equity_value_musd=10, npv_musd=2)]
A = {"P1": [25, 15, 5, -5], "P2": [8, 8, 4, 4], "P3": [-4, 2, 3, 7]}  # NPV in each draw
VALUE = {"P1": 20.0, "P2": 16.0, "P3": 12.0}
OVERRUN = {("P1", 2): 1.5, ("P2", 1): 1.2}
OUTPUT = {("P1", 2): 0.5, ("P2", 3): 0.5}


def draws_table() -> list[dict]:
    rows = []
    for s in range(4):
        for p in ("P1", "P2", "P3"):
            ov = OVERRUN.get((p, s), 1.0)
            rows.append({"draw": s, "project_id": p, "price": (A[p][s] + 10 * ov) / VALUE[p],
                         "overrun": ov, "output": OUTPUT.get((p, s), 1.0), "available": 1})
    return rows


@pytest.fixture(scope="module")
def opt() -> Optimizer:
    return Optimizer(validate_projects(pd.DataFrame(PROJECTS)))


def solve(opt, **fields):
    sc = Scenario.model_validate({
        "budget_musd": 20, "solver": {"mip_gap": 1e-9, "time_limit_s": 30},
        "uncertainty": {"draws_table": draws_table(), "fresh_draws": 0}, **fields})
    return opt.solve(sc)


def chosen(r) -> list[str]:
    return sorted(p.project_id for p in r.selected)


# --- each objective and each new limit, by hand ------------------------------------------


def test_expected_npv_is_the_best_mean(opt):
    r = solve(opt, objective="expected_npv")
    assert chosen(r) == ["P1", "P2"] and r.objective == pytest.approx(16.0)


@pytest.mark.parametrize(("lam", "alpha", "pair", "value"), [
    (0.5, 0.25, ["P1", "P2"], 0.5 * 16 + 0.5 * -1),   # 7.5 beats P1+P3's 7 and P2+P3's 6
    (0.8, 0.25, ["P2", "P3"], 0.2 * 8 + 0.8 * 4),     # 4.8 beats P2 alone 4.4, P1+P3 4.0
    (1.0, 0.5, ["P2", "P3"], (4 + 7) / 2),            # the mean of the worst two draws: 5.5
])
def test_mean_cvar_by_hand(opt, lam, alpha, pair, value):
    r = solve(opt, objective="mean_cvar", risk_aversion=lam, cvar_alpha=alpha)
    assert chosen(r) == pair
    assert r.objective == pytest.approx(value)


@pytest.mark.parametrize(("floor", "pair", "mean"), [(2, ["P1", "P3"], 12), (3, ["P2", "P3"], 8)])
def test_cvar_floor(opt, floor, pair, mean):
    """CVaR at 25 % is the worst draw: P1+P2's -1 fails a floor of 2, P1+P3's 2 passes it;
    a floor of 3 leaves P2+P3 (worst 4) and P2 alone (4, mean 6)."""
    r = solve(opt, objective="expected_npv", min_cvar_npv=floor, cvar_alpha=0.25)
    assert chosen(r) == pair and r.objective == pytest.approx(mean)
    assert r.uncertainty.cvar >= floor - 1e-9


def test_budget_confidence(opt):
    """Caps must hold in 3 of 4 draws: P1+P2 holds in 2 (draws 0 and 3), so P1+P3 (mean 12);
    in all 4: only single projects hold, the best being P1 (mean 10)."""
    r = solve(opt, objective="expected_npv", budget_confidence=0.75)
    assert chosen(r) == ["P1", "P3"] and r.objective == pytest.approx(12.0)
    assert r.uncertainty.within_caps_share == pytest.approx(0.75)
    r = solve(opt, objective="expected_npv", budget_confidence=1.0)
    assert chosen(r) == ["P1"] and r.objective == pytest.approx(10.0)


def test_output_confidence(opt):
    """200 t in 3 of 4 draws: P1+P2 meets it in 2, P1+P3 and P2+P3 in 3: P1+P3 (mean 12)."""
    r = solve(opt, objective="expected_npv", min_output_t={"ree": 200},
              min_output_confidence=0.75)
    assert chosen(r) == ["P1", "P3"] and r.objective == pytest.approx(12.0)
    assert r.uncertainty.floors_met_share == pytest.approx(0.75)


def test_face_value_limits_still_hold(opt):
    """The budget of 20 holds at face value whatever the draws say: never three projects."""
    r = solve(opt, objective="expected_npv", budget_musd=20)
    assert r.totals.cost_musd <= 20 + 1e-9


def test_infeasible_confidence_is_diagnosed_with_the_loosest_value(opt):
    """A 200 t floor in every draw: no pair meets it in more than 3 of 4 draws (and single
    projects never make 200 t): the loosest confidence that works is 0.75."""
    r = solve(opt, objective="expected_npv", min_output_t={"ree": 200}, min_output_confidence=1)
    assert r.status == "infeasible"
    assert "min_output_confidence" in r.diagnosis.conflicts
    fix = {f["field"]: f for f in r.diagnosis.fixes}["min_output_confidence"]
    assert fix["to"] == pytest.approx(0.75)


def test_infeasible_cvar_floor_is_diagnosed(opt):
    """The best worst draw of any portfolio within the budget is 4 (P2, or P2+P3): a CVaR
    floor of 5 at 25 % fails, and lowering it to 4 is the fix."""
    r = solve(opt, objective="expected_npv", min_cvar_npv=5, cvar_alpha=0.25)
    assert r.status == "infeasible" and "min_cvar_npv" in r.diagnosis.conflicts
    fix = {f["field"]: f for f in r.diagnosis.fixes}["min_cvar_npv"]
    assert fix["to"] == pytest.approx(4.0, abs=1e-3)



@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.95, 1.0])
def test_tight_big_m_of_the_caps_gives_the_answer_of_the_loose_one(confidence, monkeypatch):
    """caps_in_draw's quantile big-M (much smaller than the spend at every maximum) cuts off
    no portfolio that holds the caps in ceil(p N) draws: same objective as with the loose
    big-M, on 60 draws of the shipped data; and an infeasible confidence gets the same
    diagnosis (its slack frees the count, so the loose big-M is put back meanwhile)."""
    import optimizer.stochastic as stochastic
    from optimizer import load_projects

    data = load_projects()
    sc = load_scenario("inputs/scenarios/base.json").model_dump()
    sc.update(objective="expected_npv", budget_confidence=confidence,
              uncertainty={"draws": 60, "seed": 3, "fresh_draws": 0},
              solver={"mip_gap": 1e-9, "time_limit_s": 60})
    tight_opt = Optimizer(data)
    tight = tight_opt.solve(sc)
    margins = tight_opt.built.cap_margins
    k = math.ceil(confidence * 60 - 1e-9)
    assert (margins.for_draws(k) <= margins.most).all()
    assert margins.for_draws(k).mean() < 0.5 * margins.most.mean()
    squeezed = dict(sc, budget_musd=115, include_projects=["GL-TANBREEZ-JOINT"],
                    min_countries=1, max_country_share=1.0)
    tight_squeezed = tight_opt.solve(squeezed)
    monkeypatch.setattr(stochastic, "QUANTILE_WORK", 0)  # the loose big-M everywhere
    loose = Optimizer(data).solve(sc)
    loose_squeezed = Optimizer(data).solve(squeezed)
    assert tight.status == loose.status == "optimal"
    assert tight.objective == pytest.approx(loose.objective, rel=1e-9, abs=1e-9)
    assert tight_squeezed.status == loose_squeezed.status
    assert tight_squeezed.status == "infeasible"  # Tanbreez alone breaks the cap too often
    assert tight_squeezed.diagnosis.fixes == loose_squeezed.diagnosis.fixes

# --- identities ----------------------------------------------------------------------------


def test_in_sample_block_is_a_direct_evaluation(opt):
    """The result's figures recomputed here from the draws table alone (not optimizer.risk)."""
    r = solve(opt, objective="mean_cvar", risk_aversion=0.3, cvar_alpha=0.25)
    picked = chosen(r)
    npv = np.array([sum(A[p][s] for p in picked) for s in range(4)], dtype=float)
    u = r.uncertainty
    assert u.draws == 4 and u.mean == pytest.approx(npv.mean())
    assert u.cvar == pytest.approx(np.sort(npv)[0])  # 25 % of 4 draws: the worst one
    assert u.p50 == pytest.approx(np.quantile(npv, 0.5))
    caps = [sum(10 * OVERRUN.get((p, s), 1.0) for p in picked) <= 20 + 1e-9 for s in range(4)]
    assert u.within_caps_share == pytest.approx(np.mean(caps))


def test_risk_aversion_zero_is_the_face_value_model_on_mean_coefficients(opt):
    """lambda 0 without floors maximises the mean NPV, which is linear: the same as the
    face-value model on a table whose NPV is each project's mean over the draws."""
    stochastic = solve(opt, objective="mean_cvar", risk_aversion=0.0)
    means = [dict(p, npv_musd=float(np.mean(A[p["project_id"]]))) for p in PROJECTS]
    face = Optimizer(validate_projects(pd.DataFrame(means))).solve(
        Scenario.model_validate({"budget_musd": 20, "solver": {"mip_gap": 1e-9}}))
    assert chosen(stochastic) == chosen(face)
    assert stochastic.objective == pytest.approx(face.objective)


def test_full_aversion_at_alpha_one_is_the_mean(opt):
    """CVaR over the whole sample (alpha 1) is the mean, so lambda 1 there is expected_npv.
    Contract alphas stop at 0.5, so alpha is set to 1 in the built model itself."""
    sc = Scenario.model_validate({"budget_musd": 20, "objective": "mean_cvar",
                                  "risk_aversion": 1.0, "cvar_alpha": 0.5,
                                  "solver": {"mip_gap": 1e-9},
                                  "uncertainty": {"draws_table": draws_table(),
                                                  "fresh_draws": 0}})
    session = opt.session
    session.apply(sc)
    session.built.model.draws.alpha.set_value(1.0)
    out = session.run(sc.solver)
    assert out.objective == pytest.approx(solve(opt, objective="expected_npv").objective)
    assert cvar(np.array([33.0, 23, 9, -1]), 1.0) == pytest.approx(16.0)


def test_another_lambda_alpha_or_confidence_does_not_rebuild_the_draw_rows(opt):
    solve(opt, objective="mean_cvar", risk_aversion=0.5, budget_confidence=0.5)
    block = opt.built.model.draws
    rows = (block.shortfall, block.caps_in_draw)
    for lam, alpha, conf in ((0.1, 0.25, 0.75), (0.9, 0.5, 1.0), (0.5, 0.1, 0.5)):
        solve(opt, objective="mean_cvar", risk_aversion=lam, cvar_alpha=alpha,
              budget_confidence=conf)
        assert opt.built.model.draws is block
        assert (block.shortfall, block.caps_in_draw) == rows


def test_fresh_draws_judge_both_portfolios(tmp_path):
    """On a generated sample the run is judged on draws of seed + 1 beside the face-value
    optimum: VSS is the difference of the two means there."""
    from optimizer import load_projects

    data = load_projects()
    sc = load_scenario("inputs/scenarios/base.json").model_dump()
    sc.update(objective="mean_cvar", risk_aversion=0.5,
              uncertainty={"draws": 100, "seed": 7, "fresh_draws": 300})
    r = Optimizer(data).solve(sc)
    oos = r.uncertainty.out_of_sample
    assert oos.draws == 300 and oos.seed == 8
    assert oos.vss == pytest.approx(oos.portfolio.mean - oos.face_value.mean)
    face = Optimizer(data).solve(Scenario.model_validate(sc).at_face_value())
    assert oos.face_value_selected == sorted(p.project_id for p in face.selected)


# --- brute force on random small instances --------------------------------------------------


def _random_case(seed: int):
    rng = np.random.default_rng([2026, seed])
    n, n_draws = int(rng.integers(3, 7)), int(rng.integers(3, 7))
    rows = []
    for i in range(n):
        eq = float(rng.uniform(5, 20))
        rows.append(dict(ROW, project_id=f"Q{i}", name=f"Q{i}", equity_value_musd=round(eq, 2),
                         npv_musd=round(float(rng.uniform(-3, 12)), 2),
                         output_ree_t=round(float(rng.uniform(10, 100)), 1),
                         india_share=round(float(rng.uniform(0, 1)), 2)))
    table = [{"draw": s, "project_id": r["project_id"],
              "price": round(float(rng.lognormal(0, 0.4)), 4),
              "overrun": round(float(rng.lognormal(0.05, 0.2)), 4),
              "output": round(float(rng.lognormal(0, 0.3)), 4),
              "available": int(rng.random() > 0.1)} for s in range(n_draws) for r in rows]
    total = sum(r["equity_value_musd"] for r in rows)
    sc = {"budget_musd": round(total * float(rng.uniform(0.3, 0.8)), 2),
          "objective": str(rng.choice(["expected_npv", "mean_cvar"])),
          "risk_aversion": round(float(rng.uniform(0, 1)), 2),
          "cvar_alpha": float(rng.choice([0.2, 0.25, 0.5])),
          "uncertainty": {"draws_table": table, "fresh_draws": 0},
          "solver": {"mip_gap": 1e-9, "time_limit_s": 30}}
    kind = seed % 4
    if kind == 1:
        sc["budget_confidence"] = float(rng.choice([0.5, 0.75, 1.0]))
    elif kind == 2:
        sc["min_output_t"] = {"ree": round(float(rng.uniform(20, 120)), 1)}
        sc["min_output_confidence"] = float(rng.choice([0.5, 0.75]))
    elif kind == 3:
        sc["min_cvar_npv"] = round(float(rng.uniform(-5, 5)), 2)
    return rows, table, sc


def _reference(rows, table, sc):
    """Every subset (stakes are all 1), measured from the table directly."""
    ids = [r["project_id"] for r in rows]
    by = {(t["draw"], t["project_id"]): t for t in table}
    draws = sorted({t["draw"] for t in table})
    best = None
    for k in range(len(ids) + 1):
        for subset in itertools.combinations(range(len(ids)), k):
            pick = [rows[i] for i in subset]
            if sum(r["equity_value_musd"] for r in pick) > sc["budget_musd"] + 1e-9:
                continue
            floor = (sc.get("min_output_t") or {}).get("ree")
            if floor is not None and sum(r["output_ree_t"] for r in pick) < floor - 1e-9:
                continue
            npv, held, met = [], [], []
            for s in draws:
                f = [by[s, r["project_id"]] for r in pick]
                value = [r["npv_musd"] + r["equity_value_musd"] for r in pick]
                npv.append(sum(t["available"] * v * t["price"] - r["equity_value_musd"]
                               * t["overrun"] for t, v, r in zip(f, value, pick, strict=True)))
                held.append(sum(r["equity_value_musd"] * t["overrun"]
                                for t, r in zip(f, pick, strict=True)) <= sc["budget_musd"] + 1e-9)
                if floor is not None:
                    met.append(sum(t["available"] * t["output"] * r["output_ree_t"]
                                   for t, r in zip(f, pick, strict=True)) >= floor - 1e-9)
            npv = np.array(npv)
            c = cvar(npv, sc["cvar_alpha"])
            need = lambda p: math.ceil(p * len(draws) - 1e-9)  # noqa: E731
            if "budget_confidence" in sc and sum(held) < need(sc["budget_confidence"]):
                continue
            if "min_output_confidence" in sc and sum(met) < need(sc["min_output_confidence"]):
                continue
            if "min_cvar_npv" in sc and c < sc["min_cvar_npv"] - 1e-9:
                continue
            lam = sc["risk_aversion"] if sc["objective"] == "mean_cvar" else 0.0
            obj = (1 - lam) * npv.mean() + lam * c
            if best is None or obj > best + 1e-9:
                best = obj
    return best


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force(seed):
    rows, table, sc = _random_case(seed)
    ref = _reference(rows, table, sc)
    r = Optimizer(validate_projects(pd.DataFrame(rows))).solve(Scenario.model_validate(sc))
    if ref is None:
        assert r.status == "infeasible", (seed, r.objective)
    else:
        assert r.status == "optimal", (seed, r.status, ref)
        assert r.objective == pytest.approx(ref, rel=1e-6, abs=1e-6), seed


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "words"), [
    ({"project_id": "NOPE"}, "unknown project 'NOPE'"),
    ({"price": -1.0}, "price"),
    ({"available": 2}, "available"),
])
def test_bad_draws_table_names_the_row(opt, change, words):
    table = draws_table()
    table[5] = {**table[5], **change}
    with pytest.raises(InputError, match=words) as info:
        opt.solve({"budget_musd": 20, "objective": "expected_npv",
                   "uncertainty": {"draws_table": table}})
    assert any(5 in p.loc for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(("fields", "where"), [
    ({"budget_confidence": 0}, "budget_confidence"),
    ({"cvar_alpha": 0.7}, "cvar_alpha"),
    ({"objective": "mean_cvar", "uncertainty": None}, "uncertainty"),
    ({"uncertainty": {"draws": 10**6}}, "uncertainty.draws"),
])
def test_bad_fields_named(fields, where):
    with pytest.raises(InputError, match=where.replace(".", r"\.")):
        load_scenario({"budget_musd": 20, "objective": "expected_npv",
                       "uncertainty": {"draws": 10}, **fields})


def test_cli_draws_file_round_trip_and_bad_sample(tmp_path):
    """`optimizer draws` writes the sample a scenario is judged on; a scenario reading that
    file (relative to itself) solves on exactly the same draws; a sample over the size cap is
    exit 2 with nothing written."""
    scen = tmp_path / "s.json"
    spec = load_scenario("inputs/scenarios/base.json").model_dump(mode="json")
    spec.update(objective="expected_npv", uncertainty={"draws": 60, "seed": 3, "fresh_draws": 0})
    scen.write_text(json.dumps(spec))
    out = tmp_path / "draws.csv"
    p = run_cli("draws", "--scenario", str(scen), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert len(pd.read_csv(out)) == 60 * 45
    spec["uncertainty"] = {"draws_file": "draws.csv", "fresh_draws": 0}
    other = tmp_path / "t.json"
    other.write_text(json.dumps(spec))
    a = json.loads(run_cli("solve", "--scenario", str(scen), "--format", "json").stdout)
    b = json.loads(run_cli("solve", "--scenario", str(other), "--format", "json").stdout)
    assert a["uncertainty"]["sample_sha256"] == b["uncertainty"]["sample_sha256"]
    assert a["objective"] == pytest.approx(b["objective"], rel=1e-12)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"budget_musd": 100, "uncertainty": {"draws": 10_000}}))
    gone = tmp_path / "nothing.csv"
    p = run_cli("draws", "--scenario", str(huge), "--out", str(gone), "--projects",
                str(_wide(tmp_path)))
    assert p.returncode == 2 and "over the cap" in p.stderr and not gone.exists()


def _wide(tmp_path):
    """A table wide enough that 10,000 draws are over the sample cap (2,000,000 cells)."""
    from optimizer.synthetic import synthetic_projects

    path = tmp_path / "wide.csv"
    synthetic_projects(300, seed=1).to_csv(path, index=False)
    return path


def test_to_table_round_trips(opt):
    from optimizer.sample import from_table, sample_for

    sc = Scenario.model_validate({"budget_musd": 20, "uncertainty": {"draws": 5, "seed": 1}})
    smp = sample_for(opt.data, sc)
    back = from_table(to_table(smp, opt.data).astype(str), opt.data)
    assert np.array_equal(back.price, smp.price) and np.array_equal(back.available,
                                                                    smp.available)


def test_cvar_rows_generated_as_needed_give_the_every_row_answer():
    """A cut per draw: the model holds far fewer shortfall rows than draws, and answers what
    the model with every row answers (objective, CVaR floor met exactly)."""
    from optimizer import load_projects
    from optimizer.stochastic import _add_shortfall_rows

    data = load_projects()
    sc = load_scenario("inputs/scenarios/base.json").model_dump()
    sc.update(objective="mean_cvar", risk_aversion=0.5, cvar_alpha=0.1, min_cvar_npv=-200,
              uncertainty={"draws": 150, "seed": 4, "fresh_draws": 0},
              solver={"mip_gap": 1e-9, "time_limit_s": 60})
    lazy = Optimizer(data)
    a = lazy.solve(sc)
    assert len(lazy.built.shortfall_rows) < 150
    full = Optimizer(data)
    full.session.apply(Scenario.model_validate(sc))
    _add_shortfall_rows(full.built, range(150))
    b = full.solve(sc)
    assert len(full.built.shortfall_rows) == 150
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, rel=1e-7)
    assert a.uncertainty.cvar >= -200 - 1e-6


@pytest.mark.parametrize("backend", ["fast", "stock"])
def test_runs_stop_at_an_incumbent_that_understates_a_draw(backend, monkeypatch):
    """Lazy rows, emulated: a run is stopped at its first incumbent whose CVaR terms miss a
    draw's row, and the final run is not; the answer is that of the model with every row
    (mean_cvar at lambda 1 on 200 draws, where the start rows understate the tail)."""
    from optimizer import load_projects
    from optimizer.highs_backend import StockHighs
    from optimizer.session import Session
    from optimizer.stochastic import _add_shortfall_rows

    data = load_projects()
    sc = load_scenario("inputs/scenarios/base.json").model_dump()
    sc.update(objective="mean_cvar", risk_aversion=1.0, cvar_alpha=0.05,
              uncertainty={"draws": 200, "seed": 7, "fresh_draws": 0},
              solver={"mip_gap": 1e-9, "time_limit_s": 60})
    sc = Scenario.model_validate(sc)
    stops: list[bool] = []
    plain = Session._run_once

    def run_once(self, *args):
        out = plain(self, *args)
        stops.append(self._solver.stopped_early)
        return out

    monkeypatch.setattr(Session, "_run_once", run_once)
    ends: list[float] = []  # when each HiGHS run would stop at the latest
    solve = StockHighs.solve

    def timed_solve(self, model, **kwds):
        ends.append(time.monotonic() + kwds["time_limit"])
        return solve(self, model, **kwds)

    monkeypatch.setattr(StockHighs, "solve", timed_solve)
    lazy = Session(data, backend=backend)
    lazy.apply(sc)
    lazy.hand_over()
    start = time.monotonic()
    got = lazy.run(sc.solver)
    assert any(stops[:-1]) and not stops[-1], stops
    # the scenario's 60 s are for all the runs together, not 60 s each
    assert len(ends) == len(stops) and max(ends) <= start + 60 + 0.5  # 60 s each: fails
    assert len(lazy.built.shortfall_rows) < 200
    full = Session(data, backend=backend)
    full.apply(sc)
    _add_shortfall_rows(full.built, range(200))
    want = full.run(sc.solver)
    assert got.objective == pytest.approx(want.objective, rel=1e-7)


def test_a_run_that_does_not_read_cvar_adds_no_rows():
    """After a mean-CVaR run, the same sample's expected_npv run leaves eta and u_s free:
    it must not generate rows for them, and answers what a fresh session answers."""
    from optimizer import load_projects
    from optimizer.session import Session
    from optimizer.stochastic import lazy_rows

    data = load_projects()
    base = load_scenario("inputs/scenarios/base.json").model_dump()
    base.update(uncertainty={"draws": 200, "seed": 7, "fresh_draws": 0},
                solver={"mip_gap": 1e-9, "time_limit_s": 60})
    risky = Scenario.model_validate({**base, "objective": "mean_cvar", "risk_aversion": 1.0,
                                     "cvar_alpha": 0.05})
    mean = Scenario.model_validate({**base, "objective": "expected_npv"})
    s = Session(data)
    s.apply(risky)
    s.run(risky.solver)
    assert lazy_rows(s.built) is not None
    held = len(s.built.shortfall_rows)
    s.apply(mean)
    assert lazy_rows(s.built) is None  # eta, u_s are free in this run: nothing to generate
    got = s.run(mean.solver)
    assert len(s.built.shortfall_rows) == held
    for reads, fields in ((False, {"objective": "mean_cvar", "risk_aversion": 0.0}),
                          (True, {"objective": "expected_npv", "min_cvar_npv": -500})):
        s.apply(Scenario.model_validate({**base, **fields}))
        assert (lazy_rows(s.built) is not None) is reads, fields
    fresh = Session(data)
    fresh.apply(mean)
    assert got.objective == pytest.approx(fresh.run(mean.solver).objective, rel=1e-7)
