"""The batched hand-over (highs_backend.FastHighs) gives HiGHS exactly the LP Pyomo's stock
interface gives it, at build time and after a scenario moves every mutable parameter."""

from __future__ import annotations

import numpy as np
import pytest
from pyomo.contrib.solver.solvers.highs import Highs

from optimizer.data import validate_projects
from optimizer.highs_backend import FastHighs as _Highs
from optimizer.model import apply_scenario, build_model
from optimizer.synthetic import synthetic_projects, synthetic_scenario


def canonical_lp(solver) -> dict:
    """The LP in HiGHS, keyed by Pyomo names so column order does not matter."""
    lp = solver._solver_model.getLp()
    cols = {i: solver._vars[vid][0].name for vid, i in solver._pyomo_var_to_solver_var_map.items()}
    rows = {i: con.name for con, i in solver._pyomo_con_to_solver_con_map.items()}
    a = lp.a_matrix_
    start, index, value = np.array(a.start_), np.array(a.index_), np.array(a.value_)
    entries: dict = {}
    colwise = len(start) == lp.num_col_ + 1
    for outer in range(len(start) - 1):
        for k in range(start[outer], start[outer + 1]):
            r, c = (index[k], outer) if colwise else (outer, index[k])
            if value[k] != 0.0:
                entries[(rows[r], cols[c])] = round(float(value[k]), 12)
    integrality = list(lp.integrality_) or [None] * lp.num_col_
    # a column in no row, fixed at 0 and costing nothing changes nothing: the fast path
    # registers a block's variables at once (e.g. the slacks of the limits read on a sample,
    # whose rows come with a sample), the stock path only those a row or objective names
    used = {c for (_, c) in entries}
    return {
        "entries": entries,
        "rows": {rows[r]: (lp.row_lower_[r], lp.row_upper_[r]) for r in range(lp.num_row_)},
        "cols": {cols[c]: (lp.col_lower_[c], lp.col_upper_[c], lp.col_cost_[c],
                           str(integrality[c])) for c in range(lp.num_col_)
                 if cols[c] in used or lp.col_cost_[c] != 0.0
                 or (lp.col_lower_[c], lp.col_upper_[c]) != (0.0, 0.0)},
        "sense": str(lp.sense_),
    }


def test_fast_handover_equals_stock_interface():
    df = synthetic_projects(300, seed=5)
    data = validate_projects(df)
    first = synthetic_scenario(df)
    second = synthetic_scenario(df, budget_musd=first.budget_musd / 2, max_country_share=0.5,
                                max_avg_risk=None, min_countries=5, objective="supply",
                                supply_weights={"ree": 2.0, "tantalum": 7.0},
                                exclude_projects=["P00003"], include_projects=["P00007"])
    lps = []
    for cls in (Highs, _Highs):
        built = build_model(data)
        apply_scenario(built, first)
        solver = cls()
        solver.set_instance(built.model)
        a = canonical_lp(solver)
        apply_scenario(built, second)
        solver.update()
        lps.append((a, canonical_lp(solver)))
    (stock_a, stock_b), (fast_a, fast_b) = lps
    assert fast_a == stock_a
    assert fast_b == stock_b
    assert fast_a != fast_b  # the second scenario really moved numbers


def test_monte_carlo_model_moves_coefficients_in_place():
    """Built with mutable data, a perturbed table's numbers reach HiGHS by parameter updates:
    the LP after apply_data equals the LP of a model built plainly on the perturbed table."""
    from optimizer.batch.draws import make_draw, perturb
    from optimizer.batch.spec import MonteCarloSpec
    from optimizer.model import apply_data

    df = synthetic_projects(120, seed=9)
    data = validate_projects(df)
    sc = synthetic_scenario(df)
    mc = MonteCarloSpec.model_validate({
        "draws": 1, "seed": 4, "price": {"ree": {"dist": "lognormal", "sigma": 0.4}},
        "capex_overrun": {"dist": "lognormal", "sigma": 0.2},
        "output": {"dist": "lognormal", "sigma": 0.2}})
    drawn = perturb(data, make_draw(mc, data, 0))
    mutable = build_model(data, mutable_data=True)
    apply_scenario(mutable, sc)
    moved = _Highs()
    moved.set_instance(mutable.model)
    before = canonical_lp(moved)
    apply_data(mutable, drawn)
    moved.update()
    plain = build_model(validate_projects(df.assign(
        equity_value_musd=drawn.col("equity_value_musd"), npv_musd=drawn.col("npv_musd"),
        **{c: drawn.col(c) for c in ("output_tantalum_t", "output_niobium_t", "output_ree_t",
                                     "output_ndpr_t", "output_dytb_t")})))
    apply_scenario(plain, sc)
    fresh = _Highs()
    fresh.set_instance(plain.model)
    after, expected = canonical_lp(moved), canonical_lp(fresh)
    assert after != before

    def same(x, y) -> bool:
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, tuple):
            return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y, strict=True))
        if isinstance(x, float):
            return x == pytest.approx(y, rel=1e-9, abs=1e-12)
        return x == y

    assert same(after, expected)
