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

from typing import Any

from ..check import violations
from ..limits import at_least_as_loose, looseness_order
from ..schema import WITH_PORTFOLIO, Scenario
from .spec import Task


def reusable(data, prior: tuple[Scenario, dict[str, Any]], sc: Scenario
             ) -> dict[str, float] | None:
    """The stakes of a prior optimal/feasible row that answer ``sc`` (see the module
    docstring), or None."""
    psc, row = prior
    if row.get("status") not in WITH_PORTFOLIO or not at_least_as_loose(data, psc, sc):
        return None
    stakes = {p["project_id"]: p["stake"] for p in row["selected"]}
    if violations(data, sc, stakes, rel_tol=1e-9):
        return None
    return stakes


def loose_first(tasks: list[Task], grid: dict[str, list[Any]] | None) -> list[Task]:
    """The chunk reordered loosest first: by the sum over the grid's fields of each value's
    looseness rank (the table of limits orders caps biggest first, floors smallest first;
    other fields have no order)."""
    if not grid:
        return tasks
    ranks: dict[str, dict[str, int]] = {}
    for path, values in grid.items():
        order = looseness_order(path, values)
        if order is not None:
            ranks[path] = {repr(values[i]): r for r, i in enumerate(order)}

    def score(t: Task) -> tuple[int, int]:
        return (sum(ranks[p].get(repr(v), 0) for p, v in t.varied if p in ranks), t.index)

    return sorted(tasks, key=score)
