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
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .limits import Entry, entries, entry_at, fields, holding, label, level, value_words
from .limits import describe as describe
from .schema import Diagnosis, Scenario, SolverSettings

if TYPE_CHECKING:
    from .data import ProjectData
    from .session import Outcome


def active_fields(sc: Scenario, n_years: int) -> list[str]:
    """The scenario's limits that can restrict the portfolio, as field paths (table order)."""
    return [e.field_path for e in fields(sc, n_years)]


class Probe(Protocol):
    """What diagnosis needs of a solver session (``optimizer.session.Session`` has it)."""

    data: ProjectData

    def enforce(self, sc: Scenario, enforced: Collection[str], free: str | None = None
                ) -> None:
        """Hold only the limits ``enforced`` (field paths) of ``sc``; with ``free``, let that
        limit's slack move, and minimise it."""

    def minimise_chosen(self, rows: Sequence[int], *, left_out: bool = False) -> None:
        """Objective: the fewest of ``rows`` chosen (``left_out``: the fewest left out)."""

    def run(self, settings: SolverSettings) -> Outcome:
        """Solve as things stand, within the session's deadline."""

    def slack(self, path: str) -> float:
        """The slack the last run chose for limit ``path``."""

    def stakes_of(self, out: Outcome) -> dict[str, float]: ...

    def time_up(self) -> bool: ...

    def restore(self, sc: Scenario) -> None:
        """Back to ``sc`` as a plain solve sees it."""


class _Checker:
    """Re-solves the built model with chosen fields enforced, all within the session's
    deadline (the scenario's time limit for the whole diagnosis)."""

    def __init__(self, probe: Probe, sc: Scenario) -> None:
        self.probe = probe
        self.sc = sc
        self.complete = True
        self.runs = 0

    def _time_up(self) -> bool:
        if self.probe.time_up():
            self.complete = False
            return True
        return False

    def _run(self) -> Outcome:
        self.runs += 1
        out = self.probe.run(self.sc.solver)
        if not out.has_solution and not out.infeasible:
            self.complete = False
        return out

    def feasible(self, enforced: set[str], sc: Scenario | None = None) -> bool | None:
        """True/False when decided; None when the time budget ran out first."""
        if self._time_up():
            return None
        self.probe.enforce(sc or self.sc, enforced)
        out = self._run()
        if out.infeasible:
            return False
        return True if out.has_solution else None

    def least_change(self, field: str, enforced: set[str]) -> dict[str, Any] | None:
        """The smallest change of ``field`` alone that restores feasibility, or None. How a
        limit is relaxed comes from its row in the table of limits: a list filter drops
        entries, a level filter moves to the next level present in the data, every other
        limit frees its slack."""
        if self._time_up():
            return None
        e = entry_at(self.sc, field)
        if e.limit.step == "level":
            return self._least_level(e, enforced)
        if e.limit.step == "list":
            return self._least_drop(e, enforced - {field})
        self.probe.enforce(self.sc, enforced, free=field)
        out = self._run()
        if not out.has_solution:
            return None
        data = self.probe.data
        h = holding(data, self.probe.stakes_of(out))
        return _numeric_fix(e, self.probe.slack(field),
                            max((level(x, h, self.sc) for x in entries(self.sc, data)
                                 if x.limit is e.limit), default=0.0))

    def _least_level(self, e: Entry, enforced: set[str]) -> dict[str, Any] | None:
        """The lowest cap that restores feasibility: a bisection over the levels above the
        cap that the data holds (e.g. the Chinese ownership shares of the projects)."""
        lim, old = e.limit, e.value
        levels = sorted({float(v) for v in lim.weight(self.probe.data, None) if v > old})

        def at(level: float) -> bool | None:
            return self.feasible(enforced, self.sc.model_copy(update={lim.field: level}))

        if not levels or not at(levels[-1]):
            return None
        lo, hi = -1, len(levels) - 1  # levels[hi] is feasible; levels[lo] (or the cap) not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok = at(levels[mid])
            if ok is None:
                break
            lo, hi = (lo, mid) if ok else (mid, hi)
        new = levels[hi]
        return {"field": lim.field, "from": old, "to": new,
                "change": f"raise {lim.field} from {old:.4g} to {new:.4g}"}

    def _least_drop(self, e: Entry, others: set[str]) -> dict[str, Any] | None:
        """Fewest list entries to drop from a list filter (a small MIP: minimise the forced
        projects left out, or the forbidden projects chosen)."""
        lim, data = e.limit, self.probe.data
        self.probe.enforce(self.sc, others)
        rule = lim.forces if lim.forces is not None else lim.forbids
        self.probe.minimise_chosen(np.flatnonzero(rule(data, e.value)).tolist(),
                                   left_out=lim.forces is not None)
        out = self._run()
        if not out.has_solution:
            return None
        chosen = data.frame["project_id"].isin(list(self.probe.stakes_of(out))).to_numpy()
        named = data.frame[lim.on].to_numpy()
        if lim.forces is not None:  # forced entries left out
            drop = [v for v in e.value if v not in set(named[chosen])]
            change = "drop " + ", ".join(drop) + f" from {lim.field}"
        elif lim.sense == "max" and set(e.value) & set(named[chosen]):  # an exclusion list
            drop = [v for v in e.value if v in set(named[chosen])]
            change = "allow " + ", ".join(drop) + f" (remove from {lim.field})"
        else:  # an allow-list: what the portfolio needs beyond it
            drop = sorted(set(named[chosen & lim.forbids(data, e.value)]))
            change = f"also allow {lim.on} " + " and ".join(drop) + f" (add to {lim.field})"
        return {"field": lim.field, "drop": drop, "change": change}


