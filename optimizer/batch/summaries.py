"""Summaries over a batch's rows, kept as running tallies so memory stays flat in the number of
rows: counts by status, objective quantiles, selection frequency per project and the robust
core, and (Monte Carlo) how the base portfolio fares across draws.

Robust core, borderline and exterior follow Liesio, Mild and Salo's Robust Portfolio Modeling
(European Journal of Operational Research 181, 2007): a project chosen in (nearly) every
portfolio that answers the batch's questions is *core*, one chosen in none *exterior*, the
rest *borderline*. Here the share thresholds are the batch's ``core_share`` (default 0.9) and
``exterior_share`` (default 0), over the rows that found a portfolio (optimal or feasible).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..schema import WITH_PORTFOLIO

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def quantiles(values: list[float] | np.ndarray) -> dict[str, float] | None:
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    q = np.quantile(a, QUANTILES)
    out = {f"p{round(p * 100)}": float(v) for p, v in zip(QUANTILES, q, strict=True)}
    out["mean"] = float(a.mean())
    out["count"] = int(a.size)
    return out


class Tally:
    """Running summary of rows (call :meth:`add` for each row, in any order, once)."""

    def __init__(self, project_ids: list[str], core_share: float = 0.9,
                 exterior_share: float = 0.0) -> None:
        self.ids = project_ids
        self.pos = {p: i for i, p in enumerate(project_ids)}
        self.core_share = core_share
        self.exterior_share = exterior_share
        self.status: Counter[str] = Counter()
        self.chosen = np.zeros(len(project_ids), dtype=np.int64)
        self.stake_sum = np.zeros(len(project_ids))
        self.objectives: list[float] = []
        self.base_values: list[float] = []
        self.regrets: list[float] = []
        self.regrets_within: list[float] = []  # draws where the base portfolio meets limits
        self.base_breaks = 0
        self.base_rows = 0
        self.solve_s = 0.0
        self.failed: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        st = row.get("status", "failed")
        self.status[st] += 1
        if st in WITH_PORTFOLIO:
            for p in row.get("selected") or []:
                i = self.pos.get(p["project_id"])
                if i is not None:
                    self.chosen[i] += 1
                    self.stake_sum[i] += p["stake"]
            if row.get("objective") is not None:
                self.objectives.append(float(row["objective"]))
        if st == "failed" and len(self.failed) < 100:
            self.failed.append({"index": row.get("index"), "error": row.get("error")})
        solver = row.get("solver") or {}
        self.solve_s += float(solver.get("wall_s") or 0.0)
        base = row.get("base_portfolio")
        if base:
            self.base_rows += 1
            self.base_values.append(base["objective"])
            if base.get("regret") is not None:
                self.regrets.append(base["regret"])
                if base.get("meets_limits", True):
                    self.regrets_within.append(base["regret"])
            self.base_breaks += not base.get("meets_limits", True)

    @property
    def ok_rows(self) -> int:
        return sum(self.status[s] for s in WITH_PORTFOLIO)

    def selection(self) -> list[dict[str, Any]]:
        """Per project: rows choosing it, that share of the optimal/feasible rows, mean stake
        when chosen, and its robust-portfolio class."""
        n = self.ok_rows
        out = []
        for i, pid in enumerate(self.ids):
            k = int(self.chosen[i])
            share = k / n if n else 0.0
            cls = ("core" if n and share >= self.core_share else
                   "exterior" if share <= self.exterior_share else "borderline")
            out.append({"project_id": pid, "chosen": k, "share": share,
                        "mean_stake": float(self.stake_sum[i] / k) if k else None,
                        "class": cls})
        out.sort(key=lambda r: (-r["share"], r["project_id"]))
        return out

    def summary(self) -> dict[str, Any]:
        sel = self.selection()
        out: dict[str, Any] = {
            "rows": sum(self.status.values()),
            "by_status": dict(sorted(self.status.items())),
            "objective": quantiles(self.objectives),
            "robust_core": {
                "core_share": self.core_share, "exterior_share": self.exterior_share,
                "core": [r["project_id"] for r in sel if r["class"] == "core"],
                "borderline": [r["project_id"] for r in sel if r["class"] == "borderline"],
                "exterior_count": sum(r["class"] == "exterior" for r in sel),
            },
            "solve_wall_s_total": self.solve_s,
        }
        if self.base_rows:
            out["base_portfolio"] = {
                "value": quantiles(self.base_values),
                "regret": quantiles(self.regrets),
                # a draw whose overruns push the base portfolio past a limit can show a
                # negative regret (it "earns" more by overspending); these draws exclude that
                "regret_within_limits": quantiles(self.regrets_within),
                "share_breaking_limits": self.base_breaks / self.base_rows,
                # the expected value of perfect information about the draws: the mean of
                # each draw's own optimum minus the mean value of the base portfolio held
                # fixed (the mean regret), over the draws where both exist
                "evpi_musd": float(np.mean(self.regrets)) if self.regrets else None,
            }
        if self.failed:
            out["failed"] = self.failed
        return out
