"""Inputs are never silently reinterpreted: JSON numbers must be numbers, a Scenario object is
validated again inside ``solve()``, text has no NUL, countries are ISO 3166-1, ``requires``
has no cycles, and a directory or binary file given as input is a plain error (exit 2)."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest

from optimizer import InputError, Optimizer, load_projects, load_scenario
from optimizer.data import validate_projects

from .conftest import TINY_ROWS, run_cli, scenario
from .instances import subset_sum


def problem_fields(exc: InputError) -> list[str]:
    return [p.field for p in exc.problems]


@pytest.mark.parametrize(("field", "value"), [
    ("budget_musd", True), ("budget_musd", "2000"), ("max_avg_risk", False),
    ("min_countries", 4.0), ("min_countries", "4"), ("max_projects", True),
])
def test_json_numbers_must_be_numbers(field, value):
    sc = {"budget_musd": 2000, field: value}
    with pytest.raises(InputError) as err:
        load_scenario(sc)
    assert problem_fields(err.value) == [f"scenario.{field}"]
    assert repr(value) in str(err.value)


def test_nested_numbers_too():
    with pytest.raises(InputError) as err:
        load_scenario({"budget_musd": 100, "min_output_t": {"ree": True},
                       "solver": {"time_limit_s": "5"}})
    assert sorted(problem_fields(err.value)) == ["scenario.min_output_t.ree",
                                                 "scenario.solver.time_limit_s"]


def test_integers_are_numbers():
    assert load_scenario({"budget_musd": 2000, "max_avg_risk": 6}).max_avg_risk == 6.0


@pytest.mark.parametrize(("text", "ok"), [
    ("budget_musd: yes\n", False), ("budget_musd: '2000'\n", False),
    ("budget_musd: 1e3\n", True), ("budget_musd: 2.5e+3\n", True),
])
def test_yaml_files_on_the_cli(tmp_path, text, ok):
    path = tmp_path / "s.yaml"
    path.write_text("name: y\n" + text)
    p = run_cli("solve", "--scenario", str(path), "--format", "json")
    if ok:
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode == 2
        assert "budget_musd" in p.stderr and "Traceback" not in p.stderr


def test_json_true_on_the_cli(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "t", "budget_musd": True}))
    p = run_cli("solve", "--scenario", str(path))
    assert p.returncode == 2
    assert "'budget_musd'" in p.stderr and "True" in p.stderr


@pytest.mark.parametrize(("field", "value"), [
    ("budget_musd", math.nan), ("budget_musd", math.inf), ("max_avg_risk", math.nan),
    ("min_countries", True), ("budget_musd", -5.0),
])
def test_solve_validates_scenario_objects(tiny_opt, field, value):
    """``model_copy(update=...)`` skips pydantic's validation; solve() must not: a NaN budget
    once reused the previous scenario's budget, and a NaN risk cap hung diagnosis."""
    good = scenario(budget_musd=120)
    first = tiny_opt.solve(good)
    assert first.status == "optimal"
    bad = good.model_copy(update={field: value})
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        tiny_opt.solve(bad)
    assert time.monotonic() - t0 < 1.0
    assert problem_fields(err.value) == [f"scenario.{field}"]
    assert tiny_opt.solve(good).objective == first.objective  # nothing left behind


def test_numpy_numbers_in_scenario_objects_are_fine(tiny_opt):
    import numpy as np

    sc = scenario(budget_musd=120).model_copy(
        update={"budget_musd": np.float64(121.0), "max_projects": np.int64(2)})
    assert tiny_opt.solve(sc).status == "optimal"


def test_nul_in_scenario_text():
    with pytest.raises(InputError) as err:
        load_scenario({"name": "a\x00b", "budget_musd": 10})
    assert problem_fields(err.value) == ["scenario.name"]
    assert "NUL" in str(err.value)


def test_nul_in_project_text(tiny_frame):
    tiny_frame.loc[1, "name"] = "Bra\x00vo"
    with pytest.raises(InputError) as err:
        validate_projects(tiny_frame)
    assert problem_fields(err.value) == ["projects.1.name"]
    assert "row 2" in str(err.value) and "NUL" in str(err.value)


