"""Cross-check of the MIP against an independent brute-force reference (CONTRACT section 3).

The reference enumerates every subset of projects (n <= 8, so at most 256), keeps the subsets
that pass the pure-subset rules (exclusive groups, ``requires``, include/exclude lists,
``max_projects``, ``min_countries``), and for each one solves the rest -- the stakes -- as a
linear programme with ``scipy.optimize.linprog``: once ``x`` is fixed every cost is
``equity_p * s_p + deal_p`` and every limit of section 3 is a linear row in ``s``. The best
objective over the subsets is the optimum; no admissible subset with a feasible LP means the
scenario is infeasible. Nothing here reads the Pyomo model.

Cases are seeded and deterministic: datasets from ``synthetic_projects`` (some with their
countries folded into a pool of three, so country rules bite), scenarios drawn so that every
scenario field is exercised somewhere. ``test_case_mix`` keeps the generator honest (share of
infeasible cases, share of feasible ones where some limit binds, every field kind changing
the answer in several cases, both objectives in use).

For an infeasible scenario the diagnosis is checked against the reference too: every conflict
must be a field path the scenario actually sets; relaxing all of them must make the scenario
feasible; and the named fields alone (every other limit relaxed) must still be infeasible.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from optimizer import Optimizer, Scenario, SolutionCheckError
from optimizer.check import violations
from optimizer.data import ProjectData, validate_projects
from optimizer.synthetic import synthetic_projects

PRODUCTS = ("tantalum", "niobium", "ree", "ndpr", "dytb")
REL = 1e-6  # objective agreement, relative ...
ABS = 1e-6  # ... plus absolute
EXACT = {"mip_gap": 1e-9, "time_limit_s": 30}

N_DATASETS = 36
SCENARIOS_PER_DATASET = 4
CASES = [(ds, j) for ds in range(N_DATASETS) for j in range(SCENARIOS_PER_DATASET)]
COUNTRY_POOL = ("AU", "BR", "MW")

# Scenario fields that restrict the portfolio, as relaxable paths (CONTRACT section 4 names
# conflicts this way); list fields relax to [], numeric ones to null (budget: to infinity).
NULLABLE = ("kabil_budget_musd", "us_budget_musd", "max_country_share", "min_countries",
            "max_projects", "max_avg_risk", "max_china_processing_share", "partners",
            "max_chinese_ownership")
LISTS = ("include_projects", "exclude_projects", "exclude_countries")
# the two sides' offtake floors: the share of a deal's offtake each side is entitled to
SIDES = {"min_india_output_t": lambda india: india, "min_us_output_t": lambda india: 1.0 - india}
FLOORS = ("min_output_t", *SIDES)


# ---------------------------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------------------------


@dataclass
class Reference:
    status: str  # "optimal" | "infeasible"
    objective: float | None = None
    stakes: dict[str, float] = field(default_factory=dict)


class BruteForce:
    """Enumerate subsets, one LP over the stakes per admissible subset."""

    def __init__(self, data: ProjectData) -> None:
        f = data.frame  # the validated table; the rules below are re-read from its columns
        self.n = n = len(f)
        self.ids = f["project_id"].tolist()
        num = lambda c: f[c].to_numpy(dtype=float)  # noqa: E731
        self.e, self.d, self.npv = num("equity_value_musd"), num("deal_cost_musd"), num("npv_musd")
        self.india, self.risk = num("india_share"), num("risk_score")
        self.smin, self.smax = num("min_stake"), num("max_stake")
        self.out = np.column_stack([num(f"output_{m}_t") for m in PRODUCTS])
        self.china = f["china_processing"].to_numpy(dtype=bool)
        self.country = f["country"].to_numpy(dtype=str)
        self.partner = f["partner"].to_numpy(dtype=str)
        self.chinese = num("chinese_ownership")
        years = sorted(int(c.rsplit("_", 1)[1]) for c in f.columns if c.startswith("spend_share_"))
        self.spend = (np.column_stack([num(f"spend_share_{k}") for k in years]) if years
                      else np.ones((n, 1)))
        self.n_years = self.spend.shape[1]
        pos = {p: i for i, p in enumerate(self.ids)}
        self.groups = [np.flatnonzero(f["exclusive_group"].to_numpy(dtype=object) == g)
                       for g in f["exclusive_group"].dropna().unique()]
        self.requires = [(i, pos[q]) for i, q in enumerate(f["requires"]) if isinstance(q, str)]
        self.pos = pos
        self.masks = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(bool)

    # -- the pure-subset rules, vectorised over rows of a (k, n) bool array ------------------
    def admissible(self, sc: dict, masks: np.ndarray) -> np.ndarray:
        ok = np.ones(len(masks), dtype=bool)
        for rows in self.groups:
            ok &= masks[:, rows].sum(axis=1) <= 1
        for p, q in self.requires:
            ok &= ~(masks[:, p] & ~masks[:, q])
        banned = [self.pos[p] for p in sc.get("exclude_projects") or []]
        banned += np.flatnonzero(np.isin(self.country, sc.get("exclude_countries") or [])).tolist()
        if sc.get("partners") is not None:
            banned += np.flatnonzero(~np.isin(self.partner, sc["partners"])).tolist()
        if sc.get("max_chinese_ownership") is not None:
            banned += np.flatnonzero(self.chinese > sc["max_chinese_ownership"]).tolist()
        if banned:
            ok &= ~masks[:, banned].any(axis=1)
        forced = [self.pos[p] for p in sc.get("include_projects") or []]
        if forced:
            ok &= masks[:, forced].all(axis=1)
        if sc.get("max_projects") is not None:
            ok &= masks.sum(axis=1) <= sc["max_projects"]
        if sc.get("min_countries") is not None:
            used = np.column_stack([masks[:, self.country == k].any(axis=1)
                                    for k in np.unique(self.country)])
            ok &= used.sum(axis=1) >= sc["min_countries"]
        return ok

    # -- the LP rows for a fixed subset: A s <= b ------------------------------------------
    def rows(self, sc: dict, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        e, d = self.e[idx], self.d[idx]
        A: list[np.ndarray] = []
        b: list[float] = []
        names: list[str] = []

        def cost_row(a: np.ndarray, cap: float, name: str) -> None:
            """sum_p a_p c_p <= cap with c_p = e_p s_p + d_p."""
            if math.isfinite(cap):
                A.append(a * e)
                b.append(cap - float(a @ d))
                names.append(name)

        one = np.ones(len(idx))
        cost_row(one, float(sc["budget_musd"]), "budget_musd")
        if sc.get("kabil_budget_musd") is not None:
            cost_row(self.india[idx], sc["kabil_budget_musd"], "kabil_budget_musd")
        if sc.get("us_budget_musd") is not None:
            cost_row(1.0 - self.india[idx], sc["us_budget_musd"], "us_budget_musd")
        for k, cap in enumerate(sc.get("annual_budget_musd") or []):
            if cap is not None and k < self.n_years:  # later years have no spend: 0 <= cap
                cost_row(self.spend[idx, k], cap, f"annual_budget_musd.{k}")
        if sc.get("max_country_share") is not None:
            for k in np.unique(self.country[idx]):
                cost_row((self.country[idx] == k) - sc["max_country_share"], 0.0,
                         "max_country_share")
        if sc.get("max_avg_risk") is not None:
            cost_row(self.risk[idx] - sc["max_avg_risk"], 0.0, "max_avg_risk")
        if sc.get("max_china_processing_share") is not None:
            cost_row(self.china[idx] - sc["max_china_processing_share"], 0.0,
                     "max_china_processing_share")
        for m, floor in (sc.get("min_output_t") or {}).items():
            A.append(-self.out[idx, PRODUCTS.index(m)])
            b.append(-float(floor))
            names.append(f"min_output_t.{m}")
        for side, share in SIDES.items():  # each side takes its paid share of the offtake
            for m, floor in (sc.get(side) or {}).items():
                A.append(-share(self.india[idx]) * self.out[idx, PRODUCTS.index(m)])
                b.append(-float(floor))
                names.append(f"{side}.{m}")
        return np.array(A).reshape(len(A), len(idx)), np.array(b), names

    def value(self, sc: dict, idx: np.ndarray) -> tuple[np.ndarray, float]:
        """Objective as c @ s + const on the subset."""
        if sc.get("objective", "npv") == "npv":
            return self.npv[idx], -float(self.d[idx].sum())
        default = {"ndpr": 0.0, "dytb": 0.0}  # CONTRACT section 2: TREO already counts them
        w = np.array([float((sc.get("supply_weights") or {}).get(m, default.get(m, 1.0)))
                      for m in PRODUCTS])
        return self.out[idx] @ w, 0.0

    def solve(self, sc: dict, *, first: bool = False, better_than: float = -math.inf
              ) -> Reference:
        """The best portfolio (objective above ``better_than``; ``first``: any such one)."""
        masks = self.masks[self.admissible(sc, self.masks)]
        # cheap necessary conditions (stakes at their minimum / maximum) prune hopeless subsets;
        # the margins keep anything borderline for the LP to decide
        low_cost = self.e * self.smin + self.d
        caps = [(np.ones(self.n), sc["budget_musd"]), (self.india, sc.get("kabil_budget_musd")),
                (1 - self.india, sc.get("us_budget_musd"))]
        caps += [(self.spend[:, k], cap) for k, cap in enumerate(sc.get("annual_budget_musd") or [])
                 if k < self.n_years]
        keep = np.ones(len(masks), dtype=bool)
        for a, cap in caps:
            if cap is not None and math.isfinite(cap):
                keep &= masks @ (a * low_cost) <= cap * (1 + 1e-6) + 1e-6
        for side in FLOORS:
            share = SIDES.get(side, lambda india: 1.0)(self.india)
            for m, floor in (sc.get(side) or {}).items():
                most = masks @ (share * self.out[:, PRODUCTS.index(m)] * self.smax)
                keep &= most >= floor * (1 - 1e-6) - 1e-6
        masks = masks[keep]
        # best case of each subset; visit in that order and stop once none can beat the best
        all_idx = np.arange(self.n)
        c_all, _ = self.value(sc, all_idx)
        upper = masks @ (np.maximum(c_all * self.smin, c_all * self.smax)
                         - (self.d if sc.get("objective", "npv") == "npv" else 0.0))
        best, bar = Reference("infeasible"), better_than
        for i in np.argsort(-upper, kind="stable"):
            if upper[i] <= bar:
                break
            got = self.solve_subset(sc, np.flatnonzero(masks[i]))
            if got is not None and got.objective > bar:
                best, bar = got, got.objective
                if first:
                    break
        return best

    def solve_subset(self, sc: dict, idx: np.ndarray) -> Reference | None:
        """The LP over the stakes of subset ``idx``; None when it is infeasible."""
        A, b, _ = self.rows(sc, idx)
        c, const = self.value(sc, idx)
        if len(idx) == 0:
            if np.any(b < 0):  # a positive output floor
                return None
            s = np.zeros(0)
        else:
            res = linprog(-c, A_ub=A if len(b) else None, b_ub=b if len(b) else None,
                          bounds=list(zip(self.smin[idx], self.smax[idx], strict=True)),
                          method="highs")
            if res.status == 2:
                return None
            assert res.status == 0, f"reference LP failed: {res.message}"
            s = np.clip(res.x, self.smin[idx], self.smax[idx])
        return Reference("optimal", float(c @ s + const),
                         {self.ids[i]: float(v) for i, v in zip(idx, s, strict=True)})

    def problems(self, sc: dict, stakes: dict[str, float]) -> list[str]:
        """The reference's own check of a portfolio (independent of optimizer.check)."""
        mask = np.zeros(self.n, dtype=bool)
        mask[[self.pos[p] for p in stakes]] = True
        out = [] if self.admissible(sc, mask[None, :])[0] else ["breaks a pure-subset rule"]
        idx = np.flatnonzero(mask)
        s = np.array([stakes[self.ids[i]] for i in idx])
        if np.any(s < self.smin[idx] - 1e-6) or np.any(s > self.smax[idx] + 1e-6):
            out.append("stake outside [min_stake, max_stake]")
        A, b, names = self.rows(sc, idx)
        scale = 1 + float(self.e[idx] @ s + self.d[idx].sum())
        for nm, row, lim in zip(names, A, b, strict=True):
            if row @ s > lim + 1e-6 * (scale + abs(lim)):
                out.append(f"{nm}: {row @ s:.9g} > {lim:.9g}")
        return out


