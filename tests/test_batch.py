"""Batches (CONTRACT section 6): rows equal the same scenarios solved one by one, for every
kind; grid order and size; Monte Carlo reproducible from (seed, index); frontiers monotone;
resume after a torn line or a kill; every bad spec refused before anything is written."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from optimizer import InputError, Optimizer, load_scenario
from optimizer.batch import InProcessExecutor, parse_spec, row_count, run_batch
from optimizer.batch.draws import evaluate, make_draw, perturb
from optimizer.batch.files import DirSink
from optimizer.batch.spec import expand, merge, validate_rows
from optimizer.check import violations as check_violations

from .conftest import ROOT, ListSink, run_cli

BASE = {"name": "base", "budget_musd": 1600, "kabil_budget_musd": 500,
        "max_country_share": 0.3, "min_countries": 4, "max_avg_risk": 6,
        "solver": {"mip_gap": 1e-9, "time_limit_s": 30}}
MC = {"draws": 12, "seed": 11,
      "price": {"ree": {"dist": "lognormal", "sigma": 0.3},
                "niobium": {"dist": "triangular", "low": 0.7, "mode": 1.0, "high": 1.2}},
      "correlation": 0.5,
      "capex_overrun": {"dist": "triangular", "low": 0.95, "mode": 1.1, "high": 1.6},
      "output": {"dist": "lognormal", "sigma": 0.1},
      "disruption": {"default": 0.05, "countries": {"CD": 0.5, "MW": 0.3}}}


def run(spec_dict: dict, shipped, **kw) -> tuple[list[dict], dict]:
    spec = parse_spec(spec_dict)
    sink = ListSink()
    summary = run_batch(spec, shipped, executor=InProcessExecutor(), sink=sink, **kw)
    return sorted(sink.rows, key=lambda r: r["index"]), summary


def same_answer(row: dict, result) -> None:
    assert row["status"] == result.status
    if result.objective is None:
        assert row["objective"] is None
    else:
        assert row["objective"] == pytest.approx(result.objective, rel=1e-9, abs=1e-9)
        assert {p["project_id"] for p in row["selected"]} == {p.project_id
                                                              for p in result.selected}


# ---------------------------------------------------------------------------------------------
# every kind equals one-by-one solves
# ---------------------------------------------------------------------------------------------


def test_scenarios_list_merges_over_base_and_matches_single_solves(shipped):
    partials = [{"budget_musd": 900}, {"min_output_t": {"ree": 9000}},
                {"solver": {"mip_gap": 1e-6}, "exclude_countries": ["GL"]},
                {"budget_musd": 100, "min_output_t": {"niobium": 50000}}]  # infeasible
    rows, summary = run({"base": BASE, "scenarios": partials}, shipped)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    fresh = Optimizer(shipped)
    for row, partial in zip(rows, partials, strict=True):
        merged = merge(BASE, partial)
        assert row["scenario"] == merged
        same_answer(row, fresh.solve(merged))
    assert rows[2]["scenario"]["solver"] == {"mip_gap": 1e-6, "time_limit_s": 30}  # key-merged
    assert rows[3]["status"] == "infeasible" and rows[3]["diagnosis"]["conflicts"]
    assert summary["by_status"] == {"infeasible": 1, "optimal": 3}


def test_grid_order_size_and_answers(shipped):
    grid = {"budget_musd": [800, 1600], "max_country_share": [0.25, 0.4],
            "annual_budget_musd.0": [400, None]}
    spec = parse_spec({"base": BASE, "grid": grid})
    assert row_count(spec) == 8
    rows, _ = run({"base": BASE, "grid": grid}, shipped)
    combos = [(b, s, a) for b in (800, 1600) for s in (0.25, 0.4) for a in (400, None)]
    fresh = Optimizer(shipped)
    for row, (b, s, a) in zip(rows, combos, strict=True):  # first field slowest
        sc = row["scenario"]
        assert (sc["budget_musd"], sc["max_country_share"], sc["annual_budget_musd"]) == \
            (b, s, [a])
        same_answer(row, fresh.solve(sc))


def test_monte_carlo_rows_match_single_solves_on_perturbed_data(shipped):
    rows, summary = run({"base": BASE, "monte_carlo": MC}, shipped)
    spec = parse_spec({"base": BASE, "monte_carlo": MC})
    base_result = Optimizer(shipped).solve(BASE)
    base_stakes = {p.project_id: p.stake for p in base_result.selected}
    sc = load_scenario(BASE)
    disrupted = 0
    for row in rows:
        draw = make_draw(spec.monte_carlo, shipped, row["index"])
        data = perturb(shipped, draw)
        disrupted += bool(draw.disrupted)
        same_answer(row, Optimizer(data).solve(BASE))  # a model built on the drawn table
        assert row["draw"]["disrupted_countries"] == draw.disrupted
        assert row["base_portfolio"]["objective"] == pytest.approx(
            evaluate(data, sc, base_stakes), rel=1e-12)
        if row["objective"] is not None:
            assert row["base_portfolio"]["regret"] == pytest.approx(
                row["objective"] - row["base_portfolio"]["objective"], rel=1e-9, abs=1e-9)
        chosen = {p["project_id"] for p in row["selected"]}
        gone = set(shipped.frame.loc[shipped.frame.country.isin(draw.disrupted), "project_id"])
        assert not chosen & gone
        bp = row["base_portfolio"]
        if bp["meets_limits"] and not bp["disrupted_projects"] and row["objective"] is not None:
            # the base portfolio is then a feasible answer of this draw: the optimum is no worse
            assert bp["regret"] >= -1e-6 * abs(row["objective"])
    assert disrupted >= 3
    assert summary["base_portfolio"]["value"]["count"] == len(rows)
    # overruns of 0.95-1.6 push the base portfolio (which spends its budget) over it
    assert summary["base_portfolio"]["share_breaking_limits"] > 0.5


def test_monte_carlo_evaluates_a_robust_base_portfolio(shipped):
    """A base with its own sample: the base portfolio is the mean-CVaR one (chosen on that
    sample), held fixed in every draw; each draw is re-optimised at face value; the breaches
    of the limits it breaks carry their sizes; EVPI is the mean regret."""
    base = {**BASE, "objective": "mean_cvar", "risk_aversion": 0.7,
            "uncertainty": {"draws": 30, "seed": 2, "fresh_draws": 0}}
    rows, summary = run({"base": base, "monte_carlo": {**MC, "draws": 6}}, shipped)
    robust = Optimizer(shipped).solve(base)
    stakes = {p.project_id: p.stake for p in robust.selected}
    sc = load_scenario(BASE)
    spec = parse_spec({"base": base, "monte_carlo": {**MC, "draws": 6}})
    for row in rows:
        data = perturb(shipped, make_draw(spec.monte_carlo, shipped, row["index"]))
        assert row["base_portfolio"]["objective"] == pytest.approx(
            evaluate(data, sc, stakes), rel=1e-12)
        same_answer(row, Optimizer(data).solve(BASE))  # the draw's own face-value optimum
        broken = check_violations(data, sc, stakes)
        for b in row["base_portfolio"]["breaches"]:
            assert b["excess"] > 0 and any(t.startswith(b["path"]) for t in broken)
    regrets = [r["base_portfolio"]["regret"] for r in rows]
    assert summary["base_portfolio"]["evpi_musd"] == pytest.approx(np.mean(regrets))


def test_monte_carlo_draw_rules_by_hand(shipped):
    """npv' = (npv + equity) x price - equity x overrun; outputs x factor; a disrupted
    country's projects are worth nothing and produce nothing."""
    spec = parse_spec({"base": BASE, "monte_carlo": MC})
    draw = make_draw(spec.monte_carlo, shipped, 5)
    data = perturb(shipped, draw)
    f = shipped.frame
    for i in (0, 10, 20, 30):
        eq, npv = f["equity_value_musd"].iat[i], f["npv_musd"].iat[i]
        price = draw.price[f["mineral"].iat[i]]
        down = f["country"].iat[i] in draw.disrupted
        value = 0.0 if down else (npv + eq) * price
        assert data.col("equity_value_musd")[i] == pytest.approx(eq * draw.overrun[i])
        assert data.col("npv_musd")[i] == pytest.approx(value - eq * draw.overrun[i])
        factor = 0.0 if down else draw.output[i]
        assert data.col("output_ree_t")[i] == pytest.approx(f["output_ree_t"].iat[i] * factor)


