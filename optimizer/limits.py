"""Reading the table of scenario limits (:data:`optimizer.schema.LIMITS`).

Which limits a scenario sets, what a portfolio's quantity is for each, whether it is broken or
binding, whether one scenario is at least as loose as another, how a limit is relaxed, and how
it reads in words: written once here, for every limit, from the table's columns. Nothing here
reads the Pyomo model: checking a portfolio with these functions is independent of the solver
(``optimizer.check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from . import risk
from .sample import Sample, sample_for
from .schema import (
    LIMIT_BY_FIELD,
    LIMITS,
    PARTNERS,
    PRODUCT_SHORT,
    PRODUCT_UNITS,
    PRODUCTS,
    SETTING_FIELDS,
    Limit,
    RiskFigures,
    Scenario,
)

if TYPE_CHECKING:
    from .data import ProjectData

BIND_TOL = 1e-6  # a limit met within this (relative) binds
CHECK_TOL = 1e-9  # a limit exceeded by more than this (relative) is broken


# ---------------------------------------------------------------------------------------------
# which limits a scenario sets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One limit as a scenario sets it, for one plan year / product / host country."""

    limit: Limit
    key: Any = None  # plan year (0-based), product, country or None
    value: Any = None  # the field's value for this entry

    @property
    def path(self) -> str:
        """``budget_musd``, ``annual_budget_musd.0``, ``min_output_t.ree``,
        ``max_country_share.US`` (binding and checks name entries by this)."""
        return self.limit.field if self.key is None else f"{self.limit.field}.{self.key}"

    @property
    def field_path(self) -> str:
        """The scenario field path that sets it: what diagnosis and sensitivity relax (one
        ``max_country_share`` for every country)."""
        return self.limit.field if self.limit.index in ("", "country") else self.path

    @property
    def restricts(self) -> bool:
        """Can it rule out a portfolio at all? (A floor of 0, an empty list or every
        partner allowed cannot.)"""
        lim, v = self.limit, self.value
        if lim.reads == "list":
            return bool(v) and not (lim.field == "partners" and set(v) >= set(PARTNERS))
        if lim.reads == "cvar":  # a CVaR floor may be negative and still bite
            return True
        if lim.sense == "min" and lim.kind != "filter":
            return v > 0
        return True


def entries(sc: Scenario, data: ProjectData | None = None) -> list[Entry]:
    """The limits ``sc`` sets, in table order: one entry per plan year and product it names;
    with ``data``, one per host country for a country-indexed limit (without: one entry,
    key None) and none for plan years the data has no spend in."""
    out: list[Entry] = []
    for lim in LIMITS:
        v = getattr(sc, lim.field)
        if v is None:
            continue
        if lim.index == "year":
            years = len(v) if data is None else min(len(v), data.n_years)
            out += [Entry(lim, k, v[k]) for k in range(years) if v[k] is not None]
        elif lim.index == "product":
            out += [Entry(lim, m, x) for m, x in v.items()]
        elif lim.index == "country" and data is not None:
            out += [Entry(lim, k, v) for k in data.country_codes[1]]
        elif lim.reads == "list" and not v and lim.field != "partners":
            continue  # an empty exclusion or inclusion list sets nothing
        else:
            out.append(Entry(lim, None, v))
    return out


def fields(sc: Scenario, n_years: int) -> list[Entry]:
    """The scenario's limits that can rule out a portfolio, one entry per field path
    (diagnosis relaxes these)."""
    seen: set[str] = set()
    out = []
    for e in entries(sc):
        if e.limit.index == "year" and e.key >= n_years:
            continue
        if e.restricts and e.field_path not in seen:
            seen.add(e.field_path)
            out.append(e)
    return out


def entry_at(sc: Scenario, path: str) -> Entry:
    """The entry of a field path (``min_output_t.ree``, ``max_country_share.GL``, ...)."""
    head, _, tail = path.partition(".")
    lim = LIMIT_BY_FIELD[head]
    v = getattr(sc, head)
    if lim.index == "year":
        return Entry(lim, int(tail), v[int(tail)])
    if lim.index == "product":
        return Entry(lim, tail, v.get(tail))
    return Entry(lim, tail or None, v)