# ---------------------------------------------------------------------------------------------
# scenario fields as paths
# ---------------------------------------------------------------------------------------------


def active_paths(sc: dict, n_years: int) -> set[str]:
    """The field paths this scenario sets to something that can restrict a portfolio."""
    paths = {"budget_musd"}
    paths |= {k for k in NULLABLE if sc.get(k) is not None}
    paths |= {f"annual_budget_musd.{k}" for k, cap in enumerate(sc.get("annual_budget_musd") or [])
              if cap is not None and k < n_years}
    paths |= {f"{side}.{m}" for side in FLOORS for m, v in (sc.get(side) or {}).items() if v > 0}
    paths |= {k for k in LISTS if sc.get(k)}
    return paths


def relax(sc: dict, paths: set[str] | list[str]) -> dict:
    """The scenario with each named field dropped (null, empty, or an infinite budget)."""
    out = {**sc, "annual_budget_musd": list(sc.get("annual_budget_musd") or []),
           **{side: dict(sc.get(side) or {}) for side in FLOORS}}
    for p in paths:
        if p == "budget_musd":
            out[p] = math.inf
        elif p in NULLABLE:
            out[p] = None
        elif p in LISTS:
            out[p] = []
        elif p.startswith("annual_budget_musd."):
            out["annual_budget_musd"][int(p.split(".")[1])] = None
        elif p.split(".")[0] in FLOORS:
            side, m = p.split(".")
            del out[side][m]
        else:
            raise AssertionError(f"{p!r} is not a scenario field path")
    return out