def test_monte_carlo_is_reproducible_from_seed_and_index(shipped):
    """The same table whatever the chunk size (and so whatever the worker that solved it)."""
    one, _ = run({"base": BASE, "monte_carlo": MC}, shipped, chunk_size=1)
    five, _ = run({"base": BASE, "monte_carlo": MC}, shipped, chunk_size=5)

    def key(r):
        return (r["draw"], r["objective"], [p["project_id"] for p in r["selected"]])

    assert [key(r) for r in one] == [key(r) for r in five]
    again = parse_spec({"base": BASE, "monte_carlo": {**MC, "draws": 100}})
    d = make_draw(again.monte_carlo, shipped, 7)
    assert d.summary() == one[7]["draw"]  # draw 7 of 100 is draw 7 of 12
    other = make_draw(parse_spec({"base": BASE, "monte_carlo": {**MC, "seed": 12}}).monte_carlo,
                      shipped, 7)
    assert other.price != d.price


def test_monte_carlo_correlation_is_what_was_asked(shipped):
    mc = {"draws": 4000, "seed": 3, "correlation": 0.6,
          "price": {m: {"dist": "lognormal", "sigma": 0.3} for m in ("tantalum", "ree")}}
    spec = parse_spec({"base": BASE, "monte_carlo": mc})
    logs = np.array([[np.log(make_draw(spec.monte_carlo, shipped, i).price[m])
                      for m in ("tantalum", "ree")] for i in range(4000)])
    assert np.corrcoef(logs.T)[0, 1] == pytest.approx(0.6, abs=0.04)
    assert logs.std(axis=0) == pytest.approx([0.3, 0.3], abs=0.02)


