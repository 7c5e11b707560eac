"""Why a scenario is infeasible, in terms a committee member can act on.

Every limit a scenario sets is a *field* (``budget_musd``, ``min_output_t.ree``,
``annual_budget_musd.0`` for plan year 1, ``include_projects``, ...). On the already built
model a field is relaxed by freeing its slack ``relax[f]`` (numeric limits) or by lifting its
bounds on ``choose`` (include/exclude lists), so each test below is a cheap re-solve.

1. Deletion filter over fields: start from all active fields (infeasible); drop each field in
   turn and keep it dropped if the rest is still infeasible. What remains is an irreducible
   conflict: those fields together cannot hold, and relaxing any one of them lifts *that*
   conflict. If the fields outside it are still infeasible, repeat on them; the conflicts
   found together cover every reason, so relaxing all named fields restores feasibility.
2. For each named field, the smallest change to it alone that restores feasibility (minimise
   its slack with every other field enforced), or the statement that it alone is not enough.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import TerminationCondition

from .model import CHOICE_FIELDS, apply_scenario, choice_bounds, set_choice_bounds, use_objective
from .results import portfolio
from .schema import PRODUCT_UNITS, Diagnosis, Scenario

if TYPE_CHECKING:
    from .solve import Optimizer

SET_FIELDS = CHOICE_FIELDS  # fields that act on which projects may be chosen
UNITS = PRODUCT_UNITS
_INFEASIBLE = (TerminationCondition.provenInfeasible, TerminationCondition.infeasibleOrUnbounded)


def active_fields(sc: Scenario, n_years: int) -> list[str]:
    """The scenario's limits that can restrict the portfolio, as field paths."""
    f = ["budget_musd"]
    f += [k for k in ("kabil_budget_musd", "us_budget_musd") if getattr(sc, k) is not None]
    f += [f"annual_budget_musd.{k}" for k, cap in enumerate(sc.annual_budget_musd or [])
          if cap is not None and k < n_years]
    for k in ("max_country_share", "max_avg_risk", "max_china_processing_share", "max_projects"):
        if getattr(sc, k) is not None:
            f.append(k)
    if sc.min_countries:
        f.append("min_countries")
    f += [f"min_output_t.{m}" for m, v in sc.min_output_t.items() if v > 0]
    if sc.min_weighted_supply:
        f.append("min_weighted_supply")
    f += [k for k in ("include_projects", "exclude_projects", "exclude_countries")
          if getattr(sc, k)]
    if sc.partners is not None and set(sc.partners) != {"KABIL", "US", "JOINT"}:
        f.append("partners")
    if sc.max_chinese_ownership is not None:
        f.append("max_chinese_ownership")
    return f


def describe(sc: Scenario, field: str) -> str:
    """A field's current value in words."""
    if field.startswith("annual_budget_musd."):
        k = int(field.split(".")[1])
        return f"a spending cap of {sc.annual_budget_musd[k]:,.6g} MUSD in plan year {k + 1}"
    if field.startswith("min_output_t."):
        m = field.split(".")[1]
        return f"at least {sc.min_output_t[m]:,.6g} {UNITS[m]}"
    v = getattr(sc, field)
    if field == "partners":
        return "only deals led by " + " or ".join(v)
    if field == "min_weighted_supply":
        return f"a weighted supply of at least {v:,.6g}"
    if field == "max_chinese_ownership":
        return f"no project more than {v:.4g} Chinese-owned"
    if field in SET_FIELDS:
        what = {"include_projects": "forced projects", "exclude_projects": "excluded projects",
                "exclude_countries": "excluded countries"}[field]
        return f"{what} " + ", ".join(v)
    return {
        "budget_musd": "a total budget of {:,.6g} MUSD",
        "kabil_budget_musd": "a KABIL budget of {:,.6g} MUSD",
        "us_budget_musd": "a US-side budget of {:,.6g} MUSD",
        "max_country_share": "no country above {:.4g} of spend",
        "min_countries": "at least {} host countries",
        "max_projects": "at most {} projects",
        "max_avg_risk": "an average risk of at most {:.4g}",
        "max_china_processing_share": "at most {:.4g} of spend in China-processed projects",
    }[field].format(v)


