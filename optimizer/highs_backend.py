"""The solver seam: everything HiGHS- and Pyomo-internal-specific, in one module.

This is the only module that imports ``highspy`` or reaches into Pyomo's private attributes.
``tests/test_handover.py`` checks the fast hand-over gives HiGHS exactly the LP of Pyomo's
stock path, and the hand-worked and brute-force tests run through both (``Session(backend=
"stock")``); if the private attributes the fast path needs go missing in a future Pyomo, the
stock path is used, and every private read below has a public fallback or is optional.

What it provides:
- :func:`make_persistent`: Pyomo's persistent HiGHS interface for a model, ``"stock"`` or
  ``"fast"`` (batched hand-over, :class:`FastHighs`), with a wall-clock deadline enforced
  through HiGHS's interrupt callbacks (``cbMipInterrupt``, ``cbSimplexInterrupt``): HiGHS's
  own ``time_limit`` is only checked at some points of the MIP search, and was measured
  running 1.8-2.5 s on a 1 s limit at 10,000 projects;
- :func:`highs_options`: the HiGHS option names and values of a solve;
- :func:`solve_lp`: a small LP straight in highspy (the exact stake re-solve);
- :data:`NO_BOUND`, :func:`highs_version`, :func:`highs_threads`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.solvers.highs import (
    Highs,
    _MutableConstraintBounds,
    _MutableLinearCoefficient,
)
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.core.expr.numvalue import NumericConstant

from .schema import SolverSettings

# "No limit" on a mutable bound is HiGHS's infinity threshold, not math.inf: Pyomo's persistent
# interface treats a row whose bound is inf when the model is handed over as unbounded for good
# and would ignore later changes to that bound; 1e20 keeps the bound mutable and HiGHS reads it
# as infinite.
NO_BOUND = 1e20


class _InterruptNote(logging.Filter):
    """Pyomo warns "Received unhandled status=kInterrupt" when the deadline callback stopped
    HiGHS; that is our own time limit at work (reported as such), not news for the user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "kInterrupt" not in record.getMessage()


logging.getLogger("pyomo.contrib.solver").addFilter(_InterruptNote())
logging.getLogger("pyomo.contrib.solver.solvers.highs").addFilter(_InterruptNote())


def highs_threads() -> int | None:
    """HiGHS threads for this process: ``OPTIMIZER_HIGHS_THREADS`` if set, else HiGHS's own
    default."""
    v = os.environ.get("OPTIMIZER_HIGHS_THREADS", "").strip()
    return int(v) if v.isdigit() and int(v) > 0 else None


# HiGHS heuristics switched off, each measured (bench/README.md):
FEASIBILITY_JUMP = False  # a quarter of a small solve's time, for incumbents found anyway
ROOT_REDUCED_COST = False  # a sub-MIP that checks no time limit (4.6 s on a 2 s limit)
TIGHT_TOL = 1e-9  # feasibility tolerances of certification re-solves (defaults 1e-7, 1e-6)


def highs_options(settings: SolverSettings, *, exact: bool = False) -> dict[str, Any]:
    """HiGHS options for one run of a scenario's ``solver`` settings; ``exact``: tight
    feasibility tolerances (certification re-solves). Options persist on a HiGHS object, so
    every run states all of them."""
    tol = TIGHT_TOL if exact else None
    options: dict[str, Any] = {
        "presolve": settings.presolve,
        "random_seed": settings.random_seed,
        "output_flag": False,
        "mip_heuristic_run_feasibility_jump": FEASIBILITY_JUMP,
        "mip_heuristic_run_root_reduced_cost": ROOT_REDUCED_COST,
        "primal_feasibility_tolerance": tol or 1e-7,
        "mip_feasibility_tolerance": tol or 1e-6,
    }
    threads = highs_threads()
    if threads:
        options["threads"] = threads
    return options