def test_budget_frontier_is_monotone_and_matches_single_solves(shipped):
    spec = {"base": {**BASE, "solver": {"mip_gap": 1e-4}},
            "frontier": {"kind": "budget", "low": 200, "high": 2600, "points": 13}}
    rows, _ = run(spec, shipped)
    objs = [r["objective"] for r in rows]
    assert [r["scenario"]["budget_musd"] for r in rows] == pytest.approx(
        list(np.linspace(200, 2600, 13)))
    assert all(r["status"] == "optimal" for r in rows)
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(objs, objs[1:], strict=False)), objs
    fresh = Optimizer(shipped)
    for r in rows:
        single = fresh.solve(r["scenario"])
        assert r["objective"] >= single.objective * (1 - 1e-4) - 1e-9  # within the gap


def test_supply_frontier_trades_npv_for_supply(shipped):
    rows, summary = run({"base": BASE, "frontier": {"kind": "supply", "points": 6}}, shipped)
    lo, hi = summary["supply_range"]
    assert lo < hi
    floors = [r["scenario"]["min_weighted_supply"] for r in rows]
    assert floors == pytest.approx(list(np.linspace(lo, hi, 6)))
    objs = [r["objective"] for r in rows]
    assert all(r["status"] == "optimal" for r in rows)
    assert all(b <= a + 1e-9 * abs(a) for a, b in zip(objs, objs[1:], strict=False)), objs
    npv_opt = Optimizer(shipped).solve(BASE).objective
    assert objs[0] == pytest.approx(npv_opt, rel=1e-6)  # the loosest floor costs nothing
    w = load_scenario(BASE).weights()
    for r, floor in zip(rows, floors, strict=True):
        got = sum(w[m] * r["totals"]["output_t"][m] for m in w)
        assert got >= floor * (1 - 1e-9)