def slack_paths(n_years: int) -> list[str]:
    """Every numeric limit's field path the model keeps a diagnosis slack for, table order."""
    out: list[str] = []
    for lim in LIMITS:
        if not lim.numeric:
            continue
        if lim.index == "year":
            out += [f"{lim.field}.{k}" for k in range(n_years)]
        elif lim.index == "product":
            out += [f"{lim.field}.{m}" for m in PRODUCTS]
        else:
            out.append(lim.field)
    return out


# ---------------------------------------------------------------------------------------------
# a portfolio's quantities
# ---------------------------------------------------------------------------------------------


@dataclass
class Holding:
    """A portfolio as arrays in row order: chosen 0/1, stake, cost ``c_p``."""

    data: ProjectData
    x: np.ndarray
    s: np.ndarray
    cost: np.ndarray = field(init=False)
    on_sample: dict = field(default_factory=dict, repr=False)  # (sample, scenario) -> Outcomes

    def __post_init__(self) -> None:
        d = self.data
        self.cost = d.col("equity_value_musd") * self.s + d.col("deal_cost_musd") * self.x

    @cached_property
    def total(self) -> float:
        return float(self.cost.sum())

    @cached_property
    def chosen(self) -> np.ndarray:
        return self.x > 0

    @cached_property
    def by_country(self) -> dict[str, float]:
        codes, names = self.data.country_codes
        by = np.bincount(codes, weights=self.cost, minlength=len(names))
        return dict(zip(names, by.tolist(), strict=True))


def holding(data: ProjectData, stakes: dict[str, float]) -> Holding:
    """The portfolio ``{project_id: stake}`` as arrays."""
    pos = data.positions
    x = np.zeros(data.n)
    s = np.zeros(data.n)
    for pid, st in stakes.items():
        x[pos[pid]] = 1.0
        s[pos[pid]] = st
    return Holding(data, x, s)


def linear_form(e: Entry, data: ProjectData, sc: Scenario) -> tuple[str, np.ndarray] | None:
    """The entry's quantity as a weighted sum over projects: ``("cost", w)`` for ``Q = sum_p
    w_p c_p``, ``("stake", w)`` for ``Q = sum_p w_p s_p``; None for a quantity that is not
    linear in them (counts, the largest of a column, lists)."""
    lim = e.limit
    if lim.reads == "spend":
        if lim.index == "country":
            codes, names = data.country_codes
            return "cost", (codes == names.index(e.key)) * 1.0
        w = lim.weight(data, e.key) if lim.weight is not None else np.ones(data.n)
        return "cost", np.asarray(w, dtype=float)
    if lim.reads == "offtake":
        col = data.outputs[:, PRODUCTS.index(e.key)]
        return "stake", col if lim.weight is None else lim.weight(data, e.key) * col
    if lim.reads == "supply":
        weights = sc.weights()
        return "stake", data.outputs @ np.array([weights[m] for m in PRODUCTS])
    return None


def amount(e: Entry, h: Holding, sc: Scenario) -> float:
    """The quantity ``Q`` the entry limits (a share limit's numerator: divide by the total
    spend for the share)."""
    lim, d = e.limit, h.data
    if lim.index == "country":  # one bincount for every country
        return h.by_country.get(e.key, 0.0)
    if lim.reads == "spend" and lim.weight is None:
        return h.total
    form = linear_form(e, d, sc)
    if form is not None:
        kind, w = form
        return float(w @ (h.cost if kind == "cost" else h.s))
    if lim.reads == "projects":
        return float(h.chosen.sum())
    if lim.reads == "countries":
        return float(len(np.unique(d.country_codes[0][h.chosen])))
    if lim.reads == "largest":
        w = lim.weight(d, e.key)
        return float(w[h.chosen].max()) if h.chosen.any() else 0.0
    if lim.sampled:
        out = _on_sample(h, sc)
        if lim.reads == "cvar":
            return risk.cvar(out.npv, sc.cvar_alpha)
        return float((out.within_caps if lim.reads == "caps_held" else out.floors_met).mean())
    raise ValueError(f"{lim.field}: nothing to read off a portfolio")


def _on_sample(h: Holding, sc: Scenario) -> risk.Outcomes:
    """The portfolio on the scenario's sample (once per portfolio and sample)."""
    smp = sample_for(h.data, sc)
    key = (smp.sha256, id(sc))
    got = h.on_sample.get(key)
    if got is None:
        got = h.on_sample[key] = outcomes_on(h.data, sc, smp, h)
    return got


