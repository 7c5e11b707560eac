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
from typing import Any

import numpy as np
import pyomo.environ as pyo
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression

from .data import ProjectData
from .highs_backend import NO_BOUND
from .limits import entries, slack_paths
from .schema import LIMIT_BY_FIELD, LIMITS, PRODUCTS, Limit, Scenario


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
    sample: Any = None  # the sample whose rows the model holds (optimizer.stochastic)
    sample_parts: set[str] = field(default_factory=set)  # which of its row families exist
    shortfall_rows: dict[int, Any] = field(default_factory=dict)  # draw -> its shortfall row
    cvar_counts: bool = False  # the scenario's objective or a floor reads CVaR (rows needed)
    cap_margins: Any = None  # optimizer.stochastic.CapMargins of the sample's caps_in_draw
    value_coefs: Any = None  # (sample, data, its (N, n) a_sp): optimizer.stochastic's cache


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


class _Terms:
    """The model being built and the arrays its rows are made of (one per build)."""

    def __init__(self, data: ProjectData, mutable_data: bool) -> None:
        self.data = data
        self.mutable = mutable_data
        self.n = data.n
        self.every = np.arange(data.n)
        self.equity = data.col("equity_value_musd")
        self.deal = data.col("deal_cost_musd")
        self.npv = data.col("npv_musd")
        self.out = data.output()
        country = data.frame["country"].to_numpy()
        self.countries = sorted(set(country))
        self.country_rows = {k: np.flatnonzero(country == k) for k in self.countries}
        self.m = pyo.ConcreteModel(name="critical_mineral_portfolio")

    # row helpers ------------------------------------------------------------------------
    def minus(self, path: str) -> tuple:
        return ((-1.0, self.m.relax[path]),)

    def plus(self, path: str) -> tuple:
        return ((1.0, self.m.relax[path]),)

    def cost_of(self, rows: np.ndarray, weight=None, extra=()) -> LinearExpression:
        """sum_{p in rows} weight_p * c_p (+ extra terms)."""
        w = np.ones(len(rows)) if weight is None else np.asarray(weight, dtype=float)[rows]
        if self.mutable:  # no parameter expression where the weight is 0
            keep = w != 0.0
            rows, w = rows[keep], w[keep]
        coefs = np.concatenate([self.equity[rows] * w, self.deal[rows] * w])
        return _lin(coefs, [self.s[i] for i in rows] + [self.x[i] for i in rows], extra)

    def offtake_of(self, j: int, weight=None, extra=()) -> LinearExpression:
        """sum_p weight_p * output[p, product j] * s[p] (+ extra terms)."""
        col = self.out[:, j]
        if weight is None:
            return _lin(col, self.s, extra)
        w = np.asarray(weight, dtype=float)
        rows = np.flatnonzero(w != 0.0)
        return _lin(col[rows] * w[rows], [self.s[i] for i in rows], extra)


def build_model(data: ProjectData, *, mutable_data: bool = False) -> BuiltModel:
    """Build the portfolio MIP for ``data``; call :func:`apply_scenario` before solving.

    One ``add_*`` per constraint family, in a fixed order (the row order HiGHS sees); each
    family's rule is in its docstring and in its components' ``doc``. Every scenario limit's
    bound is a mutable parameter ``rhs[f]`` (and ``share_cap[f]`` for a share) set by
    :func:`apply_scenario` from the table of limits (``schema.LIMITS``).

    ``mutable_data``: equity values, NPVs and an output factor per project become mutable
    parameters (``equity_value``, ``npv``, ``output_factor``), so a Monte-Carlo draw moves
    coefficients in place (:func:`apply_data`) instead of rebuilding. Off by default: every
    mutable coefficient is pushed to HiGHS at each solve, which a plain model need not pay."""
    # Building allocates ~10^5 expression objects and no cycles: the cyclic garbage collector
    # would only rescan them over and over (measured: half the build time at 10k projects).
    with PauseGC():
        t0 = time.perf_counter()
        b = _Terms(data, mutable_data)
        add_sets(b)
        add_variables(b)
        add_limit_parameters(b)
        add_stake_range(b)
        add_total_cost(b)
        add_spend_caps(b)
        add_share_caps(b)
        add_country_count(b)
        add_project_count(b)
        add_offtake_floors(b)
        add_supply_floor(b)
        add_exclusive_groups(b)
        add_requires(b)
        add_objectives(b)
        return BuiltModel(model=b.m, data=data, countries=b.countries,
                          country_rows=b.country_rows, build_s=time.perf_counter() - t0)


