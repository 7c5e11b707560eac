"""A solver session: one built model and one persistent HiGHS instance per projects table.

The model is handed to HiGHS once (:meth:`Session.hand_over`); a run then only moves numbers
(scenario parameters, bounds, the active objective) and returns a typed :class:`Outcome`:
termination, whether a solution exists, objective, bound and the values of ``choose`` and
``stake``. Nothing is read from the model after a run without a solution.

Sessions serve three callers: the plain solve and its certification (``optimizer.solve``,
``optimizer.certify``), alternatives (``optimizer.alternatives``) and infeasibility diagnosis,
which drives a session through the small :class:`optimizer.diagnose.Probe` protocol that
:class:`Session` implements (enforce a set of limits, free one slack, re-run, read the slack).
Everything solver-specific is behind ``optimizer.highs_backend``.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pyomo.environ as pyo
from pyomo.common.gc_manager import PauseGC
from pyomo.common.tee import capture_output
from pyomo.common.timing import HierarchicalTimer
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from .data import ProjectData
from .highs_backend import highs_options, make_persistent
from .model import (
    FILTER_FIELDS,
    BuiltModel,
    apply_data,
    apply_scenario,
    build_model,
    choice_bounds,
    set_choice_bounds,
    use_objective,
)
from .sample import sample_for
from .schema import LIMIT_BY_FIELD, Scenario, SolverSettings
from .stochastic import (
    add_understated_rows,
    apply_uncertainty,
    attach_sample,
    lazy_rows,
    set_cap_margins,
)

Backend = Literal["fast", "stock"]
INFEASIBLE = (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded)


@dataclass
class Outcome:
    """What one HiGHS run produced, before it becomes a Result."""

    termination: TerminationCondition
    has_solution: bool
    objective: float | None
    bound: float | None
    solve_s: float
    x: np.ndarray | None = None  # choose, as HiGHS left it
    s: np.ndarray | None = None  # stake, as HiGHS left it

    @property
    def infeasible(self) -> bool:
        return self.termination in INFEASIBLE


@dataclass
class RunStats:
    """What the last run cost, for benchmarks: wall time of the whole call, Pyomo's phases
    (``timer.get_total_time("optimize")`` is HiGHS's own run), branch-and-bound nodes."""

    wall_s: float = 0.0
    timer: HierarchicalTimer | None = None
    nodes: int | None = None
    transfer_s: float = 0.0  # the one-off hand-over
    overhead_s: float = 0.0  # a solve's time outside HiGHS's run (learnt, for deadlines)


class Session:
    """One built model and one persistent HiGHS instance, re-run for any number of scenarios.

    Not thread-safe: one session per worker process (Pyomo has process-wide state).
    ``backend``: ``"fast"`` hands the model over in batched calls (``highs_backend``);
    ``"stock"`` uses Pyomo's own interface unchanged (the tests run both)."""

    def __init__(self, data: ProjectData, *, mutable_data: bool = False,
                 backend: Backend = "fast") -> None:
        self.data = data
        self.base_data = data
        self.backend = backend
        self.built: BuiltModel = build_model(data, mutable_data=mutable_data)
        self._solver = None
        self.deadline: float | None = None  # monotonic time past which runs are interrupted
        # first guess of a solve's time outside HiGHS's run by size, then measured
        self.stats = RunStats(overhead_s=2e-5 * data.n)
        self._scenario: Scenario | None = None

    # -- hand-over and runs -----------------------------------------------------------------
    def hand_over(self) -> None:
        """Hand the built model to HiGHS, once; later runs only move numbers."""
        if self._solver is not None:
            return
        t0 = time.perf_counter()
        # many objects, no cycles: the cyclic GC would only rescan them; HiGHS's notes on the
        # 1e20 "no limit" bounds go to a captured stream, as in Pyomo's own solve
        with PauseGC(), capture_output(capture_fd=True):
            self._solver = make_persistent(self.backend, self.built.model)
        self.stats.transfer_s = time.perf_counter() - t0

    def apply(self, sc: Scenario) -> None:
        """Set the model to ``sc``'s numbers (limits, weights, filters, objective); under
        uncertainty, with its sample's rows (made and added once per sample)."""
        smp = sample_for(self.data, sc)
        if smp is not None:
            attach_sample(self.built, smp)
        apply_scenario(self.built, sc)
        apply_uncertainty(self.built, sc)
        self._scenario = sc

    def run_fixed(self, sc: Scenario, chosen: np.ndarray) -> Outcome:
        """Re-solve with the chosen set fixed (``chosen`` bool per row), tight tolerances:
        the best stakes for that set under every limit, sampled ones included (what the
        small exact LP of ``optimizer.polish`` cannot hold). The bounds are restored."""
        set_choice_bounds(self.built, chosen * 1.0, chosen * 1.0)
        try:
            return self.run(sc.solver, exact=True)
        finally:
            set_choice_bounds(self.built, *choice_bounds(self.data, sc))

    def run(self, settings: SolverSettings, *, exact: bool = False) -> Outcome:
        """Solve the model as it stands now (the caller has applied a scenario and may have
        changed bounds or the objective), within ``settings`` and the session's deadline.

        Under a CVaR, the shortfall rows are generated (``optimizer.stochastic``): a run stops
        at the first incumbent that understates some draw's shortfall, the rows of every draw
        any incumbent of the run understated are added, and the model is re-run until a run
        ends without one; that run's answer and bound are the full model's. Out of time on
        the way, the last run's answer is returned as not proven (its bound still holds).

        ``exact``: tight feasibility tolerances (certification re-solves)."""
        until = time.monotonic() + settings.time_limit_s  # the limit holds for all runs
        self.hand_over()
        solver = self._solver
        watch = lazy_rows(self.built)
        solved, nodes = 0.0, 0
        while True:
            solver.watch_incumbents(*(watch or (None, None)))
            out = self._run_once(settings, exact, solved, until)
            solved, nodes = out.solve_s, nodes + (self.stats.nodes or 0)
            self.stats.nodes = nodes
            if watch is None or not (out.has_solution or solver.stopped_early):
                return out
            seen = list(solver.incumbents)
            if out.has_solution:
                seen.append(solver.values(watch[0]))
            added = add_understated_rows(self.built, seen)
            if not added and not solver.stopped_early:
                return out
            if self.time_up() or until - time.monotonic() <= 1e-3:
                return replace(out, termination=TerminationCondition.maxTimeLimit)
            if not added:  # cannot happen (the flagged incumbent has rows to add): run to end
                watch = None

    def _run_once(self, settings: SolverSettings, exact: bool, solved_before: float,
                  until: float) -> Outcome:
        limit = max(1e-3, min(settings.time_limit_s, until - time.monotonic()))
        if self.deadline is not None:
            # leave room for what follows HiGHS's run (reading the answer, the result): the
            # limit is for the whole call (measured on this model, at most 10 % of the limit)
            left = self.deadline - time.monotonic()
            limit = max(1e-3, min(limit, left - min(0.1 * left, self.stats.overhead_s)))
        solver = self._solver
        # HiGHS checks its own time limit only at some points of the search; the interrupt
        # callback stops it at the same instant wherever it calls back (not in its LP solves)
        solver.set_deadline(time.monotonic() + limit)
        timer = HierarchicalTimer()
        t0 = time.perf_counter()
        res = solver.solve(self.built.model, time_limit=limit, rel_gap=settings.mip_gap,
                           load_solutions=False, raise_exception_on_nonoptimal_result=False,
                           solver_options=highs_options(settings, exact=exact), timer=timer)
        self.stats.wall_s = time.perf_counter() - t0
        self.stats.timer = timer
        self.stats.nodes = solver.mip_nodes()
        has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        termination = res.termination_condition
        if solver.interrupted:  # stopped by our deadline: a time limit, in other words
            termination = TerminationCondition.maxTimeLimit
        x = s = None
        if has:
            m, n = self.built.model, self.data.n
            both = solver.values([*(m.choose[p] for p in range(n)),
                                  *(m.stake[p] for p in range(n))])
            x, s = both[:n], both[n:]
        return Outcome(termination=termination, has_solution=has,
                       objective=res.incumbent_objective, bound=res.objective_bound,
                       solve_s=timer.get_total_time("optimize") + solved_before, x=x, s=s)

    def learn_overhead(self, wall_s: float, solve_s: float) -> None:
        """Record what a whole solve call spent outside HiGHS's run (for the next deadline)."""
        self.stats.overhead_s = 0.5 * self.stats.overhead_s + 0.5 * max(0.0, wall_s - solve_s)

    def use_data(self, data: ProjectData) -> None:
        """Solve the next scenarios on ``data``: the base table or a perturbed copy of it
        (:meth:`ProjectData.perturbed`); its equity values, NPVs and outputs move into the
        model's mutable coefficients, its unavailable projects into bounds."""
        if data is not self.data:
            apply_data(self.built, data)
            self.data = data
            self.built.data = data

    # -- reading a run ----------------------------------------------------------------------
    def stakes_of(self, out: Outcome) -> dict[str, float]:
        """The portfolio of a run: ``choose`` rounded, stakes clipped into their range."""
        if not out.has_solution:
            return {}
        rows = np.flatnonzero(out.x > 0.5)
        smin, smax = self.data.col("min_stake"), self.data.col("max_stake")
        ids = self.data.frame["project_id"].to_numpy()
        return {ids[i]: float(min(max(out.s[i], smin[i]), smax[i])) for i in rows}

    def time_up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # -- the diagnosis protocol (optimizer.diagnose.Probe) ----------------------------------
    def enforce(self, sc: Scenario, enforced: Collection[str], free: str | None = None) -> None:
        """Hold only the limits ``enforced`` (field paths) of ``sc``; with ``free``, let that
        one limit's slack move and minimise it."""
        m = self.built.model
        if sc is not self._scenario:
            self.apply(sc)
        if hasattr(m, "drop_obj"):
            m.del_component(m.drop_obj)
        for f in m.F:
            m.relax[f].setub(None if (f not in enforced or f == free) else 0.0)
            m.relax_weight[f].set_value(1.0 if f == free else 0.0)
        # caps_in_draw's tight big-M assumes ceil(p N) draws hold the caps: not once that
        # limit's slack may move
        held = "budget_confidence" in enforced and free != "budget_confidence"
        set_cap_margins(self.built,
                        round(pyo.value(m.rhs["budget_confidence"])) if held else None)
        set_choice_bounds(self.built, *choice_bounds(
            self.data, sc, [f for f in FILTER_FIELDS if f in enforced]))
        use_objective(self.built, "relax")

    def minimise_chosen(self, rows: Sequence[int], *, left_out: bool = False) -> None:
        """Objective: the fewest of ``rows`` chosen (``left_out``: the fewest left out)."""
        m = self.built.model
        if hasattr(m, "drop_obj"):
            m.del_component(m.drop_obj)
        x = [m.choose[i] for i in rows]
        m.drop_obj = pyo.Objective(expr=sum(1 - v for v in x) if left_out else sum(x),
                                   sense=pyo.minimize)
        use_objective(self.built, "none")
        m.drop_obj.activate()

    def slack(self, path: str) -> float:
        """The slack the last run chose for limit ``path``, in the field's own units (a
        confidence's slack counts draws: as a share of them here)."""
        m = self.built.model
        got = float(self._solver.values([m.relax[path]])[0])
        if LIMIT_BY_FIELD[path.split(".")[0]].reads in ("caps_held", "floors_met"):
            n_draws = self.built.sample.n_draws
            need = float(m.rhs[path].value)  # ceil(p N)
            held = need - round(got)  # the most draws any portfolio holds them in
            return float(self._scenario.model_dump()[path]) - held / n_draws
        return got

    def restore(self, sc: Scenario) -> None:
        """Back to ``sc`` as a plain solve sees it (after diagnosis)."""
        m = self.built.model
        if hasattr(m, "drop_obj"):
            m.del_component(m.drop_obj)
        self.apply(sc)

