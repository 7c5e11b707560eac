"""Pyomo's persistent HiGHS interface, with what this project needs on top of it.

Everything here that reaches into Pyomo's private attributes (for speed) lives in this one
module; ``tests/test_handover.py`` checks it gives HiGHS exactly the LP of Pyomo's stock path,
and if the attributes it needs go missing in a future Pyomo, the stock path is used.

On top of the hand-over shortcut:
- a wall-clock deadline enforced through HiGHS's interrupt callbacks (``cbMipInterrupt``,
  ``cbSimplexInterrupt``): HiGHS's own ``time_limit`` is only checked at some points of the
  MIP search, and was measured running 1.8-2.5 s on a 1 s limit at 10,000 projects;
- ``values()``: primal values read straight off HiGHS's solution array;
- ``highs_threads()``: the HiGHS thread count a process should use (``OPTIMIZER_HIGHS_THREADS``;
  HiGHS's scheduler is process-wide and fixed at its first run, so worker processes that share
  a machine set it to 1 before they solve anything).
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.solvers.highs import (
    Highs,
    _MutableConstraintBounds,
    _MutableLinearCoefficient,
)
from pyomo.core.expr.numeric_expr import LinearExpression
from pyomo.core.expr.numvalue import NumericConstant


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


class FastHighs(Highs):
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
    _deadline: float | None = None  # time.monotonic() past which HiGHS is interrupted
    _watching = False

    def mip_nodes(self) -> int | None:
        """Branch-and-bound nodes of the last run."""
        highs = getattr(self, "_solver_model", None)
        return None if highs is None else int(highs.getInfo().mip_node_count)

    def quiet(self) -> None:
        """No HiGHS output between solves either (a later bound change would print notes)."""
        self._solver_model.setOptionValue("output_flag", False)

    def set_deadline(self, deadline: float | None) -> None:
        """Interrupt HiGHS once ``time.monotonic()`` passes ``deadline`` (None: no deadline).
        The callback is attached to the HiGHS object on first use and stays."""
        self._deadline = deadline
        self.interrupted = False
        highs = getattr(self, "_solver_model", None)
        if deadline is None or highs is None or self._watching:
            return
        for event in (highs.cbMipInterrupt, highs.cbSimplexInterrupt, highs.cbIpmInterrupt):
            event.subscribe(self._interrupt)
        self._watching = True

    interrupted = False  # the last run was stopped by the deadline

    def _interrupt(self, e) -> None:
        past = self._deadline is not None and time.monotonic() > self._deadline
        self.interrupted |= past
        # always state it: HiGHS keeps the flag between runs, so an interrupt that stopped
        # one run would stop the next at once (seen with highspy 1.16)
        e.interrupt(past)

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