# ---------------------------------------------------------------------------------------------
# seeded cases
# ---------------------------------------------------------------------------------------------


@functools.cache
def dataset(ds: int) -> ProjectData:
    rng = np.random.default_rng(10_000 + ds)
    n = int(rng.integers(4, 9))
    df = synthetic_projects(n, seed=ds, years=int(rng.integers(1, 4)),
                            groups=int(rng.integers(0, 3)), links=int(rng.integers(0, 3)))
    if rng.random() < 0.5:  # few countries, so shares and country counts bite
        df["country"] = rng.choice(COUNTRY_POOL, size=n)
    return validate_projects(df)


@functools.cache
def optimizer(ds: int) -> Optimizer:
    """One persistent model per dataset, re-solved for each of its scenarios."""
    return Optimizer(dataset(ds))


@functools.cache
def reference(ds: int) -> BruteForce:
    return BruteForce(dataset(ds))


def make_scenario(ds: int, j: int) -> dict[str, Any]:
    data = dataset(ds)
    bf = reference(ds)
    rng = np.random.default_rng([ds, j, 2024])
    n = bf.n
    r3 = lambda v: round(float(v), 3)  # noqa: E731
    full = float((bf.e * bf.smax + bf.d).sum())  # everything at its largest stake
    frac = rng.uniform(0.05, 0.75)
    budget = r3(full * frac)
    sc: dict[str, Any] = {"name": f"bf-{ds}-{j}", "budget_musd": budget, "solver": dict(EXACT)}
    if rng.random() < 0.3:
        sc["kabil_budget_musd"] = r3(budget * rng.uniform(0.15, 0.7))
    if rng.random() < 0.3:
        sc["us_budget_musd"] = r3(budget * rng.uniform(0.15, 0.7))
    if rng.random() < 0.3:  # sometimes longer than the plan (extra years cap nothing)
        sc["annual_budget_musd"] = [
            None if u < 0.25 else 0.0 if u > 0.97 else r3(budget * rng.uniform(0.1, 0.6))
            for u in rng.random(int(rng.integers(1, data.n_years + 2)))]
    if rng.random() < 0.35:
        sc["max_country_share"] = r3(rng.uniform(0.25, 0.8))
    n_countries = len(set(bf.country))
    if rng.random() < 0.25:
        sc["min_countries"] = int(rng.integers(1, min(n_countries, 4) + 1))
    if rng.random() < 0.25:
        sc["max_projects"] = int(rng.integers(0, n))
    if rng.random() < 0.4:
        possible = {m: float(bf.out[:, i] @ bf.smax) for i, m in enumerate(PRODUCTS)}
        pick = rng.choice(PRODUCTS[:3], size=int(rng.integers(1, 3)), replace=False)
        sc["min_output_t"] = {str(m): round(possible[m] * frac * rng.uniform(0.2, 1.3), 1) or 1.0
                              for m in pick}
    if rng.random() < 0.3:
        sc["max_avg_risk"] = round(float(rng.uniform(2.5, 8.0)), 2)
    if rng.random() < 0.25:
        sc["max_china_processing_share"] = 0.0 if rng.random() < 0.3 else r3(rng.uniform(0.05, 0.6))
    if rng.random() < 0.15:
        sc["exclude_countries"] = [str(rng.choice(sorted(set(bf.country))))]
    if rng.random() < 0.2:
        sc["exclude_projects"] = sorted(rng.choice(bf.ids, size=int(rng.integers(1, 3)),
                                                   replace=False).tolist())
    if rng.random() < 0.2:
        sc["include_projects"] = sorted(rng.choice(bf.ids, size=int(rng.integers(1, 3)),
                                                   replace=False).tolist())
    if rng.random() < 0.4:
        sc["objective"] = "supply"
        sc["supply_weights"] = {m: r3(rng.uniform(0.0, 2.0)) for m in PRODUCTS[:3]
                                if rng.random() < 0.6}
    # The fields added later (partners, Chinese ownership, NdPr and Dy+Tb floors): every
    # dataset's last two scenarios get one of them in turn, from a stream of its own (so the other
    # cases stay as they were), aimed at the reference optimum without it so that it bites.
    more = np.random.default_rng([ds, j, 2026])
    if j >= SCENARIOS_PER_DATASET - 2:
        kind = ("partners", "max_chinese_ownership", "ndpr", "dytb")[(2 * ds + j) % 4]
        before = bf.solve(sc)
        chosen = [bf.pos[p] for p in before.stakes]
        if kind == "partners":
            banned = {bf.partner[i] for i in chosen[:1]} or {str(more.choice(["US", "JOINT"]))}
            sc["partners"] = sorted({"KABIL", "US", "JOINT"} - banned)
        elif kind == "max_chinese_ownership":
            owned = sorted(bf.chinese[i] for i in chosen if bf.chinese[i] > 0)
            sc[kind] = r3(owned[-1] * more.uniform(0.3, 0.95)) if owned else 0.0
        else:
            col = bf.out[:, PRODUCTS.index(kind)]
            got = sum(col[bf.pos[p]] * v for p, v in before.stakes.items())
            possible = float(col @ bf.smax)
            # near the optimum's own offtake (binding now and then), never above what exists
            sc.setdefault("min_output_t", {})[kind] = round(
                min(possible, max(got * more.uniform(0.6, 1.05), 0.01)), 2)
    # each side's offtake floor (added with the table of limits): a stream of its own, aimed
    # near the reference optimum's own entitlement so that it bites in some cases
    side_rng = np.random.default_rng([ds, j, 2027])
    if j < 2 and side_rng.random() < 0.4:
        side = ("min_india_output_t", "min_us_output_t")[(ds + j) % 2]
        before = bf.solve(sc)
        made = [i for i, m in enumerate(PRODUCTS[:3]) if bf.out[:, i].any()]
        if before.status == "optimal" and made:
            i = int(side_rng.choice(made))
            share = SIDES[side](bf.india) * bf.out[:, i]
            got = sum(share[bf.pos[p]] * v for p, v in before.stakes.items())
            possible = float(share @ bf.smax)
            sc[side] = {PRODUCTS[i]: round(min(possible, max(got * side_rng.uniform(0.8, 1.25),
                                                             0.01)), 2)}
    if sc.get("objective") == "supply" and more.random() < 0.5:
        sc["supply_weights"][str(more.choice(["ndpr", "dytb"]))] = r3(more.uniform(1, 50))
    return sc


