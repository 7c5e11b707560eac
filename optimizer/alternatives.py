"""Alternative portfolios by modelling to generate alternatives (MGA), kept apart from the
plain solve as PyPSA keeps its MGA in ``optimization/mga.py``.

An alternative keeps the least money in a given set of projects (those of the optimum and of
the alternatives found before it) while its objective stays within a slack of the optimum:
the model gains, for one solve, the objective ``avoid_obj`` and (NPV objective) the row
``min_npv``; a supply objective's floor goes through ``min_supply``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pyomo.environ as pyo

from .errors import InputError
from .highs_backend import NO_BOUND
from .model import BuiltModel, _lin, add_nogood, clear_cuts, use_objective
from .schema import Result, Scenario

if TYPE_CHECKING:
    from .solve import Optimizer


def add_alternative_search(built: BuiltModel, away: np.ndarray, npv_floor: float | None
                           ) -> None:
    """Add, for one solve (:func:`remove_alternative_search` takes it out), the objective
    ``min sum_{p in away} c_p`` (``avoid_obj``: the money kept in the projects to move away
    from) and, for the NPV objective, the row ``sum_p (npv[p] * s[p] - deal_cost[p] * x[p])
    >= npv_floor``."""
    m = built.model
    rows = np.flatnonzero(away)
    s = [m.stake[p] for p in rows]
    x = [m.choose[p] for p in rows]
    eq = built.data.col("equity_value_musd")[rows]
    deal = built.data.col("deal_cost_musd")[rows]
    m.avoid_obj = pyo.Objective(expr=_lin(np.concatenate([eq, deal]), s + x),
                                sense=pyo.minimize,
                                doc="alternatives: min the money kept in the projects to move "
                                "away from, sum_{p in away} c_p")
    if npv_floor is not None:
        n = built.data.n
        every = np.concatenate([built.data.col("npv_musd"), -built.data.col("deal_cost_musd")])
        m.min_npv = pyo.Constraint(
            expr=(float(npv_floor), _lin(every, [m.stake[p] for p in range(n)]
                                         + [m.choose[p] for p in range(n)]), None),
            doc="alternatives: sum_p (npv[p] * s[p] - deal_cost[p] * x[p]) >= npv_floor")
    use_objective(built, "none")
    m.avoid_obj.activate()


def remove_alternative_search(built: BuiltModel) -> None:
    m = built.model
    for name in ("avoid_obj", "min_npv"):
        if hasattr(m, name):
            m.del_component(name)


def alternative(opt: Optimizer, sc: Scenario, *, exclude: Sequence[Collection[str]] = (),
                min_difference: int = 1, away_from: Collection[str] = (),
                min_objective: float | None = None) -> Result:
    """A portfolio of ``sc`` other than the optimum.

    ``exclude``: chosen sets (project ids) the answer must differ from, each in at least
    ``min_difference`` project choices (no-good cuts); alone, the answer is the best portfolio
    under those cuts (its status may be "optimal": optimal under the cuts).
    ``away_from`` + ``min_objective`` (modelling to generate alternatives): instead of the
    best portfolio, the one that keeps the least money in the projects ``away_from`` while its
    objective stays at least ``min_objective``. Its status is then "feasible" (a portfolio of
    the scenario, not its optimum) with no bound."""
    data = opt.data
    masks = _masks(data.positions, data.n, exclude, min_difference)
    pos = data.positions
    unknown = [p for p in away_from if p not in pos]
    if unknown:
        raise InputError(f"away_from names unknown projects {unknown}", loc=("away_from",))
    mga = bool(away_from) or min_objective is not None
    built = opt.built

    @contextmanager
    def change() -> Iterator[None]:
        for chosen in masks:
            add_nogood(built, chosen, min_difference)
        if mga:
            away = np.zeros(data.n, dtype=bool)
            away[[pos[p] for p in away_from]] = True
            npv_floor = min_objective if sc.objective == "npv" else None
            if sc.objective == "supply" and min_objective is not None:
                own = -NO_BOUND if sc.min_weighted_supply is None else sc.min_weighted_supply
                built.model.rhs["min_weighted_supply"].set_value(max(own, float(min_objective)))
            add_alternative_search(built, away, npv_floor)
        try:
            yield
        finally:
            clear_cuts(built)
            if mga:
                remove_alternative_search(built)
                opt.session.apply(sc)

    note = (f"an alternative: the portfolio keeping the least money in {len(away_from)} given "
            f"projects with the objective at least {min_objective}") if mga else None
    return opt.solve_with(sc, diagnose=False, change=change, alternative=note)


def _masks(pos: dict[str, int], n: int, portfolios: Sequence[Collection[str]], d: int
           ) -> list[np.ndarray]:
    if d < 1:
        raise InputError("min_difference must be at least 1", loc=("min_difference",))
    masks = []
    for i, ids in enumerate(portfolios):
        unknown = [p for p in ids if p not in pos]
        if unknown:
            raise InputError(f"exclude[{i}] names unknown projects "
                             f"{', '.join(map(repr, unknown))}", loc=("exclude", i))
        mask = np.zeros(n, dtype=bool)
        mask[[pos[p] for p in ids]] = True
        masks.append(mask)
    return masks
