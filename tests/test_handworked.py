"""Small cases whose optimum was derived on paper (see the table in tests/conftest.py).

Each docstring carries the working, so a reader can check the expected numbers by hand.
Every case runs twice: through the fast hand-over to HiGHS and through Pyomo's stock one
(``Optimizer(backend="stock")``), so a Pyomo upgrade that changes what the fast path relies on
shows up here as a disagreement with the paper, not as a wrong answer.
"""

from __future__ import annotations

import pytest

from optimizer import Optimizer
from optimizer.check import violations
from optimizer.data import validate_projects

from .conftest import TINY_ROWS, scenario


@pytest.fixture(scope="module", params=["fast", "stock"])
def tiny_opt(request) -> Optimizer:
    """The hand-worked table on each hand-over path (one persistent model per path)."""
    import pandas as pd

    return Optimizer(validate_projects(pd.DataFrame(TINY_ROWS)), backend=request.param)


def stakes(result) -> dict[str, float]:
    return {p.project_id: p.stake for p in result.selected}


def solve(opt: Optimizer, **fields):
    sc = scenario(**fields)
    r = opt.solve(sc)
    assert r.status in ("optimal", "infeasible"), r.status
    if r.status == "optimal":
        assert violations(opt.data, sc, stakes(r)) == []
    return r


def test_fixed_cost_beats_greedy(tiny_opt):
    """Budget 100. C has the best marginal value (0.5/MUSD) but a fixed cost; A+C gives at
    best s=0.5, t=0.225: 20 + 22.5 - 5 = 37.5; A alone at s=1 gives 40; A+B costs >= 110.
    Optimum: A at 100 %, objective 40."""
    r = solve(tiny_opt, budget_musd=100)
    assert r.status == "optimal"
    assert r.objective == pytest.approx(40.0, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 1.0})
    assert r.totals.cost_musd == pytest.approx(100.0)


def test_budget_120_mixes_stakes(tiny_opt):
    """Budget 120. A+C: C first (0.5/MUSD > 0.4): t=0.3 costs 65, A gets 55 -> s=0.55:
    22 + 30 - 5 = 47. A+B: s=0.6 -> 44. B+C: t=0.275 -> 42.5. Optimum 47."""
    r = solve(tiny_opt, budget_musd=120)
    assert r.objective == pytest.approx(47.0, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.55, "C": 0.3})
    assert r.totals.cost_musd == pytest.approx(120.0)
    assert r.totals.kabil_musd == pytest.approx(55 + 0.5 * 65)
    assert r.totals.us_musd == pytest.approx(0.5 * 65)
    assert r.totals.output_t["ree"] == pytest.approx(550 + 900)
    assert "budget_musd" in [b.field for b in r.binding]


def test_country_share(tiny_opt):
    """Budget 120, max_country_share 0.6: every single-project portfolio is 100 % one country.
    A+C is two countries but A (55) is 46 %, C (65) 54 %: allowed! So 47 stays optimal.
    With 0.5 instead, A+C needs 100 s <= 0.5 (100 s + 200 t + 5) and vice versa: 100s = 200t+5
    and 200 s + 5 = 120 -> s = 0.575... check: A+C at equal spend 60/60: s = 0.6, t = 0.275:
    24 + 27.5 - 5 = 46.5. A+B at 0.5: 100 s <= 60 -> s = 0.6 -> 44. Optimum 46.5."""
    r = solve(tiny_opt, budget_musd=120, max_country_share=0.6)
    assert r.objective == pytest.approx(47.0, abs=1e-6)
    r = solve(tiny_opt, budget_musd=120, max_country_share=0.5)
    assert r.objective == pytest.approx(46.5, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.6, "C": 0.275})


def test_supply_objective(tiny_opt):
    """Supply, weights ree 1 / tantalum 10, budget 120: B+C: t = 0.275 -> 1000 + 825 = 1825;
    A+B: 600 + 1000 = 1600; A+C: 1450. Optimum 1825."""
    r = solve(tiny_opt, budget_musd=120, objective="supply",
              supply_weights={"ree": 1, "tantalum": 10, "niobium": 0})
    assert r.objective == pytest.approx(1825.0, rel=1e-9)  # the exactness of CONTRACT: 1e-9
    assert stakes(r) == pytest.approx({"B": 1.0, "C": 0.275})