class StockHighs(Highs):
    """Pyomo's persistent HiGHS interface, hand-over unchanged, plus a deadline, fast reads
    of the solution and quiet between runs."""

    _deadline: float | None = None  # time.monotonic() past which HiGHS is interrupted
    _watching = False
    interrupted = False  # the last run was stopped by the deadline
    last_results = None  # the results object of the last solve (public solution loader)
    # incumbent watch (:meth:`watch_incumbents`): columns read, the test, what it saw
    _watch_vars: list | None = None
    _watch_cols: np.ndarray | None = None  # their columns (known once Pyomo's update ran)
    _watch_test = None
    _watch_hooked = False
    stopped_early = False  # the last run was stopped at an incumbent the test flagged
    incumbents: list[np.ndarray]

    def solve(self, model, **kwds):
        self.last_results = super().solve(model, **kwds)
        return self.last_results

    def _highspy(self):
        """The highspy object behind Pyomo's interface (private; None if it moved)."""
        return getattr(self, "_solver_model", None)

    def mip_nodes(self) -> int | None:
        """Branch-and-bound nodes of the last run (None where it cannot be read)."""
        highs = self._highspy()
        return None if highs is None else int(highs.getInfo().mip_node_count)

    def quiet(self) -> None:
        """No HiGHS output between solves either (a later bound change would print notes)."""
        highs = self._highspy()
        if highs is not None:
            highs.setOptionValue("output_flag", False)

    def set_deadline(self, deadline: float | None) -> None:
        """Interrupt HiGHS once ``time.monotonic()`` passes ``deadline`` (None: no deadline).
        The callback is attached to the HiGHS object on first use and stays. Without access
        to it, HiGHS's own ``time_limit`` is all there is."""
        self._deadline = deadline
        self.interrupted = False
        if deadline is not None:
            self._hook_interrupt()

    def _hook_interrupt(self) -> None:
        """Subscribe :meth:`_interrupt` to HiGHS's interrupt callbacks, once."""
        highs = self._highspy()
        if highs is None or self._watching:
            return
        for event in (highs.cbMipInterrupt, highs.cbSimplexInterrupt, highs.cbIpmInterrupt):
            event.subscribe(self._interrupt)
        self._watching = True

    def _interrupt(self, e) -> None:
        past = self._deadline is not None and time.monotonic() > self._deadline
        self.interrupted |= past
        # always state it: HiGHS keeps the flag between runs, so an interrupt that stopped
        # one run would stop the next at once (seen with highspy 1.16)
        e.interrupt(past or self.stopped_early)

    def watch_incumbents(self, variables, test) -> None:
        """For the next runs: record the values of ``variables`` in every incumbent HiGHS
        finds (:attr:`incumbents`) and stop the run at the first for which ``test(values)``
        is true (:attr:`stopped_early`) - lazy constraints, emulated: highspy cannot add rows
        during a run. ``variables`` None: stop watching. Where HiGHS's columns cannot be
        found the watch stays off and runs go to their end."""
        self.stopped_early = False
        self.incumbents = []
        highs = self._highspy()
        var_map = getattr(self, "_pyomo_var_to_solver_var_map", None)
        self._watch_cols = None
        if variables is None or highs is None or var_map is None:
            self._watch_vars = self._watch_test = None
            return
        self._watch_vars, self._watch_test = variables, test
        if not self._watch_hooked:
            highs.cbMipSolution.subscribe(self._on_incumbent)
            self._watch_hooked = True
        self._hook_interrupt()  # the interrupt callback stops the run

    def _on_incumbent(self, e) -> None:
        if self._watch_vars is not None and not self.stopped_early:
            if self._watch_cols is None:  # the columns of a new sample's variables exist now
                var_map = self._pyomo_var_to_solver_var_map
                self._watch_cols = np.fromiter((var_map[id(v)] for v in self._watch_vars),
                                               int, len(self._watch_vars))
            got = np.asarray(e.data_out.mip_solution)[self._watch_cols]
            self.incumbents.append(got)
            self.stopped_early = bool(self._watch_test(got))
        e.interrupt(self.stopped_early)

    def values(self, variables) -> np.ndarray:
        """Primal values of ``variables`` from the last run, through Pyomo's public solution
        loader."""
        if self.last_results is None:
            raise RuntimeError("no primal solution to read")
        loader = self.last_results.solution_loader
        read = getattr(loader, "get_vars", None) or loader.get_primals  # Pyomo 6.10 / 6.9
        got = read(list(variables))
        return np.array([got[v] for v in variables], dtype=float)