@functools.cache
def expected(ds: int, j: int) -> Reference:
    return reference(ds).solve(make_scenario(ds, j))


# ---------------------------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------------------------


def _stakes(result) -> dict[str, float]:
    return {p.project_id: p.stake for p in result.selected}


@pytest.mark.parametrize(("ds", "j"), CASES, ids=[f"data{ds}-sc{j}" for ds, j in CASES])
def test_matches_brute_force(ds: int, j: int) -> None:
    sc = make_scenario(ds, j)
    data = dataset(ds)
    bf = reference(ds)
    ref = expected(ds, j)
    where = f"dataset {ds} (n={bf.n}), scenario {sc}"
    try:
        result = optimizer(ds).solve(Scenario.model_validate(sc))
    except SolutionCheckError as exc:
        pytest.fail(f"{exc}; brute force: {ref}; {where}")

    if ref.status == "optimal":
        assert result.status == "optimal", (
            f"library says {result.status}, brute force finds optimum {ref.objective:.9g} "
            f"with {ref.stakes}; diagnosis {result.diagnosis}; {where}")
        assert result.objective == pytest.approx(ref.objective, rel=REL, abs=ABS), (
            f"objective {result.objective:.9g} (stakes {_stakes(result)}) vs brute force "
            f"{ref.objective:.9g} (stakes {ref.stakes}); {where}")
        got = _stakes(result)
        broken = violations(data, Scenario.model_validate(sc), got)
        assert broken == [], f"the reported stakes {got} break {broken}; {where}"
        assert bf.problems(sc, got) == [], f"portfolio {got}: {where}"
        return

    assert result.status == "infeasible", (
        f"brute force finds no feasible portfolio, library says {result.status} with "
        f"objective {result.objective} and stakes {_stakes(result)}; {where}")
    diag = result.diagnosis
    assert diag is not None and diag.conflicts, f"no conflicts named; {where}"
    assert diag.complete, f"diagnosis incomplete: {diag}; {where}"
    conflicts = list(diag.conflicts)
    assert len(set(conflicts)) == len(conflicts), f"repeated conflicts {conflicts}; {where}"
    allowed = active_paths(sc, bf.n_years)
    assert set(conflicts) <= allowed, (
        f"conflicts {conflicts} name fields outside the scenario's active ones "
        f"{sorted(allowed)}; {where}")
    freed = bf.solve(relax(sc, conflicts), first=True)
    assert freed.status == "optimal", (
        f"relaxing all of {conflicts} still leaves the scenario infeasible; {where}")
    alone = bf.solve(relax(sc, allowed - set(conflicts)), first=True)
    assert alone.status == "infeasible", (
        f"the named conflicts {conflicts} are feasible together once the other fields are "
        f"relaxed (e.g. {alone.stakes}), so they are not what makes it infeasible; {where}")


