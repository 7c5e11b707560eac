"""Reported portfolios meet every limit exactly (1e-9 relative), re-priced at their reported
stakes, even where HiGHS's tolerances (1e-6 on integrality, 1e-7 on rows) would let a
portfolio through that breaks a cap once priced exactly."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from optimizer import Optimizer, load_projects

from .conftest import run_cli

CLIP_CSV = """\
project_id,name,country,mineral,partner,india_share,equity_value_musd,min_stake,max_stake,\
deal_cost_musd,npv_musd,output_tantalum_t,output_niobium_t,output_ree_t,risk_score
A0,x,AU,ree,JOINT,0.5,5133.8,0.092,0.206,3.89,1711.1,0.0,0.0,6939.0,5.0
A1,x,BR,ree,JOINT,0.5,2527.7,0.03,0.03,0.0,678.3,0.0,0.0,9871.0,5.0
"""


def test_clip_case_is_optimal_and_empty_on_the_cli(tmp_path):
    """A1 alone costs 75.831 > 75.829273 at its one allowed stake; HiGHS may accept it at a
    stake 7e-7 below that within its tolerance. The right answer backs nothing."""
    (tmp_path / "p.csv").write_text(CLIP_CSV)
    (tmp_path / "s.json").write_text(json.dumps({"name": "clip", "budget_musd": 75.829273}))
    p = run_cli("solve", "--projects", str(tmp_path / "p.csv"), "--scenario",
                str(tmp_path / "s.json"), "--format", "json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["status"] == "optimal"
    assert r["objective"] == 0.0 and r["selected"] == []


@pytest.mark.parametrize("presolve", ["off", "on"])
def test_a_cap_is_not_exceeded_within_solver_tolerance(presolve):
    """A costs 1,000,000 against a 999,999.1 budget: 9e-7 over, inside HiGHS's tolerance, but
    over. The answer is B alone (objective 0.1), not A."""
    rows = [dict(project_id=p, name=p, country="AU", mineral="ree", partner="KABIL",
                 india_share=1, equity_value_musd=eq, min_stake=1, max_stake=1,
                 deal_cost_musd=0, npv_musd=npv, output_tantalum_t=0, output_niobium_t=0,
                 output_ree_t=0, risk_score=5)
            for p, eq, npv in (("A", 1e6, 1e6), ("B", 1.0, 0.1))]
    r = Optimizer(load_projects(rows)).solve(
        {"name": "cap", "budget_musd": 999_999.1, "solver": {"presolve": presolve}})
    assert r.status == "optimal"
    assert [p.project_id for p in r.selected] == ["B"]
    assert r.objective == pytest.approx(0.1, rel=1e-12)


def _instance(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Realistic sizes: equity 1,000-13,000 MUSD, minimum stakes 1-10 %, half of the projects
    with a single allowed stake."""
    equity = np.round(rng.uniform(1_000, 13_000, n), 1)
    smin = np.round(rng.uniform(0.01, 0.10, n), 3)
    fixed = rng.random(n) < 0.5
    smax = np.where(fixed, smin, np.round(np.minimum(1.0, smin + rng.uniform(0.0, 0.2, n)), 3))
    deal = np.round(rng.uniform(0, 5, n) * (rng.random(n) < 0.5), 2)
    npv = np.round(equity * rng.uniform(-0.05, 0.4, n), 1)
    return pd.DataFrame(dict(
        project_id=[f"P{i}" for i in range(n)], name="p", country="AU", mineral="ree",
        partner="JOINT", india_share=0.5, equity_value_musd=equity, min_stake=smin,
        max_stake=smax, deal_cost_musd=deal, npv_musd=npv, output_tantalum_t=0.0,
        output_niobium_t=0.0, output_ree_t=1000.0, risk_score=5.0))


def _brute_force(df: pd.DataFrame, budget: float) -> tuple[float, bool]:
    """The exact optimum over every subset (budget is the only limit, so each subset's best
    stakes are a fractional knapsack: minimum stakes first, then the best NPV per MUSD).
    Returns (optimum, ambiguous) where ambiguous means some subset's minimum cost lies within
    1e-9 relative above the budget (either answer is then within the contract)."""
    eq, smin, smax = (df[c].to_numpy() for c in ("equity_value_musd", "min_stake", "max_stake"))
    deal, npv = df["deal_cost_musd"].to_numpy(), df["npv_musd"].to_numpy()
    best, ambiguous = 0.0, False
    for k in range(1, len(df) + 1):
        for subset in itertools.combinations(range(len(df)), k):
            idx = list(subset)
            cost = float((eq[idx] * smin[idx] + deal[idx]).sum())
            if cost > budget:
                ambiguous |= cost <= budget * (1 + 1e-9)
                continue
            value = float((npv[idx] * smin[idx] - deal[idx]).sum())
            left = budget - cost
            for i in sorted(idx, key=lambda i: -npv[i] / eq[i]):
                if npv[i] <= 0 or left <= 0:
                    break
                extra = min(smax[i] - smin[i], left / eq[i])
                value += npv[i] * extra
                left -= eq[i] * extra
            best = max(best, value)
    return best, ambiguous


@pytest.mark.parametrize("presolve", ["off", "on"])
def test_budgets_at_a_subsets_minimum_cost_match_enumeration(presolve):
    """Budgets within 1e-6 (relative) of a random subset's minimum cost, where rounding the
    stake up to its minimum decides feasibility: every answer is the enumerated optimum, and
    re-priced at its reported stakes it spends no more than the budget (1e-9 relative)."""
    rng = np.random.default_rng(2026)
    checked = 0
    for case in range(60):
        df = _instance(rng, 5)
        pick = rng.random(5) < 0.5
        pick[rng.integers(5)] = True
        min_cost = float((df["equity_value_musd"] * df["min_stake"]
                          + df["deal_cost_musd"])[pick].sum())
        budget = round(min_cost * (1 + rng.uniform(-1e-6, 1e-6)), 6)
        opt = Optimizer(load_projects(df))
        r = opt.solve({"name": f"edge{case}", "budget_musd": budget,
                       "solver": {"mip_gap": 1e-9, "presolve": presolve}})
        assert r.status == "optimal", (case, r.status)
        stake = {p.project_id: p.stake for p in r.selected}
        spent = sum(df.loc[df.project_id == pid, "equity_value_musd"].iat[0] * s
                    + df.loc[df.project_id == pid, "deal_cost_musd"].iat[0]
                    for pid, s in stake.items())
        assert spent <= budget * (1 + 1e-9), (case, spent, budget)
        for _, row in df[df.project_id.isin(stake)].iterrows():
            assert row.min_stake <= stake[row.project_id] <= row.max_stake
        best, ambiguous = _brute_force(df, budget)
        if not ambiguous:
            assert r.objective == pytest.approx(best, rel=1e-7, abs=1e-6), (case, stake)
            checked += 1
    assert checked >= 55  # the ambiguous band is 1e-9 wide: almost never hit
