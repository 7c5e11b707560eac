"""Batch specs (CONTRACT section 6): parse, check and expand them into scenarios.

A spec is ``base`` plus exactly one generator: ``scenarios`` (partial scenarios merged over
``base``), ``grid`` (the cartesian product of field paths, first path slowest),
``monte_carlo`` (seeded perturbations of the project data) or ``frontier`` (points of an
efficient frontier). Expansion is lazy: a 100,000-row grid is an iterator, and its size is
known before anything is expanded. Every merged scenario is validated like a single one
before anything is solved; a bad one is an error naming its index and field.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..data import ProjectData, check_scenario_against, scenario_problems
from ..errors import InputError, Problem
from ..limits import looseness_order
from ..perturbations import Perturbations
from ..schema import PRODUCT_MAP_FIELDS, PRODUCTS, Scenario, Text

# Objects merged key by key; every other field (lists included) is replaced whole.
MERGED_OBJECTS = (*PRODUCT_MAP_FIELDS, "solver")  # merged key by key
DEFAULT_MAX_ROWS = 100_000


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------------------------


class MonteCarloSpec(Perturbations):
    """N seeded draws that perturb the project data (README: "Monte Carlo")."""

    draws: Annotated[int, Field(ge=1)]
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    reoptimize: bool = Field(True, description="solve every draw (false: only evaluate the "
                             "base portfolio under each draw)")


# ---------------------------------------------------------------------------------------------
# frontier
# ---------------------------------------------------------------------------------------------


class BudgetFrontier(BaseModel):
    """NPV against budget: ``points`` budgets evenly from ``low`` to ``high`` (or ``values``)."""

    model_config = _strict()
    kind: Literal["budget"]
    low: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    high: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    points: Annotated[int, Field(ge=2, le=10_000)] = 11
    values: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _range(self) -> BudgetFrontier:
        if self.values is None and (self.low is None or self.high is None):
            raise ValueError("give low and high (and points), or values")
        if self.values is None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def budgets(self) -> list[float]:
        if self.values is not None:
            return sorted(self.values)
        return [float(v) for v in np.linspace(self.low, self.high, self.points)]


class SupplyFrontier(BaseModel):
    """NPV against weighted supply (the epsilon-constraint method): the NPV-optimal portfolio's
    supply and the largest supply possible bound the range; each of ``points`` floors on the
    weighted supply (``supply_weights`` of the base) is one NPV-maximising scenario."""

    model_config = _strict()
    kind: Literal["supply"]
    points: Annotated[int, Field(ge=2, le=10_000)] = 11


class RiskFrontier(BaseModel):
    """Mean against CVaR (CONTRACT section 8): the base scenario's ``mean_cvar`` objective with
    ``risk_aversion`` from 0 (the best mean) to 1 (the best CVaR) over ``points`` values (or
    ``values``), each point a portfolio. The base must have an ``uncertainty`` sample."""

    model_config = _strict()
    kind: Literal["risk"]
    points: Annotated[int, Field(ge=2, le=1000)] = 11
    values: list[Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] | None = None

    def aversions(self) -> list[float]:
        if self.values is not None:
            return sorted(set(self.values))
        return [float(v) for v in np.linspace(0.0, 1.0, self.points)]


Frontier = Annotated[BudgetFrontier | SupplyFrontier | RiskFrontier,
                     Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------


class BatchSpec(BaseModel):
    """CONTRACT section 6. ``projects``: a CSV path (CLI) or rows (HTTP); ``dataset_id``
    (HTTP) names a stored table; neither: the shipped data."""

    model_config = ConfigDict(extra="forbid")
    name: Text = Field("batch", max_length=200)
    description: Text | None = Field(None, max_length=2000)
    base: dict[str, Any]
    projects: str | list[dict[str, Any]] | None = None
    dataset_id: str | None = None
    scenarios: list[dict[str, Any]] | None = None
    grid: dict[str, list[Any]] | None = None
    monte_carlo: MonteCarloSpec | None = None
    frontier: Frontier | None = None
    diagnose: bool = Field(True, description="diagnose infeasible rows (off: faster)")
    reuse: bool = Field(True, description="answer a row with the portfolio of a row at least "
                        "as loose in every limit when it meets this row's limits exactly "
                        "(no solve; README: dominance)")
    core_share: Annotated[float, Field(gt=0, le=1)] = Field(
        0.9, description="robust core: projects chosen in at least this share of rows")
    exterior_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="exterior: projects chosen in at most this share of rows")

    @model_validator(mode="after")
    def _one_generator(self) -> BatchSpec:
        given = [k for k in ("scenarios", "grid", "monte_carlo", "frontier")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of scenarios, grid, monte_carlo, frontier; got "
                             + (", ".join(given) if given else "none"))
        if self.exterior_share >= self.core_share:
            raise ValueError("exterior_share must be below core_share")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("scenarios", "grid", "monte_carlo", "frontier")
                    if getattr(self, k) is not None)


@dataclass(frozen=True)
class Task:
    """One row to solve: its index, the merged scenario (JSON-ready) and, for Monte Carlo,
    the draw index (the draw itself is re-made from (seed, index) wherever it is solved)."""

    index: int
    scenario: dict[str, Any]
    draw: int | None = None
    varied: tuple[tuple[str, Any], ...] = ()  # field path -> value, for the flat table


# ---------------------------------------------------------------------------------------------
# field paths and merging
# ---------------------------------------------------------------------------------------------


def _path_ok(path: str) -> str | None:
    """None if ``path`` names a scenario field (dotted into nested ones), else why not."""
    parts = path.split(".")
    head = parts[0]
    fields = Scenario.model_fields
    if head not in fields:
        import difflib

        hint = difflib.get_close_matches(head, sorted(fields), n=1)
        return f"unknown scenario field {head!r}" + (f" (did you mean {hint[0]!r}?)"
                                                      if hint else "")
    if len(parts) == 1:
        return None
    if len(parts) > 2:
        return f"{path!r} goes deeper than any scenario field"
    key = parts[1]
    if head in PRODUCT_MAP_FIELDS:
        return None if key in PRODUCTS else f"unknown product {key!r} in {path!r}"
    if head == "solver":
        from ..schema import SolverSettings

        return None if key in SolverSettings.model_fields else f"unknown solver option {key!r}"
    if head == "annual_budget_musd":
        # checked before anything is built: set_path pads the list up to the index, so an
        # index past the list's limit would cost memory the client chooses
        years = _max_plan_years()
        if not (key.isascii() and key.isdigit()) or len(key) > 6 or int(key) >= years:
            return (f"{path!r}: plan years are numbered 0, 1, ... up to {years - 1} "
                    f"(annual_budget_musd holds at most {years} years)")
        return None
    if head == "uncertainty":  # the generator's numbers (a seed study, a sample's size)
        return None if key in ("draws", "seed", "fresh_draws") else (
            f"{path!r}: a path into uncertainty names draws, seed or fresh_draws")
    return f"{head!r} has no parts; {path!r} names nothing"


def _max_plan_years() -> int:
    """The most entries ``Scenario.annual_budget_musd`` accepts (its ``max_length``)."""
    for m in Scenario.model_fields["annual_budget_musd"].metadata:
        if getattr(m, "max_length", None) is not None:
            return int(m.max_length)
    raise AssertionError("Scenario.annual_budget_musd has no max_length")


def set_path(scenario: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in a (merged, JSON-ready) scenario dict."""
    parts = path.split(".")
    if len(parts) == 1:
        scenario[path] = copy.deepcopy(value)
        return
    head, key = parts
    if head == "annual_budget_musd":
        k = int(key)
        years = list(scenario.get(head) or [])
        years += [None] * (k + 1 - len(years))
        years[k] = value
        scenario[head] = years
    else:
        scenario[head] = {**(scenario.get(head) or {}), key: value}


