"""Solving: one built model and one persistent HiGHS instance (Pyomo's ``highs`` interface)
per projects table, re-solved for each scenario.

``Optimizer(data).solve(scenario)`` is the library's entry point; ``optimize()`` is the
one-shot form. Solver outcomes are typed data (:class:`~optimizer.schema.Result`), never
exceptions; only bad input raises (:class:`~optimizer.errors.InputError`).

**Certified portfolios.** HiGHS meets rows and bounds within its feasibility tolerances
(1e-6 on integrality, 1e-7 on rows), so a portfolio read straight off it can, once re-priced
at exact stakes (``choose`` rounded, stakes inside ``[min_stake, max_stake]``), break a cap by
``equity_value * 1e-6``. Every portfolio is therefore re-priced and checked against every limit
at 1e-9 relative (:mod:`optimizer.check`) before it is reported:

1. the portfolio as HiGHS gave it, re-priced exactly: almost always fine;
2. else the same chosen set with its stakes re-solved as an LP (``choose`` fixed, tight
   tolerances): a simplex vertex meets its active rows to rounding error;
3. else the chosen set cannot be priced within the limits at all (it was feasible only
   within HiGHS's tolerance): it is cut off with a no-good cut and the MIP is searched again
   with tight tolerances, up to :data:`MAX_REPAIRS` times.

The reported objective is recomputed from the certified portfolio; the bound is HiGHS's (for
the model with any cuts, which only remove sets that cannot be priced within the limits).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyomo.common.gc_manager import PauseGC
from pyomo.common.tee import capture_output
from pyomo.common.timing import HierarchicalTimer
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

from .check import violations
from .data import (
    ProjectData,
    check_scenario_against,
    load_projects,
    load_scenario,
    scenario_sha256,
)
from .errors import InputError
from .highs_backend import FastHighs, highs_threads
from .model import (
    INF,
    BuiltModel,
    add_alternative_search,
    add_nogood,
    apply_data,
    apply_scenario,
    build_model,
    clear_cuts,
    remove_alternative_search,
    use_objective,
)
from .polish import polish_stakes
from .results import binding, objective_value, portfolio
from .schema import Provenance, Result, Scenario, SolverInfo

# A solve HiGHS calls optimal is reported "optimal" only if its gap is within this; a looser
# user mip_gap that stopped the search earlier is reported "feasible" (CONTRACT section 4).
OPTIMAL_GAP = 1e-4
# Relative tolerance of the certificate: no limit broken by more than this (CONTRACT: exact).
EXACT_TOL = 1e-9
# Tight HiGHS tolerances for the certification re-solves (defaults: 1e-7 rows, 1e-6 MIP).
TIGHT_TOL = 1e-9
MAX_REPAIRS = 20
FEASIBILITY_JUMP = False  # HiGHS's feasibility-jump heuristic (bench/README.md)
ROOT_REDUCED_COST = False  # HiGHS's root reduced-cost heuristic (bench/README.md)


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


SOFTWARE_VERSION = _pkg_version("critical-minerals-optimizer")
PYOMO_VERSION = _pkg_version("pyomo")
HIGHS_VERSION = ".".join(str(v) for v in FastHighs().version())


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


@dataclass
class Certified:
    """A portfolio checked against every limit at :data:`EXACT_TOL`, and how it was got."""

    outcome: Outcome  # the run whose bound and termination stand
    stakes: dict[str, float] | None  # None: no portfolio could be certified
    repairs: list[str]  # what certification had to do, in words ([] = nothing)


class Optimizer:
    """A built model for one projects table, re-solvable for any number of scenarios.

    Not thread-safe: one Optimizer per worker process (Pyomo has process-wide state).
    """

    def __init__(self, data: ProjectData, *, mutable_data: bool = False) -> None:
        """``mutable_data``: build for Monte Carlo, so :meth:`use_data` can move a perturbed
        table's numbers into the model in place."""
        self.data = data
        self.base_data = data
        self.built: BuiltModel = build_model(data, mutable_data=mutable_data)
        self._highs: FastHighs | None = None
        self._transfer_s = 0.0
        # time a solve spends outside HiGHS's run (Pyomo's update, reading the answer, the
        # result); first guess by size, then measured
        self._overhead_s = 2e-5 * data.n
        self.deadline: float | None = None  # monotonic time past which runs are interrupted

    # -- low level: used by solve() and by diagnosis ---------------------------------------
    def run(self, scenario: Scenario, *, exact: bool = False) -> Outcome:
        """Solve the model as it stands now (the caller has set params/bounds/objective).

        ``exact``: tight feasibility tolerances (certification re-solves)."""
        self.hand_over()
        st = scenario.solver
        limit = st.time_limit_s
        if self.deadline is not None:
            # leave room for what follows HiGHS's run (reading the answer, the result): the
            # limit is for the whole call (measured on this model, at most 10 % of the limit)
            left = self.deadline - time.monotonic()
            limit = max(1e-3, min(limit, left - min(0.1 * left, self._overhead_s)))
        tol = TIGHT_TOL if exact else None
        options: dict[str, Any] = {
            "presolve": st.presolve,
            "random_seed": st.random_seed,
            "output_flag": False,
            # measured (bench/README.md): a quarter of a small solve's time, for incumbents
            # the other heuristics find anyway on this model class
            "mip_heuristic_run_feasibility_jump": FEASIBILITY_JUMP,
            # measured: a sub-MIP that checks no time limit (4.6 s on a 2 s limit at 10,000
            # projects), no faster solves without it on any family measured
            "mip_heuristic_run_root_reduced_cost": ROOT_REDUCED_COST,
            # options persist on a HiGHS object: always state both tolerances
            "primal_feasibility_tolerance": tol or 1e-7,
            "mip_feasibility_tolerance": tol or 1e-6,
        }
        threads = highs_threads()
        if threads:
            options["threads"] = threads
        # HiGHS checks its own time limit only at some points of the search; the interrupt
        # callback stops it at the same instant wherever it calls back (not in its LP solves)
        self._highs.set_deadline(time.monotonic() + limit)
        timer = HierarchicalTimer()
        t0 = time.perf_counter()
        res = self._highs.solve(
            self.built.model,
            time_limit=limit,
            rel_gap=st.mip_gap,
            load_solutions=False,
            raise_exception_on_nonoptimal_result=False,
            solver_options=options,
            timer=timer,
        )
        highs_s = timer.get_total_time("optimize")  # HiGHS's own run
        self.last_run_wall = time.perf_counter() - t0
        self.last_timer = timer  # Pyomo's phases of this run (benchmarks read them)
        self.last_mip_nodes = self._highs.mip_nodes()
        has = res.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
        termination = res.termination_condition
        if self._highs.interrupted:  # stopped by our deadline: a time limit, in other words
            termination = TerminationCondition.maxTimeLimit
        x = s = None
        if has:
            m = self.built.model
            n = self.data.n
            both = self._highs.values([*(m.choose[p] for p in range(n)),
                                       *(m.stake[p] for p in range(n))])
            x, s = both[:n], both[n:]
        return Outcome(termination=termination, has_solution=has,
                       objective=res.incumbent_objective, bound=res.objective_bound,
                       solve_s=highs_s, x=x, s=s)

    def use_data(self, data: ProjectData) -> None:
        """Solve the next scenarios on ``data``: the base table or a perturbed copy of it
        (:meth:`ProjectData.perturbed`); its equity values, NPVs and outputs move into the
        model's mutable coefficients, its unavailable projects into bounds."""
        if data is not self.data:
            apply_data(self.built, data)
            self.data = data
            self.built.data = data

    def hand_over(self) -> None:
        """Hand the built model to HiGHS, once; later runs only move numbers."""
        if self._highs is not None:
            return
        t0 = time.perf_counter()
        # many objects, no cycles: the cyclic GC would only rescan them; HiGHS's notes on the
        # 1e20 "no limit" bounds go to a captured stream, as in Pyomo's own solve
        with PauseGC(), capture_output(capture_fd=True):
            self._highs = FastHighs()
            self._highs.set_instance(self.built.model)
            self._highs.quiet()
        self._transfer_s = time.perf_counter() - t0

    def stakes_of(self, out: Outcome) -> dict[str, float]:
        """The portfolio of a run: ``choose`` rounded, stakes clipped into their range."""
        if not out.has_solution:
            return {}
        rows = np.flatnonzero(out.x > 0.5)
        smin, smax = self.data.col("min_stake"), self.data.col("max_stake")
        ids = self.data.frame["project_id"].to_numpy()
        return {ids[i]: float(min(max(out.s[i], smin[i]), smax[i])) for i in rows}

    def relaxed_value(self, field: str) -> float:
        """The slack HiGHS chose for a diagnosis field in the last run."""
        return float(self._highs.values([self.built.model.relax[field]])[0])

    def certify(self, sc: Scenario, out: Outcome) -> Certified:
        """Re-price the run's portfolio exactly; repair it if HiGHS's tolerances let it break
        a limit (module docstring). The model is left as ``sc`` set it."""
        repairs: list[str] = []
        cuts = 0
        try:
            while out.has_solution:
                stakes = self.stakes_of(out)
                if not violations(self.data, sc, stakes, rel_tol=EXACT_TOL):
                    return Certified(out, stakes, repairs)
                chosen = out.x > 0.5
                rows = np.flatnonzero(chosen)
                polished = polish_stakes(self.data, sc, rows)
                if polished is not None:
                    ids = self.data.frame["project_id"].to_numpy()
                    stakes = {ids[i]: float(v) for i, v in zip(rows, polished, strict=True)}
                    if not violations(self.data, sc, stakes, rel_tol=EXACT_TOL):
                        repairs.append("stakes re-solved exactly with the chosen projects fixed")
                        return Certified(out, stakes, repairs)
                if cuts >= MAX_REPAIRS or self._time_up():
                    break
                add_nogood(self.built, chosen)
                cuts += 1
                repairs.append(f"a chosen set that breaks a limit once priced exactly was "
                               f"excluded ({', '.join(sorted(stakes)) or 'empty'})")
                out = self.run(sc, exact=True)
            return Certified(out, None, repairs)
        finally:
            if cuts:
                clear_cuts(self.built)

    def _time_up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    # -- the library entry point ----------------------------------------------------------
    def solve(self, scenario: Scenario | dict | str | Path, *, diagnose: bool = True,
              exclude_portfolios: Sequence[Collection[str]] = (),
              min_difference: int = 1,
              candidates: Sequence[dict[str, float]] = (),
              away_from: Collection[str] = (),
              min_objective: float | None = None) -> Result:
        """Solve ``scenario`` on this table; infeasible scenarios come back diagnosed.

        ``exclude_portfolios``: chosen sets (project ids) the answer must differ from, each in
        at least ``min_difference`` project choices (no-good cuts; for alternatives).
        ``candidates``: portfolios ({project_id: stake}) known from elsewhere, e.g. the
        previous point of a frontier; one that meets this scenario exactly and beats the
        search's portfolio is reported instead (a search stopped at its gap may miss it).

        ``away_from`` + ``min_objective`` (modelling to generate alternatives): instead of the
        best portfolio, the one that keeps the least money in the projects ``away_from`` while
        its objective stays at least ``min_objective``. Its status is then "feasible" (a
        portfolio of the scenario, not its optimum) with no bound."""
        sc = load_scenario(scenario)  # validates Scenario objects too
        check_scenario_against(sc, self.data)
        excluded = self._exclusion_masks(exclude_portfolios, min_difference)
        self.hand_over()  # once per table; reported as build time, not within the limit
        t_start = time.monotonic()
        self.deadline = t_start + sc.solver.time_limit_s
        try:
            apply_scenario(self.built, sc)
            for chosen in excluded:
                add_nogood(self.built, chosen, min_difference)
            alternative = bool(away_from) or min_objective is not None
            if alternative:
                self._aim_away(sc, away_from, min_objective)
            try:
                out = self.run(sc)
                cert = self.certify(sc, out)
            finally:
                if excluded:
                    clear_cuts(self.built)
                if alternative:
                    self._aim_away(sc, away_from, None, reset=True)
            out = cert.outcome
            status = _status(out)
            if alternative and status == "optimal":
                status = "feasible"
                out = replace(out, bound=None)
                cert.repairs.append("an alternative: the portfolio keeping the least money in "
                                    f"{len(away_from)} given projects with the objective at "
                                    f"least {min_objective}")
            stakes = cert.stakes or {}
            if candidates and status in ("optimal", "feasible", "no_solution"):
                better = self._best_candidate(sc, candidates, stakes if cert.stakes else None)
                if better is not None:
                    stakes = better
                    cert.repairs.append("a given candidate portfolio beat the search's")
                    if status == "no_solution":
                        status = "feasible"
            if status in ("optimal", "feasible") and cert.stakes is None:
                status = "no_solution"  # nothing could be certified in time
            diagnosis = None
            if status == "infeasible" and diagnose:
                from .diagnose import diagnose_infeasible

                self.deadline = time.monotonic() + sc.solver.time_limit_s
                diagnosis = diagnose_infeasible(self, sc)
        finally:
            self.deadline = None
        result = self.result_for(sc, stakes, status=status, bound=out.bound,
                                 termination=out.termination.name, solve_s=out.solve_s,
                                 notes=cert.repairs, diagnosis=diagnosis,
                                 wall_s=time.monotonic() - t_start)
        if result.status in ("optimal", "feasible"):
            # what leaves the library, re-checked as a reader would: the reported stakes
            broken = violations(self.data, sc, {p.project_id: p.stake for p in result.selected},
                                rel_tol=EXACT_TOL)
            if broken:  # cannot happen after certify(); if it ever does, nothing is shown
                raise SolutionCheckError(broken)
        if diagnosis is None:  # what this solve spent outside HiGHS's run, for the next
            wall = time.monotonic() - t_start
            self._overhead_s = 0.5 * self._overhead_s + 0.5 * max(0.0, wall - out.solve_s)
        return result

    def result_for(self, sc: Scenario, stakes: dict[str, float], *, status: str,
                   bound: float | None, termination: str, solve_s: float = 0.0,
                   notes: Sequence[str] = (), diagnosis=None, wall_s: float | None = None
                   ) -> Result:
        """The result object for a certified portfolio ``stakes`` of ``sc`` (or none, for a
        status without one). Also used by batches for a portfolio re-used from a looser row
        (``optimizer.batch.reuse``)."""
        selected, totals = portfolio(self.data, stakes)
        ok = status in ("optimal", "feasible")
        obj = objective_value(self.data, sc, totals) if ok else None
        bound = bound if ok else None
        return Result(
            status=status, objective=obj,
            best_bound=_finite(bound),
            mip_gap=_gap(obj, bound) if obj is not None else None,
            selected=selected, totals=totals,
            binding=binding(sc, totals) if ok else [],
            diagnosis=diagnosis,
            solver=SolverInfo(
                version=HIGHS_VERSION,
                build_s=round(self.built.build_s + self._transfer_s, 6),
                solve_time_s=round(solve_s, 6),
                termination=termination,
                options={"time_limit_s": sc.solver.time_limit_s, "mip_gap": sc.solver.mip_gap,
                         "presolve": sc.solver.presolve,
                         "random_seed": sc.solver.random_seed},
                certification=list(notes),
                wall_s=None if wall_s is None else round(wall_s, 6)),
            provenance=Provenance(
                dataset_sha256=self.data.sha256, scenario_sha256=scenario_sha256(sc),
                software_version=SOFTWARE_VERSION, pyomo_version=PYOMO_VERSION,
                python_version=platform.python_version()),
            scenario_name=sc.name,
        )

    def _aim_away(self, sc: Scenario, away_from: Collection[str], floor: float | None, *,
                  reset: bool = False) -> None:
        if reset:
            remove_alternative_search(self.built)
            use_objective(self.built, sc.objective)
            return
        pos = self.data.positions
        unknown = [p for p in away_from if p not in pos]
        if unknown:
            raise InputError(f"away_from names unknown projects {unknown}", loc=("away_from",))
        away = np.zeros(self.data.n, dtype=bool)
        away[[pos[p] for p in away_from]] = True
        npv_floor = floor if sc.objective == "npv" else None
        if sc.objective == "supply" and floor is not None:
            own = -INF if sc.min_weighted_supply is None else sc.min_weighted_supply
            self.built.model.supply_floor.set_value(max(own, float(floor)))
        add_alternative_search(self.built, away, npv_floor)

    def _best_candidate(self, sc: Scenario, candidates: Sequence[dict[str, float]],
                        current: dict[str, float] | None) -> dict[str, float] | None:
        """The best candidate that meets ``sc`` exactly and beats ``current`` (else None)."""
        def value(stakes: dict[str, float]) -> float:
            return objective_value(self.data, sc, portfolio(self.data, stakes)[1])

        best, bar = None, -math.inf if current is None else value(current)
        for cand in candidates:
            pos = self.data.positions
            if any(p not in pos for p in cand):
                continue
            gone = self.data.unavailable
            if gone is not None and any(gone[pos[p]] for p in cand):
                continue
            if violations(self.data, sc, cand, rel_tol=EXACT_TOL):
                continue
            v = value(cand)
            if v > bar + 1e-9 * max(1.0, abs(bar)):
                best, bar = dict(cand), v
        return best

    def _exclusion_masks(self, portfolios: Sequence[Collection[str]], d: int
                         ) -> list[np.ndarray]:
        if d < 1:
            raise InputError("min_difference must be at least 1", loc=("min_difference",))
        pos = self.data.positions
        masks = []
        for i, ids in enumerate(portfolios):
            unknown = [p for p in ids if p not in pos]
            if unknown:
                raise InputError(f"exclude_portfolios[{i}] names unknown projects "
                                 f"{', '.join(map(repr, unknown))}",
                                 loc=("exclude_portfolios", i))
            mask = np.zeros(self.data.n, dtype=bool)
            mask[[pos[p] for p in ids]] = True
            masks.append(mask)
        return masks


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