def test_selection_and_robust_core(shipped):
    grid = {"budget_musd": [600, 900, 1200, 1600]}
    rows, summary = run({"base": BASE, "grid": grid, "core_share": 0.75}, shipped)
    counts: dict[str, int] = {}
    for r in rows:
        for p in r["selected"]:
            counts[p["project_id"]] = counts.get(p["project_id"], 0) + 1
    core = sorted(p for p, k in counts.items() if k >= 3)
    assert sorted(summary["robust_core"]["core"]) == core
    assert sorted(summary["robust_core"]["borderline"]) == sorted(
        p for p, k in counts.items() if k < 3)
    assert summary["robust_core"]["exterior_count"] == shipped.n - len(counts)
    assert summary["objective"]["p100"] == max(r["objective"] for r in rows)


def test_infeasible_and_failing_rows_are_rows(shipped, monkeypatch):
    rows, _ = run({"base": BASE, "scenarios": [{"budget_musd": 1}, {"budget_musd": 1000}],
                   "diagnose": False}, shipped)
    assert rows[0]["status"] == "infeasible" and rows[0]["diagnosis"] is None
    assert rows[1]["status"] == "optimal"

    def boom(self, *a, **k):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(Optimizer, "solve", boom)
    rows, summary = run({"base": BASE, "scenarios": [{"budget_musd": 1000}]}, shipped)
    assert rows[0]["status"] == "failed" and "solver exploded" in rows[0]["error"]
    assert summary["failed"][0]["index"] == 0


# ---------------------------------------------------------------------------------------------
# bad specs: refused before anything runs, naming the field or index
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "where"), [
    ({"base": BASE, "grid": {"budget_musd": [1]}, "scenarios": [{}]}, "exactly one"),
    ({"base": BASE}, "exactly one"),
    ({"base": BASE, "grid": {"budget_mus": [1, 2]}}, "did you mean 'budget_musd'"),
    ({"base": BASE, "grid": {"min_output_t.gold": [1]}}, "unknown product 'gold'"),
    ({"base": BASE, "grid": {"budget_musd": []}}, "empty value list"),
    ({"base": BASE, "grid": {"budget_musd": list(range(1, 400)),
                             "min_countries": list(range(300))}}, "over the cap"),
    ({"base": BASE, "monte_carlo": {"draws": 200_000}}, "over the cap"),
    ({"base": BASE, "monte_carlo": {"draws": 5, "capex_overrun": {
        "dist": "triangular", "low": 1.2, "mode": 1.0, "high": 1.5}}}, "low <= mode <= high"),
    ({"base": BASE, "monte_carlo": {"draws": 5, "price": {"ree": {
        "dist": "lognormal", "sigma": -1}}}}, "monte_carlo.price.ree.sigma"),
    ({"base": BASE, "monte_carlo": {"draws": 5, "correlation": [[1, 0.9, 0.9], [0.9, 1, -0.9],
                                                                  [0.9, -0.9, 1]]}},
     "not positive definite"),
    ({"base": BASE, "scenarios": []}, "the list is empty"),
    ({"base": BASE, "frontier": {"kind": "budget", "low": 500, "high": 100}}, "below high"),
])
def test_bad_specs_name_the_field(spec, where):
    with pytest.raises(InputError) as err:
        parse_spec(spec)
    assert where in str(err.value)


def test_bad_merged_scenarios_name_their_index_and_field(shipped):
    spec = parse_spec({"base": BASE, "scenarios": [{"budget_musd": 10},
                                                   {"budget_musd": True},
                                                   {"exclude_projects": ["NOPE"]}]})
    with pytest.raises(InputError) as err:
        validate_rows(spec, shipped)
    fields = [p.field for p in err.value.problems]
    assert fields == ["spec.scenarios.1.budget_musd", "spec.scenarios.2.exclude_projects.0"]
    spec = parse_spec({"base": BASE, "grid": {"max_country_share": [0.3, 1.5]}})
    with pytest.raises(InputError) as err:
        validate_rows(spec, shipped)
    assert "grid 'max_country_share' value 1 (1.5)" in str(err.value)


