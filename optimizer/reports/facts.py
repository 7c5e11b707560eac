"""What a report says, in plain words and plain numbers, independent of its format.

HTML, Excel and the CLI summary all render the same :class:`Facts`, so the three never
disagree. Nothing here solves: it reads a result, its scenario, the data and (optionally) the
stored analysis.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .. import limits as L
from ..data import ProjectData
from ..errors import InputError
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


def sample_words(sc: Scenario) -> str:
    """Where the scenario's sample of draws comes from, in words."""
    u = sc.uncertainty
    if u is None:
        return "no sample: every figure at face value"
    if hasattr(u, "draws_table"):
        return f"a draws table of {len({r.draw for r in u.draws_table}):,} draws"
    if hasattr(u, "draws_file"):
        return f"the draws table in {u.draws_file}"
    what = ("the scenario's own perturbations" if u.any
            else "the data's default uncertainty model")
    return f"{u.draws:,} draws of {what}, seed {u.seed}"


def objective_unit(sc: Scenario) -> str:
    """The objective's unit, named: "US$ M" for NPV (at face value or over a sample); for the
    supply objective the weighted sum of offtake it maximises, with its weights (the unit is
    the weights' unit x t/y)."""
    if sc.objective in ("npv", "expected_npv", "mean_cvar"):
        return "US$ M"
    w = {m: v for m, v in sc.weights().items() if v > 0}
    if w and all(v == 1 for v in w.values()):
        return "t/y of oxide (" + " + ".join(PRODUCT_UNITS[m].split(" ", 1)[1] for m in w) + ")"
    return "weight x t/y (" + ", ".join(f"{product_short(m)} x {v:g}" for m, v in w.items()) \
        + ")"


def objective_label(sc: Scenario) -> str:
    """"NPV (US$ M)" or "weighted supply (weight x t/y (...))": the objective with its unit."""
    if sc.objective == "npv":
        return "NPV (US$ M)"
    if sc.objective == "expected_npv":
        return "expected NPV (US$ M)"
    if sc.objective == "mean_cvar":
        return "mean-CVaR of NPV (US$ M)"
    return f"weighted supply ({objective_unit(sc)})"


def objective_text(sc: Scenario, v: float | None) -> str:
    if sc.objective in ("npv", "expected_npv", "mean_cvar"):
        return money(v)
    return "n/a" if v is None else f"{v:,.0f} {objective_unit(sc)}"


# A reference for offtake where a scenario sets no floor: world mine production in 2024 (USGS
# Mineral Commodity Summaries 2025, 2024 estimates, as in inputs/facts/usgs_2024.csv), in the
# data's oxide units by rule C1 of inputs/README.md (Ta2O5 = 1.2211 x Ta, Nb2O5 = 1.4305 x Nb).
# No sourced world figure for NdPr or Dy+Tb oxide is in the data, so they have none.
WORLD_OUTPUT_2024 = {"tantalum": 2_100 * 1.2211, "niobium": 110_000 * 1.4305, "ree": 390_000.0}
WORLD_OUTPUT_SOURCE = ("world mine production in 2024: USGS Mineral Commodity Summaries 2025 "
                       "(2024 estimates; inputs/facts/usgs_2024.csv): 2,100 t Ta, 110,000 t Nb, "
                       "390,000 t REO, as oxides by rule C1 of inputs/README.md")


# --- the reader's currency --------------------------------------------------------------------

# The data's own convention (inputs/facts/parameters.csv `inr_per_usd`, rule C3 of
# inputs/README.md): US$1 = INR 84, the 2024 average, rounded.
DEFAULT_INR_PER_USD = 84.0
DEFAULT_INR_RATE_DATE = "2024 average, rounded"
DEFAULT_INR_SOURCE = ("the data's own convention: inputs/facts/parameters.csv inr_per_usd, rule "
                      "C3 of inputs/README.md")