def merge(base: Mapping[str, Any], partial: Mapping[str, Any]) -> dict[str, Any]:
    """``partial`` over ``base``: top-level fields replaced, the product maps
    (``min_output_t``, ``supply_weights``, ...) and ``solver`` merged key by key, lists
    replaced whole."""
    out = copy.deepcopy(dict(base))
    for k, v in partial.items():
        if k in MERGED_OBJECTS and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **copy.deepcopy(dict(v))}
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------------------------------------
# checking and expanding
# ---------------------------------------------------------------------------------------------


def parse_spec(raw: Any, *, max_rows: int = DEFAULT_MAX_ROWS) -> BatchSpec:
    """Validate a spec's shape (not yet its scenarios against data); InputError if bad."""
    if not isinstance(raw, Mapping):
        raise InputError("a batch spec must be a JSON object", loc=("spec",))
    try:
        spec = BatchSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise InputError(_spec_problems(exc)) from None
    problems: list[Problem] = []
    if spec.grid is not None:
        if not spec.grid:
            problems.append(Problem(("spec", "grid"), "grid: names no field path"))
        for path, values in spec.grid.items():
            why = _path_ok(path)
            if why:
                problems.append(Problem(("spec", "grid", path), f"grid: {why}"))
            if not values:
                problems.append(Problem(("spec", "grid", path),
                                        f"grid: {path!r} has an empty value list"))
    if spec.scenarios is not None and not spec.scenarios:
        problems.append(Problem(("spec", "scenarios"), "scenarios: the list is empty"))
    n = row_count(spec)
    if n > max_rows:
        problems.append(Problem(("spec", spec.kind),
                                f"{spec.kind}: {n:,} scenarios is over the cap of {max_rows:,} "
                                f"(a setting: OPTIMIZER_BATCH_MAX_ROWS or --max-rows)"))
    if problems:
        raise InputError(problems)
    return spec