def add_sets(b: _Terms) -> None:
    """P projects (row positions), M products, K host countries, Y plan years, F the limits'
    slack paths (diagnosis), G exclusive groups, R requires links."""
    m, data = b.m, b.data
    m.P = pyo.RangeSet(0, b.n - 1, doc="candidate projects (row positions)")
    m.M = pyo.Set(initialize=PRODUCTS, ordered=True,
                  doc="offtake products: tantalum, niobium, ree (TREO), ndpr, dytb")
    m.K = pyo.Set(initialize=b.countries, ordered=True, doc="host countries")
    m.Y = pyo.RangeSet(0, data.n_years - 1, doc="plan years (0 = year 1)")
    m.F = pyo.Set(initialize=slack_paths(data.n_years), ordered=True,
                  doc="scenario limits' field paths, each with a slack (diagnosis)")
    m.G = pyo.Set(initialize=sorted(data.groups), ordered=True, doc="exclusive groups")
    m.R = pyo.RangeSet(0, len(data.requires) - 1, doc="requires links (p needs q)")


def add_variables(b: _Terms) -> None:
    """x[p] chosen, s[p] stake, T total cost, O[m] offtake, u[k] country used, relax[f]."""
    m = b.m
    smax = b.data.col("max_stake")
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
                      doc="slack on scenario limit f; fixed at 0 except in diagnosis")
    b.x = [m.choose[p] for p in range(b.n)]
    b.s = [m.stake[p] for p in range(b.n)]
    b.T = m.total_cost


def add_limit_parameters(b: _Terms) -> None:
    """The scenario's numbers as mutable parameters, so a new scenario moves numbers only.
    A limit the scenario leaves out gets an infinite bound (:data:`NO_BOUND`): its rows stay in
    the model but constrain nothing."""
    m, data = b.m, b.data
    mut = {"mutable": True, "domain": pyo.Any}
    m.rhs = pyo.Param(m.F, initialize=lambda _, f: _loosest(f), doc="limit f's bound: the "
                      "value of a cap or floor, 0 for a share; +-NO_BOUND when not set", **mut)
    m.share_cap = pyo.Param(m.F, initialize=1.0, doc="a share limit's value (coefficient of "
                            "T in its rows)", **mut)
    m.supply_weight = pyo.Param(m.M, initialize=1.0, doc="supply_weights[m]", **mut)
    m.relax_weight = pyo.Param(m.F, initialize=0.0, doc="diagnosis weight of relax[f]", **mut)
    if b.mutable:  # Monte Carlo: the data's own numbers as parameters
        m.equity_value = pyo.Param(m.P, initialize=dict(enumerate(b.equity.tolist())),
                                   doc="equity_value_musd[p]", **mut)
        m.npv = pyo.Param(m.P, initialize=dict(enumerate(b.npv.tolist())), doc="npv_musd[p]",
                          **mut)
        m.output_factor = pyo.Param(m.P, initialize=1.0, doc="factor on project p's outputs",
                                    **mut)
        b.equity = np.array([m.equity_value[p] for p in range(b.n)], dtype=object)
        b.npv = np.array([m.npv[p] for p in range(b.n)], dtype=object)
        factor = np.array([m.output_factor[p] for p in range(b.n)], dtype=object)
        b.out = np.where(b.out != 0.0, b.out * factor[:, None], 0.0)
    del data


