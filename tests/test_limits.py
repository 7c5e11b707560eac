"""The table of scenario limits (``schema.LIMITS``) and everything that reads it.

Every scenario field is either a row of the table or a declared setting; for every limit, the
model holds its rows and slacks, the independent check catches a portfolio that breaks it,
binding names it when met exactly, a solve respects it (or diagnosis names it), batch re-use
orders it, and it has words. A new limit added to the Scenario but not to the table, or
handled by only some of these, fails here.

Then each side's offtake floor (``min_india_output_t``, ``min_us_output_t``), worked by hand on
the three-project table (conftest.TINY_ROWS, magnet outputs and ownership as in
tests/test_new_fields.py):

    A: 100 MUSD for 100 %, stake 0.5..1, NPV 40, 1,000 t TREO, India pays all
    B: 50 MUSD, stake 1, deal 10, NPV 30, 100 t Ta2O5, the US side pays all
    C: 200 MUSD, stake 0.1..0.3, deal 5, NPV 100, 3,000 t TREO, each side pays half

At budget 120 the NPV optimum is A at 0.55 + C at 0.3 (NPV 47): India is entitled to
1,000 x 0.55 + 0.5 x 3,000 x 0.3 = 1,000 t TREO, the US side to 0.5 x 3,000 x 0.3 = 450 t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optimizer import Optimizer, Scenario
from optimizer import limits as L
from optimizer.certify import _exact_stakes
from optimizer.check import violations
from optimizer.data import validate_projects
from optimizer.polish import polish_stakes
from optimizer.schema import LIMIT_BY_FIELD, LIMITS, PARTNERS, SETTING_FIELDS

from .conftest import magnet_rows, scenario

BASE = {"budget_musd": 120}
# a small sample for the limits read on draws (CONTRACT section 8): price and overrun spread
SAMPLE = {"draws": 40, "seed": 3, "fresh_draws": 0,
          "price": {"ree": {"dist": "lognormal", "sigma": 0.4},
                    "tantalum": {"dist": "lognormal", "sigma": 0.4}},
          "capex_overrun": {"dist": "lognormal", "median": 1.1, "sigma": 0.2},
          "output": {"dist": "lognormal", "sigma": 0.2}}
P = {"A": 0.55, "C": 0.3}  # the optimum of BASE, worked by hand above


@pytest.fixture(scope="module")
def opt() -> Optimizer:
    return Optimizer(validate_projects(magnet_rows()))


def test_every_scenario_field_is_a_limit_or_a_setting():
    fields = set(Scenario.model_fields)
    limits = {lim.field for lim in LIMITS}
    assert not limits & set(SETTING_FIELDS)
    assert fields == limits | set(SETTING_FIELDS), (
        f"in neither: {sorted(fields - limits - set(SETTING_FIELDS))}; "
        f"not a Scenario field: {sorted((limits | set(SETTING_FIELDS)) - fields)}")
    assert len(LIMIT_BY_FIELD) == len(LIMITS)


def test_the_unrestricted_optimum_is_the_hand_worked_one(opt):
    r = opt.solve(scenario(**BASE))
    assert {p.project_id: round(p.stake, 9) for p in r.selected} == P
    assert r.totals.india_output_t["ree"] == pytest.approx(1000.0)
    assert r.totals.us_output_t["ree"] == pytest.approx(450.0)
    assert r.totals.india_output_t["ndpr"] == pytest.approx(200 * 0.55 + 0.5 * 600 * 0.3)


def _tight(lim, opt) -> dict:
    """A value of ``lim`` that the hand-worked optimum P breaks, chosen from the table's kind
    and sense alone (so every limit is exercised the same way)."""
    data = opt.data
    sc = Scenario.model_validate(_base(lim))
    h = L.holding(data, P)
    chosen = [data.positions[p] for p in P]
    if lim.reads == "list":
        column = data.frame[lim.on]
        if lim.forces is not None:  # force in a project P leaves out
            return {lim.field: [p for p in data.ids if p not in P][:1]}
        if lim.field == "partners":  # an allow-list without one of P's lead partners
            return {lim.field: sorted(set(PARTNERS) - {column.iat[chosen[-1]]})}
        return {lim.field: [column.iat[chosen[-1]]]}  # an exclusion list naming one of P's
    key = {"year": 0, "product": "ree", "country": None, "": None}[lim.index]
    if lim.index == "country":  # the country that takes the largest share
        level = max(L.level(L.Entry(lim, k, None), h, sc) for k in data.country_codes[1])
    else:
        level = L.level(L.Entry(lim, key, None), h, sc)
    if lim.step == "level":
        value = level / 2
    elif lim.kind == "count":
        value = int(level) - 1 if lim.sense == "max" else int(level) + 1
    elif lim.unit == "share" and lim.sense == "min":  # a confidence: more draws than P holds
        assert level < 1, f"{lim.field}: P holds in every draw, nothing to tighten"
        value = min(1.0, level + max(0.05, (1 - level) / 2))
    else:
        value = level * 0.8 if lim.sense == "max" else level + max(1.0, 0.05 * abs(level))
    if lim.index == "year":
        return {lim.field: [value]}
    if lim.index == "product":
        return {lim.field: {key: value}}
    return {lim.field: value}


@pytest.mark.parametrize("field", sorted(Scenario.model_fields))
def test_every_consumer_handles_every_limit(opt, field):
    if field in SETTING_FIELDS:
        return  # not a limit: test_every_scenario_field_is_a_limit_or_a_setting
    lim = LIMIT_BY_FIELD[field]
    data = opt.data
    tight = scenario(**{**_base(lim), **_tight(lim, opt)})
    base = scenario(**_base(lim))

    # the model holds a slack per field path for numeric limits (its rows: after the solve)
    m = opt.built.model
    paths = [e.field_path for e in L.entries(tight, data) if e.limit is lim]
    assert paths, f"{field}: entries() does not see the value set"
    if lim.numeric:
        assert all(p in m.F for p in paths), f"{field}: no diagnosis slack for {paths}"

    # the independent check catches the optimum of the looser scenario
    broken = violations(data, tight, P)
    assert any(b.startswith(field) for b in broken), f"{field}: check says {broken}"

    # a solve respects it, or says why not; the model holds its rows (a sampled limit's in
    # the sample's block, built when first asked for)
    r = opt.solve(tight)
    holder = m.draws if lim.sampled else m
    for row in lim.rows:
        assert hasattr(holder, row), f"{field}: model has no component {row!r}"
    if r.status == "optimal":
        assert violations(data, tight, {p.project_id: p.stake for p in r.selected}) == []
        assert r.objective <= 47.0 + 1e-9
    else:
        assert r.status == "infeasible"
        assert any(c.startswith(field) for c in r.diagnosis.conflicts), r.diagnosis
        for fix in r.diagnosis.fixes:
            assert fix["change"] and "{" not in fix["change"]

    # binding: a numeric limit set exactly at P's level binds there
    if lim.kind != "filter":
        h = L.holding(data, P)
        levels = {e.path: L.level(e, h, tight) for e in L.entries(tight, data)
                  if e.limit is lim}
        at = max(levels.values()) if lim.sense == "max" else min(levels.values())
        exact = tight.model_copy(update={field: _same_shape(getattr(tight, field), at)})
        exact = Scenario.model_validate(exact.model_dump())
        assert any(b.field.startswith(field) for b in
                   opt.result_for(exact, P, status="optimal", bound=None,
                                  termination="test").binding), f"{field}: not binding"

    # the exact stake LP respects it (or says the chosen set cannot meet it); counts are the
    # chosen set's own business, not the stakes'
    if lim.numeric and lim.kind != "count":
        rows = sorted(data.positions[p] for p in P)
        if lim.sampled:  # on the session's model with the set fixed (the stake LP has no draws)
            chosen = np.isin(np.arange(data.n), rows)
            opt.session.apply(tight)
            got = _exact_stakes(opt.session, tight, chosen)
        else:
            stakes = polish_stakes(data, tight, rows)
            got = None if stakes is None else dict(
                zip([data.ids[i] for i in rows], stakes.tolist(), strict=True))
        if got is not None:
            assert not [b for b in violations(data, tight, got) if b.startswith(field)]

    # batch re-use: not setting it is looser, and the tight value is not
    loose = base if field != "budget_musd" else scenario(budget_musd=1e6)
    if lim.sampled:  # a different sample is a different question, never looser
        other = {**_base(lim), "uncertainty": {**SAMPLE, "seed": 4}}
        assert not L.at_least_as_loose(data, scenario(**other), tight)
    assert L.at_least_as_loose(data, loose, tight)
    assert not L.at_least_as_loose(data, tight, loose)
    if lim.reads != "list":
        path = paths[0]
        order = L.looseness_order(path, [1.0, 2.0])
        assert order == ([1, 0] if lim.sense == "max" else [0, 1]), (field, order)

    # words
    for p in paths:
        text = L.describe(tight, p)
        assert text and "{" not in text, (field, text)
    assert "{" not in L.label(lim, 0 if lim.index == "year" else "ree")


def _base(lim) -> dict:
    """The scenario a limit is tightened on: with a sample when the limit reads one (and the
    output floor a floor confidence is about)."""
    if not lim.sampled:
        return dict(BASE)
    # P's own TREO at face value: met at face value, missed in the draws with less output
    extra = {"min_output_t": {"ree": 1450}} if lim.reads == "floors_met" else {}
    return {**BASE, "uncertainty": SAMPLE, **extra}


def _same_shape(v, x):
    """``x`` in the shape of the field's value (a list of years, a product map)."""
    if isinstance(v, list):
        return [x]
    if isinstance(v, dict):
        return {k: x for k in v}
    return int(round(x)) if isinstance(v, int) else x


