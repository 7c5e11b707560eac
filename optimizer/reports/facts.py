"""What a report says, in plain words and plain numbers, independent of its format.

HTML, Excel and the CLI summary all render the same :class:`Facts`, so the three never
disagree. Nothing here solves: it reads a result, its scenario, the data and (optionally) the
stored analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import limits as L
from ..data import ProjectData
from ..schema import WITH_PORTFOLIO, Result, Scenario
from .analysis import Analysis

PRODUCT_NAMES = {"tantalum": "tantalum", "niobium": "niobium", "ree": "rare earths",
                 "ndpr": "NdPr (magnet rare earths)", "dytb": "Dy+Tb (heavy rare earths)"}
PRODUCT_UNITS = {"tantalum": "t/y Ta2O5", "niobium": "t/y Nb2O5", "ree": "t/y TREO",
                 "ndpr": "t/y NdPr oxide", "dytb": "t/y Dy+Tb oxide"}
PRODUCT_SHORT = {"tantalum": "tantalum", "niobium": "niobium", "ree": "rare earths",
                 "ndpr": "NdPr", "dytb": "Dy+Tb"}
PARTNER_SHORT = {"KABIL": "KABIL", "US": "US", "JOINT": "Joint"}
PARTNER_NAMES = {"KABIL": "KABIL", "US": "US partners", "JOINT": "KABIL + US jointly"}
COUNTRY_NAMES = {
    "AO": "Angola", "AR": "Argentina", "AU": "Australia", "BR": "Brazil", "BI": "Burundi",
    "CA": "Canada", "CD": "DR Congo", "CL": "Chile", "CN": "China", "ES": "Spain",
    "ET": "Ethiopia", "FI": "Finland", "GA": "Gabon", "GL": "Greenland", "ID": "Indonesia",
    "IN": "India", "KE": "Kenya", "KZ": "Kazakhstan", "MG": "Madagascar", "MN": "Mongolia",
    "MW": "Malawi", "MY": "Malaysia", "MZ": "Mozambique", "NA": "Namibia", "NG": "Nigeria",
    "NO": "Norway", "PE": "Peru", "RW": "Rwanda", "SE": "Sweden", "TZ": "Tanzania",
    "UG": "Uganda", "US": "United States", "VN": "Vietnam", "ZA": "South Africa",
    "ZM": "Zambia", "ZW": "Zimbabwe",
}
STATUS_WORDS = {"optimal": "proven optimal", "feasible": "best found, not proven optimal",
                "infeasible": "infeasible: no portfolio meets every limit",
                "no_solution": "no portfolio found before the time limit"}


def product_name(p: str) -> str:
    return PRODUCT_NAMES.get(p, p)


def product_short(p: str) -> str:
    return PRODUCT_SHORT.get(p, p)


def product_unit(p: str) -> str:
    return PRODUCT_UNITS.get(p, "t/y")


def country_name(code: str) -> str:
    return COUNTRY_NAMES.get(code, code)


def money(v: float | None, digits: int = 0) -> str:
    """US$1,947 M."""
    if v is None:
        return "n/a"
    return f"US${v:,.{digits}f} M".replace("US$-", "-US$")


def num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    text = f"{v:,.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no "-0.0"


def pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def signed(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if abs(v) < 0.5 * 10.0**-digits:
        return f"{0.0:.{digits}f}"
    return f"{v:+,.{digits}f}"


def status_words(result: Result) -> str:
    """"proven optimal", "within 0.8 % of the best possible", ..."""
    if result.status == "optimal":
        return "proven optimal"
    if result.status == "feasible":
        if result.mip_gap is None:
            return "best portfolio found before the time limit; how far from the best " \
                   "possible is not known"
        return f"within {result.mip_gap * 100:.2g} % of the best possible"
    return STATUS_WORDS[result.status]


def objective_label(sc: Scenario) -> str:
    return "NPV (US$ M)" if sc.objective == "npv" else "weighted supply (t/y x weight)"


def objective_text(sc: Scenario, v: float | None) -> str:
    if sc.objective == "npv":
        return money(v)
    return "n/a" if v is None else f"{v:,.0f}"


@dataclass
class LimitRow:
    """One scenario limit against the portfolio's value."""

    field: str
    label: str
    kind: str  # "max", "min" or "rule"
    limit: float | None
    value: float | None
    unit: str  # "MUSD", "share", "risk", "count", a product unit, or ""
    binding: bool = False
    note: str = ""
    conflict: bool = False  # named by the diagnosis of an infeasible run

    @property
    def headroom(self) -> float | None:
        if self.limit is None or self.value is None:
            return None
        room = self.limit - self.value if self.kind == "max" else self.value - self.limit
        # a limit met exactly shows no room, not a rounding residue such as -0.0
        return 0.0 if abs(room) <= 1e-6 * max(1.0, abs(self.limit)) else room

    def fmt(self, v: float | None) -> str:
        if v is None:
            return ""
        if self.unit == "MUSD":
            return money(v, 1)
        if self.unit == "share":
            return pct(v)
        if self.unit == "risk":
            return f"{v:.2f}"
        if self.unit == "count":
            return f"{v:,.0f}"
        return f"{v:,.0f} {self.unit}"

    @property
    def limit_text(self) -> str:
        return ("at most " if self.kind == "max" else "at least " if self.kind == "min"
                else "") + self.fmt(self.limit) if self.limit is not None else self.note

    @property
    def value_text(self) -> str:
        return self.fmt(self.value) if self.value is not None else ""