@pytest.mark.parametrize("code", ["XX", "UK", "EU"])
def test_country_codes_are_iso_3166(tiny_frame, code):
    tiny_frame.loc[0, "country"] = code
    with pytest.raises(InputError) as err:
        validate_projects(tiny_frame)
    assert problem_fields(err.value) == ["projects.0.country"]
    assert "ISO 3166-1" in str(err.value)


def test_excluded_country_must_be_a_code_and_host_a_project(tiny_opt):
    with pytest.raises(InputError) as err:
        load_scenario({"budget_musd": 10, "exclude_countries": ["XX"]})
    assert problem_fields(err.value) == ["scenario.exclude_countries"]
    with pytest.raises(InputError) as err:
        tiny_opt.solve(scenario(budget_musd=10, exclude_countries=["MW", "FR"]))
    assert problem_fields(err.value) == ["scenario.exclude_countries.1"]
    assert "'FR'" in str(err.value)


@pytest.mark.parametrize("links", [{"A": "B", "B": "A"}, {"A": "B", "B": "C", "C": "A"}])
def test_requires_cycles_are_rejected_naming_the_cycle(tiny_frame, links):
    tiny_frame["requires"] = tiny_frame["project_id"].map(links)
    with pytest.raises(InputError) as err:
        validate_projects(tiny_frame)
    msg = str(err.value)
    assert "cycle" in msg
    assert " -> ".join([*links, "A"]) in msg  # A -> B -> A, or A -> B -> C -> A


def test_requires_chain_without_cycle_is_fine(tiny_frame):
    tiny_frame["requires"] = tiny_frame["project_id"].map({"A": "B", "B": "C"})
    assert validate_projects(tiny_frame).requires == [(0, 1), (1, 2)]


def test_magnet_outputs_are_part_of_treo(tiny_frame):
    tiny_frame["output_ndpr_t"] = [200.0, 0.0, 600.0]
    tiny_frame["output_dytb_t"] = [900.0, 0.0, 10.0]  # A: 200 + 900 > 1000 t TREO
    with pytest.raises(InputError) as err:
        validate_projects(tiny_frame)
    assert problem_fields(err.value) == ["projects.0.output_ndpr_t"]


@pytest.mark.parametrize("what", ["directory", "binary"])
@pytest.mark.parametrize("option", ["--scenario", "--projects"])
def test_directory_or_binary_input_is_a_plain_error(tmp_path, what, option):
    if what == "directory":
        path = tmp_path / "d"
        path.mkdir()
    else:
        path = tmp_path / ("b.json" if option == "--scenario" else "b.csv")
        path.write_bytes(bytes(range(256)) * 4)
    p = run_cli("solve", option, str(path))
    assert p.returncode == 2, p.stderr
    assert "Error:" not in p.stderr and "Traceback" not in p.stderr
    assert str(path) in p.stderr
    assert ("directory" if what == "directory" else "binary") in p.stderr


def test_diagnosis_stays_within_the_time_limit():
    """Forced project + max_projects 0 conflict at once; the remaining checks need a subset
    sum HiGHS cannot decide quickly (presolve off): diagnosis must stop at the time limit,
    say it is incomplete, and the whole call stay within solve + diagnosis time."""
    data, budget = subset_sum(50, npv_noise=False)
    opt = Optimizer(data)
    sc = scenario(budget_musd=budget, min_output_t={"ree": budget}, max_projects=0,
                  include_projects=["H0"], solver={"time_limit_s": 1.0, "presolve": "off"})
    t0 = time.monotonic()
    r = opt.solve(sc)
    wall = time.monotonic() - t0
    assert r.status == "infeasible"
    assert set(r.diagnosis.conflicts) >= {"include_projects", "max_projects"}
    assert wall < 2 * 1.0 * 1.15 + 0.5, wall
    assert r.diagnosis.complete is False and "time limit" in r.diagnosis.message


def test_load_projects_accepts_the_new_columns_absent_or_empty():
    a = load_projects(pd.DataFrame(TINY_ROWS))
    b = load_projects(pd.DataFrame(TINY_ROWS).assign(output_ndpr_t="", output_dytb_t="",
                                                     chinese_ownership=""))
    assert a.sha256 == b.sha256
    assert a.col("chinese_ownership").tolist() == [0.0, 0.0, 0.0]