def _spec_problems(exc: ValidationError) -> list[Problem]:
    out = []
    for e in exc.errors():
        loc = tuple(p for p in e["loc"] if p not in ("lognormal", "triangular", "budget",
                                                     "supply"))
        path = ".".join(str(p) for p in loc) or "spec"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg += f", got {e['input']!r}"
        out.append(Problem(("spec", *loc), f"spec field {path!r}: {msg}"))
    return out


def sample_variants(spec: BatchSpec) -> Iterator[dict[str, Any]]:
    """Every distinct sample a batch's rows can ask for, as scenario dicts, without expanding
    the batch: the base, each scenario of a list merged over it, and the base with each
    single value of a grid's ``uncertainty.*`` paths (to size them before anything runs)."""
    yield spec.base
    for partial in spec.scenarios or []:
        if isinstance(partial, Mapping) and "uncertainty" in partial:
            yield merge(spec.base, partial)
    for path, values in (spec.grid or {}).items():
        if path.split(".")[0] == "uncertainty":
            for v in values:
                sc = merge(spec.base, {})
                set_path(sc, path, v)
                yield sc


def row_count(spec: BatchSpec) -> int:
    """Rows the spec generates, computed without expanding it."""
    if spec.scenarios is not None:
        return len(spec.scenarios)
    if spec.grid is not None:
        return math.prod(len(v) for v in spec.grid.values()) if spec.grid else 0
    if spec.monte_carlo is not None:
        return spec.monte_carlo.draws
    f = spec.frontier
    if isinstance(f, BudgetFrontier):
        return len(f.budgets())
    return len(f.aversions()) if isinstance(f, RiskFrontier) else f.points