@dataclass(frozen=True)
class Currency:
    """US$ M with INR crore beside it: the rate, its date and where it comes from, stated once
    on a report. INR 1 crore = 10 million rupees, so US$ M x rate / 10 = INR crore."""

    inr_per_usd: float = DEFAULT_INR_PER_USD
    date: str = DEFAULT_INR_RATE_DATE
    source: str = DEFAULT_INR_SOURCE

    def __post_init__(self) -> None:
        if not (math.isfinite(self.inr_per_usd) and 1 <= self.inr_per_usd <= 1000):
            raise InputError(f"INR per US$ must be a number from 1 to 1000, not "
                             f"{self.inr_per_usd!r}", loc=("inr_per_usd",))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Currency:
        """The rate from ``OPTIMIZER_INR_PER_USD`` (and its date from
        ``OPTIMIZER_INR_RATE_DATE``); the data's convention when unset."""
        env = os.environ if environ is None else environ
        raw = env.get("OPTIMIZER_INR_PER_USD", "").strip()
        if not raw:
            return cls()
        try:
            rate = float(raw)
        except ValueError:
            raise InputError(f"OPTIMIZER_INR_PER_USD={raw!r} is not a number",
                             loc=("OPTIMIZER_INR_PER_USD",)) from None
        return cls(rate, env.get("OPTIMIZER_INR_RATE_DATE", "").strip() or "date not stated",
                   "set by OPTIMIZER_INR_PER_USD")

    def crore(self, musd: float | None) -> float | None:
        return None if musd is None else musd * self.inr_per_usd / 10.0

    def inr(self, musd: float | None, digits: int = 0) -> str:
        """INR 12,508 crore."""
        v = self.crore(musd)
        if v is None:
            return "n/a"
        return f"INR {v:,.{digits}f} crore".replace("INR -", "-INR ")

    def both(self, musd: float | None, digits: int = 0) -> str:
        """US$1,489 M (INR 12,508 crore)."""
        return money(musd, digits) if musd is None else \
            f"{money(musd, digits)} ({self.inr(musd)})"

    @property
    def statement(self) -> str:
        return (f"INR crore at US$1 = INR {self.inr_per_usd:g} ({self.date}; {self.source}). "
                "INR 1 crore = 10 million rupees, so US$ M x "
                f"{self.inr_per_usd:g} / 10 = INR crore.")


# --- terms a committee reads --------------------------------------------------------------------

GLOSSARY: tuple[tuple[str, str], ...] = (
    ("TREO", "total rare-earth oxides: the tonnes of all rare-earth elements in a product, "
             "counted as oxides"),
    ("NdPr", "neodymium and praseodymium oxide, the light rare earths in permanent magnets "
             "(part of TREO)"),
    ("Dy+Tb", "dysprosium and terbium oxide, the heavy rare earths that keep magnets working "
              "when hot (part of TREO)"),
    ("Ta2O5, Nb2O5", "tantalum and niobium counted as their oxides"),
    ("NPV", "net present value of a stake: what it is worth (real, post-tax, discounted at 8 %) "
            "after paying for it, minus the deal cost"),
    ("Offtake", "the annual output a stake is entitled to: the stake times the project's output"),
    ("Binding", "a limit the portfolio meets exactly; loosening it could change the answer, "
                "loosening any other cannot"),
    ("Regret", "what is lost by a choice against the best one: the objective lost without a "
               "project, or (batches) against the best portfolio of each draw"),
    ("Robust core", "projects backed in at least a stated share (e.g. 90 %) of the portfolios "
                    "of a batch: choices that hold across the scenarios tried"),
    ("CVaR", "conditional value at risk: the mean NPV of the worst share (e.g. 10 %) of draws"),
    ("Alternatives", "structurally different portfolios worth nearly as much as the "
                     "recommended one (within a stated slack of its objective)"),
    ("Study levels", "how firm a project's figures are, firmest first: producing (accounts), "
                     "DFS (definitive feasibility study), PFS (pre-feasibility), PEA "
                     "(preliminary economic assessment), scoping, estimate (set by a rule of "
                     "the data, no study)"),
    ("INR crore", "10 million rupees"),
)


