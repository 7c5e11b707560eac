"""Re-using a row's portfolio for a tighter row without solving (dominance).

If scenario A is at least as loose as scenario B in every limit (bigger or equal caps, smaller
or equal floors, a subset of B's exclusions and forced choices, a superset of its partners,
the same objective, weights and solver settings), every portfolio feasible for B is feasible
for A, so ``opt(B) <= opt(A) <= bound(A)``. If A's certified portfolio also meets every limit
of B exactly, its value is ``>= (1 - gap_A) bound(A) >= (1 - gap_A) opt(B)``: it answers B
within A's gap, with A's bound as B's bound. A sweep in which a cap does not bind over part of
its range (a budget beyond what the best portfolio can spend, a country cap above the largest
share any good portfolio takes) answers that part without calling HiGHS.

Within a chunk a worker solves the loosest rows first (the sum of each varied field's
looseness rank: a linear extension of "at least as loose"), so a tighter row finds the rows
that can answer it already solved.
"""

from __future__ import annotations

import math
from typing import Any

from ..check import violations
from ..schema import Scenario
from .spec import Task

CAPS = ("budget_musd", "kabil_budget_musd", "us_budget_musd", "max_country_share",
        "max_avg_risk", "max_china_processing_share", "max_projects", "max_chinese_ownership")
FLOORS = ("min_countries", "min_weighted_supply")


def _cap(v: float | None) -> float:
    return math.inf if v is None else float(v)


def _floor(v: float | None) -> float:
    return -math.inf if v is None else float(v)


def at_least_as_loose(a: Scenario, b: Scenario) -> bool:
    """Every portfolio feasible for ``b`` is feasible for ``a`` (and both ask the same)."""
    if (a.objective, a.weights(), a.solver) != (b.objective, b.weights(), b.solver):
        return False
    if any(_cap(getattr(a, f)) < _cap(getattr(b, f)) for f in CAPS):
        return False
    if any(_floor(getattr(a, f)) > _floor(getattr(b, f)) for f in FLOORS):
        return False
    ya, yb = a.annual_budget_musd or [], b.annual_budget_musd or []
    for k in range(max(len(ya), len(yb))):
        if _cap(ya[k] if k < len(ya) else None) < _cap(yb[k] if k < len(yb) else None):
            return False
    for m in set(a.min_output_t) | set(b.min_output_t):
        if a.min_output_t.get(m, 0.0) > b.min_output_t.get(m, 0.0):
            return False
    if not (set(a.exclude_projects) <= set(b.exclude_projects)
            and set(a.exclude_countries) <= set(b.exclude_countries)
            and set(a.include_projects) <= set(b.include_projects)):
        return False
    if a.partners is not None and (b.partners is None or not set(b.partners) <= set(a.partners)):
        return False
    return True


def reusable(data, prior: tuple[Scenario, dict[str, Any]], sc: Scenario
             ) -> dict[str, float] | None:
    """The stakes of a prior optimal/feasible row that answer ``sc`` (see the module
    docstring), or None."""
    psc, row = prior
    if row.get("status") not in ("optimal", "feasible") or not at_least_as_loose(psc, sc):
        return None
    stakes = {p["project_id"]: p["stake"] for p in row["selected"]}
    if violations(data, sc, stakes, rel_tol=1e-9):
        return None
    return stakes


def looseness_order(path: str, values: list[Any]) -> list[int]:
    """Positions of a grid field's values, loosest first (caps: biggest; floors: smallest;
    fields without an order: as given)."""
    head = path.split(".")[0]
    idx = list(range(len(values)))
    if head in CAPS or head == "annual_budget_musd":
        return sorted(idx, key=lambda i: (-_cap(values[i]), i))
    if head in FLOORS or head == "min_output_t":
        return sorted(idx, key=lambda i: (_floor(values[i]), i))
    return idx


def loose_first(tasks: list[Task], grid: dict[str, list[Any]] | None) -> list[Task]:
    """The chunk reordered loosest first: by the sum over the grid's fields of each value's
    looseness rank (caps: biggest first; floors: smallest first; other fields: no order)."""
    if not grid:
        return tasks
    ranks: dict[str, dict[Any, int]] = {}
    for path, values in grid.items():
        head = path.split(".")[0]
        key = repr
        if head in CAPS or head == "annual_budget_musd":
            order = sorted(values, key=lambda v: -_cap(v))
        elif head in FLOORS or head == "min_output_t":
            order = sorted(values, key=lambda v: _floor(v))
        else:
            continue
        ranks[path] = {key(v): i for i, v in enumerate(order)}

    def score(t: Task) -> tuple[int, int]:
        return (sum(ranks[p].get(repr(v), 0) for p, v in t.varied if p in ranks), t.index)

    return sorted(tasks, key=score)