def validate_rows(spec: BatchSpec, data: ProjectData) -> None:
    """Validate every merged scenario (and each against the data) before anything is solved;
    one InputError naming each bad row's index and field.

    A grid is checked value by value: scenario fields are validated independently of each
    other, so a grid's product is valid exactly when ``base`` with each single value of each
    path is (checking 100,000 products one by one would take seconds for nothing)."""
    problems: list[Problem] = []

    def check(sc: dict[str, Any], where: tuple, label: str) -> None:
        try:
            scenario = Scenario.model_validate(sc)
            check_scenario_against(scenario, data)
        except ValidationError as exc:
            problems.extend(Problem((*where, *p.loc[1:]), f"{label}: {p.msg}")
                            for p in scenario_problems(exc.errors()))
        except InputError as exc:
            problems.extend(Problem((*where, *p.loc[1:]), f"{label}: {p.msg}")
                            for p in exc.problems)

    base = spec.base
    if spec.scenarios is not None:
        for i, partial in enumerate(spec.scenarios):
            if not isinstance(partial, Mapping):
                problems.append(Problem(("spec", "scenarios", i),
                                        f"scenarios[{i}]: must be an object"))
                continue
            check(merge(base, partial), ("spec", "scenarios", i), f"scenarios[{i}]")
            if len(problems) >= 50:
                break
    elif spec.grid is not None:
        for path, values in spec.grid.items():
            for j, v in enumerate(values):
                sc = merge(base, {})
                set_path(sc, path, v)
                check(sc, ("spec", "grid", path, j), f"grid {path!r} value {j} ({v!r})")
    else:
        check(merge(base, {}), ("spec", "base"), "base")
        f = spec.frontier
        if isinstance(f, BudgetFrontier):  # each budget is a scenario's budget_musd
            # a budget's validity is a range: the smallest and the largest decide for all
            if f.values is not None:
                lo = min(range(len(f.values)), key=f.values.__getitem__)
                hi = max(range(len(f.values)), key=f.values.__getitem__)
                ends = [(("values", lo), f.values[lo]), (("values", hi), f.values[hi])]
            else:
                ends = [(("low",), f.low), (("high",), f.high)]
            for where, b in dict(ends).items():
                check(merge(base, {"budget_musd": b}), ("spec", "frontier", *where),
                      f"frontier {'.'.join(map(str, where))} ({b!r})")
    if problems:
        raise InputError(problems)


def expand(spec: BatchSpec, data: ProjectData | None = None,
           supply_range: tuple[float, float] | None = None, *,
           loose_first: bool = False) -> Iterator[Task]:
    """The spec's rows in generation order (lazily). A supply frontier needs
    ``supply_range`` = (weighted supply of the NPV optimum, largest weighted supply), which the
    engine finds with two solves before expanding.

    ``loose_first`` (grids): the same rows, with the same indices, in the order a solver should
    meet them to re-use work (``optimizer.batch.reuse``): lexicographic over each field's
    values sorted loosest first, which puts every row after all rows at least as loose."""
    base = spec.base
    if spec.scenarios is not None:
        for i, partial in enumerate(spec.scenarios):
            yield Task(i, merge(base, partial), varied=tuple(sorted(
                (k, v) for k, v in partial.items() if k not in MERGED_OBJECTS)) + tuple(
                (f"{k}.{kk}", vv) for k in MERGED_OBJECTS
                for kk, vv in sorted((partial.get(k) or {}).items())))
    elif spec.grid is not None:
        paths = list(spec.grid)
        sizes = [len(v) for v in spec.grid.values()]
        orders = [(looseness_order(p, v) if loose_first else None) or list(range(len(v)))
                  for p, v in spec.grid.items()]
        for positions in itertools.product(*orders):
            i = 0
            for pos, n in zip(positions, sizes, strict=True):  # mixed radix, first slowest
                i = i * n + pos
            combo = [spec.grid[p][j] for p, j in zip(paths, positions, strict=True)]
            sc = merge(base, {})
            for path, v in zip(paths, combo, strict=True):
                set_path(sc, path, v)
            yield Task(i, sc, varied=tuple(zip(paths, combo, strict=True)))
    elif spec.monte_carlo is not None:
        sc = merge(base, {})
        for i in range(spec.monte_carlo.draws):
            yield Task(i, sc, draw=i)
    else:
        f = spec.frontier
        if isinstance(f, BudgetFrontier):
            for i, b in enumerate(f.budgets()):
                sc = merge(base, {"budget_musd": b})
                yield Task(i, sc, varied=(("budget_musd", b),))
        elif isinstance(f, RiskFrontier):
            for i, lam in enumerate(f.aversions()):
                sc = merge(base, {"objective": "mean_cvar", "risk_aversion": lam})
                yield Task(i, sc, varied=(("risk_aversion", lam),))
        else:
            if supply_range is None:
                raise ValueError("a supply frontier needs supply_range")
            lo, hi = supply_range
            for i, eps in enumerate(np.linspace(lo, hi, f.points)):
                sc = merge(base, {"objective": "npv", "min_weighted_supply": float(eps)})
                yield Task(i, sc, varied=(("min_weighted_supply", float(eps)),))