def glossary(terms: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """The glossary, or the named terms of it in its order."""
    return [g for g in GLOSSARY if terms is None or g[0] in terms]


def question_parts(description: str | None) -> tuple[str, str]:
    """(the question, the backstory): the description's first sentence, and the rest, which a
    report folds away."""
    text = (description or "").strip()
    if not text:
        return "", ""
    for m in re.finditer(r"[.!?](?=\s+[A-Z(])", text):
        if m.end() >= 40:  # not an abbreviation early in the text
            return text[:m.end()], text[m.end():].strip()
    return text, ""


# --- which figures to doubt ---------------------------------------------------------------------

STUDY_WORDS = {"producing": "producing (operating accounts)",
               "dfs": "DFS (definitive feasibility study)", "pfs": "PFS (pre-feasibility study)",
               "pea": "PEA (preliminary economic assessment)", "scoping": "scoping study",
               "estimate": "estimated by a rule of the data (no study)"}
WEAK_LEVELS = ("pea", "scoping", "estimate")  # "PEA-level or estimated": PEA and below
OLD_STUDY_YEARS = 3.0


@dataclass
class DoubtRow:
    """One chosen project: how firm its figures are and what to doubt."""

    project_id: str
    as_of: str | None
    study_level: str
    age_years: float | None
    npv_musd: float
    weak: bool  # PEA-level or below, or estimated by rule
    estimated: str  # the figures the data estimated by rule (from its source), if it says
    warnings: list[str]

    @property
    def as_of_text(self) -> str:
        return self.as_of or "undated"

    @property
    def study_words(self) -> str:
        return STUDY_WORDS.get(self.study_level, self.study_level)


@dataclass
class Doubts:
    rows: list[DoubtRow]
    weak_npv_musd: float
    npv_musd: float

    @property
    def weak_share(self) -> float | None:
        """The share of the portfolio's NPV that rests on PEA-level or estimated figures (None
        when the portfolio's NPV is not positive, where a share means nothing)."""
        return self.weak_npv_musd / self.npv_musd if self.npv_musd > 1e-9 else None

    @property
    def n_undated(self) -> int:
        return sum(r.as_of is None for r in self.rows)

    @property
    def n_old(self) -> int:
        return sum(r.age_years is not None and r.age_years > OLD_STUDY_YEARS for r in self.rows)

    @property
    def n_weak(self) -> int:
        return sum(r.weak for r in self.rows)


def _as_of_date(v: Any) -> dt.date | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    text = str(v).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text if len(text) > 7 else text + "-01")
    except ValueError:
        return None  # validated on load; a stored run's rows are validated again


def _estimated(source: str) -> str:
    """What the data's source text says it estimated by rule ("estimates: equity (E1)")."""
    m = re.search(r"estimates:\s*([^|]+)", source or "")
    return m.group(1).strip().rstrip(";") if m else ""


def doubts(result: Result, data: ProjectData, today: dt.date) -> Doubts:
    """As-of date, study level and warnings for every chosen project, and the share of the
    portfolio's NPV that rests on PEA-level or estimated figures."""
    f = data.frame.set_index("project_id")
    rows = []
    for p in result.selected:
        r = f.loc[p.project_id]
        level = str(r.get("study_level") or "estimate") if "study_level" in f.columns \
            else "estimate"
        raw = r.get("as_of") if "as_of" in f.columns else None
        when = _as_of_date(raw)
        age = (today - when).days / 365.25 if when is not None else None
        warn = []
        if when is None:
            warn.append("undated: no study or transaction date for its figures")
        elif age is not None and age > OLD_STUDY_YEARS:
            warn.append(f"study {age:.1f} years old (more than {OLD_STUDY_YEARS:g}): costs "
                        "and prices may have moved")
        if level == "estimate":
            warn.append("figures estimated by a rule of the data, not taken from a study")
        elif level in ("pea", "scoping"):
            warn.append(f"{STUDY_WORDS[level]}: an early study, wide error on cost and value")
        rows.append(DoubtRow(p.project_id, None if when is None else str(raw).strip(), level,
                             age, p.npv_musd, level in WEAK_LEVELS,
                             _estimated(str(r.get("source") or "")), warn))
    weak = sum(r.npv_musd for r in rows if r.weak)
    return Doubts(rows, weak, result.totals.npv_musd)


# --- flags a reader must not miss ---------------------------------------------------------------

# Boolean project columns that flag an asset (read when the table carries them; CONTRACT
# section 1 has none yet, so today they are never present).
FLAG_COLUMNS = {"conflict_affected": "conflict-affected supply",
                "sanctioned": "a sanctioned owner, operator or buyer"}
CHINESE_CONTROL = 0.5  # "controlled": more than half held or controlled
NEAR_CAP = 0.2  # within 20 percentage points of the scenario's cap on Chinese ownership


@dataclass
class Flag:
    kind: str  # negative_npv, chinese_ownership, or a FLAG_COLUMNS name
    project_id: str
    title: str
    text: str