def outcomes_on(data: ProjectData, sc: Scenario, sample: Sample, h: Holding) -> risk.Outcomes:
    """The portfolio ``h`` in every draw of ``sample``, against the spend caps and output
    floors ``sc`` sets (the table of limits says which those are)."""
    caps = [(e.path, float(e.value), None if e.limit.weight is None
             else np.asarray(e.limit.weight(data, e.key), dtype=float))
            for e in entries(sc, data) if e.limit.kind == "cap" and e.limit.reads == "spend"]
    return risk.outcomes(data, sample, h, caps, sc.min_output_t)


def measure(data: ProjectData, sc: Scenario, sample: Sample, stakes: dict[str, float],
            alpha: float | None = None) -> RiskFigures:
    """The figures of a portfolio ``{project_id: stake}`` on ``sample``."""
    return risk.figures(outcomes_on(data, sc, sample, holding(data, stakes)),
                        sc.cvar_alpha if alpha is None else alpha)


def level(e: Entry, h: Holding, sc: Scenario) -> float:
    """The quantity as the limit states it: shares and the average risk as a fraction of
    total spend (0 for an empty portfolio), everything else as :func:`amount`."""
    q = amount(e, h, sc)
    if e.limit.kind == "share":
        return q / h.total if h.total > 0 else 0.0
    return q


@dataclass(frozen=True)
class Breach:
    """A limit a portfolio breaks, with by how much (positive: over a cap, under a floor)."""

    path: str
    level: float  # the portfolio's quantity, as the limit states it
    limit: float | None
    excess: float | None
    text: str


def breaches(data: ProjectData, sc: Scenario, h: Holding, *, rel_tol: float = CHECK_TOL
             ) -> list[Breach]:
    """Every limit of the table that the portfolio breaks. A cap or floor counts as broken
    when missed by more than ``rel_tol * max(1, |limit|)`` (a share: of its value times total
    spend); filters and counts are exact."""
    out: list[Breach] = []
    ids = data.frame["project_id"]
    for e in entries(sc, data):
        lim, v = e.limit, e.value
        if lim.kind == "filter":
            if lim.forces is not None:
                for i in np.flatnonzero(lim.forces(data, v) & ~h.chosen):
                    out.append(Breach(e.path, 0.0, None, None,
                                      f"{e.path}: {ids.iat[i]} not chosen"))
            if lim.forbids is not None:
                for i in np.flatnonzero(lim.forbids(data, v) & h.chosen):
                    out.append(Breach(e.path, 1.0, None, None, f"{e.path}: {ids.iat[i]} "
                                      f"chosen ({_filter_reason(lim, data, i)})"))
            continue
        q = amount(e, h, sc)
        if lim.kind == "share":
            cap = v * h.total
            over = q - cap
            if over > rel_tol * max(1.0, abs(cap)):
                share = q / h.total
                out.append(Breach(e.path, share, v, share - v,
                                  f"{e.path}: {share:.10g} of spend exceeds {v:.10g}"))
        elif lim.sense == "max":
            if q - v > rel_tol * max(1.0, abs(v)):
                out.append(Breach(e.path, q, v, q - v, f"{e.path}: {q:.10g} exceeds {v:.10g}"))
        elif v - q > rel_tol * max(1.0, abs(v)):
            out.append(Breach(e.path, q, v, v - q, f"{e.path}: {q:.10g} < {v:.10g}"))
    return out


def _filter_reason(lim: Limit, data: ProjectData, i: int) -> str:
    if lim.weight is not None:
        return f"{lim.label}: {float(lim.weight(data, None)[i]):.4g}"
    column = {"exclude_countries": "country", "partners": "partner"}.get(lim.field)
    return f"{column} {data.frame[column].iat[i]}" if column else "excluded"


def binding(data: ProjectData, sc: Scenario, h: Holding) -> list[tuple[str, float, float]]:
    """``(path, limit, level)`` of every cap, floor, share and count the portfolio meets
    exactly (within :data:`BIND_TOL` relative)."""
    out = []
    for e in entries(sc, data):
        if e.limit.kind == "filter":
            continue
        q = level(e, h, sc)
        if abs(q - e.value) <= BIND_TOL * max(1.0, abs(e.value)):
            out.append((e.path, float(e.value), q))
    return out


# ---------------------------------------------------------------------------------------------
# looseness (batch re-use): every portfolio feasible for b is feasible for a
# ---------------------------------------------------------------------------------------------


