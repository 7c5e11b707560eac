"""The CLI end to end: real files, a real subprocess, the contract's exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .conftest import INPUTS, TINY_ROWS
from .conftest import run_cli as run


@pytest.fixture
def tiny_csv(tmp_path):
    path = tmp_path / "projects.csv"
    pd.DataFrame(TINY_ROWS).to_csv(path, index=False)
    return path


def write(tmp_path, name: str, payload: dict):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return path


def test_json_result_and_exit_0(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 120, "solver": {"mip_gap": 1e-9}})
    p = run("solve", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "optimal"
    assert out["objective"] == pytest.approx(47.0, abs=1e-6)
    assert {s["project_id"]: s["stake"] for s in out["selected"]} == pytest.approx(
        {"A": 0.55, "C": 0.3})
    for key in ("status", "objective", "best_bound", "mip_gap", "selected", "totals",
                "diagnosis", "solver", "provenance"):
        assert key in out
    assert set(out["totals"]) >= {"cost_musd", "kabil_musd", "us_musd", "npv_musd", "output_t",
                                  "by_country_musd", "avg_risk"}
    assert set(out["selected"][0]) >= {"project_id", "stake", "cost_musd", "kabil_musd",
                                       "us_musd", "npv_musd", "output_t"}


def test_table_format_is_readable(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"name": "demo", "budget_musd": 120})
    p = run("solve", "--projects", str(tiny_csv), "--scenario", str(sc))
    assert p.returncode == 0, p.stderr
    assert "Scenario 'demo': OPTIMAL" in p.stdout
    assert "A " in p.stdout and "C " in p.stdout and "120.0" in p.stdout
    assert "budget_musd" in p.stdout  # binding limit listed


def test_infeasible_exit_3_with_reason(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 50, "min_output_t": {"tantalum": 50}})
    p = run("solve", "--projects", str(tiny_csv), "--scenario", str(sc), "--format", "json")
    assert p.returncode == 3
    out = json.loads(p.stdout)
    assert out["status"] == "infeasible"
    assert sorted(out["diagnosis"]["conflicts"]) == ["budget_musd", "min_output_t.tantalum"]
    t = run("solve", "--projects", str(tiny_csv), "--scenario", str(sc))
    assert t.returncode == 3 and "Why: " in t.stdout


def test_bad_input_exit_2_message_on_stderr(tiny_csv, tmp_path):
    sc = write(tmp_path, "s.json", {"budget_musd": 50, "budgett": 1})
    p = run("solve", "--projects", str(tiny_csv), "--scenario", str(sc))
    assert p.returncode == 2
    assert p.stdout == ""
    assert "scenario field 'budgett': unknown field" in p.stderr
    bad = pd.DataFrame(TINY_ROWS)
    bad.loc[1, "india_share"] = 7
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    p = run("solve", "--projects", str(path), "--scenario", str(sc))
    assert p.returncode == 2
    assert "row 2 (project_id 'B'), column 'india_share'" in p.stderr
    p = run("solve", "--projects", str(tmp_path / "missing.csv"))
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_no_solution_exit_1(tmp_path):
    from .instances import subset_sum

    data, budget = subset_sum(50, npv_noise=False)
    path = tmp_path / "hard.csv"
    data.frame.to_csv(path, index=False)
    sc = write(tmp_path, "s.json", {"budget_musd": budget, "min_output_t": {"ree": budget},
                                    "solver": {"time_limit_s": 0.3, "presolve": "off"}})
    p = run("solve", "--projects", str(path), "--scenario", str(sc), "--format", "json")
    assert p.returncode == 1
    assert json.loads(p.stdout)["status"] == "no_solution"


def test_shipped_scenarios_exist():
    names = {p.stem for p in (INPUTS / "scenarios").glob("*.json")}
    assert "base" in names and len(names) >= 5, names


@pytest.mark.parametrize("scenario", sorted((INPUTS / "scenarios").glob("*.json")),
                         ids=lambda p: p.stem)
def test_shipped_scenarios_solve_on_shipped_data(scenario):
    p = run("solve", "--scenario", str(scenario), "--format", "json")
    assert p.returncode in (0, 3), p.stderr
    out = json.loads(p.stdout)
    assert out["status"] in ("optimal", "infeasible")
    if out["status"] == "optimal":
        assert out["selected"], "a shipped scenario should back something"