# ---------------------------------------------------------------------------------------------
# each side's offtake floor, by hand
# ---------------------------------------------------------------------------------------------


def test_us_floor_at_its_maximum_binds(opt):
    """US TREO comes only from C (half of 3,000 t x at most 0.3 = 450): a floor of 450 keeps
    the optimum and binds; 451 cannot be met, and diagnosis says 450 is the most."""
    r = opt.solve(scenario(**BASE, min_us_output_t={"ree": 450}))
    assert r.objective == pytest.approx(47.0, rel=1e-9)
    assert "min_us_output_t.ree" in {b.field for b in r.binding}
    bad = opt.solve(scenario(**BASE, min_us_output_t={"ree": 451}))
    assert bad.status == "infeasible"
    assert bad.diagnosis.conflicts == ["min_us_output_t.ree"]
    fix = {f["field"]: f for f in bad.diagnosis.fixes}["min_us_output_t.ree"]
    assert fix["to"] == pytest.approx(450.0, abs=1e-3)
    assert "cannot reach 451: at most 450" in fix["change"]


def test_india_floor_moves_money_to_the_kabil_led_project(opt):
    """India needs 1,050 t: 1,000 s + 1,500 t >= 1,050 with 100 s + 200 t + 5 <= 120, so
    s = 1.15 - 2 t and 1,150 - 500 t >= 1,050, t <= 0.2; NPV 40 s + 100 t - 5 = 41 + 20 t is
    best at t = 0.2, s = 0.75: NPV 45, budget and floor both binding."""
    r = opt.solve(scenario(**BASE, min_india_output_t={"ree": 1050}))
    assert r.status == "optimal"
    assert {p.project_id: p.stake for p in r.selected} == pytest.approx({"A": 0.75, "C": 0.2})
    assert r.objective == pytest.approx(45.0, rel=1e-9)
    assert {b.field for b in r.binding} >= {"budget_musd", "min_india_output_t.ree"}
    assert r.totals.india_output_t["ree"] == pytest.approx(1050.0)


