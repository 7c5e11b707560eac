"""Infeasibility diagnoses name the right scenario fields, and their claims hold."""

from __future__ import annotations

import pytest

from optimizer import Scenario

from .conftest import scenario


def assert_claims(opt, sc: Scenario, result) -> None:
    """Relaxing all named fields restores feasibility; each stated fix does too."""
    dropped = sc.model_dump()
    for f in result.diagnosis.conflicts:
        head, _, tail = f.partition(".")
        if head == "min_output_t":
            dropped["min_output_t"].pop(tail)
        elif head == "annual_budget_musd":
            dropped["annual_budget_musd"][int(tail)] = None
        elif head == "budget_musd":
            dropped["budget_musd"] = 1e6  # the largest budget a scenario may state
        else:
            dropped[head] = [] if isinstance(dropped[head], list) else None
    assert opt.solve(Scenario.model_validate(dropped)).status == "optimal"
    for fix in result.diagnosis.fixes:
        fixed = sc.model_dump()
        head, _, tail = fix["field"].partition(".")
        if "drop" in fix:
            fixed[head] = [v for v in fixed[head] if v not in fix["drop"]]
        elif head == "min_output_t":
            fixed[head][tail] = fix["to"]
        elif head == "annual_budget_musd":
            fixed[head][int(tail)] = fix["to"]
        else:
            fixed[head] = fix["to"]
        assert opt.solve(Scenario.model_validate(fixed)).status == "optimal", fix


@pytest.mark.parametrize(
    ("fields", "conflicts"),
    [
        # tantalum only from B (100 t at stake 1, cost 60)
        (dict(budget_musd=50, min_output_t={"tantalum": 50}), ["budget_musd",
                                                               "min_output_t.tantalum"]),
        (dict(budget_musd=500, min_output_t={"tantalum": 150}), ["min_output_t.tantalum"]),
        (dict(budget_musd=500, kabil_budget_musd=10, min_output_t={"ree": 1500}),
         ["kabil_budget_musd", "min_output_t.ree"]),
        (dict(budget_musd=500, annual_budget_musd=[10, 500], min_output_t={"ree": 1500}),
         ["annual_budget_musd.0", "min_output_t.ree"]),
        (dict(budget_musd=500, include_projects=["B"], exclude_countries=["BR"]),
         ["include_projects", "exclude_countries"]),
        (dict(budget_musd=500, include_projects=["A", "B"], max_projects=1),
         ["max_projects", "include_projects"]),
        (dict(budget_musd=500, include_projects=["C"], max_china_processing_share=0.2,
              max_projects=1), ["max_projects", "max_china_processing_share",
                                "include_projects"]),
        (dict(budget_musd=500, min_countries=2, max_country_share=0.3),
         ["max_country_share", "min_countries"]),
        (dict(budget_musd=500, min_output_t={"ree": 1000}, max_avg_risk=2),
         ["min_output_t.ree", "max_avg_risk"]),
    ],
)
def test_conflicts_named(tiny_opt, fields, conflicts):
    sc = scenario(**fields)
    r = tiny_opt.solve(sc)
    assert r.status == "infeasible"
    assert sorted(r.diagnosis.conflicts) == sorted(conflicts)
    assert r.diagnosis.complete
    for c in conflicts:
        assert c in r.diagnosis.message
    assert_claims(tiny_opt, sc, r)


def test_two_independent_conflicts_are_both_named(tiny_opt):
    """Tantalum needs B (60 MUSD) but the budget is 50; separately B is excluded. Both the
    budget/tantalum clash and the exclusion must be relaxed: every field involved is named."""
    sc = scenario(budget_musd=50, min_output_t={"tantalum": 50}, exclude_projects=["B"])
    r = tiny_opt.solve(sc)
    assert r.status == "infeasible"
    assert set(r.diagnosis.conflicts) >= {"min_output_t.tantalum", "exclude_projects"}
    assert_claims(tiny_opt, sc, r)


def test_message_reads_as_words(tiny_opt):
    r = tiny_opt.solve(scenario(budget_musd=50, min_output_t={"tantalum": 50}))
    msg = r.diagnosis.message
    assert "a total budget of 50 MUSD" in msg
    assert "at least 50 t/y of Ta2O5" in msg
    assert "raise budget_musd from 50 to 60 MUSD" in msg
