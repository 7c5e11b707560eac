"""The library's entry point: ``Optimizer(data).solve(scenario)`` (``optimize()`` one-shot).

An :class:`Optimizer` is a thin composition: a :class:`~optimizer.session.Session` (one built
model, one persistent HiGHS instance; a scenario only moves numbers), certification of every
portfolio before it is reported (:mod:`optimizer.certify`), infeasibility diagnosis
(:mod:`optimizer.diagnose`) and result assembly (:mod:`optimizer.results`). Alternatives
(modelling to generate alternatives, no-good cuts) live in :mod:`optimizer.alternatives`.

Solver outcomes are typed data (:class:`~optimizer.schema.Result`), never exceptions; only bad
input raises (:class:`~optimizer.errors.InputError`). The reported objective is recomputed
from the certified portfolio; the bound is HiGHS's (for the model with any cuts, which only
remove sets that cannot be priced within the limits).
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
from pyomo.contrib.solver.common.results import TerminationCondition

from .alternatives import alternative as find_alternative
from .certify import EXACT_TOL, certify
from .check import violations
from .data import ProjectData, check_scenario_against, load_projects, load_scenario, scenario_sha256
from .diagnose import diagnose_infeasible
from .highs_backend import highs_version
from .limits import measure
from .model import BuiltModel
from .results import binding, objective_value, portfolio
from .sample import fresh_sample, sample_for
from .schema import (
    WITH_PORTFOLIO,
    OutOfSample,
    Provenance,
    Result,
    Scenario,
    SolverInfo,
    Status,
    UncertaintyBlock,
)
from .session import Backend, Outcome, Session

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
HIGHS_VERSION = highs_version()


class Optimizer:
    """A built model for one projects table, re-solvable for any number of scenarios.

    Not thread-safe: one Optimizer per worker process (Pyomo has process-wide state).
    """

    def __init__(self, data: ProjectData, *, mutable_data: bool = False,
                 backend: Backend = "fast") -> None:
        """``mutable_data``: build for Monte Carlo, so :meth:`use_data` can move a perturbed
        table's numbers into the model in place. ``backend``: ``"stock"`` hands the model
        to HiGHS through Pyomo's own interface unchanged (slower; for cross-checks)."""
        self.session = Session(data, mutable_data=mutable_data, backend=backend)

    @property
    def data(self) -> ProjectData:
        """The table the next solve uses (the base table or a Monte-Carlo draw of it)."""
        return self.session.data

    @property
    def base_data(self) -> ProjectData:
        return self.session.base_data

    @property
    def built(self) -> BuiltModel:
        return self.session.built

    def hand_over(self) -> None:
        """Hand the model to HiGHS now (otherwise the first solve does, as build time)."""
        self.session.hand_over()

    def use_data(self, data: ProjectData) -> None:
        """Solve the next scenarios on ``data`` (:meth:`Session.use_data`)."""
        self.session.use_data(data)

    # -- the library entry points ----------------------------------------------------------
    def solve(self, scenario: Scenario | dict | str | Path, *, diagnose: bool = True,
              candidates: Sequence[dict[str, float]] = ()) -> Result:
        """Solve ``scenario`` on this table; infeasible scenarios come back diagnosed.

        ``candidates``: portfolios ({project_id: stake}) known from elsewhere, e.g. the
        previous point of a frontier; one that meets this scenario exactly and beats the
        search's portfolio is reported instead (a search stopped at its gap may miss it)."""
        sc = self.scenario(scenario)
        return self.solve_with(sc, diagnose=diagnose, candidates=candidates)

    def alternative(self, scenario: Scenario | dict | str | Path, **kw: Any) -> Result:
        """A portfolio other than the optimum (:func:`optimizer.alternatives.alternative`:
        ``exclude``, ``min_difference``, ``away_from``, ``min_objective``)."""
        return find_alternative(self, self.scenario(scenario), **kw)

    def scenario(self, scenario: Scenario | dict | str | Path) -> Scenario:
        """``scenario`` validated, and checked against this table (names, countries)."""
        sc = load_scenario(scenario)  # validates Scenario objects too
        check_scenario_against(sc, self.data)
        return sc

    def solve_with(self, sc: Scenario, *, diagnose: bool = True,
                   candidates: Sequence[dict[str, float]] = (),
                   change: Callable[[], AbstractContextManager[Any]] | None = None,
                   alternative: str | None = None) -> Result:
        """Solve a validated scenario. ``change``: a context manager that changes the model
        for this one search (cuts, another objective) and undoes it; ``alternative``: the
        search looks for an alternative, not the optimum (status at best "feasible", no bound,
        this note in the certification list)."""
        session = self.session
        session.hand_over()  # once per table; reported as build time, not within the limit
        t_start = time.monotonic()
        session.deadline = t_start + sc.solver.time_limit_s
        try:
            session.apply(sc)
            with change() if change is not None else contextlib.nullcontext():
                cert = certify(session, sc, session.run(sc.solver))
            out = cert.outcome
            status = _status(out)
            if alternative is not None and status == "optimal":
                status, out = "feasible", replace(out, bound=None)
                cert.repairs.append(alternative)
            stakes = cert.stakes or {}
            if candidates and status in ("optimal", "feasible", "no_solution"):
                better = self._best_candidate(sc, candidates, stakes if cert.stakes else None)
                if better is not None:
                    stakes = better
                    cert.repairs.append("a given candidate portfolio beat the search's")
                    if status == "no_solution":
                        status = "feasible"
            if status in WITH_PORTFOLIO and cert.stakes is None and not stakes:
                status = "no_solution"  # nothing could be certified in time
            diagnosis = None
            if status == "infeasible" and diagnose:
                session.deadline = time.monotonic() + sc.solver.time_limit_s
                diagnosis = diagnose_infeasible(session, sc)
        finally:
            session.deadline = None
        searched_s = time.monotonic() - t_start  # before any judging on fresh draws
        result = self.result_for(sc, stakes, status=status, bound=out.bound,
                                 termination=out.termination.name, solve_s=out.solve_s,
                                 notes=cert.repairs, diagnosis=diagnosis,
                                 wall_s=time.monotonic() - t_start,
                                 judge=alternative is None)
        if result.status in WITH_PORTFOLIO:
            # what leaves the library, re-checked as a reader would: the reported stakes
            broken = violations(self.data, sc, {p.project_id: p.stake for p in result.selected},
                                rel_tol=EXACT_TOL)
            if broken:  # cannot happen after certify(); if it ever does, nothing is shown
                raise SolutionCheckError(broken)
        if diagnosis is None:  # what this solve spent outside HiGHS's run, for the next
            session.learn_overhead(searched_s, out.solve_s)
        return result

    def uncertainty_of(self, sc: Scenario, stakes: dict[str, float], *, judge: bool = True
                       ) -> UncertaintyBlock:
        """The portfolio ``stakes`` on ``sc``'s sample (in-sample figures), and with
        ``judge``, beside the face-value optimum on fresh draws neither was chosen on
        (:func:`optimizer.sample.fresh_sample`): the value of the stochastic solution."""
        smp = sample_for(self.data, sc)
        inside = measure(self.data, sc, smp, stakes)
        block = UncertaintyBlock(**inside.model_dump(), draws=smp.n_draws, alpha=sc.cvar_alpha,
                                 source=smp.source, seed=smp.seed, sample_sha256=smp.sha256)
        fresh = fresh_sample(self.data, sc) if judge else None
        if fresh is None:
            return block
        face_sc = sc.at_face_value()
        face = self.solve_with(face_sc, diagnose=False)
        face_stakes = {p.project_id: p.stake for p in face.selected}
        mine = measure(self.data, sc, fresh, stakes)
        theirs = measure(self.data, sc, fresh, face_stakes) if face.has_portfolio else None
        block.out_of_sample = OutOfSample(
            draws=fresh.n_draws, seed=fresh.seed, source=fresh.source, portfolio=mine,
            face_value=theirs, face_value_selected=sorted(face_stakes),
            vss=None if theirs is None else mine.mean - theirs.mean)
        self.session.apply(sc)  # the model as this scenario left it
        return block

    def result_for(self, sc: Scenario, stakes: dict[str, float], *, status: str,
                   bound: float | None, termination: str, solve_s: float = 0.0,
                   notes: Sequence[str] = (), diagnosis=None, wall_s: float | None = None,
                   judge: bool = True) -> Result:
        """The result object for a certified portfolio ``stakes`` of ``sc`` (or none, for a
        status without one). Also used by batches for a portfolio re-used from a looser row
        (``optimizer.batch.reuse``). Under uncertainty it carries the portfolio's figures on
        the sample and, with ``judge``, on fresh draws beside the face-value optimum."""
        selected, totals = portfolio(self.data, stakes)
        ok = status in WITH_PORTFOLIO
        obj = objective_value(self.data, sc, totals, stakes) if ok else None
        bound = bound if ok else None
        stats = self.session.stats
        return Result(
            status=status, objective=obj,
            best_bound=_finite(bound),
            mip_gap=_gap(obj, bound) if obj is not None else None,
            selected=selected, totals=totals,
            binding=binding(self.data, sc, stakes) if ok else [],
            diagnosis=diagnosis,
            solver=SolverInfo(
                version=HIGHS_VERSION,
                build_s=round(self.built.build_s + stats.transfer_s, 6),
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
            uncertainty=(self.uncertainty_of(sc, stakes, judge=judge)
                         if ok and sc.uncertainty is not None else None),
        )

    def _best_candidate(self, sc: Scenario, candidates: Sequence[dict[str, float]],
                        current: dict[str, float] | None) -> dict[str, float] | None:
        """The best candidate that meets ``sc`` exactly and beats ``current`` (else None)."""
        def value(stakes: dict[str, float]) -> float:
            return objective_value(self.data, sc, portfolio(self.data, stakes)[1], stakes)

        best, bar = None, -math.inf if current is None else value(current)
        pos, gone = self.data.positions, self.data.unavailable
        for cand in candidates:
            if any(p not in pos for p in cand):
                continue
            if gone is not None and any(gone[pos[p]] for p in cand):
                continue
            if violations(self.data, sc, cand, rel_tol=EXACT_TOL):
                continue
            v = value(cand)
            if v > bar + 1e-9 * max(1.0, abs(bar)):
                best, bar = dict(cand), v
        return best


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


def _status(out: Outcome) -> Status:
    tc = out.termination
    if out.infeasible:
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


__all__ = ["Optimizer", "optimize", "Outcome", "SolutionCheckError", "WITH_PORTFOLIO"]