def _why_negative(p: Any, result: Result, sc: Scenario, data: ProjectData,
                  analysis: Analysis | None) -> str:
    """Why the optimum holds a project that loses money: the binding limits it loosens or
    helps meet, and what excluding it costs (the regret re-solve), in words."""
    t = result.totals
    bound = {b.field for b in result.binding}
    row = data.frame.set_index("project_id").loc[p.project_id]
    why = []
    if p.project_id in sc.include_projects:
        why.append("the scenario forces it in (include_projects)")
    capped = sorted(b.split(".", 1)[1] for b in bound if b.startswith("max_country_share."))
    if capped and p.country not in capped:
        why.append(f"its spend in {country_name(p.country)} adds to total spend, which lets "
                   + ", ".join(country_name(c) for c in capped)
                   + f" take more under the {pct(sc.max_country_share, 0)} country cap")
    if "max_china_processing_share" in bound and not bool(row["china_processing"]):
        why.append("its spend loosens the cap on China-processed spend")
    if "max_avg_risk" in bound and float(row["risk_score"]) < (sc.max_avg_risk or 10):
        why.append(f"its risk of {float(row['risk_score']):g} pulls the spend-weighted "
                   f"average under the {sc.max_avg_risk:g} cap")
    same = [q for q in result.selected if q.country == p.country]
    if sc.min_countries and len(same) == 1 and t.n_countries <= sc.min_countries:
        why.append(f"it is the only holding in {country_name(p.country)}, one of the "
                   f"{sc.min_countries} host countries required")
    for m, floor in sc.min_output_t.items():
        if f"min_output_t.{m}" in bound and p.output_t.get(m, 0.0) > 0:
            why.append(f"it supplies {p.output_t[m]:,.0f} {product_unit(m)} toward the floor "
                       f"of {floor:,.0f}")
    reg = next((e for e in (analysis.regrets if analysis else [])
                if e.project_id == p.project_id), None)
    if reg is not None and reg.loss is not None:
        why.append(f"without it the best portfolio is worth {reg.loss:,.1f} less"
                   if reg.loss > 1e-6 else "without it the best portfolio is worth as much "
                   "(a tie)")
    elif reg is not None and reg.status == "infeasible":
        why.append("without it no portfolio meets the scenario")
    return "; ".join(why) if why else "no binding limit explains it"


def flags(result: Result, sc: Scenario, data: ProjectData,
          analysis: Analysis | None) -> list[Flag]:
    """Holdings a reader must not miss: negative NPV (and why the optimum keeps it), Chinese
    ownership or control (and how near the scenario's cap), and any asset flag column."""
    out: list[Flag] = []
    f = data.frame.set_index("project_id")
    cap = sc.max_chinese_ownership
    for p in result.selected:
        if p.npv_musd < 0:
            out.append(Flag("negative_npv", p.project_id, "Negative NPV",
                            f"{p.project_id} loses {money(-p.npv_musd, 1)} at its stake; it is "
                            "there because " + _why_negative(p, result, sc, data, analysis)
                            + "."))
        row = f.loc[p.project_id]
        own = float(row.get("chinese_ownership") or 0.0) if "chinese_ownership" in f.columns \
            else 0.0
        if own > 0:
            words = "under Chinese control" if own > CHINESE_CONTROL else "partly Chinese-owned"
            text = f"{p.project_id} is {words}: {pct(own, 1)} of the asset or its operator"
            if cap is not None:
                room = cap - own
                text += (f", at the scenario's cap of {pct(cap, 0)}" if room <= 1e-9 else
                         f", {room * 100:.0f} points under the scenario's cap of "
                         f"{pct(cap, 0)}" + (" (near it)" if room <= NEAR_CAP else ""))
            else:
                text += "; the scenario sets no cap on Chinese ownership"
            out.append(Flag("chinese_ownership", p.project_id, "Chinese ownership", text + "."))
        for col, what in FLAG_COLUMNS.items():
            if col in f.columns and _truthy(row.get(col)):
                out.append(Flag(col, p.project_id, what[0].upper() + what[1:],
                                f"{p.project_id} is flagged in the data for {what}."))
    return out


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "yes", "1")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


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
    currency: Currency = field(default_factory=Currency)
    question_text: str = ""  # the scenario's question: its description's first sentence
    backstory: str = ""  # the rest of the description (folded on the page)
    objective_unit: str = "US$ M"
    doubts: Doubts | None = None
    flags: list[Flag] = field(default_factory=list)
    glossary: list[tuple[str, str]] = field(default_factory=list)
    # How sure the money is (CONTRACT 7a): the portfolio on the scenario's sample, or on the
    # data's default uncertainty model when it has none (None: no portfolio to measure)
    uncertainty: HowSure | None = None
    today: dt.date = field(default_factory=dt.date.today)

    @property
    def solved(self) -> bool:
        return self.result.status in WITH_PORTFOLIO


