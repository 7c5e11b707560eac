"""Every kind of bad input is rejected before building, with the row/field named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from optimizer import InputError, Optimizer, load_projects, load_scenario
from optimizer.data import validate_projects

from .conftest import TINY_ROWS, scenario


def rejects(frame: pd.DataFrame) -> InputError:
    with pytest.raises(InputError) as info:
        validate_projects(frame)
    return info.value


def with_cell(row: int, column: str, value) -> pd.DataFrame:
    f = pd.DataFrame(TINY_ROWS)
    f[column] = f[column].astype(object) if column in f else None
    f.at[row, column] = value
    return f


@pytest.mark.parametrize(
    ("row", "column", "value", "words"),
    [
        (1, "india_share", 1.5, "out of range"),
        (0, "india_share", -0.1, "out of range"),
        (2, "equity_value_musd", 0, "out of range"),
        (1, "min_stake", 0, "out of range"),
        (0, "max_stake", 1.2, "out of range"),
        (1, "deal_cost_musd", -1, "out of range"),
        (2, "risk_score", 11, "out of range"),
        (0, "risk_score", 0.5, "out of range"),
        (1, "output_ree_t", -3, "out of range"),
        (0, "mineral", "lithium", "unknown mineral"),
        (0, "partner", "CN", "must be one of"),
        (2, "country", "Tanzania", "ISO 3166-1"),
        (1, "project_id", "has space", "must match"),
        (1, "name", "", "missing value"),
        (2, "npv_musd", "", "missing value"),
        (0, "npv_musd", "ten", "not a number"),
        (0, "npv_musd", float("nan"), "missing value"),
        (0, "npv_musd", "nan", "must be a finite number"),
        (1, "equity_value_musd", float("inf"), "must be a finite number"),
        (1, "equity_value_musd", "-inf", "must be a finite number"),
        (2, "china_processing", "maybe", "true or false"),
        (0, "requires", "NOPE", "unknown project 'NOPE'"),
        (0, "requires", "A", "cannot require itself"),
        (0, "first_production_year", 2030.5, "whole number"),
        (1, "as_of", "2024-02-30", "YYYY-MM"),
        (1, "as_of", "2024-13", "YYYY-MM"),
        (2, "as_of", "March 2024", "YYYY-MM"),
        (0, "study_level", "feasibility", "`pfs`"),
    ],
)
def test_bad_cell_names_row_and_column(row, column, value, words):
    err = rejects(with_cell(row, column, value))
    assert len(err.problems) == 1, err
    p = err.problems[0]
    assert p.loc == ("projects", row, column)
    assert f"row {row + 1}" in p.msg and repr(column) in p.msg and words in p.msg


def test_as_of_and_study_level():
    """Dates are read as given; a study level is case-folded and defaults to `estimate`."""
    f = with_cell(0, "as_of", "2024-11")
    f["study_level"] = ["PFS", "", "producing"]
    f.loc[1, "as_of"] = "2025-02-28"
    data = validate_projects(f)
    assert [r["as_of"] for r in data.records()] == ["2024-11", "2025-02-28", None]
    assert data.frame["study_level"].tolist() == ["pfs", "estimate", "producing"]


def test_min_above_max():
    f = pd.DataFrame(TINY_ROWS)
    f.loc[0, ["min_stake", "max_stake"]] = [0.8, 0.6]
    err = rejects(f)
    assert "min_stake is greater than max_stake" in str(err)
    assert err.problems[0].loc == ("projects", 0, "min_stake")


def test_duplicate_and_missing_ids():
    f = pd.DataFrame(TINY_ROWS)
    f.loc[2, "project_id"] = "A"
    err = rejects(f)
    assert err.problems[0].msg.startswith("row 3 (project_id 'A'), column 'project_id': duplicate")


def test_missing_and_unknown_columns():
    f = pd.DataFrame(TINY_ROWS).drop(columns=["npv_musd"]).rename(
        columns={"risk_score": "risk_scor"})
    err = rejects(f)
    msgs = [p.msg for p in err.problems]
    assert "missing required column 'npv_musd'" in msgs
    assert "missing required column 'risk_score'" in msgs
    assert any("unknown column 'risk_scor'" in m and "risk_score" in m for m in msgs)


def test_spend_shares_must_sum_to_one():
    f = pd.DataFrame(TINY_ROWS)
    f.loc[1, "spend_share_2"] = 0.6
    err = rejects(f)
    assert "sum to 1" in str(err) and err.problems[0].loc[1] == 1
    gap = pd.DataFrame(TINY_ROWS).rename(columns={"spend_share_2": "spend_share_3"})
    assert "no gaps" in str(rejects(gap))


def test_all_problems_reported_together():
    f = pd.DataFrame(TINY_ROWS)
    f["india_share"] = [2.0, -1.0, 0.5]
    f.loc[2, "mineral"] = "gold"
    err = rejects(f)
    assert len(err.problems) == 3
    assert {p.loc for p in err.problems} == {("projects", 0, "india_share"),
                                             ("projects", 1, "india_share"),
                                             ("projects", 2, "mineral")}


def test_empty_table_and_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="no rows"):
        validate_projects(pd.DataFrame(columns=list(TINY_ROWS[0])))
    with pytest.raises(InputError, match="does not exist"):
        load_projects(tmp_path / "nope.csv")


def test_same_rows_same_hash_whatever_the_form(tmp_path):
    f = pd.DataFrame(TINY_ROWS)
    path = tmp_path / "p.csv"
    f.to_csv(path, index=False)
    a = load_projects(path)
    b = load_projects(TINY_ROWS)
    c = validate_projects(f)
    assert a.sha256 == b.sha256 == c.sha256
    f.loc[0, "npv_musd"] = 41
    assert validate_projects(f).sha256 != a.sha256


def test_case_and_whitespace_are_normalised(tmp_path):
    f = pd.DataFrame(TINY_ROWS)
    f.loc[0, "mineral"] = " REE"
    f.loc[1, "country"] = "br"
    d = validate_projects(f)
    assert d.frame.loc[0, "mineral"] == "ree" and d.frame.loc[1, "country"] == "BR"


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"budget_musd": 100, "budget": 5}, "budget", "unknown field"),
        ({"budget_musd": 100, "max_country_shares": 0.3}, "max_country_shares",
         "did you mean 'max_country_share'"),
        ({}, "budget_musd", "required field is missing"),
        ({"budget_musd": -5}, "budget_musd", "greater than 0"),
        ({"budget_musd": float("inf")}, "budget_musd", "finite"),
        ({"budget_musd": float("nan")}, "budget_musd", "finite"),
        ({"budget_musd": 10, "max_country_share": 1.5}, "max_country_share", "less than or equal"),
        ({"budget_musd": 10, "max_avg_risk": 0.5}, "max_avg_risk", "greater than or equal to 1"),
        ({"budget_musd": 10, "min_output_t": {"gold": 5}}, "min_output_t.gold", "'tantalum'"),
        ({"budget_musd": 10, "min_output_t": {"ree": -1}}, "min_output_t.ree", "greater than"),
        ({"budget_musd": 10, "annual_budget_musd": [5, "x"]}, "annual_budget_musd.1", "number"),
        ({"budget_musd": 10, "objective": "irr"}, "objective",
         "'npv', 'supply', 'expected_npv' or 'mean_cvar'"),
        ({"budget_musd": 10, "solver": {"time_limit_s": 0}}, "solver.time_limit_s", "greater"),
        ({"budget_musd": 10, "solver": {"threads": 4}}, "solver.threads", "unknown field"),
        ({"budget_musd": 10, "exclude_countries": ["Brazil"]}, "exclude_countries", "ISO"),
        ({"budget_musd": 10, "kabil_budget_musd": 0}, "kabil_budget_musd", "greater than 0"),
    ],
)
def test_bad_scenario_names_field(fields, path, words):
    with pytest.raises(InputError) as info:
        load_scenario(fields)
    paths = [p.field for p in info.value.problems]
    assert f"scenario.{path}" in paths, paths
    assert words in str(info.value)


def test_scenario_files(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text("budget_musd: 100\nmin_output_t:\n  ree: 10\n")
    assert load_scenario(good).min_output_t == {"ree": 10}
    bad = tmp_path / "s.json"
    bad.write_text("{budget_musd: 1")
    with pytest.raises(InputError, match="not valid JSON"):
        load_scenario(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="must be a JSON object"):
        load_scenario(bad)


def test_scenario_naming_unknown_project_is_rejected(tiny_opt):
    with pytest.raises(InputError) as info:
        tiny_opt.solve(scenario(budget_musd=10, include_projects=["B", "Z"]))
    assert info.value.problems[0].loc == ("scenario", "include_projects", 1)
    with pytest.raises(InputError, match="did you mean 'C'"):
        tiny_opt.solve(scenario(budget_musd=10, exclude_projects=["c"]))


def test_validation_is_vectorised_on_large_tables():
    """10,000 rows with one bad cell: the error still names that one row."""
    from optimizer.synthetic import synthetic_projects

    f = synthetic_projects(10_000, seed=3)
    f.loc[7777, "min_stake"] = np.nan
    err = rejects(f)
    assert [p.loc for p in err.problems] == [("projects", 7777, "min_stake")]


def test_nothing_is_built_from_half_valid_input():
    f = pd.DataFrame(TINY_ROWS)
    f.loc[1, "max_stake"] = 3
    with pytest.raises(InputError):
        Optimizer(validate_projects(f))