def test_grid_expansion_is_lazy():
    spec = parse_spec({"base": BASE, "grid": {"budget_musd": list(range(1, 301)),
                                              "min_countries": list(range(300))}})
    assert row_count(spec) == 90_000
    first = next(expand(spec))
    assert first.index == 0 and first.scenario["budget_musd"] == 1


# ---------------------------------------------------------------------------------------------
# the CLI: files, resume, kill
# ---------------------------------------------------------------------------------------------


def write_spec(tmp_path, spec: dict, name: str = "spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return path


def test_cli_writes_every_file(tmp_path):
    spec = write_spec(tmp_path, {"name": "g", "base": BASE,
                                 "grid": {"budget_musd": [800, 1600], "min_countries": [3, 5]}})
    p = run_cli("batch", str(spec), "--out", str(tmp_path / "out"), "--workers", "0")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["index"] for x in lines) == [0, 1, 2, 3]
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["index"] for r in table] == ["0", "1", "2", "3"]
    assert [(r["budget_musd"], r["min_countries"]) for r in table] == [
        ("800", "3"), ("800", "5"), ("1600", "3"), ("1600", "5")]
    assert set(table[0]) >= {"status", "objective", "output_t.ndpr", "n_projects", "selected"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_status"] == {"optimal": 4}
    with (out / "selection.csv").open() as fh:
        sel = list(csv.DictReader(fh))
    assert {r["class"] for r in sel} <= {"core", "borderline", "exterior"}
    assert "4/4" in p.stderr  # the progress bar


def test_cli_bad_spec_exits_2_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, {"base": BASE, "grid": {"budget_musd": [800, "lots"]}})
    p = run_cli("batch", str(spec), "--out", str(tmp_path / "out"), "--workers", "0")
    assert p.returncode == 2
    assert "grid 'budget_musd' value 1" in p.stderr
    assert not (tmp_path / "out").exists()


def test_resume_repairs_a_torn_line_and_never_solves_twice(tmp_path, shipped):
    spec_dict = {"name": "r", "base": BASE, "grid": {"budget_musd": [600, 900, 1200, 1500]}}
    spec = parse_spec(spec_dict)
    sink = DirSink(tmp_path, spec_dict, shipped.sha256)
    run_batch(spec, shipped, executor=InProcessExecutor(), sink=sink, chunk_size=1)
    sink.close()
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    # keep rows 0 and 2 whole, then half of row 3 (a kill mid-write)
    kept = [x for x in lines if json.loads(x)["index"] in (0, 2)]
    torn = [x for x in lines if json.loads(x)["index"] == 3][0][:40]
    path.write_text("".join(kept) + torn)
    solved: list[int] = []
    original = Optimizer.solve

    def counting(self, sc, **kw):
        solved.append(sc["budget_musd"] if isinstance(sc, dict) else sc.budget_musd)
        return original(self, sc, **kw)

    sink = DirSink(tmp_path, spec_dict, shipped.sha256)
    assert sink.repaired and sink.done == {0, 2}
    import optimizer.solve as osolve

    try:
        osolve.Optimizer.solve = counting
        summary = run_batch(spec, shipped, executor=InProcessExecutor(), sink=sink)
    finally:
        osolve.Optimizer.solve = original
    sink.close()
    assert sorted(solved) == [900, 1500]
    indices = [json.loads(x)["index"] for x in path.read_text().splitlines()]
    assert sorted(indices) == [0, 1, 2, 3]
    assert summary["missing"] == 0 and summary["rows"] == 4


def test_another_spec_in_the_same_folder_is_refused(tmp_path, shipped):
    DirSink(tmp_path, {"base": BASE, "grid": {"budget_musd": [1]}}, shipped.sha256).close()
    with pytest.raises(InputError, match="another batch spec"):
        DirSink(tmp_path, {"base": BASE, "grid": {"budget_musd": [2]}}, shipped.sha256)


