"""Magnet rare earths (NdPr, Dy+Tb), lead partners and Chinese ownership, on the hand-worked
three-project table of ``conftest.TINY_ROWS`` with these columns added:

    A: NdPr 200, Dy+Tb 20 t/y (of its 1,000 TREO), KABIL-led, no Chinese ownership
    B: no rare earths, US-led, no Chinese ownership
    C: NdPr 600, Dy+Tb 10 t/y (of 3,000 TREO), JOINT, 60 % Chinese-owned

At budget 120 the NPV optimum is A (s = 0.55) + C (t = 0.3): 22 + 30 - 5 = 47. Without C the
best is A (s = 0.6) + B: 24 + 20 = 44 (A alone 40, B alone 20).
"""

from __future__ import annotations

import pytest

from optimizer import Optimizer
from optimizer.check import violations
from optimizer.data import validate_projects

from .conftest import magnet_rows, scenario


@pytest.fixture(scope="module")
def opt() -> Optimizer:
    return Optimizer(validate_projects(magnet_rows()))


def chosen(r) -> dict[str, float]:
    return {p.project_id: round(p.stake, 9) for p in r.selected}


def test_unrestricted_optimum(opt):
    r = opt.solve(scenario(budget_musd=120))
    assert r.objective == pytest.approx(47.0, rel=1e-9)
    assert chosen(r) == {"A": 0.55, "C": 0.3}
    assert r.totals.output_t["ndpr"] == pytest.approx(0.55 * 200 + 0.3 * 600)
    assert r.totals.output_t["dytb"] == pytest.approx(0.55 * 20 + 0.3 * 10)


@pytest.mark.parametrize("fields", [{"partners": ["KABIL", "US"]},
                                    {"max_chinese_ownership": 0.5},
                                    {"max_chinese_ownership": 0.0}])
def test_partners_and_chinese_ownership_forbid_c(opt, fields):
    sc = scenario(budget_musd=120, **fields)
    r = opt.solve(sc)
    assert r.objective == pytest.approx(44.0, rel=1e-9)
    assert chosen(r) == {"A": 0.6, "B": 1.0}
    assert violations(opt.data, sc, {p.project_id: p.stake for p in r.selected}) == []


def test_ownership_at_the_cap_is_allowed(opt):
    """'exceeds' is strict: 0.6 owned under a 0.6 cap may be chosen."""
    assert opt.solve(scenario(budget_musd=120, max_chinese_ownership=0.6)).objective == \
        pytest.approx(47.0, rel=1e-9)


def test_ndpr_supply_objective(opt):
    """Maximise NdPr alone: C to 0.3 (180 t, 65 MUSD), then A to 0.55 (110 t): 290 t."""
    r = opt.solve(scenario(budget_musd=120, objective="supply",
                           supply_weights={"ndpr": 1, "tantalum": 0, "niobium": 0, "ree": 0}))
    assert r.objective == pytest.approx(290.0, rel=1e-9)


def test_magnet_weights_default_to_zero(opt):
    """TREO already counts NdPr and Dy+Tb: by default the supply objective is TREO + Ta + Nb."""
    r = opt.solve(scenario(budget_musd=120, objective="supply"))
    o = r.totals.output_t
    assert r.objective == pytest.approx(o["tantalum"] + o["niobium"] + o["ree"], rel=1e-12)


def test_ndpr_floor_infeasible_with_exact_fixes(opt):
    """350 t NdPr at 120 MUSD: at most 290 t fit. The cheapest 350 t costs 150 MUSD
    (C to 0.3: 180 t for 65; A to 0.85: 170 t for 85)."""
    r = opt.solve(scenario(budget_musd=120, min_output_t={"ndpr": 350}))
    assert r.status == "infeasible"
    assert set(r.diagnosis.conflicts) == {"budget_musd", "min_output_t.ndpr"}
    fixes = {f["field"]: f["to"] for f in r.diagnosis.fixes}
    assert fixes["budget_musd"] == pytest.approx(150.0, abs=1e-3)
    assert fixes["min_output_t.ndpr"] == pytest.approx(290.0, abs=1e-3)
    assert "t/y of NdPr oxide" in r.diagnosis.message


def test_partners_in_diagnosis(opt):
    """US-led deals only (B: tantalum) cannot give 500 t TREO; allowing KABIL (A) or JOINT
    (C) fixes it."""
    r = opt.solve(scenario(budget_musd=300, partners=["US"], min_output_t={"ree": 500}))
    assert r.status == "infeasible"
    assert set(r.diagnosis.conflicts) == {"partners", "min_output_t.ree"}
    fix = next(f for f in r.diagnosis.fixes if f["field"] == "partners")
    assert fix["drop"] in (["KABIL"], ["JOINT"])
    assert "only deals led by US" in r.diagnosis.message


def test_chinese_ownership_in_diagnosis(opt):
    """1,500 t TREO needs C (A gives at most 1,000): the least cap that allows it is 0.6."""
    r = opt.solve(scenario(budget_musd=1000, max_chinese_ownership=0.1,
                           min_output_t={"ree": 1500}))
    assert r.status == "infeasible"
    assert set(r.diagnosis.conflicts) == {"max_chinese_ownership", "min_output_t.ree"}
    fix = next(f for f in r.diagnosis.fixes if f["field"] == "max_chinese_ownership")
    assert fix["to"] == pytest.approx(0.6)
    assert "Chinese-owned" in r.diagnosis.message
