"""Seeded synthetic candidate-project tables, for benchmarks and property tests.

Figures are drawn to resemble ``inputs/projects.csv`` (equity values from tens to thousands of
MUSD, minority stakes, outputs per mineral, risk 1..10); they are not real projects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import MINERALS, Scenario

COUNTRIES = ("AU", "BR", "CA", "MW", "TZ", "NA", "ZA", "AO", "UG", "CD", "RW", "ET", "GL",
             "ES", "ID", "MY", "GA", "US", "NG", "MZ", "KE", "MG", "VN", "KZ", "AR", "CL",
             "PE", "SN", "ZM", "ZW")


def synthetic_projects(n: int, seed: int = 0, *, years: int = 3, groups: int | None = None,
                       links: int | None = None) -> pd.DataFrame:
    """A valid projects table of ``n`` rows with every column kind in use."""
    rng = np.random.default_rng(seed)
    mineral = rng.choice(MINERALS, size=n, p=[0.3, 0.2, 0.5])
    equity = np.round(rng.lognormal(mean=5.0, sigma=1.0, size=n), 2)  # median ~150 MUSD
    smin = np.round(rng.uniform(0.05, 0.2, size=n), 3)
    smax = np.round(np.minimum(1.0, smin + rng.uniform(0.05, 0.45, size=n)), 3)
    scale = equity / 150.0
    out = {m: np.zeros(n) for m in MINERALS}
    base = {"tantalum": 150.0, "niobium": 3000.0, "ree": 4000.0}
    for m in MINERALS:
        own = mineral == m
        out[m][own] = np.round(base[m] * scale[own] * rng.uniform(0.3, 1.5, own.sum()), 1)
        by = (~own) & (rng.random(n) < 0.1)
        out[m][by] = np.round(0.1 * base[m] * scale[by] * rng.random(by.sum()), 1)
    partner = rng.choice(["KABIL", "US", "JOINT"], size=n)
    india = np.where(partner == "KABIL", rng.uniform(0.6, 1.0, n),
                     np.where(partner == "US", rng.uniform(0.0, 0.3, n), 0.5)).round(3)
    df = pd.DataFrame({
        "project_id": [f"P{i:05d}" for i in range(n)],
        "name": [f"Synthetic project {i}" for i in range(n)],
        "country": rng.choice(COUNTRIES, size=n),
        "mineral": mineral,
        "partner": partner,
        "india_share": india,
        "equity_value_musd": equity,
        "min_stake": smin,
        "max_stake": smax,
        "deal_cost_musd": np.round(0.02 * equity * rng.uniform(0.2, 1.0, n) + 0.5, 2),
        "npv_musd": np.round(equity * rng.normal(0.25, 0.35, n), 2),
        "output_tantalum_t": out["tantalum"],
        "output_niobium_t": out["niobium"],
        "output_ree_t": out["ree"],
        "risk_score": np.round(rng.uniform(1, 10, n), 1),
        "china_processing": rng.random(n) < 0.3,
    })
    g = max(1, n // 20) if groups is None else groups
    grp = np.full(n, None, dtype=object)
    for j, rows in enumerate(np.array_split(rng.permutation(n)[: 2 * g], g) if g else []):
        grp[rows] = f"G{j}"
    df["exclusive_group"] = grp
    req = np.full(n, None, dtype=object)
    k = max(1, n // 50) if links is None else links
    if k and n >= 2:
        pairs = rng.permutation(n)[: 2 * k].reshape(-1, 2)
        for a, b in pairs:
            req[a] = f"P{b:05d}"
    df["requires"] = req
    if years > 1:
        w = rng.dirichlet(np.ones(years), size=n).round(4)
        w[:, -1] = 1.0 - w[:, :-1].sum(axis=1)
        for y in range(years):
            df[f"spend_share_{y + 1}"] = w[:, y]
    # magnet rare earths and Chinese ownership from a stream of their own, so the columns
    # above stay what they were for a given seed
    extra = np.random.default_rng([seed, 7])
    ree = df["output_ree_t"].to_numpy()
    df["output_ndpr_t"] = np.round(ree * extra.uniform(0.12, 0.25, n), 1)
    df["output_dytb_t"] = np.round(ree * extra.uniform(0.002, 0.04, n), 2)
    df["chinese_ownership"] = np.where(extra.random(n) < 0.4,
                                       np.round(extra.uniform(0.05, 1.0, n), 2), 0.0)
    return df


def synthetic_scenario(df: pd.DataFrame, *, budget_fraction: float = 0.1, **over) -> Scenario:
    """The benchmark scenario of PERF_NOTES: budget 10 % of all possible spend, a KABIL cap,
    country share 0.3, average risk 6, a REE floor, plus annual caps; every kind active."""
    full = float((df["equity_value_musd"] * df["max_stake"] + df["deal_cost_musd"]).sum())
    budget = budget_fraction * full
    ree_possible = float((df["output_ree_t"] * df["max_stake"]).sum())
    fields = dict(
        name=f"synthetic-{len(df)}", budget_musd=round(budget, 3),
        kabil_budget_musd=round(0.6 * budget, 3), us_budget_musd=round(0.6 * budget, 3),
        annual_budget_musd=[round(0.5 * budget, 3), round(0.4 * budget, 3)],
        max_country_share=0.3, min_countries=3, max_projects=max(3, len(df) // 5),
        min_output_t={"ree": round(0.02 * ree_possible, 1)}, max_avg_risk=6.0,
        max_china_processing_share=0.5, solver={"time_limit_s": 120, "mip_gap": 1e-4},
    )
    fields.update(over)
    return Scenario.model_validate(fields)