class _Checker:
    """Re-solves the built model with chosen fields enforced, all within the solve's deadline
    (``Optimizer.deadline``, the scenario's time limit for the whole diagnosis)."""

    def __init__(self, opt: Optimizer, sc: Scenario) -> None:
        self.opt = opt
        self.sc = sc
        self.complete = True
        self.model = opt.built.model
        self.runs = 0

    def _time_up(self) -> bool:
        d = self.opt.deadline
        if d is not None and time.monotonic() >= d:
            self.complete = False
            return True
        return False

    def _enforce(self, enforced: set[str], free: str | None = None,
                 sc: Scenario | None = None) -> None:
        m = self.model
        for f in m.F:
            m.relax[f].setub(None if (f not in enforced or f == free) else 0.0)
            m.relax_weight[f].set_value(1.0 if f == free else 0.0)
        set_choice_bounds(self.opt.built, *choice_bounds(
            self.opt.data, sc or self.sc, [f for f in SET_FIELDS if f in enforced]))

    def _run(self, objective: str = "relax"):
        use_objective(self.opt.built, objective)
        self.runs += 1
        out = self.opt.run(self.sc)
        if not out.has_solution and out.termination not in _INFEASIBLE:
            self.complete = False
        return out

    def feasible(self, enforced: set[str], sc: Scenario | None = None) -> bool | None:
        """True/False when decided; None when the time budget ran out first."""
        if self._time_up():
            return None
        self._enforce(enforced, sc=sc)
        out = self._run()
        if out.termination in _INFEASIBLE:
            return False
        return True if out.has_solution else None

    def least_change(self, field: str, enforced: set[str]) -> dict[str, Any] | None:
        """The smallest change of ``field`` alone that restores feasibility, or None."""
        sc = self.sc
        others = enforced - {field}
        if self._time_up():
            return None
        if field == "max_chinese_ownership":
            return self._least_ownership_cap(enforced)
        if field in SET_FIELDS:
            return self._least_drop(field, others)
        self._enforce(enforced, free=field)
        out = self._run()
        if not out.has_solution:
            return None
        slack = self.opt.relaxed_value(field)
        _, totals = portfolio(self.opt.data, self.opt.stakes_of(out))
        if field.startswith("min_output_t."):
            m = field.split(".")[1]
            old = sc.min_output_t[m]
            return {"field": field, "from": old, "to": _down(old - slack),
                    "change": f"lower {field} from {old:,.6g} to {_down(old - slack):,.6g} "
                              f"{UNITS[m]}"}
        if field == "min_weighted_supply":
            old = sc.min_weighted_supply
            return {"field": field, "from": old, "to": _down(old - slack),
                    "change": f"lower {field} from {old:,.6g} to {_down(old - slack):,.6g}"}
        if field.startswith("annual_budget_musd.") or field.endswith("budget_musd"):
            year = ""
            if "." in field:
                k = int(field.split(".")[1])
                old = sc.annual_budget_musd[k]
                year = f" (plan year {k + 1})"
            else:
                old = getattr(sc, field)
            new = _up(old + slack)
            return {"field": field, "from": old, "to": new,
                    "change": f"raise {field}{year} from {old:,.6g} to {new:,.6g} MUSD"}
        if field == "min_countries":
            new = int(sc.min_countries - round(slack))
            return {"field": field, "from": sc.min_countries, "to": new,
                    "change": f"lower min_countries from {sc.min_countries} to {new}"}
        if field == "max_projects":
            new = int(sc.max_projects + round(slack))
            return {"field": field, "from": sc.max_projects, "to": new,
                    "change": f"raise max_projects from {sc.max_projects} to {new}"}
        # share-type limits: report what the portfolio found needs (enough, maybe not least)
        total = totals.cost_musd
        got = {
            "max_country_share": max(totals.by_country_musd.values(), default=0.0) / total
            if total else 0.0,
            "max_avg_risk": totals.avg_risk or 0.0,
            "max_china_processing_share": totals.china_processing_share or 0.0,
        }[field]
        old = getattr(sc, field)
        new = _up(max(got, old), 4)
        return {"field": field, "from": old, "to": new,
                "change": f"raise {field} from {old:.4g} to {new:.4g} (a portfolio meeting every "
                          f"other limit exists there)"}

    def _least_ownership_cap(self, enforced: set[str]) -> dict[str, Any] | None:
        """The lowest ``max_chinese_ownership`` that restores feasibility: a bisection over
        the ownership levels above the cap present in the data."""
        sc = self.sc
        own = self.opt.data.col("chinese_ownership")
        levels = sorted({float(v) for v in own if v > sc.max_chinese_ownership})
        if not levels or not self.feasible(enforced, sc.model_copy(
                update={"max_chinese_ownership": levels[-1]})):
            return None
        lo, hi = -1, len(levels) - 1  # levels[hi] is feasible; levels[lo] (or the cap) not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok = self.feasible(enforced, sc.model_copy(
                update={"max_chinese_ownership": levels[mid]}))
            if ok is None:
                break
            lo, hi = (lo, mid) if ok else (mid, hi)
        new = levels[hi]
        return {"field": "max_chinese_ownership", "from": sc.max_chinese_ownership, "to": new,
                "change": f"raise max_chinese_ownership from {sc.max_chinese_ownership:.4g} to "
                          f"{new:.4g}"}

    def _least_drop(self, field: str, others: set[str]) -> dict[str, Any] | None:
        """Fewest list entries to drop from an include/exclude/partners field (a small MIP)."""
        sc = self.sc
        data = self.opt.data
        pos = data.positions
        f = data.frame
        m = self.model
        self._enforce(others)
        if field == "include_projects":
            rows = [pos[p] for p in sc.include_projects]
            expr = sum(1 - m.choose[i] for i in rows)
        elif field == "exclude_projects":
            rows = [pos[p] for p in sc.exclude_projects]
            expr = sum(m.choose[i] for i in rows)
        elif field == "partners":
            rows = np.flatnonzero(~f["partner"].isin(sc.partners).to_numpy()).tolist()
            expr = sum(m.choose[i] for i in rows)
        else:
            rows = np.flatnonzero(f["country"].isin(sc.exclude_countries)).tolist()
            expr = sum(m.choose[i] for i in rows)
        m.drop_obj = pyo.Objective(expr=expr, sense=pyo.minimize)
        try:
            out = self._run("none")
        finally:
            m.del_component(m.drop_obj)
        if not out.has_solution:
            return None
        chosen = set(self.opt.stakes_of(out))
        if field == "include_projects":
            drop = [p for p in sc.include_projects if p not in chosen]
            return {"field": field, "drop": drop,
                    "change": "drop " + ", ".join(drop) + " from include_projects"}
        if field == "exclude_projects":
            drop = [p for p in sc.exclude_projects if p in chosen]
            return {"field": field, "drop": drop,
                    "change": "allow " + ", ".join(drop) + " (remove from exclude_projects)"}
        if field == "partners":
            leads = sorted(set(f.loc[[pos[p] for p in chosen], "partner"]) - set(sc.partners))
            return {"field": field, "drop": leads,
                    "change": "also allow deals led by " + " and ".join(leads)
                              + " (add to partners)"}
        countries = sorted(set(f.loc[[pos[p] for p in chosen], "country"])
                           & set(sc.exclude_countries))
        return {"field": field, "drop": countries,
                "change": "allow " + ", ".join(countries) + " (remove from exclude_countries)"}