def _answer(result: Result, sc: Scenario, cur: Currency | None = None) -> str:
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
    both = cur.both if cur is not None else money
    text = (f"Back {t.n_projects} project{'s' if t.n_projects != 1 else ''} in {n_c} "
            f"countr{'ies' if n_c != 1 else 'y'} for {both(t.cost_musd)}: KABIL "
            f"{t.kabil_musd:,.0f}, US partners {t.us_musd:,.0f}; NPV {both(t.npv_musd)}")
    if sc.objective == "supply":
        text += f"; weighted supply {result.objective:,.0f} {objective_unit(sc)}"
    return text + f"; {status_words(result)}."


# How the question groups the table of limits: (heading, does this limit belong here)
QUESTION_GROUPS = (
    ("Spend caps", lambda lim: lim.kind == "cap"),
    ("Diversification and risk", lambda lim: lim.kind in ("share", "count")),
    ("Security floors (offtake)", lambda lim: lim.kind == "floor" and not lim.sampled),
    ("Under uncertainty", lambda lim: lim.sampled),
    ("Exclusions and forced choices", lambda lim: lim.kind == "filter"),
)


def limit_words(sc: Scenario, e: L.Entry, cur: Currency | None = None) -> str:
    """A limit the scenario sets, in the table of limits' words with report formatting
    (US$ M with INR crore when ``cur`` is given, shares in %, products and countries named)."""
    lim, v, key = e.limit, e.value, e.key
    if isinstance(v, list | tuple):
        names = {"country": country_name, "partner": lambda p: PARTNER_NAMES.get(p, p)}
        name = names.get(lim.on, str)
        text = ", ".join(name(x) + (f" ({x})" if lim.on == "country" else "") for x in v)
    elif lim.unit == "MUSD":
        text = cur.both(v) if cur is not None else money(v)
    elif lim.unit == "share":
        text = pct(v, 0 if float(v * 100).is_integer() else 1)
    elif lim.unit == "t/y":
        text = f"{v:,.0f} {product_unit(key)} of {product_name(key)}"
    elif lim.unit == "risk":
        text = f"{v:g} (1 best, 10 worst)"
    else:
        text = f"{v:,}" if isinstance(v, int) else f"{v:,.6g}"
    return lim.words.format(value=text, key=L.key_words(lim, key))


def _question(sc: Scenario, data: ProjectData, result: Result,
              cur: Currency | None = None) -> list[tuple[str, str]]:
    """The scenario in words: every limit it sets, grouped (from the table of limits), then
    its objective, solver limits and data."""
    q: list[tuple[str, str]] = []
    set_limits = L.entries(sc)
    for heading, belongs in QUESTION_GROUPS:
        said = [limit_words(sc, e, cur if e.limit.field == "budget_musd" else None)
                for e in set_limits if belongs(e.limit)]
        if heading == "Under uncertainty" and sc.uncertainty is not None:
            said.insert(0, sample_words(sc))
        elif heading == "Under uncertainty":
            continue
        q.append((heading, "; ".join(said) if said else "none"))
    if sc.objective == "npv":
        q.append(("Objective", "maximise the portfolio's NPV (the value of the stakes bought "
                               "after paying for them, minus deal costs)"))
    elif sc.objective == "expected_npv":
        q.append(("Objective", "maximise the portfolio's expected NPV over the sample's draws "
                               "(US$ M)"))
    elif sc.objective == "mean_cvar":
        q.append(("Objective", f"maximise (1 - {sc.risk_aversion:g}) x mean NPV + "
                               f"{sc.risk_aversion:g} x CVaR of NPV at {pct(sc.cvar_alpha, 0)} "
                               "(the mean of the worst draws), over the sample (US$ M)"))
    else:
        w = sc.weights()
        q.append(("Objective", "maximise weighted annual offtake: " + ", ".join(
            f"{product_name(m)} x {v:g}" for m, v in w.items())
            + f"; its unit: {objective_unit(sc)}"))
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
          analysis: Analysis | None = None, *, currency: Currency | None = None,
          today: dt.date | None = None) -> Facts:
    """Everything a report says, computed once for every format. ``currency``: the INR rate
    (default: ``OPTIMIZER_INR_PER_USD`` or the data's convention); ``today``: the date study
    ages are counted to (default: today)."""
    cur = currency or Currency.from_env()
    today = today or dt.date.today()
    products = list(result.totals.output_t)
    diag, fixes = [], []
    if result.diagnosis is not None:
        d = result.diagnosis
        diag = [field_words(scenario, c) for c in d.conflicts]
        fixes = [fx.get("change") or f"change {fx.get('field')}" for fx in d.fixes]
    solved = result.status in ("optimal", "feasible")
    question, backstory = question_parts(scenario.description)
    return Facts(result=result, scenario=scenario, data=data, analysis=analysis,
                 products=products, answer=_answer(result, scenario, cur),
                 status_text=status_words(result),
                 question=_question(scenario, data, result, cur),
                 limits=_limits(scenario, result, data),
                 portfolio=_portfolio(result, data, products), diagnosis=diag, fixes=fixes,
                 currency=cur, question_text=question, backstory=backstory,
                 objective_unit=objective_unit(scenario),
                 doubts=doubts(result, data, today) if solved else None,
                 flags=flags(result, scenario, data, analysis) if solved else [],
                 glossary=glossary(),
                 uncertainty=how_sure(result, scenario, data) if solved else None,
                 today=today)