def _numeric_fix(e: Entry, slack: float, found: float) -> dict[str, Any]:
    """The change a freed slack says is enough, in the limit's own terms (``found``: the
    level the portfolio found with the slack free reaches, for a share)."""
    lim, old, path = e.limit, e.value, e.field_path
    where = f" (plan year {e.key + 1})" if lim.index == "year" else ""
    if lim.kind == "share":  # what the portfolio found needs (enough, maybe not least)
        new = _up(max(found, old), 4)
        return {"field": path, "from": old, "to": new,
                "change": f"raise {path} from {old:.4g} to {new:.4g} (a portfolio meeting "
                          f"every other limit exists there)"}
    if lim.kind == "count":
        new = int(old + round(slack)) if lim.sense == "max" else int(old - round(slack))
        verb = "raise" if lim.sense == "max" else "lower"
        return {"field": path, "from": old, "to": new,
                "change": f"{verb} {path} from {old} to {new}"}
    if lim.sense == "max":
        new = _up(old + slack)
        return {"field": path, "from": old, "to": new,
                "change": f"raise {path}{where} from {old:,.6g} to "
                          f"{value_words(lim, new, e.key)}"}
    new = _down(old - slack)
    return {"field": path, "from": old, "to": new,
            "change": f"lower {path} from {old:,.6g} to {value_words(lim, new, e.key)} "
                      f"({label(lim, e.key)} cannot reach {old:,.6g}: at most {new:,.6g})"}


def _up(v: float, nd: int = 3) -> float:
    """Round up, so the suggested limit is never a hair too tight."""
    f = 10.0**nd
    return math.ceil(v * f - 1e-9) / f


def _down(v: float, nd: int = 3) -> float:
    f = 10.0**nd
    return max(0.0, math.floor(v * f + 1e-9) / f)


def diagnose_infeasible(probe: Probe, sc: Scenario) -> Diagnosis:
    """Name the fields behind an infeasible scenario and what would fix it."""
    fields = active_fields(sc, probe.data.n_years)
    chk = _Checker(probe, sc)
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
        probe.restore(sc)
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
