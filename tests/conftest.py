"""Shared fixtures: a hand-worked three-project table, the shipped data, scenario builders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from optimizer import Optimizer, Scenario
from optimizer.data import ProjectData, validate_projects

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "inputs"

# Three projects worked by hand in tests/test_handworked.py.
#   A: 100 MUSD for 100 %, stake 0.5..1, no deal cost, NPV 40  -> value 40 s, cost 100 s
#   B: 50 MUSD, stake exactly 1, deal cost 10, NPV 30          -> value 20,   cost 60
#   C: 200 MUSD, stake 0.1..0.3, deal cost 5, NPV 100          -> value 100 t - 5, cost 200 t + 5
TINY_ROWS = [
    dict(project_id="A", name="Alpha", country="MW", mineral="ree", partner="KABIL",
         india_share=1.0, equity_value_musd=100, min_stake=0.5, max_stake=1.0, deal_cost_musd=0,
         npv_musd=40, output_tantalum_t=0, output_niobium_t=0, output_ree_t=1000, risk_score=8,
         china_processing=False, spend_share_1=1.0, spend_share_2=0.0),
    dict(project_id="B", name="Bravo", country="BR", mineral="tantalum", partner="US",
         india_share=0.0, equity_value_musd=50, min_stake=1.0, max_stake=1.0, deal_cost_musd=10,
         npv_musd=30, output_tantalum_t=100, output_niobium_t=0, output_ree_t=0, risk_score=2,
         china_processing=False, spend_share_1=0.5, spend_share_2=0.5),
    dict(project_id="C", name="Charlie", country="TZ", mineral="ree", partner="JOINT",
         india_share=0.5, equity_value_musd=200, min_stake=0.1, max_stake=0.3, deal_cost_musd=5,
         npv_musd=100, output_tantalum_t=0, output_niobium_t=0, output_ree_t=3000, risk_score=5,
         china_processing=True, spend_share_1=0.0, spend_share_2=1.0),
]


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(TINY_ROWS)


@pytest.fixture
def tiny(tiny_frame: pd.DataFrame) -> ProjectData:
    return validate_projects(tiny_frame)


@pytest.fixture(scope="module")
def tiny_opt() -> Optimizer:
    """One persistent model for many scenarios (each test sets every field it relies on)."""
    return Optimizer(validate_projects(pd.DataFrame(TINY_ROWS)))


def scenario(**fields) -> Scenario:
    """A scenario with exact solver settings (gap 1e-9) unless the test says otherwise."""
    fields.setdefault("solver", {"mip_gap": 1e-9, "time_limit_s": 30})
    return Scenario.model_validate(fields)


@pytest.fixture(scope="session")
def shipped() -> ProjectData:
    from optimizer import load_projects

    return load_projects(INPUTS / "projects.csv")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m optimizer ARGS`` as a real subprocess from the repository root."""
    return subprocess.run([sys.executable, "-m", "optimizer", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
