"""The sample-average model of CONTRACT section 8: a sample's rows, added to a built model.

A sample of N draws adds one Pyomo block ``draws`` (:func:`attach_sample`; another sample
replaces it). Its row families are built when a scenario first needs them and kept for the
sample's lifetime, so re-solving the same sample with another ``risk_aversion``,
``cvar_alpha``, CVaR floor or confidence only moves parameters and bounds
(:func:`apply_uncertainty`), as a new budget does for the face-value model.

With ``a_sp = available_sp value_p price_sp - equity_p overrun_sp`` and ``R_s = sum_p a_sp s_p
- deal_p x_p`` (the portfolio's NPV in draw s):

- ``risk_obj``: max ``(1 - lam) (1/N) sum_s R_s + lam (eta - 1/(alpha N) sum_s u_s)``
  (``lam`` = 0 for ``expected_npv``, ``risk_aversion`` for ``mean_cvar``);
- ``shortfall``: ``u_s >= eta - R_s``, ``u_s >= 0`` (Rockafellar-Uryasev: at the optimum
  ``eta - 1/(alpha N) sum_s u_s`` is the CVaR of R). Rows are generated, a cut per draw: the
  model starts with the 2 alpha N draws worst across the board; a run stops at its first
  incumbent that understates a draw's shortfall, the rows of the draws any incumbent
  understated are added and the model re-run (:func:`lazy_rows`, ``Session.run``), until a
  run ends with none: its answer and bound are then the full model's (bench/README.md
  measures it against every row);
- ``cvar_floor``: ``eta - 1/(alpha N) sum_s u_s + relax >= min_cvar_npv``;
- ``caps_in_draw[s, cap]``: ``sum_p w_p (equity_p overrun_sp s_p + deal_p x_p) + M_s held_s
  <= cap + M_s`` for every spend cap: ``held_s`` = 0 lets the cap's spend in draw s exceed the
  cap by up to ``M_s``. ``M_s`` is ``S_s``, the most the spend can be in draw s, unless the
  scenario holds ``budget_confidence``: then it is the quantile big-M of Qiu, Ahmed, Dey and
  Wolsey (2014, Covering linear programming with violations): a portfolio within the caps in
  at least K draws t has spend_s - cap <= spend_s - spend_t <= m_st (m_st = sum_p w_p
  equity_p max_stake_p (overrun_sp - overrun_tp)^+), in particular for one of the N - K + 1
  draws t of smallest m_st, so ``M_s`` = the (N - K + 1)-th smallest m_st is valid, and about
  ten times tighter than ``S_s`` on the shipped data (:class:`CapMargins`);
  ``caps_held_count``: ``sum_s held_s + relax >= ceil(p N)``;
- ``floors_in_draw[s, m]``: ``sum_p available_sp output_sp output_pm s_p >= floor_m met_s``;
  ``floors_met_count``: ``sum_s met_s + relax >= ceil(q N)``.

``held`` and ``met`` are binaries fixed at 0 unless the scenario asks for a confidence. Every
limit of CONTRACT section 3 still holds at face value: the face-value rows are untouched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

from .highs_backend import NO_BOUND
from .model import BuiltModel, _lin, use_objective
from .sample import Sample
from .schema import LIMITS, PRODUCTS, STOCHASTIC_OBJECTIVES, Scenario

CAP_LIMITS = [lim for lim in LIMITS if lim.kind == "cap" and lim.reads == "spend"]


def attach_sample(built: BuiltModel, sample: Sample) -> None:
    """Give the model ``sample``'s block (once: the same sample again is a no-op; another
    replaces it). The row families themselves come with :func:`apply_uncertainty`."""
    if built.sample is sample:
        return
    m = built.model
    if hasattr(m, "draws"):
        m.del_component(m.draws)
    b = pyo.Block()
    m.draws = b
    n_draws = sample.n_draws
    b.S = pyo.RangeSet(0, n_draws - 1, doc="draws of the sample")
    mut = {"mutable": True, "domain": pyo.Any}
    b.lam = pyo.Param(initialize=0.0, doc="lambda: weight of CVaR in risk_obj", **mut)
    b.alpha = pyo.Param(initialize=0.1, doc="cvar_alpha", **mut)
    b.eta = pyo.Var(domain=pyo.Reals, doc="eta: the value-at-risk at the optimum")
    b.shortfall_of = pyo.Var(b.S, domain=pyo.NonNegativeReals,
                             doc="u_s = max(0, eta - R_s)")
    built.sample = sample
    built.sample_parts = set()
    _risk_objective(built)


def _risk_objective(built: BuiltModel) -> None:
    """risk_obj: (1 - lam) E[R] + lam (eta - 1/(alpha N) sum_s u_s)."""
    m, b, data, smp = built.model, built.model.draws, built.data, built.sample
    if hasattr(b, "risk_obj"):
        b.del_component(b.risk_obj)
    n = data.n
    mean_a = _value_coefficients(built).mean(axis=0)
    deal = data.col("deal_cost_musd")
    keep_mean = 1 - b.lam
    coefs = [keep_mean * float(v) for v in mean_a] + [keep_mean * float(-d) for d in deal]
    vars_ = [m.stake[p] for p in range(n)] + [m.choose[p] for p in range(n)]
    if "shortfall" in built.sample_parts:  # the CVaR terms: only once u_s are tied to R_s
        coefs.append(b.lam)
        vars_.append(b.eta)
        tail = -b.lam / (b.alpha * smp.n_draws)
        coefs += [tail] * smp.n_draws
        vars_ += [b.shortfall_of[s] for s in b.S]
    b.risk_obj = pyo.Objective(expr=LinearExpression(constant=0, linear_coefs=coefs,
                                                     linear_vars=vars_),
                               sense=pyo.maximize,
                               doc="max (1 - lam) (1/N) sum_s R_s + lam CVaR_alpha(R)")
    b.risk_obj.deactivate()


def _add_shortfall(built: BuiltModel) -> None:
    """shortfall: ``u_s - eta + sum_p a_sp s_p - deal_p x_p >= 0``, one row per draw, added
    as needed (:func:`lazy_rows`): it starts with the draws worst across the board; cvar_floor."""
    m, b, smp = built.model, built.model.draws, built.sample
    b.shortfall = pyo.ConstraintList(doc="u_s >= eta - R_s, for the draws that need it")
    built.shortfall_rows = {}
    tail = -1.0 / (b.alpha * smp.n_draws)
    b.cvar_floor = pyo.Constraint(
        expr=(m.rhs["min_cvar_npv"], LinearExpression(
            constant=0, linear_coefs=[1.0, *([tail] * smp.n_draws), 1.0],
            linear_vars=[b.eta, *(b.shortfall_of[s] for s in b.S), m.relax["min_cvar_npv"]]),
            None),
        doc="eta - 1/(alpha N) sum_s u_s >= min_cvar_npv")
    built.sample_parts.add("shortfall")
    _risk_objective(built)


def _add_shortfall_rows(built: BuiltModel, draws) -> None:
    m, b, data = built.model, built.model.draws, built.data
    a = _value_coefficients(built)
    deal = -data.col("deal_cost_musd")
    sx = [m.stake[p] for p in range(data.n)] + [m.choose[p] for p in range(data.n)]
    for s in draws:
        s = int(s)
        if s in built.shortfall_rows:
            continue
        built.shortfall_rows[s] = b.shortfall.add(
            (0.0, _lin(np.concatenate([a[s], deal]), sx,
                       ((1.0, b.shortfall_of[s]), (-1.0, b.eta))), None))


def _value_coefficients(built: BuiltModel) -> np.ndarray:
    """The sample's (N, n) value coefficients a_sp on the model's data, made once."""
    got = built.value_coefs
    if got is None or got[0] is not built.sample or got[1] is not built.data:
        built.value_coefs = got = (built.sample, built.data,
                                   built.sample.value_coefficients(built.data))
    return got[2]


def _ensure_tail_rows(built: BuiltModel, alpha: float) -> None:
    """At least 2 alpha N shortfall rows, the draws worst across the board first (the sum of
    every project's NPV in the draw): with fewer than alpha N rows, raising eta would pay and
    the CVaR terms would be unbounded; twice that starts near the tail."""
    n_draws = built.sample.n_draws
    need = min(n_draws, max(1, math.ceil(2 * alpha * n_draws - 1e-9)))
    if len(built.shortfall_rows) >= need:
        return
    order = np.argsort(_value_coefficients(built).sum(axis=1), kind="stable")
    fresh = [s for s in order.tolist() if s not in built.shortfall_rows]
    _add_shortfall_rows(built, fresh[:need - len(built.shortfall_rows)])


SEPARATION_TOL = 1e-7  # a shortfall row missed by more than this (relative) is added


def lazy_rows(built: BuiltModel) -> tuple[list, Callable[[np.ndarray], bool]] | None:
    """Row generation for CVaR (a cut per draw), as ``Session.run`` drives it: the variables
    to read off every incumbent (``choose``, ``stake``, ``eta``, then ``u_s`` of every draw)
    and the test that flags an incumbent understating some draw's shortfall (a row it needs
    is missing). None when the model holds no shortfall rows or the scenario does not read
    CVaR."""
    if "shortfall" not in built.sample_parts or not built.cvar_counts:
        return None
    m, b, n = built.model, built.model.draws, built.data.n
    variables = [*(m.choose[p] for p in range(n)), *(m.stake[p] for p in range(n)), b.eta,
                 *(b.shortfall_of[s] for s in b.S)]
    return variables, lambda values: len(understated(built, values)) > 0


def understated(built: BuiltModel, values: np.ndarray) -> list[int]:
    """The draws, without a row yet, whose shortfall the point ``values`` (in
    :func:`lazy_rows`' order) understates (``eta - R_s > u_s``); at most ceil(alpha N) of
    them, the worst for the point first: those alone make its best CVaR terms its portfolio's
    CVaR, and an incumbent whose ``eta`` is far off would otherwise ask for nearly every
    row. Empty: the point's CVaR terms are its portfolio's CVaR."""
    n = built.data.n
    x, s, eta, u = values[:n], values[n:2 * n], float(values[2 * n]), values[2 * n + 1:]
    r = _value_coefficients(built) @ s - float(built.data.col("deal_cost_musd") @ x)
    missing = np.ones(len(r), dtype=bool)
    missing[list(built.shortfall_rows)] = False
    broken = np.flatnonzero(missing & (eta - r - u > SEPARATION_TOL * max(1.0, abs(eta))))
    k = math.ceil(float(pyo.value(built.model.draws.alpha)) * len(r) - 1e-9)
    if len(broken) > k:
        broken = broken[np.argsort(r[broken], kind="stable")[:k]]
    return sorted(broken.tolist())


def add_understated_rows(built: BuiltModel, points: list[np.ndarray]) -> int:
    """Add the shortfall rows of every draw any of ``points`` understates; how many."""
    todo = sorted(set().union(*(understated(built, v) for v in points)))
    _add_shortfall_rows(built, todo)
    return len(todo)


QUANTILE_WORK = 4e8  # N^2 x projects x caps multiply-adds above which M_s stays S_s


@dataclass
class CapMargins:
    """The big-M of every ``caps_in_draw`` row: ``S`` (N, caps), the most each cap's spend
    can be in each draw, valid whatever holds; the quantile big-M for a number of draws K
    that must hold every cap (module docstring), made on first use and kept per K."""

    cost: list[np.ndarray]  # per cap: (N, n) w_p equity_p overrun_sp max_stake_p
    most: np.ndarray  # S, (N, caps)
    by_k: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    put: np.ndarray | None = None  # the big-M now in the rows

    def for_draws(self, k: int | None) -> np.ndarray:
        """The big-M when at least ``k`` draws must hold every cap (None or 0: any number)."""
        n_draws = self.most.shape[0]
        if not k or k <= 0:
            return self.most
        n = self.cost[0].shape[1] if self.cost else 0
        if n_draws * n_draws * n * len(self.cost) > QUANTILE_WORK:
            return self.most
        if k not in self.by_k:
            r = n_draws - k  # 0-based: the (N - k + 1)-th smallest
            out = np.empty_like(self.most)
            block = max(1, int(2e6 // max(1, n_draws * n)))
            for j, c in enumerate(self.cost):
                for lo in range(0, n_draws, block):
                    d = np.maximum(c[lo:lo + block, None, :] - c[None, :, :], 0.0).sum(axis=2)
                    out[lo:lo + block, j] = np.partition(d, r, axis=1)[:, r]
            self.by_k[k] = np.minimum(out, self.most)
        return self.by_k[k]


def set_cap_margins(built: BuiltModel, k: int | None) -> None:
    """Put the big-M for ``k`` draws holding every cap into ``caps_in_draw`` (None: the
    confidence is not held, or its slack may move: the always-valid ``S_s``)."""
    margins = built.cap_margins
    if margins is None:
        return
    got = margins.for_draws(k)
    if margins.put is got:  # already in the rows
        return
    margins.put = got
    b = built.model.draws
    for j, path in enumerate(b.CAPS):
        col = got[:, j]
        for s in b.S:
            b.cap_margin[s, path].set_value(float(col[s]))


def _add_caps(built: BuiltModel) -> None:
    """held[s] and caps_in_draw[s, cap] for every spend cap; caps_held_count."""
    m, b, data, smp = built.model, built.model.draws, built.data, built.sample
    n = data.n
    paths = [p for p in m.F if p.split(".")[0] in {lim.field for lim in CAP_LIMITS}]
    b.CAPS = pyo.Set(initialize=paths, ordered=True, doc="the spend caps' field paths")
    b.held = pyo.Var(b.S, domain=pyo.Binary, bounds=(0, 0),
                     doc="1: every spend cap holds in draw s")
    price = smp.cost_coefficients(data)  # (N, n)
    deal = data.col("deal_cost_musd")
    smax = data.col("max_stake")
    sx = [m.stake[p] for p in range(n)] + [m.choose[p] for p in range(n)]
    weights, cost = {}, []
    for path in paths:
        head, _, key = path.partition(".")
        lim = next(lim for lim in CAP_LIMITS if lim.field == head)
        w = np.ones(n) if lim.weight is None else np.asarray(
            lim.weight(data, int(key) if key else None), dtype=float)
        weights[path] = w
        cost.append(w * price * smax)
    most = np.column_stack([c.sum(axis=1) + float(weights[p] @ deal)
                            for c, p in zip(cost, paths, strict=True)]) if paths else \
        np.zeros((smp.n_draws, 0))
    built.cap_margins = CapMargins(cost=cost, most=most)
    b.cap_margin = pyo.Param(b.S, b.CAPS, mutable=True, domain=pyo.Any,
                             initialize={(s, p): float(most[s, j]) for j, p in enumerate(paths)
                                         for s in range(smp.n_draws)},
                             doc="M_s: how far the cap's spend may exceed it where held_s = 0")

    def row(_, s, path):
        w = weights[path]
        big_m = b.cap_margin[s, path]
        return (None, _lin(np.concatenate([w * price[s], w * deal]), sx,
                           ((big_m, b.held[s]),)), m.rhs[path] + big_m)

    b.caps_in_draw = pyo.Constraint(b.S, b.CAPS, rule=row,
                                    doc="sum_p w_p C_ps + M_s held_s <= cap + M_s")
    b.caps_held_count = pyo.Constraint(
        expr=(m.rhs["budget_confidence"], LinearExpression(
            constant=0, linear_coefs=[1.0] * smp.n_draws + [1.0],
            linear_vars=[*(b.held[s] for s in b.S), m.relax["budget_confidence"]]), None),
        doc="sum_s held_s >= ceil(budget_confidence N)")
    built.sample_parts.add("caps")


def _add_floors(built: BuiltModel) -> None:
    """met[s] and floors_in_draw[s, m]; floors_met_count."""
    m, b, data, smp = built.model, built.model.draws, built.data, built.sample
    n = data.n
    made = [mi for j, mi in enumerate(PRODUCTS) if data.outputs[:, j].any()]
    b.FLOORS = pyo.Set(initialize=made, ordered=True, doc="products some project makes")
    b.met = pyo.Var(b.S, domain=pyo.Binary, bounds=(0, 0),
                    doc="1: every output floor holds in draw s")
    b.floor_value = pyo.Param(b.FLOORS, initialize=0.0, mutable=True, domain=pyo.Any,
                              doc="min_output_t[m] (0 when not set)")
    drawn = smp.available * smp.output  # (N, n)
    s_vars = [m.stake[p] for p in range(n)]

    def row(_, s, mi):
        coefs = drawn[s] * data.outputs[:, PRODUCTS.index(mi)]
        return (0.0, _lin(coefs, s_vars, ((-b.floor_value[mi], b.met[s]),)), None)

    b.floors_in_draw = pyo.Constraint(b.S, b.FLOORS, rule=row,
                                      doc="drawn O_s[m] >= min_output_t[m] met_s")
    b.floors_met_count = pyo.Constraint(
        expr=(m.rhs["min_output_confidence"], LinearExpression(
            constant=0, linear_coefs=[1.0] * smp.n_draws + [1.0],
            linear_vars=[*(b.met[s] for s in b.S), m.relax["min_output_confidence"]]), None),
        doc="sum_s met_s >= ceil(min_output_confidence N)")
    built.sample_parts.add("floors")


def apply_uncertainty(built: BuiltModel, sc: Scenario) -> None:
    """Move the scenario's section-8 numbers into the sample's block (after
    ``model.apply_scenario``): the objective's lambda and alpha, the CVaR floor, the
    confidences as draw counts, building a row family the first time it is needed."""
    m = built.model
    b = getattr(m, "draws", None)
    if b is None:
        return
    n_draws = built.sample.n_draws
    stochastic = sc.uncertainty is not None
    if stochastic and (sc.objective == "mean_cvar" or sc.min_cvar_npv is not None):
        if "shortfall" not in built.sample_parts:
            _add_shortfall(built)
    b.lam.set_value(sc.risk_aversion if stochastic and sc.objective == "mean_cvar" else 0.0)
    # eta and u_s mean nothing to a run that neither maximises CVaR nor holds a floor on it:
    # such runs generate no rows (their eta is free to sit anywhere)
    built.cvar_counts = stochastic and ((sc.objective == "mean_cvar" and sc.risk_aversion > 0)
                                        or sc.min_cvar_npv is not None)
    b.alpha.set_value(sc.cvar_alpha)
    if "shortfall" in built.sample_parts:
        _ensure_tail_rows(built, sc.cvar_alpha)
    m.rhs["min_cvar_npv"].set_value(
        float(sc.min_cvar_npv) if stochastic and sc.min_cvar_npv is not None else -NO_BOUND)
    for field, part, add, binary in (("budget_confidence", "caps", _add_caps, "held"),
                                     ("min_output_confidence", "floors", _add_floors, "met")):
        p = getattr(sc, field) if stochastic else None
        if p is not None and part not in built.sample_parts:
            add(built)
        if part in built.sample_parts:
            for s in b.S:
                getattr(b, binary)[s].setub(1 if p is not None else 0)
        need = None if p is None else math.ceil(p * n_draws - 1e-9)
        m.rhs[field].set_value(-NO_BOUND if need is None else float(need))
        if part == "caps" and part in built.sample_parts:
            set_cap_margins(built, need)
    if "floors" in built.sample_parts:
        for mi in b.FLOORS:
            b.floor_value[mi].set_value(float(sc.min_output_t.get(mi, 0.0)))
    if sc.objective in STOCHASTIC_OBJECTIVES:
        use_objective(built, sc.objective)


__all__ = ["attach_sample", "apply_uncertainty"]
