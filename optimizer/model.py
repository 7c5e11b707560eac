"""The Pyomo model of CONTRACT section 3, built once per projects table and re-parameterised
per scenario.

Everything a scenario can change is a mutable ``Param``, a variable bound or the choice of the
active objective, so a built model (and the persistent HiGHS instance behind it) answers any
number of what-ifs without being rebuilt: :func:`apply_scenario` only moves numbers.

Notation: ``x[p]`` = ``choose[p]``, ``s[p]`` = ``stake[p]``, cost
``c_p = equity_value_p * s_p + deal_cost_p * x_p``, ``T`` = ``total_cost``.
A limit the scenario leaves out (null) becomes an infinite row bound: the row stays in the
model but constrains nothing. Each scenario row also carries a slack ``relax[f]`` (bounds 0..0
in normal solves) that infeasibility diagnosis frees to measure how far field ``f`` must move.

Building is vectorised: rows are assembled from numpy arrays into ``LinearExpression`` objects
rather than by per-project Python rules with generic expression algebra (PERF notes: that is
where Pyomo models usually lose their time).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression

from .data import ProjectData
from .schema import PRODUCTS, Scenario

# "No limit" is HiGHS's infinity threshold, not math.inf: Pyomo's persistent interface treats
# a row whose bound is inf when the model is handed over as unbounded for good and would ignore
# later changes to that bound; 1e20 keeps the bound mutable and HiGHS reads it as infinite.
INF = 1e20


def relax_fields(n_years: int) -> list[str]:
    """Scenario field paths that diagnosis can relax, each with its own slack."""
    return [
        "budget_musd", "kabil_budget_musd", "us_budget_musd",
        *[f"annual_budget_musd.{k}" for k in range(n_years)],
        "max_country_share", "min_countries", "max_projects",
        *[f"min_output_t.{m}" for m in PRODUCTS],
        "max_avg_risk", "max_china_processing_share", "min_weighted_supply",
    ]


@dataclass(eq=False)
class BuiltModel:
    """A built Pyomo model plus what is needed to read it back."""

    model: pyo.ConcreteModel
    data: ProjectData
    countries: list[str]  # index of ``country_used``
    country_rows: dict[str, np.ndarray]  # country -> project rows
    build_s: float
    moved: list[int] = field(default_factory=list)  # rows whose choose bounds differ from 0..1
    cuts: list[str] = field(default_factory=list)  # names of the no-good cuts now in the model
    cut_serial: int = 0


def _lin(coefs, vars_, extra=()) -> LinearExpression:
    """A linear expression from parallel coefficient and variable sequences (zero numbers
    dropped), plus ``extra`` (coefficient, variable) terms whose coefficient may be a mutable
    parameter expression. Every row is one ``LinearExpression``: fast to build and to hand to
    HiGHS (``highs_backend.FastHighs``)."""
    if isinstance(coefs, np.ndarray) and coefs.dtype != object:  # numbers: vectorised
        if len(coefs) != len(vars_):
            raise ValueError("coefficients and variables differ in length")
        nz = np.flatnonzero(coefs)
        c = coefs[nz].tolist()
        v = [vars_[i] for i in nz.tolist()]
    else:  # may hold Param expressions (mutable data): kept whatever their value
        c, v = [], []
        for a, x in zip(coefs, vars_, strict=True):
            if isinstance(a, int | float | np.number):
                a = float(a)
                if a == 0.0:
                    continue
            c.append(a)
            v.append(x)
    for a, x in extra:
        c.append(a)
        v.append(x)
    return LinearExpression(constant=0, linear_coefs=c, linear_vars=v)


def build_model(data: ProjectData, *, mutable_data: bool = False) -> BuiltModel:
    """Build the portfolio MIP for ``data``; call :func:`apply_scenario` before solving.

    ``mutable_data``: equity values, NPVs and an output factor per project become mutable
    parameters (``equity_value``, ``npv``, ``output_factor``), so a Monte-Carlo draw moves
    coefficients in place (:func:`apply_data`) instead of rebuilding. Off by default: every
    mutable coefficient is pushed to HiGHS at each solve, which a plain model need not pay."""
    # Building allocates ~10^5 expression objects and no cycles: the cyclic garbage collector
    # would only rescan them over and over (measured: half the build time at 10k projects).
    with PauseGC():
        return _build(data, mutable_data)


def _build(data: ProjectData, mutable_data: bool = False) -> BuiltModel:
    t0 = time.perf_counter()
    n = data.n
    f = data.frame
    equity = data.col("equity_value_musd")
    deal = data.col("deal_cost_musd")
    npv = data.col("npv_musd")
    india = data.col("india_share")
    risk = data.col("risk_score")
    smin = data.col("min_stake")
    smax = data.col("max_stake")
    out = data.output()
    china = f["china_processing"].to_numpy(dtype=bool)
    country = f["country"].to_numpy()
    countries = sorted(set(country))
    country_rows = {k: np.flatnonzero(country == k) for k in countries}

    m = pyo.ConcreteModel(name="critical_mineral_portfolio")
    m.P = pyo.RangeSet(0, n - 1, doc="candidate projects (row positions)")
    m.M = pyo.Set(initialize=PRODUCTS, ordered=True,
                  doc="offtake products: tantalum, niobium, ree (TREO), ndpr, dytb")
    m.K = pyo.Set(initialize=countries, ordered=True, doc="host countries")
    m.Y = pyo.RangeSet(0, data.n_years - 1, doc="plan years (0 = year 1)")
    m.F = pyo.Set(initialize=relax_fields(data.n_years), ordered=True,
                  doc="relaxable scenario fields (diagnosis)")

    # --- variables -------------------------------------------------------------------------
    m.choose = pyo.Var(m.P, domain=pyo.Binary, doc="x[p]: 1 if project p is backed")
    m.stake = pyo.Var(m.P, domain=pyo.NonNegativeReals,
                      bounds=lambda _, p: (0.0, float(smax[p])),
                      doc="s[p]: fraction of project p bought")
    m.total_cost = pyo.Var(domain=pyo.NonNegativeReals, doc="T = sum_p c_p, MUSD")
    m.output = pyo.Var(m.M, domain=pyo.NonNegativeReals,
                       doc="O[m] = sum_p output[p,m] * s[p], t/y of product m")
    m.country_used = pyo.Var(m.K, domain=pyo.Binary,
                             doc="u[k] <= 1 only if some project in country k is backed")
    m.relax = pyo.Var(m.F, domain=pyo.NonNegativeReals, bounds=(0.0, 0.0),
                      doc="slack on scenario field f; fixed at 0 except in diagnosis")

    x = [m.choose[p] for p in range(n)]
    s = [m.stake[p] for p in range(n)]
    T = m.total_cost
    r = m.relax

    # --- scenario parameters (mutable) -----------------------------------------------------
    mut = {"mutable": True, "domain": pyo.Any}
    m.budget_cap = pyo.Param(initialize=INF, doc="budget_musd", **mut)
    m.kabil_cap = pyo.Param(initialize=INF, doc="kabil_budget_musd", **mut)
    m.us_cap = pyo.Param(initialize=INF, doc="us_budget_musd", **mut)
    m.annual_cap = pyo.Param(m.Y, initialize=INF, doc="annual_budget_musd[k]", **mut)
    m.country_share_cap = pyo.Param(initialize=1.0, doc="max_country_share", **mut)
    m.country_share_ub = pyo.Param(initialize=INF, doc="0 when max_country_share is set", **mut)
    m.risk_cap = pyo.Param(initialize=10.0, doc="max_avg_risk", **mut)
    m.risk_ub = pyo.Param(initialize=INF, doc="0 when max_avg_risk is set", **mut)
    m.china_cap = pyo.Param(initialize=1.0, doc="max_china_processing_share", **mut)
    m.china_ub = pyo.Param(initialize=INF, doc="0 when max_china_processing_share is set", **mut)
    m.countries_floor = pyo.Param(initialize=-INF, doc="min_countries", **mut)
    m.projects_cap = pyo.Param(initialize=INF, doc="max_projects", **mut)
    m.output_floor = pyo.Param(m.M, initialize=-INF, doc="min_output_t[m]", **mut)
    m.supply_weight = pyo.Param(m.M, initialize=1.0, doc="supply_weights[m]", **mut)
    m.relax_weight = pyo.Param(m.F, initialize=0.0, doc="diagnosis weight of relax[f]", **mut)
    m.supply_floor = pyo.Param(initialize=-INF, doc="min_weighted_supply", **mut)
    if mutable_data:  # Monte Carlo: the data's own numbers as parameters
        m.equity_value = pyo.Param(m.P, initialize=dict(enumerate(equity.tolist())),
                                   doc="equity_value_musd[p]", **mut)
        m.npv = pyo.Param(m.P, initialize=dict(enumerate(npv.tolist())), doc="npv_musd[p]", **mut)
        m.output_factor = pyo.Param(m.P, initialize=1.0, doc="factor on project p's outputs",
                                    **mut)
        equity = np.array([m.equity_value[p] for p in range(n)], dtype=object)
        npv = np.array([m.npv[p] for p in range(n)], dtype=object)
        factor = np.array([m.output_factor[p] for p in range(n)], dtype=object)
        out = np.where(out != 0.0, out * factor[:, None], 0.0)

    # --- constraints, one family each ------------------------------------------------------
    cost_coefs = np.concatenate([equity, deal])
    sx = s + x

    def cost_of(rows: np.ndarray, weight: np.ndarray | None = None, extra=()
                ) -> LinearExpression:
        """sum_{p in rows} weight_p * c_p (+ extra terms) as a linear expression."""
        w = np.ones(len(rows)) if weight is None else np.asarray(weight, dtype=float)
        if mutable_data:  # no parameter expression where the weight is 0
            keep = w != 0.0
            rows, w = rows[keep], w[keep]
        coefs = np.concatenate([equity[rows] * w, deal[rows] * w])
        return _lin(coefs, [s[i] for i in rows] + [x[i] for i in rows], extra)

    every = np.arange(n)

    m.stake_min = pyo.Constraint(
        m.P, rule=lambda _, p: (0.0, _lin((1.0, -smin[p]), (s[p], x[p])), None),
        doc="s[p] >= min_stake[p] * x[p]")
    m.stake_max = pyo.Constraint(
        m.P, rule=lambda _, p: (None, _lin((1.0, -smax[p]), (s[p], x[p])), 0.0),
        doc="s[p] <= max_stake[p] * x[p]")
    m.total_cost_def = pyo.Constraint(
        expr=(0.0, _lin(np.concatenate([[1.0], -cost_coefs]), [T, *sx]), 0.0),
        doc="T = sum_p (equity_value[p] * s[p] + deal_cost[p] * x[p])")
    def minus(field: str):
        return ((-1.0, r[field]),)

    m.budget = pyo.Constraint(expr=(None, _lin((1.0,), (T,), minus("budget_musd")),
                                    m.budget_cap),
                              doc="T <= budget_musd")
    m.side_budget_kabil = pyo.Constraint(
        expr=(None, cost_of(every, india, minus("kabil_budget_musd")), m.kabil_cap),
        doc="sum_p india_share[p] * c_p <= kabil_budget_musd")
    m.side_budget_us = pyo.Constraint(
        expr=(None, cost_of(every, 1.0 - india, minus("us_budget_musd")), m.us_cap),
        doc="sum_p (1 - india_share[p]) * c_p <= us_budget_musd")
    m.annual_budget = pyo.Constraint(
        m.Y, rule=lambda _, k: (None, cost_of(every, data.spend[:, k],
                                              minus(f"annual_budget_musd.{k}")),
                                m.annual_cap[k]),
        doc="sum_p spend_share[p,k] * c_p <= annual_budget_musd[k]")

    def share_of(rows: np.ndarray, weight, cap, field: str) -> LinearExpression:
        """sum_{rows} weight * c_p - cap * T - relax[field]: one row, sparse thanks to T."""
        return cost_of(rows, weight, ((-cap, T), (-1.0, r[field])))

    m.country_share = pyo.Constraint(
        m.K, rule=lambda _, k: (None, share_of(country_rows[k], None, m.country_share_cap,
                                               "max_country_share"), m.country_share_ub),
        doc="sum_{p in k} c_p <= max_country_share * T")
    m.avg_risk = pyo.Constraint(
        expr=(None, share_of(every, risk, m.risk_cap, "max_avg_risk"), m.risk_ub),
        doc="sum_p risk[p] * c_p <= max_avg_risk * T")
    china_rows = np.flatnonzero(china)
    m.china_share = pyo.Constraint(
        expr=(None, share_of(china_rows, None, m.china_cap, "max_china_processing_share"),
              m.china_ub),
        doc="sum_{p china} c_p <= max_china_processing_share * T")
    m.country_used_link = pyo.Constraint(
        m.K, rule=lambda _, k: (None, _lin(np.concatenate([[1.0], -np.ones(len(country_rows[k]))]),
                                           [m.country_used[k], *(x[i] for i in country_rows[k])]),
                                0.0),
        doc="u[k] <= sum_{p in k} x[p]")
    m.min_countries = pyo.Constraint(
        expr=(m.countries_floor, _lin(np.ones(len(countries)),
                                      [m.country_used[k] for k in countries],
                                      ((1.0, r["min_countries"]),)), None),
        doc="sum_k u[k] >= min_countries")
    m.max_projects = pyo.Constraint(
        expr=(None, _lin(np.ones(n), x, minus("max_projects")), m.projects_cap),
        doc="sum_p x[p] <= max_projects")
    m.output_def = pyo.Constraint(
        m.M, rule=lambda _, mi: (0.0, _lin(np.concatenate([[1.0], -out[:, PRODUCTS.index(mi)]]),
                                           [m.output[mi], *s]), 0.0),
        doc="O[m] = sum_p output[p,m] * s[p]")
    m.min_output = pyo.Constraint(
        m.M, rule=lambda _, mi: (m.output_floor[mi],
                                 _lin((1.0, 1.0), (m.output[mi], r[f"min_output_t.{mi}"])),
                                 None),
        doc="O[m] >= min_output_t[m]")
    m.min_supply = pyo.Constraint(
        expr=(m.supply_floor, _lin([m.supply_weight[mi] for mi in PRODUCTS],
                                   [m.output[mi] for mi in PRODUCTS],
                                   ((1.0, r["min_weighted_supply"]),)), None),
        doc="sum_m supply_weights[m] * O[m] >= min_weighted_supply (the epsilon-constraint "
        "of a supply frontier)")
    groups = sorted(data.groups)
    m.G = pyo.Set(initialize=groups, ordered=True, doc="exclusive groups")
    m.exclusive = pyo.Constraint(
        m.G, rule=lambda _, g: (None, _lin(np.ones(len(data.groups[g])),
                                           [x[i] for i in data.groups[g]]), 1.0),
        doc="sum_{p in group g} x[p] <= 1")
    m.R = pyo.RangeSet(0, len(data.requires) - 1, doc="requires links (p needs q)")
    m.requires = pyo.Constraint(
        m.R, rule=lambda _, j: (None, _lin((1.0, -1.0), (x[data.requires[j][0]],
                                                         x[data.requires[j][1]])), 0.0),
        doc="x[p] <= x[q] where p requires q")

    # --- objectives (exactly one active) ---------------------------------------------------
    m.npv_obj = pyo.Objective(expr=_lin(np.concatenate([npv, -deal]), sx), sense=pyo.maximize,
                              doc="max sum_p (npv[p] * s[p] - deal_cost[p] * x[p])")
    m.supply_obj = pyo.Objective(expr=sum(m.supply_weight[mi] * m.output[mi] for mi in PRODUCTS),
                                 sense=pyo.maximize,
                                 doc="max sum_m supply_weights[m] * O[m]")
    m.relax_obj = pyo.Objective(expr=sum(m.relax_weight[fl] * r[fl] for fl in m.F),
                                sense=pyo.minimize,
                                doc="diagnosis: min sum_f weight[f] * relax[f]")
    m.supply_obj.deactivate()
    m.relax_obj.deactivate()
    return BuiltModel(model=m, data=data, countries=countries, country_rows=country_rows,
                      build_s=time.perf_counter() - t0)


def add_nogood(built: BuiltModel, chosen: np.ndarray, min_difference: int = 1) -> None:
    """Exclude the chosen set ``chosen`` (bool per row) and every set that differs from it in
    fewer than ``min_difference`` choices: ``sum_{p not in S} x_p - sum_{p in S} x_p >=
    d - |S|``."""
    m = built.model
    x = [m.choose[p] for p in range(built.data.n)]
    coefs = np.where(chosen, -1.0, 1.0)
    built.cut_serial += 1
    name = f"nogood_{built.cut_serial}"
    # a component of its own, deleted whole afterwards (re-using a ConstraintList's indices
    # after clear() puts Pyomo's index out of sync)
    m.add_component(name, pyo.Constraint(
        expr=(float(min_difference - int(chosen.sum())), _lin(coefs, x), None),
        doc="no-good cut: sum_{p in S} (1 - x[p]) + sum_{p not in S} x[p] >= d"))
    built.cuts.append(name)


def add_alternative_search(built: BuiltModel, away: np.ndarray, npv_floor: float | None
                           ) -> None:
    """Modelling to generate alternatives, added for one solve (:func:`remove_alternative_
    search` takes it out): the objective ``min sum_{p in away} c_p`` (``avoid``: the money kept
    in the projects to move away from) and, for the NPV objective, the row ``sum_p (npv[p] *
    s[p] - deal_cost[p] * x[p]) >= npv_floor`` (a supply floor uses ``min_supply``)."""
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


def clear_cuts(built: BuiltModel) -> None:
    """Remove every no-good cut (the persistent solver drops their rows at its next update)."""
    for name in built.cuts:
        built.model.del_component(name)
    built.cuts.clear()


def _cap(v: float | None) -> float:
    return INF if v is None else float(v)


def apply_scenario(built: BuiltModel, scenario: Scenario) -> None:
    """Move every scenario number into the built model (params, bounds, active objective)."""
    m = built.model
    sc = scenario
    m.budget_cap.set_value(float(sc.budget_musd))
    m.kabil_cap.set_value(_cap(sc.kabil_budget_musd))
    m.us_cap.set_value(_cap(sc.us_budget_musd))
    annual = list(sc.annual_budget_musd or [])
    for k in m.Y:
        m.annual_cap[k].set_value(_cap(annual[k] if k < len(annual) else None))
    for cap, ub, v in ((m.country_share_cap, m.country_share_ub, sc.max_country_share),
                       (m.risk_cap, m.risk_ub, sc.max_avg_risk),
                       (m.china_cap, m.china_ub, sc.max_china_processing_share)):
        if v is None:
            ub.set_value(INF)
        else:
            cap.set_value(float(v))
            ub.set_value(0.0)
    m.countries_floor.set_value(-INF if sc.min_countries is None else float(sc.min_countries))
    m.projects_cap.set_value(_cap(sc.max_projects))
    m.supply_floor.set_value(-INF if sc.min_weighted_supply is None
                             else float(sc.min_weighted_supply))
    weights = sc.weights()
    for mi in PRODUCTS:
        floor = sc.min_output_t.get(mi)
        m.output_floor[mi].set_value(-INF if floor is None else float(floor))
        m.supply_weight[mi].set_value(weights[mi])
    set_choice_bounds(built, *choice_bounds(built.data, sc))
    for fl in m.F:
        m.relax[fl].setub(0.0)
    use_objective(built, sc.objective)


CHOICE_FIELDS = ("include_projects", "exclude_projects", "exclude_countries", "partners",
                 "max_chinese_ownership")


def choice_bounds(data: ProjectData, sc: Scenario, fields: Collection[str] = CHOICE_FIELDS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on ``choose`` from the scenario's forced choices and exclusions (only the
    ``fields`` named; diagnosis enforces subsets of them). ``partners`` and
    ``max_chinese_ownership`` only forbid projects, like the exclusion lists."""
    f = data.frame
    lb = np.zeros(data.n)
    ub = np.ones(data.n)
    pos = data.positions
    if "exclude_countries" in fields and sc.exclude_countries:
        ub[f["country"].isin(sc.exclude_countries).to_numpy()] = 0.0
    if "exclude_projects" in fields:
        for pid in sc.exclude_projects:
            ub[pos[pid]] = 0.0
    if "partners" in fields and sc.partners is not None:
        ub[~f["partner"].isin(sc.partners).to_numpy()] = 0.0
    if "max_chinese_ownership" in fields and sc.max_chinese_ownership is not None:
        ub[data.col("chinese_ownership") > sc.max_chinese_ownership] = 0.0
    if data.unavailable is not None:  # a Monte-Carlo draw's disrupted countries
        ub[data.unavailable] = 0.0
    if "include_projects" in fields:
        for pid in sc.include_projects:
            lb[pos[pid]] = 1.0
    return lb, ub