def test_kabil_budget(tiny_opt):
    """Budget 120, KABIL cap 60: A+C needs KABIL 50 + 0.5 (200 t + 5) <= 60 -> t <= 0.075 < 0.1,
    impossible. A+B: s <= 0.6 -> 44 (KABIL pays 60 exactly). Optimum 44."""
    r = solve(tiny_opt, budget_musd=120, kabil_budget_musd=60)
    assert r.objective == pytest.approx(44.0, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.6, "B": 1.0})
    assert r.totals.kabil_musd == pytest.approx(60.0)


def test_us_budget(tiny_opt):
    """Budget 120, US cap 30: B alone costs the US 60; C's US half is 0.5 (200 t + 5) <= 30
    -> t <= 0.275. A+C at s = 0.55, t = 0.275 -> 22 + 27.5 - 5 = 44.5 but budget allows
    s = 0.6 (60 + 60 = 120): 24 + 27.5 - 5 = 46.5."""
    r = solve(tiny_opt, budget_musd=120, us_budget_musd=30)
    assert r.objective == pytest.approx(46.5, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.6, "C": 0.275})


def test_annual_budget(tiny_opt):
    """A pays in year 1, B half/half, C in year 2. Year-1 cap 50, budget 120: A+B needs
    100 s + 30 <= 50 -> s <= 0.2 < 0.5. A+C: s = 0.5, t = 0.3 -> 45. B+C: 42.5. Optimum 45."""
    r = solve(tiny_opt, budget_musd=120, annual_budget_musd=[50, None])
    assert r.objective == pytest.approx(45.0, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.5, "C": 0.3})
    assert r.totals.annual_musd == pytest.approx([50.0, 65.0])


def test_avg_risk(tiny_opt):
    """Risk A 8, B 2, C 5; cap 5. With A and C: 800 s + 1000 t + 25 <= 500 s + 1000 t + 25
    forces s = 0: A+C impossible. A+B: 800 s + 120 <= 500 s + 300 -> s <= 0.6 -> 44."""
    r = solve(tiny_opt, budget_musd=120, max_avg_risk=5)
    assert r.objective == pytest.approx(44.0, abs=1e-6)
    assert r.totals.avg_risk == pytest.approx(5.0)


def test_china_processing_share_zero(tiny_opt):
    """C depends on Chinese processing; share 0 removes it: A+B at s = 0.6 -> 44."""
    r = solve(tiny_opt, budget_musd=120, max_china_processing_share=0)
    assert r.objective == pytest.approx(44.0, abs=1e-6)
    assert "C" not in stakes(r)


def test_max_projects_and_min_countries(tiny_opt):
    """max_projects 1, budget 120: A alone (40) beats C alone (25) and B (20).
    min_countries 3 needs A+B+C: at least 50 + 60 + 25 = 135 > 120: infeasible."""
    r = solve(tiny_opt, budget_musd=120, max_projects=1)
    assert r.objective == pytest.approx(40.0, abs=1e-6)
    r = solve(tiny_opt, budget_musd=120, min_countries=3)
    assert r.status == "infeasible"
    assert sorted(r.diagnosis.conflicts) == ["budget_musd", "min_countries"]
    fixes = {f["field"]: f for f in r.diagnosis.fixes}
    assert fixes["budget_musd"]["to"] == pytest.approx(135.0, abs=1e-3)
    assert fixes["min_countries"]["to"] == 2


def test_include_and_exclude(tiny_opt):
    """Budget 100 with C forced: A+C at s = 0.5, t = 0.225 -> 37.5 (B+C: 32.5).
    Excluding country MW (A) with budget 120: B+C at t = 0.275 -> 42.5."""
    r = solve(tiny_opt, budget_musd=100, include_projects=["C"])
    assert r.objective == pytest.approx(37.5, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.5, "C": 0.225})
    r = solve(tiny_opt, budget_musd=120, exclude_countries=["MW"])
    assert r.objective == pytest.approx(42.5, abs=1e-6)
    r = solve(tiny_opt, budget_musd=120, exclude_projects=["A", "C"])
    assert r.objective == pytest.approx(20.0, abs=1e-6)