@dataclass
class Facts:
    result: Result
    scenario: Scenario
    data: ProjectData
    analysis: Analysis | None
    products: list[str]
    answer: str
    status_text: str
    question: list[tuple[str, str]]
    limits: list[LimitRow]
    portfolio: list[dict[str, Any]]
    diagnosis: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    @property
    def solved(self) -> bool:
        return self.result.status in WITH_PORTFOLIO


def _answer(result: Result, sc: Scenario) -> str:
    t = result.totals
    if result.status == "infeasible":
        d = result.diagnosis
        if d is None or not d.conflicts:
            return "No portfolio meets every limit of this scenario."
        said = [field_phrase(sc, c) or c for c in d.conflicts]
        both = "both" if len(said) == 2 else "all"
        text = ("No portfolio meets every limit of this scenario: " + said[0] + " cannot hold "
                "together with the projects' own rules." if len(said) == 1 else
                "No portfolio meets every limit of this scenario: " + ", ".join(said[:-1])
                + f" and {said[-1]} cannot {both} hold.")
        if d.fixes:
            n = len(d.fixes)
            text += (f" Any one of the {n} changes below restores feasibility." if n > 1
                     else " The change below restores feasibility.")
        return text
    if result.status == "no_solution":
        return (f"The solver found no portfolio within its time limit of "
                f"{sc.solver.time_limit_s:g} s; raise solver.time_limit_s and run again.")
    if not result.selected:
        return f"Back nothing: under this scenario no project adds value; {status_words(result)}."
    n_c = t.n_countries
    text = (f"Back {t.n_projects} project{'s' if t.n_projects != 1 else ''} in {n_c} "
            f"countr{'ies' if n_c != 1 else 'y'} for {money(t.cost_musd)}: KABIL "
            f"{t.kabil_musd:,.0f}, US partners {t.us_musd:,.0f}; NPV {money(t.npv_musd)}")
    if sc.objective == "supply":
        text += f"; weighted supply {result.objective:,.0f}"
    return text + f"; {status_words(result)}."