def test_sigkill_mid_batch_then_resume(tmp_path):
    """Kill -9 a running CLI batch; rerun with the same --out: every row exactly once."""
    n = 60
    spec = write_spec(tmp_path, {"name": "k", "base": BASE,
                                 "grid": {"budget_musd": [300 + 25 * i for i in range(n)]}})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "optimizer", "batch", str(spec), "--out", str(out),
           "--workers", "0", "--chunk-size", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 10:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = results.read_text().count("\n")
    assert 10 <= before < n
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    indices = [json.loads(x)["index"] for x in results.read_text().splitlines()]
    assert sorted(indices) == list(range(n))  # all there, none twice


# ---------------------------------------------------------------------------------------------
# re-use by dominance
# ---------------------------------------------------------------------------------------------


def test_at_least_as_loose(shipped):
    from optimizer.batch.reuse import at_least_as_loose as loose

    def at_least_as_loose(a, b):
        return loose(shipped, a, b)

    a = load_scenario({**BASE, "budget_musd": 1600, "min_output_t": {"ree": 100}})
    for tighter in ({"budget_musd": 1500}, {"max_country_share": 0.25}, {"min_countries": 5},
                    {"min_output_t": {"ree": 200}}, {"exclude_countries": ["GL"]},
                    {"include_projects": ["BR-MIBRA-US"]}, {"partners": ["US", "JOINT"]},
                    {"max_chinese_ownership": 0.2}, {"annual_budget_musd": [900]}):
        b = load_scenario(merge({**BASE, "budget_musd": 1600,
                                 "min_output_t": {"ree": 100}}, tighter))
        assert at_least_as_loose(a, b), tighter
        assert not at_least_as_loose(b, a), tighter
    other = load_scenario({**BASE, "budget_musd": 1600, "min_output_t": {"ree": 100},
                           "objective": "supply"})
    assert not at_least_as_loose(a, other) and not at_least_as_loose(other, a)
    gap = load_scenario(merge(BASE, {"solver": {"mip_gap": 1e-3}}))
    assert not at_least_as_loose(load_scenario(BASE), gap)


def test_loose_first_order_is_the_same_rows():
    spec = parse_spec({"base": BASE, "grid": {"budget_musd": [900, 1600, 1200],
                                              "min_countries": [5, 3],
                                              "max_country_share": [0.3, 0.5]}})
    plain = {t.index: t.scenario for t in expand(spec)}
    loose = list(expand(spec, loose_first=True))
    assert {t.index: t.scenario for t in loose} == plain
    assert loose[0].scenario["budget_musd"] == 1600 and loose[0].scenario["min_countries"] == 3
    assert loose[0].scenario["max_country_share"] == 0.5
    assert loose[-1].scenario["budget_musd"] == 900 and loose[-1].scenario["min_countries"] == 5


def test_reused_rows_are_optimal_for_their_own_scenario(shipped):
    """A sweep where caps stop binding: many rows are answered from a looser row without a
    solve; each such answer meets its own limits and equals a fresh solve's optimum."""
    grid = {"budget_musd": [1400, 2200, 3000], "max_country_share": [0.35, 0.5, 0.7]}
    rows, _ = run({"base": BASE, "grid": grid}, shipped)
    reused = [r for r in rows if "reused_from" in r]
    assert len(reused) >= 3
    fresh = Optimizer(shipped)
    for r in reused:
        sc = load_scenario(r["scenario"])
        single = fresh.solve(sc)
        assert r["status"] == "optimal"
        assert r["objective"] == pytest.approx(single.objective, rel=1e-9)
        from optimizer.check import violations

        assert violations(shipped, sc, {p["project_id"]: p["stake"] for p in r["selected"]}) == []
        assert r["best_bound"] >= r["objective"] - 1e-9
        assert "answered without a solve" in r["solver"]["certification"][0]
    off, _ = run({"base": BASE, "grid": grid, "reuse": False}, shipped)
    assert not any("reused_from" in r for r in off)
    assert [r["objective"] for r in off] == pytest.approx([r["objective"] for r in rows],
                                                          rel=1e-9)