def test_min_output(tiny_opt):
    """Budget 120, REE floor 1500 t: A+C gives 1000 s + 3000 t; the 47 solution gives 1450 <
    1500. With 100 s + 200 t = 115, maximise 40 s + 100 t s.t. 1000 s + 3000 t >= 1500:
    t = 0.3 -> s = 0.55 -> 1450; lower t raises A's share but A yields 10 t/MUSD vs C's 15:
    the floor cannot be met by A+C (max REE at budget is 1450). B has no REE. A alone at s = 1
    gives 1000; C alone 900. So a floor of 1500 is infeasible; 1450 is met exactly."""
    r = solve(tiny_opt, budget_musd=120, min_output_t={"ree": 1450})
    assert r.objective == pytest.approx(47.0, abs=1e-6)
    r = solve(tiny_opt, budget_musd=120, min_output_t={"ree": 1500})
    assert r.status == "infeasible"
    assert sorted(r.diagnosis.conflicts) == ["budget_musd", "min_output_t.ree"]
    fixes = {f["field"]: f for f in r.diagnosis.fixes}
    assert fixes["min_output_t.ree"]["to"] == pytest.approx(1450.0, abs=1e-2)
    # budget for 1500 t: REE per MUSD is best from C (t = 0.3: 900 t for 65) then A (10 t/MUSD):
    # 600 t more from A -> s = 0.6 -> 60 + 65 = 125 MUSD.
    assert fixes["budget_musd"]["to"] == pytest.approx(125.0, abs=1e-2)


def test_exclusive_group_and_requires(tiny_frame):
    """Group {A, C}: A+C forbidden, so budget 120 gives A+B at s = 0.6 -> 44.
    Instead C requires B: A+C forbidden (no B), A+B 44 vs B+C 42.5 -> 44; with budget 200,
    A+B+C: 100 s + 60 + 200 t + 5 <= 200, C first: t = 0.3 -> s = 0.75 -> 30 + 20 + 25 = 75."""
    f = tiny_frame.copy()
    f["exclusive_group"] = ["g", None, "g"]
    opt = Optimizer(validate_projects(f))
    assert opt.solve(scenario(budget_musd=120)).objective == pytest.approx(44.0, abs=1e-6)
    f = tiny_frame.copy()
    f["requires"] = [None, None, "B"]
    opt = Optimizer(validate_projects(f))
    assert opt.solve(scenario(budget_musd=120)).objective == pytest.approx(44.0, abs=1e-6)
    r = opt.solve(scenario(budget_musd=200))
    assert r.objective == pytest.approx(75.0, abs=1e-6)
    assert stakes(r) == pytest.approx({"A": 0.75, "B": 1.0, "C": 0.3})


def test_nothing_affordable_is_an_empty_optimum(tiny_opt):
    """Budget 1 MUSD buys nothing (cheapest entry is C at 25): back nothing, objective 0."""
    r = solve(tiny_opt, budget_musd=1)
    assert r.status == "optimal"
    assert r.selected == [] and r.objective == pytest.approx(0.0)
    assert r.totals.avg_risk is None


def test_reused_model_forgets_previous_scenario(tiny_opt):
    """Re-solving on one built model must not leak bounds from the last scenario."""
    a = solve(tiny_opt, budget_musd=120, exclude_projects=["A"], max_projects=1,
              min_output_t={"ree": 100}, max_country_share=0.9)
    b = solve(tiny_opt, budget_musd=120)
    fresh = Optimizer(tiny_opt.data).solve(scenario(budget_musd=120))
    assert a.objective != b.objective
    assert b.objective == pytest.approx(fresh.objective, abs=1e-9)
    assert stakes(b) == pytest.approx(stakes(fresh))
