"""Solving: one built model and one persistent HiGHS instance (Pyomo's ``highs`` interface)
per projects table, re-solved for each scenario.

``Optimizer(data).solve(scenario)`` is the library's entry point; ``optimize()`` is the
one-shot form. Solver outcomes are typed data (:class:`~optimizer.schema.Result`), never
exceptions; only bad input raises (:class:`~optimizer.errors.InputError`).
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from pyomo.common.gc_manager import PauseGC
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.solvers.highs import (
    Highs,
    _MutableConstraintBounds,
    _MutableLinearCoefficient,
)
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.core.expr.numvalue import NumericConstant

from .check import violations
from .data import (
    ProjectData,
    check_scenario_against,
    load_projects,
    load_scenario,
    scenario_sha256,
)
from .model import BuiltModel, apply_scenario, build_model
from .results import binding, objective_value, portfolio
from .schema import Provenance, Result, Scenario, SolverInfo

# A solve HiGHS calls optimal is reported "optimal" only if its gap is within this; a looser
# user mip_gap that stopped the search earlier is reported "feasible" (CONTRACT section 4).
OPTIMAL_GAP = 1e-4


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


SOFTWARE_VERSION = _pkg_version("critical-minerals-optimizer")
PYOMO_VERSION = _pkg_version("pyomo")
HIGHS_VERSION = ".".join(str(v) for v in Highs().version())


class _Highs(Highs):
    """Pyomo's persistent HiGHS interface with two batching shortcuts for large models.

    1. Stock ``add_block`` discovers variables constraint by constraint and adds them to HiGHS a
       few at a time (20,000 ``addVars``/``changeColsIntegrality`` calls at 10,000 projects);
       here they are registered in one call first.
    2. Rows whose body is a ``LinearExpression`` (every row ``model.py`` builds) skip the
       generic expression walk and per-row ``generate_standard_repn``: coefficients are read
       straight off the expression and passed to HiGHS in one ``addRows``. Everything Pyomo
       records about a constraint (for later updates and removals, and the helpers that push
       mutable-parameter coefficients and bounds to HiGHS) is recorded the same way. Any
       other row takes the stock path.

    ``tests/test_handover.py`` checks that both give HiGHS the identical LP. If Pyomo's
    internals change (the attributes used here go missing), the stock path is used.
    """

    _FAST = all(hasattr(Highs, a) for a in ("_add_constraints", "_check_for_new_vars"))

    def add_block(self, block) -> None:
        known = getattr(self, "_referenced_variables", None)
        if known is not None:
            fresh = [v for v in block.component_data_objects(pyo.Var, descend_into=True)
                     if id(v) not in known]
            if fresh:
                self.add_variables(fresh)
        super().add_block(block)

    def values(self, variables) -> np.ndarray:
        """Primal values of ``variables`` from the last run, read straight off HiGHS's
        solution array (a 20,000-variable read through the loader costs ~0.1 s)."""
        sol = getattr(self, "_sol", None)
        if sol is None or not sol.value_valid:
            raise RuntimeError("no primal solution to read")
        col = np.asarray(sol.col_value)
        var_map = self._pyomo_var_to_solver_var_map
        return col[np.fromiter((var_map[id(v)] for v in variables), int, len(variables))]

    def add_constraints(self, cons) -> None:
        if not (self._FAST and hasattr(self, "_active_constraints")):
            return super().add_constraints(cons)
        fast, slow = [], []
        for con in cons:
            (fast if _fast_row(con) else slow).append(con)
        if fast:
            self._add_plain_rows(fast)
        if slow:
            super().add_constraints(slow)

    def _add_plain_rows(self, cons) -> None:
        import highspy

        self._sol = None
        if self._last_results_object is not None:
            self._last_results_object.solution_loader.invalidate()
        var_map = self._pyomo_var_to_solver_var_map
        known = self._referenced_variables
        row = len(self._pyomo_con_to_solver_con_map)
        lbs, ubs, starts, idx, vals = [], [], [], [], []
        for con in cons:
            if con in self._named_expressions:
                raise ValueError(f"Constraint {con.name} has already been added")
            body = con.body
            variables = list(body.linear_vars)
            if any(id(v) not in known for v in variables):
                self._check_for_new_vars(variables)
            self._active_constraints[con] = con.expr
            self._named_expressions[con] = []
            self._vars_referenced_by_con[con] = variables
            helpers = []
            starts.append(len(vals))
            for c, v in zip(body.linear_coefs, variables, strict=True):
                known[id(v)][0][con] = None
                if type(c) not in _NUMBER:  # a mutable parameter: HiGHS gets updates
                    helpers.append(_MutableLinearCoefficient(
                        pyomo_con=con, pyomo_var_id=id(v),
                        con_map=self._pyomo_con_to_solver_con_map, var_map=var_map, expr=c,
                        highs=self._solver_model))
                    c = pyo.value(c)
                    if c == 0:
                        continue
                idx.append(var_map[id(v)])
                vals.append(c)
            const = body.constant
            lo = -highspy.kHighsInf if con.lower is None else con.lower - const
            up = highspy.kHighsInf if con.upper is None else con.upper - const
            if type(lo) not in _CONSTANT or type(up) not in _CONSTANT:
                helpers.append(_MutableConstraintBounds(
                    lower_expr=lo, upper_expr=up, pyomo_con=con,
                    con_map=self._pyomo_con_to_solver_con_map, highs=self._solver_model))
            lbs.append(pyo.value(lo))
            ubs.append(pyo.value(up))
            if helpers:
                self._mutable_helpers[con] = helpers
            self._pyomo_con_to_solver_con_map[con] = row
            self._solver_con_to_pyomo_con_map[row] = con
            row += 1
        self._solver_model.addRows(len(lbs), np.array(lbs, dtype=np.double),
                                   np.array(ubs, dtype=np.double), len(vals),
                                   np.array(starts), np.array(idx),
                                   np.array(vals, dtype=np.double))


_NUMBER = (int, float)
_CONSTANT = (int, float, NumericConstant)


def _fast_row(con) -> bool:
    """A row the fast path may take: a ``LinearExpression`` body on unfixed variables whose
    coefficients are numbers or fixed (parameter) expressions, and whose constant and bounds
    are numbers or parameters."""
    body = con.body
    if type(body) is not LinearExpression or type(body.constant) not in _NUMBER:
        return False
    for b in (con.lower, con.upper):
        if b is not None and type(b) not in _CONSTANT and b.is_potentially_variable():
            return False
    for c in body.linear_coefs:
        if type(c) not in _NUMBER and c.is_potentially_variable():
            return False
    return not any(v.fixed for v in body.linear_vars)


@dataclass
class Outcome:
    """What one HiGHS run produced, before it becomes a Result."""

    termination: TerminationCondition
    has_solution: bool
    objective: float | None
    bound: float | None
    solve_s: float
    stakes: dict[str, float]


class Optimizer:
    """A built model for one projects table, re-solvable for any number of scenarios.

    Not thread-safe: one Optimizer per worker process (Pyomo has process-wide state).
    """

    def __init__(self, data: ProjectData) -> None:
        self.data = data
        self.built: BuiltModel = build_model(data)
        self._highs: _Highs | None = None
        self._transfer_s = 0.0
        self._run_clock = 0.0

    # -- low level: used by solve() and by diagnosis ---------------------------------------
    def run(self, scenario: Scenario, *, time_limit_s: float | None = None) -> Outcome:
        """Solve the model as it stands now (the caller has set params/bounds/objective)."""
        first = self._highs is None
        if first:
            self._highs = _Highs()
        st = scenario.solver
        t0 = time.perf_counter()
        with PauseGC():  # the first call hands the whole model over: no cycles, many objects
            res = self._highs.solve(
                self.built.model,
                time_limit=time_limit_s or st.time_limit_s,
                rel_gap=st.mip_gap,
                load_solutions=False,
                raise_exception_on_nonoptimal_result=False,
                solver_options={"presolve": st.presolve, "random_seed": st.random_seed,
                                "output_flag": False},
            )
        wall = time.perf_counter() - t0
        # HiGHS's run clock is cumulative over runs on one instance: take the difference
        run_clock = float(res.timing_info.highs_time or 0.0)
        highs_s = max(0.0, run_clock - self._run_clock)
        self._run_clock = run_clock
        if first:
            self._transfer_s = max(0.0, wall - highs_s)
        has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        stakes: dict[str, float] = {}
        if has:
            stakes = self._read_stakes()
        return Outcome(termination=res.termination_condition, has_solution=has,
                       objective=res.incumbent_objective, bound=res.objective_bound,
                       solve_s=highs_s, stakes=stakes)

    def _read_stakes(self) -> dict[str, float]:
        m = self.built.model
        n = self.data.n
        both = self._highs.values([*(m.choose[p] for p in range(n)),
                                   *(m.stake[p] for p in range(n))])
        x, s = both[:n], both[n:]
        rows = np.flatnonzero(x > 0.5)
        smin, smax = self.data.col("min_stake"), self.data.col("max_stake")
        ids = self.data.frame["project_id"].to_numpy()
        # HiGHS meets bounds within its 1e-6 tolerance; clip so reported stakes are exact
        return {ids[i]: float(min(max(s[i], smin[i]), smax[i])) for i in rows}

    def relaxed_value(self, field: str) -> float:
        """The slack HiGHS chose for a diagnosis field in the last run."""
        return float(self._highs.values([self.built.model.relax[field]])[0])

    # -- the library entry point ----------------------------------------------------------
    def solve(self, scenario: Scenario | dict | str | Path, *, diagnose: bool = True) -> Result:
        """Solve ``scenario`` on this table; infeasible scenarios come back diagnosed."""
        sc = load_scenario(scenario)
        check_scenario_against(sc, self.data)
        apply_scenario(self.built, sc)
        out = self.run(sc)
        status = _status(out)
        stakes = out.stakes if status in ("optimal", "feasible") else {}
        selected, totals = portfolio(self.data, stakes)
        diagnosis = None
        if status in ("optimal", "feasible"):
            broken = violations(self.data, sc, stakes)
            if broken:  # never show a wrong answer as right
                raise SolutionCheckError(broken)
        elif status == "infeasible" and diagnose:
            from .diagnose import diagnose_infeasible

            diagnosis = diagnose_infeasible(self, sc)
            apply_scenario(self.built, sc)  # leave the model as the scenario set it
        obj = objective_value(self.data, sc, totals) if stakes or status in (
            "optimal", "feasible") else None
        bound = out.bound if status in ("optimal", "feasible") else None
        return Result(
            status=status, objective=obj,
            best_bound=_finite(bound),
            mip_gap=_gap(obj, bound) if obj is not None else None,
            selected=selected, totals=totals,
            binding=binding(sc, totals) if stakes else [],
            diagnosis=diagnosis,
            solver=SolverInfo(
                version=HIGHS_VERSION,
                build_s=round(self.built.build_s + self._transfer_s, 6),
                solve_time_s=round(out.solve_s, 6),
                termination=out.termination.name,
                options={"time_limit_s": sc.solver.time_limit_s, "mip_gap": sc.solver.mip_gap,
                         "presolve": sc.solver.presolve, "random_seed": sc.solver.random_seed}),
            provenance=Provenance(
                dataset_sha256=self.data.sha256, scenario_sha256=scenario_sha256(sc),
                software_version=SOFTWARE_VERSION, pyomo_version=PYOMO_VERSION,
                python_version=platform.python_version()),
            scenario_name=sc.name,
        )


class SolutionCheckError(RuntimeError):
    """The solver's portfolio failed the independent constraint check (a bug, not bad input)."""

    def __init__(self, broken: list[str]) -> None:
        self.broken = broken
        super().__init__("solver returned a portfolio that breaks the scenario: "
                         + "; ".join(broken))


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _gap(obj: float | None, bound: float | None) -> float | None:
    """HiGHS's relative gap |bound - obj| / |obj| (0 when both are 0)."""
    if obj is None or bound is None or not math.isfinite(bound):
        return None
    diff = abs(bound - obj)
    if diff <= 1e-9:
        return 0.0
    return None if abs(obj) < 1e-12 else diff / abs(obj)


def _status(out: Outcome) -> str:
    tc = out.termination
    if tc in (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded):
        return "infeasible"
    if not out.has_solution:
        return "no_solution"
    if tc == TerminationCondition.convergenceCriteriaSatisfied:
        gap = _gap(out.objective, out.bound)
        proven = gap is not None and gap <= OPTIMAL_GAP + 1e-12
        return "optimal" if proven else "feasible"
    return "feasible"


def optimize(projects: ProjectData | str | Path | pd.DataFrame | list[dict[str, Any]] | None,
             scenario: Scenario | dict | str | Path | None) -> Result:
    """One-shot: validate ``projects`` and ``scenario``, build, solve, return the result."""
    data = projects if isinstance(projects, ProjectData) else load_projects(projects)
    return Optimizer(data).solve(load_scenario(scenario))


__all__ = ["Optimizer", "optimize", "Outcome", "SolutionCheckError"]