def add_stake_range(b: _Terms) -> None:
    """stake_min[p]: s[p] >= min_stake[p] * x[p]; stake_max[p]: s[p] <= max_stake[p] * x[p]."""
    m, s, x = b.m, b.s, b.x
    smin, smax = b.data.col("min_stake"), b.data.col("max_stake")
    m.stake_min = pyo.Constraint(
        m.P, rule=lambda _, p: (0.0, _lin((1.0, -smin[p]), (s[p], x[p])), None),
        doc="s[p] >= min_stake[p] * x[p]")
    m.stake_max = pyo.Constraint(
        m.P, rule=lambda _, p: (None, _lin((1.0, -smax[p]), (s[p], x[p])), 0.0),
        doc="s[p] <= max_stake[p] * x[p]")


def add_total_cost(b: _Terms) -> None:
    """total_cost_def: T = sum_p c_p, c_p = equity_value[p] * s[p] + deal_cost[p] * x[p].
    Share rows compare with T: one sparse row each instead of a dense one (PERF_NOTES)."""
    coefs = np.concatenate([b.equity, b.deal])
    b.m.total_cost_def = pyo.Constraint(
        expr=(0.0, _lin(np.concatenate([[1.0], -coefs]), [b.T, *b.s, *b.x]), 0.0),
        doc="T = sum_p (equity_value[p] * s[p] + deal_cost[p] * x[p])")


def _limits(kind: str, reads: str) -> list[Limit]:
    return [lim for lim in LIMITS if lim.kind == kind and lim.reads == reads]


def add_spend_caps(b: _Terms) -> None:
    """Every money cap of the table (kind ``cap``, reads ``spend``): ``sum_p w_p c_p -
    relax[f] <= rhs[f]`` with the limit's weights (``budget``: ``T``; ``annual_budget[k]``:
    one row per plan year)."""
    m, data = b.m, b.data
    for lim in _limits("cap", "spend"):
        name = lim.rows[0]
        if lim.index == "year":
            con = pyo.Constraint(
                m.Y, rule=lambda _, k, lim=lim: (
                    None, b.cost_of(b.every, lim.weight(data, k),
                                    b.minus(f"{lim.field}.{k}")), m.rhs[f"{lim.field}.{k}"]),
                doc=lim.maths)
        elif lim.weight is None:  # the whole spend: T
            con = pyo.Constraint(expr=(None, _lin((1.0,), (b.T,), b.minus(lim.field)),
                                       m.rhs[lim.field]), doc=lim.maths)
        else:
            con = pyo.Constraint(expr=(None, b.cost_of(b.every, lim.weight(data, None),
                                                       b.minus(lim.field)), m.rhs[lim.field]),
                                 doc=lim.maths)
        m.add_component(name, con)


def add_share_caps(b: _Terms) -> None:
    """Every share of total spend (kind ``share``): ``sum_p w_p c_p - share_cap[f] * T -
    relax[f] <= rhs[f]`` (rhs 0 when set; ``country_share[k]``: one row per host country,
    w = 1 on its projects)."""
    m, data = b.m, b.data

    def row(rows: np.ndarray, weight, f: str) -> tuple:
        expr = b.cost_of(rows, weight, ((-m.share_cap[f], b.T), (-1.0, m.relax[f])))
        return (None, expr, m.rhs[f])

    for lim in LIMITS:
        if lim.kind != "share":
            continue
        f = lim.field
        if lim.index == "country":
            con = pyo.Constraint(m.K, rule=lambda _, k, f=f: row(b.country_rows[k], None, f),
                                 doc=lim.maths)
        else:
            con = pyo.Constraint(expr=row(b.every, lim.weight(data, None), f), doc=lim.maths)
        m.add_component(lim.rows[0], con)