def _question(sc: Scenario, data: ProjectData, result: Result) -> list[tuple[str, str]]:
    q: list[tuple[str, str]] = []
    if sc.description:
        q.append(("Question", sc.description))
    q.append(("Budget", f"{money(sc.budget_musd)} in total, both sides together"))
    sides = []
    if sc.kabil_budget_musd is not None:
        sides.append(f"KABIL at most {money(sc.kabil_budget_musd)}")
    if sc.us_budget_musd is not None:
        sides.append(f"US partners at most {money(sc.us_budget_musd)}")
    q.append(("Each side's budget", "; ".join(sides) if sides else "no separate caps"))
    if sc.annual_budget_musd:
        q.append(("Annual caps", "; ".join(
            f"plan year {k + 1}: " + ("no cap" if v is None else f"at most {money(v)}")
            for k, v in enumerate(sc.annual_budget_musd))))
    div = []
    if sc.max_country_share is not None:
        div.append(f"no country above {pct(sc.max_country_share, 0)} of spend")
    if sc.min_countries:
        div.append(f"at least {sc.min_countries} host countries")
    if sc.max_projects is not None:
        div.append(f"at most {sc.max_projects} projects")
    if sc.max_avg_risk is not None:
        div.append(f"spend-weighted average risk at most {sc.max_avg_risk:g} (1 best, 10 worst)")
    if sc.max_china_processing_share is not None:
        div.append(f"at most {pct(sc.max_china_processing_share, 0)} of spend in projects "
                   "that depend on processing in China")
    q.append(("Diversification and risk", "; ".join(div) if div else "none"))
    floors = [f"{product_name(m)} at least {v:,.0f} {product_unit(m)}"
              for m, v in sc.min_output_t.items() if v > 0]
    q.append(("Security floors (offtake)", "; ".join(floors) if floors else "none"))
    rules = []
    if sc.exclude_countries:
        rules.append("excluded countries: " + ", ".join(
            f"{country_name(c)} ({c})" for c in sc.exclude_countries))
    if sc.exclude_projects:
        rules.append("excluded projects: " + ", ".join(sc.exclude_projects))
    if sc.include_projects:
        rules.append("projects that must be backed: " + ", ".join(sc.include_projects))
    partners = getattr(sc, "partners", None)
    if partners:
        rules.append("only deals led by " + ", ".join(PARTNER_NAMES.get(p, p) for p in partners))
    cap = getattr(sc, "max_chinese_ownership", None)
    if cap is not None:
        rules.append(f"no project with more than {pct(cap, 0)} Chinese ownership")
    q.append(("Exclusions and forced choices", "; ".join(rules) if rules else "none"))
    if sc.objective == "npv":
        q.append(("Objective", "maximise the portfolio's NPV (the value of the stakes bought "
                               "after paying for them, minus deal costs)"))
    else:
        w = sc.weights()
        q.append(("Objective", "maximise weighted annual offtake: " + ", ".join(
            f"{product_name(m)} x {v:g}" for m, v in w.items())))
    q.append(("Solver limits", f"time limit {sc.solver.time_limit_s:g} s, relative gap "
                               f"{sc.solver.mip_gap:g}"))
    n_c = data.frame["country"].nunique()
    q.append(("Data", f"{data.n} candidate project{'s' if data.n != 1 else ''} in {n_c} "
                      f"countr{'ies' if n_c != 1 else 'y'}; dataset SHA-256 "
                      f"{result.provenance.dataset_sha256}"))
    return q


