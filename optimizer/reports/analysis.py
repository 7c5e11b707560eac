"""Why this portfolio: sensitivity re-solves and alternative portfolios, computed once per run.

Every figure here is the objective of a re-solve of the one built model (``Optimizer.solve``
on a changed copy of the scenario; nothing is rebuilt) compared with the run's own objective:

- **value of the budget**: the objective at ``budget_musd`` minus and plus a step, and where
  time allows the step function over ``budget +/- k steps`` (the marginal objective of each
  extra step, also stated per US$100 M);
- **value of each binding limit**: the objective gained when that limit alone is relaxed by
  a stated step;
- **regret** of every chosen project: the objective lost when it is excluded
  (``exclude_projects``), and for the best few rejected ones the objective lost when one is
  forced in (``include_projects``);
- **alternatives**: up to ``k`` portfolios within ``slack`` of the optimum, by modelling to
  generate alternatives (default): each keeps the least money in the projects of the optimum
  and of the alternatives before it, with its objective at least ``(1 - slack)`` x optimum
  (``Optimizer.alternative(away_from=..., min_objective=...)``), and differs from each of them in
  at least ``min_difference`` project choices (no-good cuts); or (``method="no_good"``) the
  best portfolio under the no-good cuts alone, kept while within the slack.

The result is plain data (:class:`Analysis`, a pydantic model) that can be stored as JSON and
rendered any number of times without solving again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..limits import entry_at, label
from ..schema import WITH_PORTFOLIO, Result, Scenario, Totals

if TYPE_CHECKING:
    from ..solve import Optimizer

OK = WITH_PORTFOLIO


class AnalysisSettings(BaseModel):
    """How far each re-solve moves the scenario, and how much work the analysis may do."""

    budget_step_musd: float | None = Field(
        None, gt=0, description="step for the budget and every money limit, MUSD; default "
        "5 % of the budget rounded to 1, 2 or 5 times a power of ten")
    budget_curve_steps: int = Field(
        2, ge=1, le=50, description="budget points each side of the scenario's budget")
    share_step: float = Field(0.05, gt=0, le=1,
                              description="relaxation of a share limit (absolute)")
    risk_step: float = Field(0.5, gt=0, le=9, description="relaxation of max_avg_risk")
    output_step: float = Field(0.10, gt=0, le=1,
                               description="relaxation of an output floor, fraction of it")
    forced_candidates: int = Field(
        3, ge=0, le=100, description="rejected projects tried as forced choices")
    alternatives: int = Field(3, ge=0, le=20, description="k: alternatives sought")
    alternative_slack: float = Field(
        0.02, ge=0, le=1, description="alternatives must be within this share of the optimum")
    alternatives_method: Literal["mga", "no_good"] = Field(
        "mga", description="mga: money moved away from the optimum's projects within the "
        "slack (structurally different); no_good: the next-best portfolios under no-good cuts "
        "(often a swap of one small project)")
    min_difference: int = Field(
        2, ge=1, le=1000,
        description="an alternative differs from the optimum and from each other alternative "
        "in at least this many project choices (a swap of one project for another is 2)")
    resolve_time_limit_s: float = Field(
        10.0, gt=0, description="time limit of each re-solve (at most the scenario's own)")
    time_budget_s: float = Field(
        60.0, gt=0, description="stop starting re-solves after this much time; what is "
        "left out is listed in notes")


class BudgetPoint(BaseModel):
    budget_musd: float
    status: str
    objective: float | None
    change: float | None = Field(description="objective minus the run's objective")
    cost_musd: float | None = None
    n_projects: int | None = None
    marginal_per_100_musd: float | None = Field(
        None, description="objective gained from the next lower point, per US$100 M")


class BudgetValue(BaseModel):
    budget_musd: float
    step_musd: float
    minus: BudgetPoint | None
    plus: BudgetPoint | None
    per_100_musd_below: float | None = Field(
        None, description="objective lost per US$100 M when the budget is cut by one step")
    per_100_musd_above: float | None = Field(
        None, description="objective gained per US$100 M when the budget grows by one step")
    curve: list[BudgetPoint] = Field(default_factory=list, description="budget ascending, the "
                                     "run itself included")
    method: str


class LimitValue(BaseModel):
    field: str = Field(description="the scenario field relaxed")
    binding: list[str] = Field(description="binding entries it covers, e.g. "
                               "max_country_share.GL")
    limit: float
    relaxed_to: float
    step: str = Field(description="the relaxation, in words")
    status: str
    objective: float | None
    gain: float | None = Field(description="objective gained by the relaxation")
    method: str


class ProjectEffect(BaseModel):
    project_id: str
    name: str
    country: str
    mineral: str
    partner: str
    status: str
    objective: float | None
    loss: float | None = Field(description="the run's objective minus this re-solve's")
    loss_pct: float | None = Field(description="loss as a share of |objective|")
    added: list[str] = Field(default_factory=list, description="projects the re-solve adds")
    dropped: list[str] = Field(default_factory=list, description="projects it drops")
    note: str = ""


class Alternative(BaseModel):
    rank: int
    status: str
    objective: float
    loss: float
    loss_pct: float | None
    stakes: dict[str, float] = Field(description="project_id -> stake")
    added: list[str]
    dropped: list[str]
    totals: Totals
    moved_musd: float = Field(
        0.0, description="money that changes projects or stakes: the larger of the spend it "
        "adds and the spend it removes, project by project, against the optimum")


class Analysis(BaseModel):
    """Everything the "why this portfolio" part of a report shows; stored once per run."""

    objective: str = Field(description="npv or supply")
    base_status: str
    base_objective: float | None
    settings: AnalysisSettings
    budget: BudgetValue | None = None
    limits: list[LimitValue] = Field(default_factory=list)
    limits_method: str = ""
    regrets: list[ProjectEffect] = Field(default_factory=list)
    regrets_method: str = ""
    forced: list[ProjectEffect] = Field(default_factory=list)
    forced_method: str = ""
    alternatives: list[Alternative] = Field(default_factory=list)
    alternatives_method: str = ""
    alternatives_note: str = ""
    resolves: int = Field(0, description="re-solves of the built model")
    resolve_s: float = Field(0.0, description="wall time of all re-solves, seconds")
    solver_s: float = Field(0.0, description="HiGHS time within them, seconds")
    elapsed_s: float = Field(0.0, description="wall time of the whole analysis, seconds")
    notes: list[str] = Field(default_factory=list)


def nice_step(v: float) -> float:
    """The 1-2-5 step nearest below ``v`` (e.g. 100 for 5 % of 2,000; 10 for 5 % of 200)."""
    if v <= 0 or not math.isfinite(v):
        return 1.0
    e = math.floor(math.log10(v))
    for m in (5, 2, 1):
        if m * 10.0**e <= v * (1 + 1e-9):
            return m * 10.0**e
    return 10.0**e


class _OutOfTime(Exception):
    pass


class _Resolver:
    """Re-solves of the one built model on changed copies of the scenario, counted and timed
    (a repeated change is answered from a cache, not solved twice)."""

    def __init__(self, opt: Optimizer, sc: Scenario, settings: AnalysisSettings) -> None:
        self.opt = opt
        self.sc = sc
        self.limit_s = min(settings.resolve_time_limit_s, sc.solver.time_limit_s)
        self.deadline = time.perf_counter() + settings.time_budget_s
        self.count = 0
        self.wall = 0.0
        self.solver_s = 0.0
        self.cache: dict[str, Result | None] = {}

    def scenario(self, update: dict[str, Any]) -> Scenario:
        solver = self.sc.solver.model_copy(update={"time_limit_s": self.limit_s})
        changed = self.sc.model_copy(update={**update, "solver": solver})
        return Scenario.model_validate(changed.model_dump())  # validated, not just copied

    def __call__(self, update: dict[str, Any], **kw: Any) -> Result | None:
        key = json.dumps([update, kw], sort_keys=True, default=sorted)
        if key in self.cache:
            return self.cache[key]
        if time.perf_counter() > self.deadline:
            raise _OutOfTime
        t0 = time.perf_counter()
        try:
            sc = self.scenario(update)
            res: Result | None = (self.opt.alternative(sc, **kw) if kw
                                  else self.opt.solve(sc, diagnose=False))
        except (ValueError, RuntimeError):
            # a change the scenario rejects (ValueError), or a portfolio that failed the
            # independent check (SolutionCheckError): never shown, recorded as "error"
            res = None
        self.wall += time.perf_counter() - t0
        self.count += 1
        if res is not None:
            self.solver_s += res.solver.solve_time_s
        self.cache[key] = res
        return res


def _loss_pct(loss: float | None, base: float) -> float | None:
    if loss is None or abs(base) < 1e-12:
        return None
    return loss / abs(base)


def _status(res: Result | None) -> str:
    return "error" if res is None else res.status


def _objective(res: Result | None) -> float | None:
    return res.objective if res is not None and res.status in OK else None


def analyse(opt: Optimizer, scenario: Scenario, result: Result,
            settings: AnalysisSettings | None = None, *,
            on_progress: Callable[[str], None] | None = None) -> Analysis:
    """Compute the sensitivity figures and alternatives of ``result`` (the run of ``scenario``
    on ``opt``'s data), re-solving ``opt``'s built model. Infeasible runs get an empty
    analysis (their report shows the diagnosis instead). ``on_progress`` is told, in words,
    each part as it starts (for a progress line)."""
    st = settings or AnalysisSettings()
    t_start = time.perf_counter()
    out = Analysis(objective=scenario.objective, base_status=result.status,
                   base_objective=result.objective, settings=st)
    if result.status not in OK or result.objective is None:
        out.notes.append("No portfolio to analyse: the run has no solution.")
        return out
    rs = _Resolver(opt, scenario, st)
    base = result.objective
    chosen = {p.project_id for p in result.selected}
    step = st.budget_step_musd or nice_step(0.05 * scenario.budget_musd)
    if result.status == "feasible":
        out.notes.append(
            "The run itself stopped at a limit before proving optimality, so changes are "
            "measured against a portfolio that may not be the best; re-solves may show gains "
            "that are really the search going further.")
    gap = scenario.solver.mip_gap
    out.notes.append(
        f"Each re-solve stops within {gap:.4g} relative gap of its own optimum "
        f"(time limit {rs.limit_s:g} s), so changes smaller than about "
        f"{max(gap * abs(base), 1e-6):,.3g} are within solver tolerance.")

    parts = [("budget", lambda: _budget(rs, scenario, result, step, st, out, curve=False)),
             ("binding limits", lambda: _limits(rs, scenario, result, step, st, out)),
             ("regret of chosen projects", lambda: _regrets(rs, scenario, result, out)),
             ("forced choices", lambda: _forced(rs, opt, scenario, result, chosen, st, out)),
             ("alternatives", lambda: _alternatives(rs, scenario, result, chosen, st, out)),
             ("budget curve", lambda: _budget(rs, scenario, result, step, st, out, curve=True))]
    for name, run in parts:
        if on_progress is not None:
            on_progress(f"analysis: {name} ({rs.count} re-solves so far)")
        try:
            run()
        except _OutOfTime:
            out.notes.append(f"Time budget of {st.time_budget_s:g} s spent: {name} and what "
                             "follows were not (fully) computed.")
            break
    out.resolves = rs.count
    out.resolve_s = round(rs.wall, 6)
    out.solver_s = round(rs.solver_s, 6)
    out.elapsed_s = round(time.perf_counter() - t_start, 6)
    return out


# --- the parts ------------------------------------------------------------------------------


def _point(rs: _Resolver, b: float, base: float) -> BudgetPoint:
    res = rs({"budget_musd": b})
    obj = _objective(res)
    return BudgetPoint(budget_musd=b, status=_status(res), objective=obj,
                       change=None if obj is None else obj - base,
                       cost_musd=res.totals.cost_musd if obj is not None else None,
                       n_projects=res.totals.n_projects if obj is not None else None)


def _budget(rs: _Resolver, sc: Scenario, result: Result, step: float, st: AnalysisSettings,
            out: Analysis, *, curve: bool) -> None:
    base = result.objective
    b0 = sc.budget_musd
    if not curve:
        minus = _point(rs, b0 - step, base) if b0 - step > 0 else None
        plus = _point(rs, b0 + step, base)
        per = 100.0 / step
        out.budget = BudgetValue(
            budget_musd=b0, step_musd=step, minus=minus, plus=plus,
            per_100_musd_below=(-minus.change * per if minus and minus.change is not None
                                else None),
            per_100_musd_above=plus.change * per if plus.change is not None else None,
            curve=[p for p in (minus, _here(result, b0), plus) if p is not None],
            method=(f"The objective re-solved with budget_musd {b0 - step:,.6g} and "
                    f"{b0 + step:,.6g} MUSD (the scenario's {b0:,.6g} minus and plus "
                    f"{step:,.6g}), every other limit unchanged; per US$100 M = change x 100 / "
                    f"{step:,.6g}."))
        _marginals(out.budget)
        return
    assert out.budget is not None
    points = {p.budget_musd: p for p in out.budget.curve}
    wanted = [b for k in range(2, st.budget_curve_steps + 1)
              for b in (b0 - k * step, b0 + k * step)]
    # a budget with room to spare only starts to cost below what the portfolio spends: add the
    # two steps there, so the curve shows where cutting the budget begins to bite
    spend = result.totals.cost_musd
    below = math.floor(spend / step + 1e-9) * step
    extra = [b for b in (below, below - step) if b < b0 - st.budget_curve_steps * step]
    try:
        for b in wanted + extra:
            if b > 0 and b not in points:
                points[b] = _point(rs, b, base)
    finally:  # keep what was computed before time ran out
        out.budget.curve = [points[b] for b in sorted(points)]
        _marginals(out.budget)
        lo, hi = out.budget.curve[0].budget_musd, out.budget.curve[-1].budget_musd
        out.budget.method += (
            f" The curve re-solves every {step:,.6g} MUSD from {lo:,.6g} to {hi:,.6g}"
            + (f" (below {b0 - st.budget_curve_steps * step:,.6g} only the two steps under "
               f"the portfolio's spend of {spend:,.6g})" if extra else "")
            + "; each point's marginal is its gain over the point below, per US$100 M.")


def _here(result: Result, b0: float) -> BudgetPoint:
    return BudgetPoint(budget_musd=b0, status=result.status, objective=result.objective,
                       change=0.0, cost_musd=result.totals.cost_musd,
                       n_projects=result.totals.n_projects)


def _marginals(bv: BudgetValue) -> None:
    prev = None
    for p in bv.curve:
        p.marginal_per_100_musd = None
        if prev is not None and p.objective is not None and prev.objective is not None:
            p.marginal_per_100_musd = ((p.objective - prev.objective) * 100.0
                                       / (p.budget_musd - prev.budget_musd))
        prev = p


def _relaxation(sc: Scenario, field: str, step: float, st: AnalysisSettings
                ) -> tuple[str, Any, float, float, str] | None:
    """(scenario field, new field value, old limit, new limit, step in words) for relaxing a
    binding entry by the step its row of the table of limits names, or None for a limit the
    report does not relax (lists)."""
    try:
        e = entry_at(sc, field)
    except (KeyError, IndexError, ValueError):
        return None
    lim, old = e.limit, e.value
    if lim.step == "money":
        new, words = old + step, f"+{step:,.6g} MUSD"
        if lim.index == "year":
            words += f" in plan year {e.key + 1}"
    elif lim.step in ("share", "level"):
        new = min(1.0, old + st.share_step)
        words = f"+{(new - old) * 100:.3g} percentage points"
    elif lim.step == "risk":
        new = min(10.0, old + st.risk_step)
        words = f"+{new - old:.3g} risk points"
    elif lim.step == "count":
        new = old + 1 if lim.sense == "max" else max(0, old - 1)
        words = f"one {'more' if lim.sense == 'max' else 'fewer'} ({label(lim)})"
    elif lim.step == "floor":
        new, words = old * (1 - st.output_step), f"-{st.output_step:.0%} of the floor"
    else:
        return None
    value: Any = new
    if lim.index == "year":
        value = list(getattr(sc, lim.field))
        value[e.key] = new
    elif lim.index == "product":
        value = {**getattr(sc, lim.field), e.key: new}
    return lim.field, value, old, new, words


def _limits(rs: _Resolver, sc: Scenario, result: Result, step: float, st: AnalysisSettings,
            out: Analysis) -> None:
    out.limits_method = (
        "Each binding limit is relaxed alone by the stated step (money limits by "
        f"{step:,.6g} MUSD, shares by {st.share_step * 100:.3g} percentage points, average "
        f"risk by {st.risk_step:g}, floors by {st.output_step:.0%}, country and "
        "project counts by one) and the model re-solved; gain = new objective minus the "
        "run's. Limits with room to spare are not re-solved.")
    seen: dict[str, LimitValue] = {}
    base = result.objective
    for b in result.binding:
        relax = _relaxation(sc, b.field, step, st)
        if relax is None:
            out.notes.append(f"No relaxation rule for binding limit {b.field}; not re-solved.")
            continue
        fld, value, old, new, words = relax
        key = entry_at(sc, b.field).field_path
        if key in seen:
            seen[key].binding.append(b.field)
            continue
        res = rs({fld: value})
        obj = _objective(res)
        lv = LimitValue(field=key, binding=[b.field], limit=old, relaxed_to=new, step=words,
                        status=_status(res), objective=obj,
                        gain=None if obj is None else obj - base,
                        method=f"re-solved with {key} = {new:,.6g} instead of {old:,.6g}")
        seen[key] = lv
        out.limits.append(lv)


def _effect(res: Result | None, base: float, chosen: set[str], info: dict[str, str],
            note: str = "") -> ProjectEffect:
    obj = _objective(res)
    loss = None if obj is None else base - obj
    picked = {p.project_id for p in res.selected} if obj is not None else set()
    return ProjectEffect(
        **info, status=_status(res), objective=obj, loss=loss,
        loss_pct=_loss_pct(loss, base),
        added=sorted(picked - chosen) if obj is not None else [],
        dropped=sorted(chosen - picked) if obj is not None else [], note=note)


def _regrets(rs: _Resolver, sc: Scenario, result: Result, out: Analysis) -> None:
    out.regrets_method = (
        "For each chosen project, the model re-solved with that project added to "
        "exclude_projects (everything else free to change); loss = the run's objective minus "
        "the re-solve's. 'infeasible' means no portfolio meets the scenario without it.")
    base = result.objective
    chosen = {p.project_id for p in result.selected}
    for p in result.selected:
        info = dict(project_id=p.project_id, name=p.name, country=p.country,
                    mineral=p.mineral, partner=p.partner)
        if p.project_id in sc.include_projects:
            out.regrets.append(ProjectEffect(
                **info, status="not tried", objective=None, loss=None, loss_pct=None,
                note="forced in by the scenario (include_projects)"))
            continue
        res = rs({"exclude_projects": [*sc.exclude_projects, p.project_id]})
        eff = _effect(res, base, chosen, info)
        if eff.status == "infeasible":
            eff.note = "no portfolio meets the scenario without it"
        out.regrets.append(eff)
    out.regrets.sort(key=lambda e: (e.loss is None, -(e.loss or 0.0)))


def _allowed(opt: Optimizer, sc: Scenario) -> list[int]:
    """Rows the scenario does not rule out by its lists (exclusions, partners, ownership)."""
    f = opt.data.frame
    ok = ~f["country"].isin(sc.exclude_countries) & ~f["project_id"].isin(sc.exclude_projects)
    partners = getattr(sc, "partners", None)
    if partners:
        ok &= f["partner"].isin(partners)
    cap = getattr(sc, "max_chinese_ownership", None)
    if cap is not None and "chinese_ownership" in f.columns:
        ok &= ~(f["chinese_ownership"].astype(float).fillna(0.0) > cap)
    return [i for i in range(opt.data.n) if bool(ok.iat[i])]


def _standalone_value(opt: Optimizer, sc: Scenario, i: int) -> float:
    """A project's own contribution to the objective at its largest stake."""
    f = opt.data.frame
    smax = float(f["max_stake"].iat[i])
    if sc.objective == "npv":
        return float(f["npv_musd"].iat[i]) * smax - float(f["deal_cost_musd"].iat[i])
    w = sc.weights()
    return sum(wt * float(f[f"output_{m}_t"].iat[i]) * smax
               for m, wt in w.items() if f"output_{m}_t" in f.columns)


def _forced(rs: _Resolver, opt: Optimizer, sc: Scenario, result: Result, chosen: set[str],
            st: AnalysisSettings, out: Analysis) -> None:
    what = "NPV at its largest stake minus its deal cost" if sc.objective == "npv" else \
        "weighted supply at its largest stake"
    out.forced_method = (
        f"The {st.forced_candidates} assets left out that the scenario allows with the largest "
        f"own contribution ({what}), each forced in alone (added to include_projects) and the "
        "model re-solved; loss = the run's objective minus the re-solve's. Other deal "
        "structures of an asset already backed (its exclusive_group) are not left-out assets; "
        "an asset offered in several structures is tried in its best one.")
    if st.forced_candidates == 0:
        return
    f = opt.data.frame
    group = f["exclusive_group"].fillna("").astype(str).str.strip()
    backed = {group.iat[i] for i in range(opt.data.n)
              if f["project_id"].iat[i] in chosen and group.iat[i]}
    rows = [i for i in _allowed(opt, sc)
            if f["project_id"].iat[i] not in chosen and group.iat[i] not in backed]
    rows.sort(key=lambda i: -_standalone_value(opt, sc, i))
    seen: set[str] = set()
    assets = []  # the best structure of each asset left out
    for i in rows:
        if group.iat[i]:
            if group.iat[i] in seen:
                continue
            seen.add(group.iat[i])
        assets.append(i)
    base = result.objective
    for i in assets[:st.forced_candidates]:
        pid = f["project_id"].iat[i]
        info = dict(project_id=pid, name=str(f["name"].iat[i]), country=f["country"].iat[i],
                    mineral=f["mineral"].iat[i], partner=f["partner"].iat[i])
        res = rs({"include_projects": [*sc.include_projects, pid]})
        eff = _effect(res, base, chosen, info)
        if eff.status == "infeasible":
            eff.note = "cannot be added: no portfolio with it meets the scenario"
        out.forced.append(eff)
    out.forced.sort(key=lambda e: (e.loss is None, e.loss or 0.0))


def _moved(a: Result, b: Result) -> float:
    """The larger of the spend ``b`` adds and the spend it removes against ``a``, project by
    project (US$ M that would go somewhere else)."""
    ca = {p.project_id: p.cost_musd for p in a.selected}
    cb = {p.project_id: p.cost_musd for p in b.selected}
    diff = [cb.get(p, 0.0) - ca.get(p, 0.0) for p in set(ca) | set(cb)]
    return max(sum(d for d in diff if d > 0), -sum(d for d in diff if d < 0))


def _alternatives(rs: _Resolver, sc: Scenario, result: Result, chosen: set[str],
                  st: AnalysisSettings, out: Analysis) -> None:
    base = result.objective
    floor = base - st.alternative_slack * abs(base)
    if st.alternatives_method == "mga":
        return _alternatives_mga(rs, result, chosen, st, out, floor)
    out.alternatives_method = (
        f"No-good cuts: the model re-solved excluding the optimum's chosen set and every "
        f"alternative already found, each new portfolio differing from all of them in at least "
        f"{st.min_difference} project choices; each is the best such portfolio. Kept while the "
        f"objective is within {st.alternative_slack:.1%} of the optimum (>= {floor:,.6g}); "
        f"at most {st.alternatives}. Money moved: the larger of the spend an alternative adds "
        "and the spend it removes, project by project. For portfolios without one of the "
        "large projects, see the regret table: each of its rows is the best portfolio without "
        "that project.")
    if st.alternatives == 0:
        return
    found = [sorted(chosen)]
    while len(out.alternatives) < st.alternatives:
        res = rs({}, exclude=[list(s) for s in found],
                 min_difference=st.min_difference)
        obj = _objective(res)
        if obj is None:
            out.alternatives_note = (
                f"No other portfolio differing in {st.min_difference} or more project choices "
                f"meets the scenario ({_status(res)}).")
            return
        if obj < floor - 1e-9 * max(1.0, abs(base)):
            loss = base - obj
            out.alternatives_note = (
                f"The next-best portfolio differing in {st.min_difference} or more project "
                f"choices is {loss:,.4g} ({_loss_pct(loss, base) or 0:.2%}) below the optimum, "
                f"outside the {st.alternative_slack:.1%} slack.")
            return
        picked = _append(out, result, res, chosen)
        found.append(sorted(picked))
    out.alternatives_note = (f"The {st.alternatives} best portfolios meeting the rule are "
                             "shown; more may exist within the slack.")


def _append(out: Analysis, result: Result, res: Result, chosen: set[str]) -> dict[str, float]:
    """Record ``res`` as the next alternative to ``result``; its stakes."""
    base, obj = result.objective, res.objective
    picked = {p.project_id: p.stake for p in res.selected}
    loss = base - obj
    out.alternatives.append(Alternative(
        rank=len(out.alternatives) + 1, status=res.status, objective=obj, loss=loss,
        loss_pct=_loss_pct(loss, base), stakes=picked,
        added=sorted(set(picked) - chosen), dropped=sorted(chosen - set(picked)),
        totals=res.totals, moved_musd=_moved(result, res)))
    return picked


def _alternatives_mga(rs: _Resolver, result: Result, chosen: set[str], st: AnalysisSettings,
                      out: Analysis, floor: float) -> None:
    out.alternatives_method = (
        f"Modelling to generate alternatives: the model re-solved for the portfolio that keeps "
        f"the least money in the projects of the recommended portfolio and of every alternative "
        f"already found, with its objective at least {floor:,.6g} (within "
        f"{st.alternative_slack:.1%} of the optimum) and differing from each of them in at "
        f"least {st.min_difference} project choices (no-good cuts); at most "
        f"{st.alternatives}. Each is a structurally different way to spend the budget at "
        "nearly the same value, not the next-best portfolio. Money moved: the larger of the "
        "spend an alternative adds and the spend it removes, project by project.")
    if st.alternatives == 0:
        return
    found = [sorted(chosen)]
    away = set(chosen)
    while len(out.alternatives) < st.alternatives:
        res = rs({}, exclude=[list(s) for s in found],
                 min_difference=st.min_difference, away_from=sorted(away),
                 min_objective=floor)
        obj = _objective(res)
        if obj is None:
            out.alternatives_note = (
                f"No further portfolio within {st.alternative_slack:.1%} of the optimum "
                f"differs in {st.min_difference} or more project choices ({_status(res)}).")
            return
        picked = _append(out, result, res, chosen)
        found.append(sorted(picked))
        away |= set(picked)
    out.alternatives_note = (f"{st.alternatives} alternatives are shown; others may exist "
                             "within the slack.")


__all__ = ["Alternative", "Analysis", "AnalysisSettings", "BudgetPoint", "BudgetValue",
           "LimitValue", "ProjectEffect", "analyse", "nice_step"]