def add_country_count(b: _Terms) -> None:
    """country_used_link[k]: u[k] <= sum_{p in k} x[p]; min_countries: sum_k u[k] +
    relax >= rhs."""
    m = b.m
    m.country_used_link = pyo.Constraint(
        m.K, rule=lambda _, k: (None, _lin(
            np.concatenate([[1.0], -np.ones(len(b.country_rows[k]))]),
            [m.country_used[k], *(b.x[i] for i in b.country_rows[k])]), 0.0),
        doc="u[k] <= sum_{p in k} x[p]")
    m.min_countries = pyo.Constraint(
        expr=(m.rhs["min_countries"], _lin(np.ones(len(b.countries)),
                                           [m.country_used[k] for k in b.countries],
                                           b.plus("min_countries")), None),
        doc="sum_k u[k] >= min_countries")


def add_project_count(b: _Terms) -> None:
    """max_projects: sum_p x[p] - relax <= rhs."""
    b.m.max_projects = pyo.Constraint(
        expr=(None, _lin(np.ones(b.n), b.x, b.minus("max_projects")), b.m.rhs["max_projects"]),
        doc="sum_p x[p] <= max_projects")


def add_offtake_floors(b: _Terms) -> None:
    """output_def[m]: O[m] = sum_p output[p,m] * s[p]; then every offtake floor of the table
    (kind ``floor``, reads ``offtake``), one row per product: ``sum_p w_p output[p,m] s[p] +
    relax[f.m] >= rhs[f.m]`` (``min_output[m]`` reads ``O[m]``; ``min_india_output[m]`` and
    ``min_us_output[m]`` each side's entitlement, in proportion to what it pays)."""
    m, data = b.m, b.data
    m.output_def = pyo.Constraint(
        m.M, rule=lambda _, mi: (0.0, _lin(np.concatenate([[1.0], -b.out[:, PRODUCTS.index(mi)]]),
                                           [m.output[mi], *b.s]), 0.0),
        doc="O[m] = sum_p output[p,m] * s[p]")
    for lim in _limits("floor", "offtake"):

        def rule(_, mi, lim=lim):
            f = f"{lim.field}.{mi}"
            if lim.weight is None:  # the whole portfolio's offtake: O[m]
                expr = _lin((1.0,), (m.output[mi],), b.plus(f))
            else:
                expr = b.offtake_of(PRODUCTS.index(mi), lim.weight(data, mi), b.plus(f))
            return (m.rhs[f], expr, None)

        m.add_component(lim.rows[0], pyo.Constraint(m.M, rule=rule, doc=lim.maths))


def add_supply_floor(b: _Terms) -> None:
    """min_supply: sum_m supply_weights[m] * O[m] + relax >= rhs (the epsilon-constraint of
    a supply frontier)."""
    m = b.m
    m.min_supply = pyo.Constraint(
        expr=(m.rhs["min_weighted_supply"], _lin([m.supply_weight[mi] for mi in PRODUCTS],
                                                 [m.output[mi] for mi in PRODUCTS],
                                                 b.plus("min_weighted_supply")), None),
        doc="sum_m supply_weights[m] * O[m] >= min_weighted_supply")


def add_exclusive_groups(b: _Terms) -> None:
    """exclusive[g]: sum_{p in group g} x[p] <= 1."""
    groups = b.data.groups
    b.m.exclusive = pyo.Constraint(
        b.m.G, rule=lambda _, g: (None, _lin(np.ones(len(groups[g])),
                                             [b.x[i] for i in groups[g]]), 1.0),
        doc="sum_{p in group g} x[p] <= 1")


def add_requires(b: _Terms) -> None:
    """requires[j]: x[p] <= x[q] for the j-th link "p requires q"."""
    req = b.data.requires
    b.m.requires = pyo.Constraint(
        b.m.R, rule=lambda _, j: (None, _lin((1.0, -1.0), (b.x[req[j][0]], b.x[req[j][1]])),
                                  0.0),
        doc="x[p] <= x[q] where p requires q")