def test_india_floor_out_of_reach_names_budget_and_floor(opt):
    """1,200 t: the most India can hold at 120 is A at 0.95 + C at 0.1 = 1,100 t; reaching
    1,200 cheapest takes A whole (1,000 t for 100) and C at 200/1,500 (26.67 + 5): 131.667."""
    r = opt.solve(scenario(**BASE, min_india_output_t={"ree": 1200}))
    assert r.status == "infeasible"
    assert sorted(r.diagnosis.conflicts) == ["budget_musd", "min_india_output_t.ree"]
    fixes = {f["field"]: f for f in r.diagnosis.fixes}
    assert fixes["budget_musd"]["to"] == pytest.approx(100 + 200 * 200 / 1500 + 5, abs=1e-3)
    assert fixes["min_india_output_t.ree"]["to"] == pytest.approx(1100.0, abs=1e-3)
    assert "KABIL's offtake entitlement of rare earths cannot reach 1,200: at most 1,100" \
        in fixes["min_india_output_t.ree"]["change"]
    assert "a KABIL entitlement of at least 1,200 t/y of TREO" in r.diagnosis.message


def test_side_floors_apart_from_the_total(opt):
    """The whole portfolio's 1,450 t meets a total floor of 1,100, but India alone holds
    1,000 of it: the side floor is what bites, and it is not the total's."""
    total = opt.solve(scenario(**BASE, min_output_t={"ree": 1100}))
    side = opt.solve(scenario(**BASE, min_india_output_t={"ree": 1100}))
    assert total.objective == pytest.approx(47.0, rel=1e-9)
    assert side.objective < 47.0 - 1e-6
    assert side.totals.india_output_t["ree"] >= 1100 - 1e-6
    assert math.isclose(side.totals.india_output_t["ree"] + side.totals.us_output_t["ree"],
                        side.totals.output_t["ree"], rel_tol=1e-9)