def _up(v: float, nd: int = 3) -> float:
    """Round up, so the suggested limit is never a hair too tight."""
    f = 10.0**nd
    return math.ceil(v * f - 1e-9) / f


def _down(v: float, nd: int = 3) -> float:
    f = 10.0**nd
    return max(0.0, math.floor(v * f + 1e-9) / f)


def diagnose_infeasible(opt: Optimizer, sc: Scenario) -> Diagnosis:
    """Name the fields behind an infeasible scenario and what would fix it."""
    fields = active_fields(sc, opt.data.n_years)
    chk = _Checker(opt, sc)
    try:
        conflicts: list[str] = []
        pool = list(fields)
        while pool:
            core = list(pool)
            for f in list(core):
                trial = [g for g in core if g != f]
                if chk.feasible(set(trial)) is False:
                    core = trial
            conflicts += [f for f in core if f not in conflicts]
            rest = [g for g in fields if g not in conflicts]
            if not rest or chk.feasible(set(rest)) is not False:
                break
            pool = rest
        conflicts = [f for f in fields if f in conflicts]  # scenario order, not search order
        fixes = []
        alone_not_enough = []
        for f in conflicts:
            fix = chk.least_change(f, set(fields))
            if fix is None:
                alone_not_enough.append(f)
            else:
                fixes.append(fix)
    finally:
        apply_scenario(opt.built, sc)
    return Diagnosis(conflicts=conflicts, fixes=fixes, complete=chk.complete,
                     message=_message(sc, conflicts, fixes, alone_not_enough, chk.complete))


def _message(sc: Scenario, conflicts: list[str], fixes: list[dict], alone: list[str],
             complete: bool) -> str:
    if not conflicts:
        return ("The solver reported this scenario infeasible, but no combination of its limits "
                "could be shown to conflict; this points at numerical trouble, please report it.")
    said = "; ".join(f"{c} ({describe(sc, c)})" for c in conflicts)
    if len(conflicts) == 1:
        text = (f"No portfolio can meet {said} together with the candidate projects' own "
                f"rules (stake ranges, exclusive groups, requires links).")
    else:
        text = f"No portfolio can meet all of these limits at once: {said}."
    if fixes:
        text += (" Any one of these changes restores feasibility: "
                 + "; ".join(fx["change"] for fx in fixes) + ".")
    if alone:
        text += (" Changing " + ", ".join(alone) + " alone is not enough; it must be relaxed "
                 "together with another of the limits named.")
    if not complete:
        text += (" (Some checks hit the time limit, so this diagnosis may be incomplete; "
                 "raise solver.time_limit_s for a full one.)")
    return text