def apply_data(built: BuiltModel, data: ProjectData) -> None:
    """Move a perturbed table's equity values, NPVs and output factors into a model built with
    ``mutable_data=True`` (Monte Carlo); ``data`` must be ``built.data`` or derived from it by
    :meth:`ProjectData.perturbed`. Unavailable projects are bounds, set by
    :func:`choice_bounds`."""
    m = built.model
    if not hasattr(m, "equity_value"):
        raise ValueError("this model was built without mutable_data")
    for param, values in ((m.equity_value, data.col("equity_value_musd")),
                          (m.npv, data.col("npv_musd")),
                          (m.output_factor, data.output_factor if data.output_factor is not None
                           else np.ones(data.n))):
        for p, v in enumerate(values.tolist()):
            param[p].set_value(v)


def set_choice_bounds(built: BuiltModel, lb: np.ndarray, ub: np.ndarray) -> None:
    """Put bounds on ``choose`` (cheap to change on a persistent model): only the rows that
    differ from 0..1 now or did before are touched, so the cost is O(changes), not O(n)."""
    m = built.model
    moved = np.flatnonzero((lb != 0.0) | (ub != 1.0)).tolist()
    for p in set(moved) | set(built.moved):
        m.choose[p].setlb(float(lb[p]))
        m.choose[p].setub(float(ub[p]))
    built.moved = moved


def use_objective(built: BuiltModel, name: str) -> None:
    """Activate exactly one of ``npv_obj``, ``supply_obj``, ``relax_obj`` (``none``: none of
    them, for a caller that adds its own objective)."""
    m = built.model
    for key, obj in (("npv", m.npv_obj), ("supply", m.supply_obj), ("relax", m.relax_obj)):
        obj.activate() if key == name else obj.deactivate()