def add_objectives(b: _Terms) -> None:
    """npv_obj (active by default), supply_obj and relax_obj (diagnosis); exactly one is
    active at a time (:func:`use_objective`)."""
    m = b.m
    m.npv_obj = pyo.Objective(expr=_lin(np.concatenate([b.npv, -b.deal]), b.s + b.x),
                              sense=pyo.maximize,
                              doc="max sum_p (npv[p] * s[p] - deal_cost[p] * x[p])")
    m.supply_obj = pyo.Objective(expr=sum(m.supply_weight[mi] * m.output[mi] for mi in PRODUCTS),
                                 sense=pyo.maximize,
                                 doc="max sum_m supply_weights[m] * O[m]")
    m.relax_obj = pyo.Objective(expr=sum(m.relax_weight[fl] * m.relax[fl] for fl in m.F),
                                sense=pyo.minimize,
                                doc="diagnosis: min sum_f weight[f] * relax[f]")
    m.supply_obj.deactivate()
    m.relax_obj.deactivate()


def _loosest(path: str) -> float:
    """The bound of a limit the scenario leaves out: caps +NO_BOUND, floors -NO_BOUND, shares
    +NO_BOUND on the row (its share_cap is then irrelevant)."""
    return -NO_BOUND if LIMIT_BY_FIELD[path.split(".")[0]].sense == "min" else NO_BOUND


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


def clear_cuts(built: BuiltModel) -> None:
    """Remove every no-good cut (the persistent solver drops their rows at its next update)."""
    for name in built.cuts:
        built.model.del_component(name)
    built.cuts.clear()


def apply_scenario(built: BuiltModel, scenario: Scenario) -> None:
    """Move every scenario number into the built model: each limit's bound (the table of
    limits says whether it is a cap, floor or share), the supply weights, the bounds on
    ``choose`` from the filters, the active objective; every diagnosis slack fixed at 0."""
    m = built.model
    for f in m.F:
        m.rhs[f].set_value(_loosest(f))
    for e in entries(scenario):
        f = e.field_path
        # filters: bounds below; years past the data: nothing to hold; sampled limits:
        # optimizer.stochastic (they count draws)
        if not e.limit.numeric or f not in m.F or e.limit.sampled:
            continue
        if e.limit.kind == "share":
            m.share_cap[f].set_value(float(e.value))
            m.rhs[f].set_value(0.0)
        else:
            m.rhs[f].set_value(float(e.value))
    weights = scenario.weights()
    for mi in PRODUCTS:
        m.supply_weight[mi].set_value(weights[mi])
    set_choice_bounds(built, *choice_bounds(built.data, scenario))
    for fl in m.F:
        m.relax[fl].setub(0.0)
    use_objective(built, scenario.objective)


FILTER_FIELDS = tuple(lim.field for lim in LIMITS if lim.kind == "filter")


def choice_bounds(data: ProjectData, sc: Scenario, fields: Collection[str] = FILTER_FIELDS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on ``choose`` from the scenario's filters (only the ``fields`` named; diagnosis
    enforces subsets of them) and, in a Monte-Carlo draw, its unavailable projects."""
    lb = np.zeros(data.n)
    ub = np.ones(data.n)
    for e in entries(sc):
        lim = e.limit
        if lim.kind != "filter" or lim.field not in fields:
            continue
        if lim.forbids is not None:
            ub[lim.forbids(data, e.value)] = 0.0
        if lim.forces is not None:
            lb[lim.forces(data, e.value)] = 1.0
    if data.unavailable is not None:  # a Monte-Carlo draw's disrupted countries
        ub[data.unavailable] = 0.0
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


# objective name -> the component that holds it (the stochastic ones live in the sample's
# block, optimizer.stochastic)
OBJECTIVES = {"npv": "npv_obj", "supply": "supply_obj", "relax": "relax_obj",
              "expected_npv": "draws.risk_obj", "mean_cvar": "draws.risk_obj"}


def use_objective(built: BuiltModel, name: str) -> None:
    """Activate exactly the objective ``name`` (``none``: none of them, for a caller that adds
    its own objective)."""
    m = built.model
    want = OBJECTIVES.get(name)
    for comp in set(OBJECTIVES.values()):
        obj = m.find_component(comp)
        if obj is not None:
            obj.activate() if comp == want else obj.deactivate()
    if want is not None and m.find_component(want) is None:
        raise ValueError(f"objective {name!r} needs a sample of draws in the model")
