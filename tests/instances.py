"""Hard instances for solver-outcome tests (not fixtures: plain builders)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from optimizer.data import ProjectData, validate_projects


def subset_sum(n: int, seed: int = 0, *, npv_noise: bool = True) -> tuple[ProjectData, float]:
    """Whole-stake projects with even prices: choosing a subset is a subset-sum problem, which
    branch and bound proves optimal (or infeasible) only slowly. Returns (data, an odd budget
near half of everything)."""
    rng = np.random.default_rng(seed)
    eq = rng.integers(1_000, 2_000, n) * 2.0
    npv = eq * (1 + rng.uniform(0, 0.001, n)) if npv_noise else np.ones(n)
    rows = [dict(project_id=f"H{i}", name=f"h{i}", country="AU", mineral="ree",
                 partner="KABIL", india_share=1, equity_value_musd=eq[i], min_stake=1,
                 max_stake=1, deal_cost_musd=0, npv_musd=npv[i], output_tantalum_t=0,
                 output_niobium_t=0, output_ree_t=eq[i], risk_score=5) for i in range(n)]
    # an odd budget: every price is even, so no subset costs exactly the budget; with a floor
    # equal to the budget (outputs = prices) the problem is infeasible, and branch and bound
    # can neither find a portfolio nor prove that within seconds
    half = float(eq.sum() // 2)
    return validate_projects(pd.DataFrame(rows)), half if half % 2 == 1 else half + 1