def _limits(sc: Scenario, result: Result, data: ProjectData) -> list[LimitRow]:
    """One row per limit the scenario sets, in the table of limits' order: its value, the
    portfolio's level (as the independent check reads it) and whether it binds; list filters
    as rules at the end."""
    solved = result.status in WITH_PORTFOLIO
    bound = {b.field for b in result.binding}
    conflicts = set(result.diagnosis.conflicts) if result.diagnosis else set()
    h = L.holding(data, {p.project_id: p.stake for p in result.selected})
    numeric: list[LimitRow] = []
    rules: list[LimitRow] = []
    by_field: dict[str, list[L.Entry]] = {}
    for e in L.entries(sc, data):
        by_field.setdefault(e.field_path, []).append(e)
    for path, group in by_field.items():
        lim = group[0].limit
        if lim.reads == "list":
            rules.append(LimitRow(path, _cap(lim.label), "rule", None, None, "",
                                  note=", ".join(map(str, group[0].value)),
                                  conflict=path in conflicts))
            continue
        levels = {e.path: L.level(e, h, sc) for e in group}
        top = max(levels, key=levels.get) if levels else None
        row = LimitRow(path, _cap(L.label(lim, group[0].key) if lim.index != "country"
                                  else "largest country's share of spend"),
                       lim.sense, group[0].value, levels.get(top) if solved else None,
                       _unit(lim, group[0].key), conflict=path in conflicts)
        if lim.index == "country":
            hit = sorted(e.key for e in group if e.path in bound)
            row.binding = bool(hit)
            row.note = ("at the cap: " + ", ".join(country_name(c) for c in hit) if hit else
                        f"largest: {country_name(top.split('.', 1)[1])}" if solved and top
                        and h.total > 0 else "")
        else:
            row.binding = path in bound
        numeric.append(row)
    return numeric + rules


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _unit(lim, key) -> str:
    """A limit's unit as :meth:`LimitRow.fmt` reads it."""
    return product_unit(key) if lim.unit == "t/y" else lim.unit


def field_words(sc: Scenario, fld: str) -> str:
    """A scenario field and its value in words with its path, e.g. "a spending cap of
    1,000 MUSD in plan year 1 (annual_budget_musd.0)"."""
    words = field_phrase(sc, fld)
    return fld if words is None else f"{words} ({fld})"


def field_phrase(sc: Scenario, fld: str) -> str | None:
    """A scenario field and its value in words (the table of limits' words; None for a field
    not known there)."""
    try:
        return L.describe(sc, fld)
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _portfolio(result: Result, data: ProjectData, products: list[str]) -> list[dict[str, Any]]:
    f = data.frame.set_index("project_id")
    rows = []
    for p in result.selected:
        r = f.loc[p.project_id]
        rows.append({
            "project_id": p.project_id, "name": p.name, "country": p.country,
            "country_name": country_name(p.country), "mineral": p.mineral,
            "partner": p.partner, "stake": p.stake, "cost_musd": p.cost_musd,
            "kabil_musd": p.kabil_musd, "us_musd": p.us_musd, "npv_musd": p.npv_musd,
            "output_t": {m: p.output_t.get(m, 0.0) for m in products},
            "risk_score": float(r["risk_score"]), "china_processing": bool(r["china_processing"]),
            "stage": r.get("stage") or "", "source": r.get("source") or "",
        })
    return rows


def alternatives_matrix(fx: Facts) -> list[tuple[str, float | None, list[float | None]]]:
    """(project_id, recommended stake, [stake in each alternative]); None = not backed."""
    a = fx.analysis
    if a is None or not a.alternatives:
        return []
    here = {p.project_id: p.stake for p in fx.result.selected}
    ids = list(here)
    for alt in a.alternatives:
        ids += [pid for pid in alt.stakes if pid not in ids]
    return [(pid, here.get(pid), [alt.stakes.get(pid) for alt in a.alternatives])
            for pid in ids]


def facts(result: Result, scenario: Scenario, data: ProjectData,
          analysis: Analysis | None = None) -> Facts:
    """Everything a report says, computed once for every format."""
    products = list(result.totals.output_t)
    diag, fixes = [], []
    if result.diagnosis is not None:
        d = result.diagnosis
        diag = [field_words(scenario, c) for c in d.conflicts]
        fixes = [fx.get("change") or f"change {fx.get('field')}" for fx in d.fixes]
    return Facts(result=result, scenario=scenario, data=data, analysis=analysis,
                 products=products, answer=_answer(result, scenario),
                 status_text=status_words(result), question=_question(scenario, data, result),
                 limits=_limits(scenario, result, data),
                 portfolio=_portfolio(result, data, products), diagnosis=diag, fixes=fixes)


__all__ = ["Facts", "LimitRow", "alternatives_matrix", "country_name", "facts", "money", "pct",
           "product_name", "product_unit", "status_words"]
