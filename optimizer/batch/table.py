"""A batch as a flat table, said once for every place that shows one: the output folder's
``results.csv`` (``optimizer.batch.files``), the service's ``GET /batches/{id}/results.csv``
and the batch reports (``optimizer.reports.batch``).

Columns: ``index``, the field paths the batch varies (:func:`varied_paths`), then
:data:`FLAT_HEAD`; :func:`cell` reads one path off a stored row.
"""

from __future__ import annotations

from typing import Any

from ..schema import PRODUCTS
from .spec import MERGED_OBJECTS

FLAT_HEAD = ["status", "objective", "best_bound", "mip_gap", "cost_musd", "kabil_musd",
             "us_musd", "npv_musd", *[f"output_t.{m}" for m in PRODUCTS], "n_projects",
             "selected"]
MONTE_CARLO_PATHS = ["draw.price.tantalum", "draw.price.niobium", "draw.price.ree",
                     "draw.capex_overrun.mean", "draw.output_factor.mean",
                     "draw.disrupted_countries", "base_portfolio.objective",
                     "base_portfolio.regret"]


def varied_paths(spec) -> list[str]:
    """The field paths a batch varies (columns of results.csv), in spec order."""
    if spec.grid is not None:
        return list(spec.grid)
    if spec.scenarios is not None:
        paths: dict[str, None] = {}
        for partial in spec.scenarios:
            for k, v in partial.items():
                if isinstance(v, dict) and k in MERGED_OBJECTS:
                    for kk in v:
                        paths[f"{k}.{kk}"] = None
                else:
                    paths[k] = None
        return list(paths)
    if spec.monte_carlo is not None:
        return list(MONTE_CARLO_PATHS)
    return {"budget": ["budget_musd"], "supply": ["min_weighted_supply"],
            "risk": ["risk_aversion"]}[spec.frontier.kind]


def cell(row: dict[str, Any], path: str) -> Any:
    """The value of ``path`` in a stored row: a scenario field path (into the merged
    scenario; a list or a product map by its key) or a ``draw.``/``base_portfolio.`` path;
    lists joined by ``;``."""
    if path.startswith(("draw.", "base_portfolio.")):
        cur: Any = row
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        return ";".join(cur) if isinstance(cur, list) else cur
    sc = row.get("scenario") or {}
    parts = path.split(".")
    cur = sc.get(parts[0])
    if len(parts) == 2:
        if isinstance(cur, list):
            k = int(parts[1])
            cur = cur[k] if k < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(parts[1])
        else:
            cur = None
    if isinstance(cur, list):
        return ";".join(str(v) for v in cur)
    return cur


def flat_row(row: dict[str, Any], varied: list[str]) -> list[Any]:
    t = row.get("totals") or {}
    out = t.get("output_t") or {}
    sel = row.get("selected") or []
    return [row["index"], *(cell(row, p) for p in varied), row.get("status"),
            row.get("objective"), row.get("best_bound"), row.get("mip_gap"),
            t.get("cost_musd"), t.get("kabil_musd"), t.get("us_musd"), t.get("npv_musd"),
            *(out.get(m) for m in PRODUCTS), len(sel),
            ";".join(p["project_id"] for p in sel)]