class FastHighs(StockHighs):
    """The persistent interface with two batching shortcuts for large models.

    1. Stock ``add_block`` discovers variables constraint by constraint and adds them to HiGHS a
       few at a time (20,000 ``addVars``/``changeColsIntegrality`` calls at 10,000 projects);
       here they are registered in one call first.
    2. Rows whose body is a ``LinearExpression`` (every row ``model.py`` builds) skip the
       generic expression walk and per-row ``generate_standard_repn``: coefficients are read
       straight off the expression and passed to HiGHS in one ``addRows``. Everything Pyomo
       records about a constraint (for later updates and removals, and the helpers that push
       mutable-parameter coefficients and bounds to HiGHS) is recorded the same way. Any
       other row takes the stock path.

    If Pyomo's internals change (the attributes used here go missing), the stock path is used.
    """

    _FAST = all(hasattr(Highs, a) for a in ("_add_constraints", "_check_for_new_vars"))

    def values(self, variables) -> np.ndarray:
        """Primal values read straight off HiGHS's solution array (a 20,000-variable read
        through Pyomo's loader costs ~0.1 s); through the loader if the arrays moved."""
        sol = getattr(self, "_sol", None)
        var_map = getattr(self, "_pyomo_var_to_solver_var_map", None)
        if sol is None or var_map is None:
            return super().values(variables)
        if not sol.value_valid:
            raise RuntimeError("no primal solution to read")
        col = np.asarray(sol.col_value)
        return col[np.fromiter((var_map[id(v)] for v in variables), int, len(variables))]

    def add_block(self, block) -> None:
        known = getattr(self, "_referenced_variables", None)
        if known is not None:
            fresh = [v for v in block.component_data_objects(pyo.Var, descend_into=True)
                     if id(v) not in known]
            if fresh:
                self.add_variables(fresh)
        super().add_block(block)

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


def make_persistent(kind: str, model) -> StockHighs:
    """Pyomo's persistent HiGHS interface holding ``model``: ``"fast"`` (batched hand-over)
    or ``"stock"`` (Pyomo's own)."""
    solver = FastHighs() if kind == "fast" else StockHighs()
    solver.set_instance(model)
    solver.quiet()
    return solver


def highs_version() -> str:
    return ".".join(str(v) for v in StockHighs().version())


def solve_lp(cost: np.ndarray, rows: np.ndarray, row_upper: np.ndarray, col_lower: np.ndarray,
             col_upper: np.ndarray, *, maximize: bool = True, tol: float = 1e-10
             ) -> np.ndarray | None:
    """``max (min) cost @ s`` s.t. ``rows @ s <= row_upper``, ``col_lower <= s <= col_upper``
    by HiGHS's simplex with tolerances ``tol``; the optimal ``s`` (a vertex), or None when
    the LP has no optimum. ``rows`` is a dense (m, k) array: these LPs are small."""
    k = len(cost)
    lp = highspy.HighsLp()
    lp.num_col_ = k
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = np.asarray(col_lower, dtype=float)
    lp.col_upper_ = np.asarray(col_upper, dtype=float)
    lp.row_lower_ = np.full(len(rows), -highspy.kHighsInf)
    lp.row_upper_ = np.asarray(row_upper, dtype=float)
    lp.sense_ = highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
    mat = np.asarray(rows, dtype=float).reshape(len(rows), k)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    nz = mat != 0.0
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int32)
    lp.a_matrix_.index_ = np.nonzero(nz)[1].astype(np.int32)
    lp.a_matrix_.value_ = mat[nz]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    threads = highs_threads()  # HiGHS's scheduler is per process: keep its thread count
    if threads:
        h.setOptionValue("threads", threads)
    h.setOptionValue("primal_feasibility_tolerance", tol)
    h.setOptionValue("dual_feasibility_tolerance", tol)
    h.setOptionValue("solver", "simplex")
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(h.getSolution().col_value, dtype=float)