@dataclass
class CapBreak:
    """A spend cap the portfolio breaks in some draws, and by how much where it does."""

    path: str
    words: str
    share: float  # of the draws
    median_musd: float  # overspend, among the draws where it breaks
    p95_musd: float


@dataclass
class HowSure:
    """How sure the money is (CONTRACT 7a): the recommended portfolio measured draw by draw on
    the scenario's own sample, or the data's default uncertainty model (inputs/README.md)."""

    figures: Any  # optimizer.schema.RiskFigures
    draws: int
    seed: int | None
    source: str  # generator, default, table or file
    alpha: float
    labels: Any  # numpy arrays, one entry per draw
    npv: Any
    within_caps: Any
    caps: list[CapBreak]
    face_npv: float
    block: Any | None  # the result's own uncertainty block (a run solved under uncertainty)

    @property
    def source_words(self) -> str:
        seed = "" if self.seed is None else f", seed {self.seed}"
        return {"default": "the data's default uncertainty model (inputs/README.md)",
                "generator": "the scenario's own perturbations",
                "table": "the scenario's draws table",
                "file": "the scenario's draws file"}.get(self.source, self.source) + seed

    @property
    def out_of_sample(self) -> Any | None:
        return None if self.block is None else self.block.out_of_sample


def how_sure(result: Result, sc: Scenario, data: ProjectData) -> HowSure:
    """The portfolio on its assessment sample (``optimizer.sample.assessment_sample``: the
    scenario's own sample, else 1,000 draws of the default model, seed 1 - what
    ``python -m optimizer draws`` writes), with every figure the report shows."""
    import numpy as np

    from ..risk import figures
    from ..sample import assessment_sample

    smp = assessment_sample(data, sc)
    stakes = {p.project_id: p.stake for p in result.selected}
    out = L.outcomes_on(data, sc, smp, L.holding(data, stakes))
    caps = []
    for path, over in out.overspend.items():
        hit = over[over > 0]
        if hit.size:
            caps.append(CapBreak(path, field_words(sc, path), float(hit.size / over.size),
                                 float(np.median(hit)), float(np.quantile(hit, 0.95))))
    return HowSure(figures=figures(out, sc.cvar_alpha), draws=smp.n_draws, seed=smp.seed,
                   source=smp.source, alpha=sc.cvar_alpha, labels=smp.labels, npv=out.npv,
                   within_caps=out.within_caps, caps=caps, face_npv=result.totals.npv_musd,
                   block=result.uncertainty)


__all__ = ["GLOSSARY", "WORLD_OUTPUT_2024", "CapBreak", "Currency", "Doubts", "Facts", "Flag",
           "HowSure", "LimitRow",
           "alternatives_matrix", "country_name", "doubts", "facts", "flags", "glossary",
           "money", "objective_label", "objective_unit", "pct", "product_name", "product_unit",
           "question_parts", "status_words"]