@pytest.mark.parametrize("ds", range(0, N_DATASETS, 3))
def test_stock_handover_matches_brute_force(ds: int) -> None:
    """A third of the datasets, every scenario, through Pyomo's stock hand-over to HiGHS
    (``backend="stock"``): the same optima and statuses as the reference."""
    opt = Optimizer(dataset(ds), backend="stock")
    for j in range(SCENARIOS_PER_DATASET):
        ref = expected(ds, j)
        result = opt.solve(Scenario.model_validate(make_scenario(ds, j)), diagnose=False)
        assert result.status == ref.status, (ds, j, result.status, ref)
        if ref.status == "optimal":
            assert result.objective == pytest.approx(ref.objective, rel=REL, abs=ABS), (ds, j)


def test_case_mix() -> None:
    """The generator produces what the cross-check needs: a fair share of infeasible cases,
    feasible cases where the scenario's limits cost something, and every field kind changing
    the answer somewhere (so a model that ignored any one of them would fail cases above)."""
    refs = {case: expected(*case) for case in CASES}
    infeasible = [c for c, r in refs.items() if r.status == "infeasible"]
    share = len(infeasible) / len(CASES)
    # five restriction kinds (partners, Chinese ownership, NdPr and Dy+Tb floors) joined later
    assert 0.2 <= share <= 0.5, f"{share:.0%} of cases infeasible"

    def matters(ds: int, j: int, paths: set[str] | list[str]) -> bool:
        """Relaxing ``paths`` makes the case feasible or strictly better."""
        ref, bf = refs[ds, j], reference(ds)
        bar = -math.inf if ref.objective is None else ref.objective + REL * abs(ref.objective) + ABS
        return bf.solve(relax(make_scenario(ds, j), paths), first=True, better_than=bar
                        ).status == "optimal"

    feasible = [c for c in CASES if c not in infeasible]
    binding = [c for c in feasible
               if matters(*c, active_paths(make_scenario(*c), reference(c[0]).n_years))]
    assert len(binding) >= 0.75 * len(feasible), (
        f"only {len(binding)}/{len(feasible)} feasible cases have a limit that binds")

    kinds = ["budget_musd", "kabil_budget_musd", "us_budget_musd", "annual_budget_musd",
             "max_country_share", "min_countries", "max_projects", "min_output_t",
             "max_avg_risk", "max_china_processing_share", *LISTS, "partners",
             "max_chinese_ownership", *SIDES]
    count = {k: 0 for k in kinds}
    for ds, j in CASES:
        paths = active_paths(make_scenario(ds, j), reference(ds).n_years)
        for k in kinds:
            mine = [p for p in paths if p.split(".")[0] == k or p == k]
            count[k] += bool(mine) and matters(ds, j, mine)
    assert all(v >= 4 for v in count.values()), f"cases where a field changes the answer: {count}"
    supply = sum(make_scenario(*c).get("objective") == "supply" for c in CASES)
    assert 0.25 * len(CASES) <= supply <= 0.6 * len(CASES), f"{supply} supply-objective cases"


def test_reported_stakes_meet_the_budget() -> None:
    """Regression, the smallest form of what the random cases above once found (stakes
    reported rounded to 6 decimals): the stakes a result reports must themselves meet the
    scenario (CONTRACT section 4 returns them as the portfolio).
    One project, 5000 MUSD for 100 %, budget 50.003: the optimum buys s = 0.0100006, which
    costs exactly the budget; a stake reported as 0.010001 costs 50.005 (0.002 over)."""
    row = dict(project_id="A", name="A", country="MW", mineral="ree", partner="KABIL",
               india_share=1.0, equity_value_musd=5000, min_stake=0.01, max_stake=0.5,
               deal_cost_musd=0, npv_musd=100, output_tantalum_t=0, output_niobium_t=0,
               output_ree_t=1000, risk_score=5)
    data = validate_projects(pd.DataFrame([row]))
    sc = Scenario.model_validate({"budget_musd": 50.003, "solver": EXACT})
    result = Optimizer(data).solve(sc)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(100 * 50.003 / 5000, rel=REL, abs=ABS)
    got = _stakes(result)
    assert violations(data, sc, got) == [], f"reported stakes {got}"