def _numeric_value(lim: Limit, v: Any) -> float:
    """A limit's value with "not set" as the loosest number: caps +inf, floors 0 (every
    quantity a floor bounds is >= 0, so no floor and a floor of 0 are the same) but a CVaR
    floor -inf (a CVaR may be negative)."""
    if v is None:
        return math.inf if lim.sense == "max" else -math.inf if lim.reads == "cvar" else 0.0
    return float(v)


def at_least_as_loose(data: ProjectData, a: Scenario, b: Scenario) -> bool:
    """Every portfolio feasible for ``b`` is feasible for ``a``, and both ask the same
    (objective, weights, solver settings). Exact for filters: what ``a`` forbids (forces) on
    ``data`` is a subset of what ``b`` does."""
    same = [f for f in SETTING_FIELDS if f not in ("name", "description", "supply_weights")]
    if a.weights() != b.weights() or any(getattr(a, f) != getattr(b, f) for f in same):
        return False
    for lim in LIMITS:
        va, vb = getattr(a, lim.field), getattr(b, lim.field)
        if va == vb:
            continue
        if lim.kind == "filter":
            for rule in (lim.forbids, lim.forces):
                if rule is None:
                    continue
                ma = rule(data, va) if va is not None else np.zeros(data.n, bool)
                mb = rule(data, vb) if vb is not None else np.zeros(data.n, bool)
                if (ma & ~mb).any():
                    return False
            continue
        if lim.index in ("year", "product"):
            keys = range(max(len(va or []), len(vb or []))) if lim.index == "year" \
                else set(va or {}) | set(vb or {})
            pairs = [(_keyed(va, k), _keyed(vb, k)) for k in keys]
        else:
            pairs = [(va, vb)]
        for x, y in pairs:
            nx, ny = _numeric_value(lim, x), _numeric_value(lim, y)
            if (nx < ny) if lim.sense == "max" else (nx > ny):
                return False
    return True


def _keyed(v: Any, k: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, dict):
        return v.get(k)
    return v[k] if k < len(v) else None


def looseness_order(path: str, values: list[Any]) -> list[int] | None:
    """Positions of a grid field's values, loosest first, or None for a field without an
    order (a list filter, a setting)."""
    lim = LIMIT_BY_FIELD.get(path.split(".")[0])
    if lim is None or lim.reads == "list":
        return None
    sign = -1.0 if lim.sense == "max" else 1.0  # caps: biggest first; floors: smallest
    return sorted(range(len(values)), key=lambda i: (sign * _numeric_value(lim, values[i]), i))


# ---------------------------------------------------------------------------------------------
# words
# ---------------------------------------------------------------------------------------------


def key_words(lim: Limit, key: Any) -> str:
    """A key as people say it: plan year 1 for index 0; a product's name."""
    if lim.index == "year":
        return str(int(key) + 1)
    if lim.index == "product":
        return PRODUCT_SHORT.get(key, str(key))
    return "" if key is None else str(key)


def value_words(lim: Limit, value: Any, key: Any = None) -> str:
    """A limit's value with its unit, as diagnosis states it."""
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    if lim.unit == "MUSD":
        return f"{value:,.6g} MUSD"
    if lim.unit in ("share", "risk"):
        return f"{value:.4g}"
    if lim.unit == "count":
        return f"{value}"
    if lim.unit == "t/y":
        return f"{value:,.6g} {PRODUCT_UNITS[key]}"
    return f"{value:,.6g}"


def describe(sc: Scenario, path: str) -> str:
    """A field path's limit with its value in words, e.g. "a spending cap of 1,000 MUSD in
    plan year 1"."""
    e = entry_at(sc, path)
    lim = e.limit
    return lim.words.format(value=value_words(lim, e.value, e.key), key=key_words(lim, e.key))


def label(lim: Limit, key: Any = None) -> str:
    """The quantity a limit bounds, in words ("offtake of ree", "spend in plan year 2")."""
    return lim.label.format(key=key_words(lim, key))


__all__ = ["BIND_TOL", "CHECK_TOL", "Breach", "Entry", "Holding", "amount", "at_least_as_loose",
           "binding", "breaches", "describe", "entries", "entry_at", "fields", "holding",
           "key_words", "label", "level", "linear_form", "looseness_order", "measure",
           "outcomes_on", "slack_paths", "value_words"]
