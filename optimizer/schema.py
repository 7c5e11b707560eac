"""What the inputs and the result look like: the project columns (as data), the scenario and
the result object of CONTRACT.md, as pydantic models.

The column table below drives validation (``optimizer.data``), the HTTP schema and the
column reference in ``inputs/README.md``; change a column here and all three follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .perturbations import MINERALS as MINERALS  # exported with the other columns
from .perturbations import Perturbations

# Offtake products: the three primary minerals' oxides plus the magnet rare earths, which are
# part of (never more than) a project's TREO. Supply security for magnets is about NdPr and
# Dy+Tb, not TREO (India imported ~53,700 t of magnets in FY2025, ~93 % from China).
PRODUCTS: tuple[str, ...] = ("tantalum", "niobium", "ree", "ndpr", "dytb")
MAGNET_PRODUCTS: tuple[str, ...] = ("ndpr", "dytb")
PRODUCT_UNITS = {"tantalum": "t/y of Ta2O5", "niobium": "t/y of Nb2O5", "ree": "t/y of TREO",
                 "ndpr": "t/y of NdPr oxide", "dytb": "t/y of Dy+Tb oxide"}
PRODUCT_SHORT = {"tantalum": "tantalum", "niobium": "niobium", "ree": "rare earths",
                 "ndpr": "NdPr", "dytb": "Dy+Tb"}
PARTNERS: tuple[str, ...] = ("KABIL", "US", "JOINT")
# How firm a row's figures are, firmest first (CONTRACT section 1): a producing asset's
# accounts, then feasibility, pre-feasibility, preliminary economic assessment, scoping, and a
# figure estimated by one of inputs/README.md's rules.
STUDY_LEVELS: tuple[str, ...] = ("producing", "dfs", "pfs", "pea", "scoping", "estimate")
AS_OF_RE = re.compile(r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?$")
PROJECT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
SPEND_SHARE_RE = re.compile(r"^spend_share_([1-9][0-9]*)$")
SPEND_SHARE_TOL = 1e-6
# Sanity limits on magnitudes. Far above any real deal (the largest shipped equity value is
# 13,000 MUSD; world rare-earth output is 390,000 t/y), and low enough that HiGHS's 1e-6
# tolerances stay meaningful: measured, equity values of 1e8 or outputs of 1e9 give HiGHS
# portfolios that break the budget or miss the optimum.
MAX_MUSD = 1e6  # US$1 trillion, per project or per scenario limit
MAX_TONNES = 1e7  # t/y per project
MAX_FLOOR_TONNES = 1e9  # t/y, a scenario's output floor
MAX_WEIGHT = 1e6  # supply objective weight per tonne


@dataclass(frozen=True)
class Column:
    """One column of the candidate-projects table."""

    name: str
    kind: Literal["id", "text", "country", "mineral", "partner", "float", "int", "bool",
                  "date", "choice"]
    required: bool
    unit: str
    rule: str  # the allowed values, in words (used in error messages and docs)
    meaning: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo is exclusive
    default: float | str | None = None  # value of an empty optional cell (None: stays empty)
    choices: tuple[str, ...] = ()  # the allowed values of a "choice" column


COLUMNS: tuple[Column, ...] = (
    Column("project_id", "id", True, "", "text `[A-Za-z0-9_.-]{1,64}`, unique", "unique key"),
    Column("name", "text", True, "", "non-empty text", "display name"),
    Column("country", "country", True, "", "ISO 3166-1 alpha-2, e.g. `MW`",
           "host country of the asset"),
    Column("mineral", "mineral", True, "", "`tantalum`, `niobium` or `ree`", "primary mineral"),
    Column("partner", "partner", True, "", "`KABIL`, `US` or `JOINT`", "who leads the deal"),
    Column("india_share", "float", True, "fraction", "0..1",
           "fraction of the deal's cost paid by the Indian side (KABIL); the US side pays the "
           "rest", 0.0, 1.0),
    Column("equity_value_musd", "float", True, "MUSD", "> 0 and <= 1e6",
           "price of a 100 % stake", 0.0, MAX_MUSD, lo_open=True),
    Column("min_stake", "float", True, "fraction", "0 < min_stake <= max_stake",
           "smallest stake that may be bought if the project is chosen", 0.0, 1.0, lo_open=True),
    Column("max_stake", "float", True, "fraction", "min_stake <= max_stake <= 1",
           "largest stake that may be bought", 0.0, 1.0, lo_open=True),
    Column("deal_cost_musd", "float", True, "MUSD", ">= 0 and <= 1e6",
           "fixed cost of doing the deal at all (diligence, fees)", 0.0, MAX_MUSD),
    Column("npv_musd", "float", True, "MUSD", "between -1e6 and 1e6",
           "net present value of a 100 % stake after paying equity_value_musd",
           -MAX_MUSD, MAX_MUSD),
    Column("output_tantalum_t", "float", True, "t/y Ta2O5", ">= 0 and <= 1e7",
           "annual tantalum output of the whole project", 0.0, MAX_TONNES),
    Column("output_niobium_t", "float", True, "t/y Nb2O5", ">= 0 and <= 1e7",
           "annual niobium output of the whole project", 0.0, MAX_TONNES),
    Column("output_ree_t", "float", True, "t/y TREO", ">= 0 and <= 1e7",
           "annual rare-earth output of the whole project", 0.0, MAX_TONNES),
    Column("output_ndpr_t", "float", False, "t/y NdPr oxide", ">= 0 and <= output_ree_t",
           "annual NdPr oxide output of the whole project (part of output_ree_t); empty = 0",
           0.0, MAX_TONNES, default=0.0),
    Column("output_dytb_t", "float", False, "t/y Dy+Tb oxide", ">= 0 and <= output_ree_t",
           "annual Dy+Tb oxide output of the whole project (part of output_ree_t); empty = 0",
           0.0, MAX_TONNES, default=0.0),
    Column("chinese_ownership", "float", False, "fraction", "0..1 (default 0)",
           "fraction of the asset or its operating company held or controlled by Chinese state "
           "or corporate owners, today or under a signed deal", 0.0, 1.0, default=0.0),
    Column("risk_score", "float", True, "1..10", "1..10",
           "composite country, ESG and execution risk, 10 the worst", 1.0, 10.0),
    Column("china_processing", "bool", False, "", "true/false (default false)",
           "output today depends on processing in China"),
    Column("conflict_affected", "bool", False, "", "true/false (default false)",
           "the asset's supply comes from a conflict-affected area (an armed group controls or "
           "taxes it; OECD due-diligence red flag): reports flag a holding of it"),
    Column("exclusive_group", "text", False, "", "text (optional)",
           "at most one project of a group may be chosen"),
    Column("requires", "text", False, "", "a project_id of this table (optional)",
           "this project may be chosen only if that one is"),
    Column("as_of", "date", False, "", "`YYYY-MM` or `YYYY-MM-DD` (optional)",
           "date of the study or transaction that the row's value and price come from"),
    Column("study_level", "choice", False, "", "one of " + ", ".join(
           f"`{v}`" for v in STUDY_LEVELS) + " (default `estimate`)",
           "how firm the row's figures are; the default uncertainty model widens its spreads "
           "as the level falls", default="estimate", choices=STUDY_LEVELS),
    Column("stage", "text", False, "", "text", "descriptive: development stage"),
    Column("operator", "text", False, "", "text", "descriptive: operator / owner"),
    Column("region", "text", False, "", "text", "descriptive: world region"),
    Column("first_production_year", "int", False, "year", "integer year (optional)",
           "descriptive: first (or expected) production", 1900.0, 2100.0),
    Column("source", "text", False, "", "text", "where the figures come from; estimates say so"),
)
COLUMN_BY_NAME = {c.name: c for c in COLUMNS}
OUTPUT_COLUMNS = {m: f"output_{m}_t" for m in PRODUCTS}


def spend_share_column(year: int) -> Column:
    """The column ``spend_share_<year>`` (multi-year capital budgeting)."""
    return Column(f"spend_share_{year}", "float", False, "fraction",
                  "0..1; a row's spend_share_k sum to 1",
                  f"fraction of the deal's cost paid in plan year {year}", 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Scenario
# ---------------------------------------------------------------------------------------------

Product = Literal["tantalum", "niobium", "ree", "ndpr", "dytb"]
Partner = Literal["KABIL", "US", "JOINT"]
PositiveFinite = Annotated[float, Field(gt=0, le=MAX_MUSD, allow_inf_nan=False)]
NonNegFinite = Annotated[float, Field(ge=0, le=MAX_MUSD, allow_inf_nan=False)]
Tonnes = Annotated[float, Field(ge=0, le=MAX_FLOOR_TONNES, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _no_nul(v: str) -> str:
    # PostgreSQL text cannot hold NUL; no label needs one either
    if "\x00" in v:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return v


Text = Annotated[str, AfterValidator(_no_nul)]

# Strict types: a JSON `true` is not the number 1 and "2000" is not 2000 (a scenario field that
# silently took 1 for `true` once solved with a 1 MUSD budget). Integers are accepted where a
# number is expected; floats are not accepted where a whole number is.
_STRICT = ConfigDict(extra="forbid", strict=True)


class SolverSettings(BaseModel):
    """HiGHS limits and options for one solve."""

    model_config = _STRICT

    time_limit_s: float = Field(60.0, gt=0, le=86_400, allow_inf_nan=False,
                                description="wall-clock limit for the whole solve (MIP search "
                                "and certification), seconds; diagnosis gets the same again")
    mip_gap: float = Field(1e-4, ge=0, le=1, allow_inf_nan=False,
                           description="relative MIP gap at which the search stops")
    presolve: Literal["off", "on", "choose"] = Field(
        "off",
        description="HiGHS presolve; 'off' (default) measured faster or level on most "
        "instance families and 2.5-10x faster from ~3,000 projects (bench/README.md); "
        "'choose' lets HiGHS decide")
    random_seed: int = Field(0, ge=0, le=2_147_483_647, description="HiGHS random seed")


# ---------------------------------------------------------------------------------------------
# Uncertainty (CONTRACT section 8)
# ---------------------------------------------------------------------------------------------

MAX_DRAWS = 10_000  # draws in one sample (a sample's size, draws x projects, is capped too)
MAX_DRAW_ROWS = 2_000_000  # rows of an inline draws table


class SampleSpec(Perturbations):
    """A sample made by the Monte-Carlo generator: the perturbations of a ``monte_carlo``
    batch spec, or with none named, the data's default uncertainty model (inputs/README.md,
    "Default uncertainty model": spreads by each row's study_level, price volatility per
    mineral, disruption by country)."""

    draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)]
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    fresh_draws: Annotated[int, Field(ge=0, le=MAX_DRAWS)] = Field(
        1000, description="draws of the independent sample (seed + 1) on which the chosen "
        "portfolio and the face-value one are judged; 0: not judged")


class DrawsFile(BaseModel):
    """A draws table in a CSV file (CLI; a relative path is read from the scenario's folder)."""

    model_config = _STRICT
    draws_file: Text = Field(min_length=1, max_length=4096)
    fresh_draws: Annotated[int, Field(ge=0, le=MAX_DRAWS)] = 1000


class DrawRow(BaseModel):
    """One line of a draws table: a draw's factors for one project (absent: 1, available)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    draw: Annotated[int, Field(ge=0, le=10**9)]
    project_id: Text = Field(max_length=64)
    price: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0
    overrun: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0
    output: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 1.0
    available: Literal[0, 1] = 1


class DrawsTable(BaseModel):
    """A draws table inline (HTTP)."""

    model_config = _STRICT
    draws_table: list[DrawRow] = Field(min_length=1, max_length=MAX_DRAW_ROWS)
    fresh_draws: Annotated[int, Field(ge=0, le=MAX_DRAWS)] = 1000


def _sample_kind(v: Any) -> str:
    if isinstance(v, dict):
        return "file" if "draws_file" in v else "table" if "draws_table" in v else "generator"
    return {DrawsFile: "file", DrawsTable: "table"}.get(type(v), "generator")


Uncertainty = Annotated[
    Annotated[SampleSpec, Tag("generator")] | Annotated[DrawsFile, Tag("file")]
    | Annotated[DrawsTable, Tag("table")], Discriminator(_sample_kind)]
STOCHASTIC_OBJECTIVES = ("expected_npv", "mean_cvar")


class Scenario(BaseModel):
    """A budget scenario (CONTRACT section 2). Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "name": "base", "budget_musd": 2000, "kabil_budget_musd": 1000,
        "max_country_share": 0.35, "min_countries": 4, "max_avg_risk": 6,
        "min_output_t": {"ree": 3000}, "objective": "npv"}]})

    name: Text = Field("scenario", max_length=200, description="label")
    description: Text | None = Field(None, max_length=2000,
                                     description="one line saying what question this asks")
    budget_musd: PositiveFinite = Field(
        description="total spend cap, both sides together, MUSD (at most 1e6)")
    kabil_budget_musd: PositiveFinite | None = Field(None, description="cap on KABIL's spend")
    us_budget_musd: PositiveFinite | None = Field(None, description="cap on the US side's spend")
    annual_budget_musd: list[NonNegFinite | None] | None = Field(
        None, max_length=100,
        description="cap on total spend in plan year 1, 2, ... (entry 0 is plan year 1)")
    max_country_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        None, description="no country may take more than this share of total spend")
    min_countries: Annotated[int, Field(ge=0, le=10_000)] | None = Field(
        None, description="at least this many distinct host countries")
    max_projects: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        None, description="at most this many projects")
    min_output_t: dict[Product, Tonnes] = Field(
        default_factory=dict,
        description="offtake entitlement floor per product (tantalum, niobium, ree, ndpr, "
        "dytb), t/y")
    min_india_output_t: dict[Product, Tonnes] = Field(
        default_factory=dict,
        description="floor per product on the offtake the Indian side (KABIL) is entitled to: "
        "its india_share of each deal's offtake, t/y")
    min_us_output_t: dict[Product, Tonnes] = Field(
        default_factory=dict,
        description="floor per product on the offtake the US side is entitled to: 1 - "
        "india_share of each deal's offtake, t/y")
    max_avg_risk: Annotated[float, Field(ge=1, le=10, allow_inf_nan=False)] | None = Field(
        None, description="cap on the spend-weighted average risk_score")
    max_china_processing_share: Fraction | None = Field(
        None, description="cap on the share of total spend in china_processing projects")
    exclude_countries: list[Text] = Field(default_factory=list, max_length=1000)
    exclude_projects: list[Text] = Field(default_factory=list, max_length=1_000_000)
    include_projects: list[Text] = Field(default_factory=list, max_length=1_000_000)
    partners: list[Partner] | None = Field(
        None, max_length=3, description="only deals led by these may be chosen (null: all)")
    max_chinese_ownership: Fraction | None = Field(
        None, description="a project whose chinese_ownership exceeds this may not be chosen")
    min_weighted_supply: Annotated[float, Field(ge=0, le=MAX_FLOOR_TONNES * MAX_WEIGHT,
                                                allow_inf_nan=False)] | None = Field(
        None, description="extension: floor on sum_m supply_weights[m] x offtake of m (the "
        "epsilon-constraint of an NPV-against-supply frontier)")
    objective: Literal["npv", "supply", "expected_npv", "mean_cvar"] = Field(
        "npv", description="npv, supply, or under uncertainty: expected_npv, mean_cvar")
    supply_weights: dict[Product, Weight] = Field(
        default_factory=dict,
        description="weight per tonne for the supply objective (default 1 for tantalum, "
        "niobium, ree; 0 for ndpr, dytb)")
    uncertainty: Uncertainty | None = Field(
        None, description="the sample of draws the stochastic objectives and limits use "
        "(CONTRACT section 8): {draws, seed, ...perturbations} | {draws_file} | {draws_table}")
    risk_aversion: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.5, description="lambda of mean_cvar: (1 - lambda) mean + lambda CVaR")
    cvar_alpha: Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)] = Field(
        0.1, description="the tail share of CVaR (the mean of the worst alpha share of draws)")
    min_cvar_npv: Annotated[float, Field(ge=-MAX_MUSD, le=MAX_MUSD,
                                         allow_inf_nan=False)] | None = Field(
        None, description="CVaR_alpha of the portfolio's NPV over the sample must be at least "
        "this, MUSD")
    budget_confidence: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = Field(
        None, description="every spend cap must hold at the drawn prices paid in at least "
        "ceil(p N) of the N draws (all caps together in a draw)")
    min_output_confidence: Annotated[float, Field(gt=0, le=1,
                                                  allow_inf_nan=False)] | None = Field(
        None, description="every min_output_t floor must hold at the drawn outputs in at least "
        "ceil(q N) draws (all floors together in a draw)")
    solver: SolverSettings = Field(default_factory=SolverSettings)

    @model_validator(mode="after")
    def _needs_a_sample(self) -> Scenario:
        if self.uncertainty is None:
            if self.objective in STOCHASTIC_OBJECTIVES:
                raise ValueError(f"objective {self.objective!r} needs an uncertainty sample "
                                 "(field 'uncertainty')")
            for f in ("min_cvar_npv", "budget_confidence", "min_output_confidence"):
                if getattr(self, f) is not None:
                    raise ValueError(f"{f} needs an uncertainty sample (field 'uncertainty')")
        return self

    @field_validator("exclude_countries")
    @classmethod
    def _iso2(cls, v: list[str]) -> list[str]:
        for c in v:
            if c not in iso_countries():
                raise ValueError(f"{c!r} is not an ISO 3166-1 alpha-2 country code")
        return v

    @field_validator("exclude_projects", "include_projects")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for p in v:
            if not PROJECT_ID_RE.match(p):
                raise ValueError(f"{p!r} is not a valid project_id")
        return v

    def at_face_value(self) -> Scenario:
        """The same question with every figure at face value: no sample, no sampled limit,
        a stochastic objective replaced by ``npv``."""
        if self.uncertainty is None:
            return self
        return self.model_copy(update={
            "uncertainty": None, "min_cvar_npv": None, "budget_confidence": None,
            "min_output_confidence": None,
            "objective": "npv" if self.objective in STOCHASTIC_OBJECTIVES else self.objective})

    def weights(self) -> dict[str, float]:
        """Supply weight of each product (1 for the three minerals, 0 for the magnet rare
        earths, where not given: TREO already counts them)."""
        return {m: float(self.supply_weights.get(m, 0.0 if m in MAGNET_PRODUCTS else 1.0))
                for m in PRODUCTS}


# ---------------------------------------------------------------------------------------------
# Scenario limits, as data
# ---------------------------------------------------------------------------------------------

LimitKind = Literal["cap", "floor", "share", "count", "filter"]
# How a limit's quantity Q is read off a portfolio (x chosen, s stake, c_p = equity_p s_p +
# deal_p x_p the cost of project p, T = sum_p c_p):
#   spend      Q = sum_p w_p c_p              (a share limit compares Q with value x T)
#   offtake    Q = sum_p w_p output_{p,key} s_p  (key: a product)
#   supply     Q = sum_m supply_weights_m sum_p output_{p,m} s_p
#   projects   Q = sum_p x_p
#   countries  Q = number of distinct host countries among the chosen projects
#   largest    Q = max over the chosen projects of w_p
#   list       nothing to read: the field names projects, countries or partners
#   cvar       Q = CVaR_alpha over the scenario's sample of the portfolio's NPV R_s
#   caps_held  Q = the share of the sample's draws in which every spend cap holds
#   floors_met Q = the share of draws in which every min_output_t floor holds
Reads = Literal["spend", "offtake", "supply", "projects", "countries", "largest", "list",
                "cvar", "caps_held", "floors_met"]
SAMPLED: tuple[str, ...] = ("cvar", "caps_held", "floors_met")  # read on a sample of draws
# How a limit is relaxed, by diagnosis and by the report's sensitivity:
#   money (+ a money step), share (+ percentage points), risk (+ risk points),
#   floor (- a fraction of it), count (one more / fewer), level (the next level present in
#   the data: bisection), list (drop entries)
Step = Literal["money", "share", "risk", "floor", "count", "level", "list"]


@dataclass(frozen=True)
class Limit:
    """One scenario limit of CONTRACT sections 2-3, said once.

    Checking (``optimizer.check``), binding (``optimizer.results``), the model's bounds and
    slacks (``optimizer.model``), the exact stake LP (``optimizer.polish``), diagnosis, batch
    re-use and the reports all read this table; ``tests/test_limits.py`` fails when a scenario
    field is in none of it or is handled by only some of them.
    """

    field: str  # the Scenario field
    kind: LimitKind
    sense: Literal["max", "min"]  # max: Q may not exceed the value; min: Q must reach it
    unit: str  # "MUSD", "share", "risk", "count", "t/y" (the product's unit), "weighted t/y"
    label: str  # the quantity limited, for people ("{key}" is the year/product/country)
    words: str  # the limit with its value, in a sentence ("{value}", "{key}")
    maths: str  # the rule its model rows hold (CONTRACT section 3), for docs and `doc=`
    reads: Reads
    step: Step
    rows: tuple[str, ...]  # the model components that hold it (filters: bounds on `choose`)
    # per-project weight w_p for spend/offtake/largest (None: 1 for every project); a function
    # of the data (optimizer.data.ProjectData) and the entry's key
    weight: Callable[[Any, Any], Any] | None = None
    # "" one value; "year"/"product" one value per plan year/product in the field (a list/a
    # dict); "country" one value applied to each host country's spend
    index: Literal["", "year", "product", "country"] = ""
    # filters: the rows that may not be chosen / must be chosen, given the data and the
    # field's value
    forbids: Callable[[Any, Any], Any] | None = None
    forces: Callable[[Any, Any], Any] | None = None
    on: str = ""  # a list filter: the project column its entries name

    @property
    def numeric(self) -> bool:
        """Held by a model row with a slack (diagnosis frees it), not by bounds on choose."""
        return self.kind != "filter"

    @property
    def sampled(self) -> bool:
        """Read on the scenario's sample of draws (CONTRACT section 8), not at face value."""
        return self.reads in SAMPLED


def _column(name: str) -> Callable[[Any, Any], Any]:
    return lambda d, _key: d.col(name)


def _year(d: Any, k: int) -> Any:
    # a cap on a plan year the data has no spend in caps nothing (weight 0)
    return d.spend[:, k] if k < d.n_years else d.spend[:, 0] * 0.0


def _in(column: str) -> Callable[[Any, Any], Any]:
    """Rows whose ``column`` is in the field's list."""
    return lambda d, v: d.frame[column].isin(list(v)).to_numpy()


def _not_in(column: str) -> Callable[[Any, Any], Any]:
    return lambda d, v: ~d.frame[column].isin(list(v)).to_numpy()


LIMITS: tuple[Limit, ...] = (
    # --- money caps: Q = sum_p w_p c_p <= value --------------------------------------------
    Limit("budget_musd", "cap", "max", "MUSD", label="total spend",
          words="a total budget of {value}", maths="T <= budget_musd", reads="spend", step="money",
          rows=("budget",)),
    Limit("kabil_budget_musd", "cap", "max", "MUSD", label="KABIL's spend",
          words="a KABIL budget of {value}",
          maths="sum_p india_share[p] * c_p <= kabil_budget_musd", reads="spend", step="money",
          rows=("side_budget_kabil",), weight=_column("india_share")),
    Limit("us_budget_musd", "cap", "max", "MUSD", label="the US side's spend",
          words="a US-side budget of {value}",
          maths="sum_p (1 - india_share[p]) * c_p <= us_budget_musd", reads="spend", step="money",
          rows=("side_budget_us",), weight=lambda d, _k: 1.0 - d.col("india_share")),
    Limit("annual_budget_musd", "cap", "max", "MUSD", label="spend in plan year {key}",
          words="a spending cap of {value} in plan year {key}",
          maths="sum_p spend_share[p,k] * c_p <= annual_budget_musd[k]", reads="spend",
          step="money", rows=("annual_budget",), weight=_year, index="year"),
    # --- shares of total spend: Q = sum_p w_p c_p <= value x T ------------------------------
    Limit("max_country_share", "share", "max", "share", label="{key}'s share of spend",
          words="no country above {value} of spend",
          maths="sum_{p in country k} c_p <= max_country_share * T", reads="spend", step="share",
          rows=("country_share",), index="country"),
    Limit("max_avg_risk", "share", "max", "risk", label="the spend-weighted average risk",
          words="an average risk of at most {value}",
          maths="sum_p risk_score[p] * c_p <= max_avg_risk * T", reads="spend", step="risk",
          rows=("avg_risk",), weight=_column("risk_score")),
    Limit("max_china_processing_share", "share", "max", "share",
          label="the share of spend in China-processed projects",
          words="at most {value} of spend in China-processed projects",
          maths="sum_{p china_processing} c_p <= max_china_processing_share * T", reads="spend",
          step="share", rows=("china_share",), weight=lambda d, _k: d.china_mask * 1.0),
    # --- counts --------------------------------------------------------------------------
    Limit("max_projects", "count", "max", "count", label="projects backed",
          words="at most {value} projects", maths="sum_p x[p] <= max_projects", reads="projects",
          step="count", rows=("max_projects",)),
    Limit("min_countries", "count", "min", "count", label="host countries",
          words="at least {value} host countries",
          maths="u[k] <= sum_{p in k} x[p]; sum_k u[k] >= min_countries", reads="countries",
          step="count", rows=("country_used_link", "min_countries")),
    # --- offtake floors: Q = sum_p w_p output_{p,m} s_p >= value ----------------------------
    Limit("min_output_t", "floor", "min", "t/y", label="offtake of {key}",
          words="at least {value}", maths="O[m] = sum_p output[p,m] * s[p] >= min_output_t[m]",
          reads="offtake", step="floor", rows=("min_output",), index="product"),
    Limit("min_india_output_t", "floor", "min", "t/y",
          label="KABIL's offtake entitlement of {key}",
          words="a KABIL entitlement of at least {value}",
          maths="sum_p india_share[p] * output[p,m] * s[p] >= min_india_output_t[m]",
          reads="offtake", step="floor", rows=("min_india_output",), weight=_column("india_share"),
          index="product"),
    Limit("min_us_output_t", "floor", "min", "t/y",
          label="the US side's offtake entitlement of {key}",
          words="a US-side entitlement of at least {value}",
          maths="sum_p (1 - india_share[p]) * output[p,m] * s[p] >= min_us_output_t[m]",
          reads="offtake", step="floor", rows=("min_us_output",),
          weight=lambda d, _k: 1.0 - d.col("india_share"), index="product"),
    Limit("min_weighted_supply", "floor", "min", "weighted t/y", label="the weighted supply",
          words="a weighted supply of at least {value}",
          maths="sum_m supply_weights[m] * O[m] >= min_weighted_supply", reads="supply",
          step="floor", rows=("min_supply",)),
    # --- on the scenario's sample of draws (CONTRACT section 8) ----------------------------
    Limit("min_cvar_npv", "floor", "min", "MUSD",
          label="the CVaR of the portfolio's NPV over the sample",
          words="a CVaR of the NPV of at least {value}",
          maths="eta - (1/(alpha N)) sum_s u_s >= min_cvar_npv; u_s >= eta - R_s, u_s >= 0",
          reads="cvar", step="money", rows=("cvar_floor", "shortfall")),
    Limit("budget_confidence", "floor", "min", "share",
          label="the share of draws within every spend cap",
          words="every spend cap held in at least {value} of the draws",
          maths="C_s,cap + S_s held_s <= cap + S_s for every cap; sum_s held_s >= ceil(p N)",
          reads="caps_held", step="share", rows=("caps_in_draw", "caps_held_count")),
    Limit("min_output_confidence", "floor", "min", "share",
          label="the share of draws meeting every output floor",
          words="every output floor met in at least {value} of the draws",
          maths="drawn O_s[m] >= floor_m met_s for every floor; sum_s met_s >= ceil(q N)",
          reads="floors_met", step="share", rows=("floors_in_draw", "floors_met_count")),
    # --- filters: bounds on which projects may be chosen -----------------------------------
    Limit("include_projects", "filter", "min", "", label="projects that must be backed",
          words="forced projects {value}", maths="x[p] = 1 for p in include_projects",
          reads="list", step="list", rows=("choose",), forces=_in("project_id"),
          on="project_id"),
    Limit("exclude_projects", "filter", "max", "", label="excluded projects",
          words="excluded projects {value}", maths="x[p] = 0 for p in exclude_projects",
          reads="list", step="list", rows=("choose",), forbids=_in("project_id"),
          on="project_id"),
    Limit("exclude_countries", "filter", "max", "", label="excluded countries",
          words="excluded countries {value}",
          maths="x[p] = 0 for p in a country of exclude_countries", reads="list", step="list",
          rows=("choose",), forbids=_in("country"), on="country"),
    Limit("partners", "filter", "max", "", label="lead partners allowed",
          words="only deals led by {value}",
          maths="x[p] = 0 for p led by a partner not in partners", reads="list", step="list",
          rows=("choose",), forbids=_not_in("partner"), on="partner"),
    Limit("max_chinese_ownership", "filter", "max", "share",
          label="the largest Chinese ownership of a project backed",
          words="no project more than {value} Chinese-owned",
          maths="x[p] = 0 where chinese_ownership[p] > max_chinese_ownership", reads="largest",
          step="level", rows=("choose",), weight=_column("chinese_ownership"),
          forbids=lambda d, v: d.col("chinese_ownership") > v),
)
LIMIT_BY_FIELD = {lim.field: lim for lim in LIMITS}
# Scenario fields that map each product to a number (a path names one: `min_output_t.ree`)
PRODUCT_MAP_FIELDS: tuple[str, ...] = ("min_output_t", "min_india_output_t", "min_us_output_t",
                                       "supply_weights")
# Scenario fields that are not limits: what the scenario is called, what it maximises, how it
# is solved. Every other field must be a row of LIMITS (tests/test_limits.py).
SETTING_FIELDS: tuple[str, ...] = ("name", "description", "objective", "supply_weights",
                                   "solver", "uncertainty", "risk_aversion", "cvar_alpha")


@lru_cache(maxsize=1)
def iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (pycountry's copy of the standard)."""
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


# ---------------------------------------------------------------------------------------------
# Result (CONTRACT section 4)
# ---------------------------------------------------------------------------------------------

# Results always carry every field (defaults included), so their serialisation schemas (the
# HTTP API's response schemas) mark every field required.
_OUT = ConfigDict(json_schema_serialization_defaults_required=True)

Status = Literal["optimal", "feasible", "infeasible", "no_solution"]
# A batch row's status: a result's, or "evaluated" (Monte Carlo without re-optimising: the
# base portfolio only evaluated on the draw) or "failed" (an error, never the batch's end).
RowStatus = Literal["optimal", "feasible", "infeasible", "no_solution", "evaluated", "failed"]
WITH_PORTFOLIO: tuple[Status, ...] = ("optimal", "feasible")  # the statuses that carry one


class SelectedProject(BaseModel):
    model_config = _OUT
    project_id: str
    name: str
    country: str
    mineral: str
    partner: str
    stake: float
    cost_musd: float
    kabil_musd: float
    us_musd: float
    npv_musd: float
    output_t: dict[str, float]


class Totals(BaseModel):
    model_config = _OUT
    cost_musd: float
    kabil_musd: float
    us_musd: float
    npv_musd: float
    output_t: dict[str, float]
    india_output_t: dict[str, float] = Field(
        default_factory=dict, description="offtake the Indian side is entitled to (its "
        "india_share of each deal's), t/y per product")
    us_output_t: dict[str, float] = Field(
        default_factory=dict, description="offtake the US side is entitled to, t/y per product")
    by_country_musd: dict[str, float]
    avg_risk: float | None
    china_processing_share: float | None = None
    annual_musd: list[float] = Field(default_factory=list)
    n_projects: int = 0
    n_countries: int = 0


class Diagnosis(BaseModel):
    model_config = _OUT
    conflicts: list[str] = Field(
        description="scenario field paths that together make it infeasible")
    message: str
    fixes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="single-field changes shown to restore feasibility, "
        "e.g. {'field': 'budget_musd', 'from': 300, 'to': 412.5}")
    complete: bool = Field(True, description="false when a check hit its time limit")


class SolverInfo(BaseModel):
    model_config = _OUT
    name: str = "highs"
    version: str
    build_s: float
    solve_time_s: float
    termination: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    certification: list[str] = Field(
        default_factory=list,
        description="what re-pricing the portfolio exactly took beyond reading it off HiGHS "
        "(empty: nothing)")
    wall_s: float | None = Field(None, description="wall time of the whole solve call, s")


class Provenance(BaseModel):
    model_config = _OUT
    dataset_sha256: str
    scenario_sha256: str
    software_version: str
    pyomo_version: str = ""
    python_version: str = ""


class Binding(BaseModel):
    model_config = _OUT
    field: str
    limit: float
    value: float


class RiskFigures(BaseModel):
    """A fixed portfolio measured on a sample of draws (CONTRACT section 8)."""

    model_config = _OUT

    mean: float = Field(description="mean NPV over the draws, MUSD")
    cvar: float = Field(description="CVaR_alpha: the mean of the worst alpha share of draws")
    p5: float
    p50: float
    p95: float
    within_caps_share: float = Field(description="share of draws within every spend cap at "
                                     "the drawn prices paid")
    floors_met_share: float = Field(description="share of draws meeting every output floor at "
                                    "the drawn outputs (1 when there are none)")


class OutOfSample(BaseModel):
    """The chosen portfolio and the face-value optimum judged on draws neither was chosen on."""

    model_config = _OUT

    draws: int
    seed: int | None
    source: str = Field(description="generator (the scenario's own perturbations) or default "
                        "(the data's default uncertainty model)")
    portfolio: RiskFigures
    face_value: RiskFigures | None = Field(description="the face-value optimum (objective npv, "
                                           "no sample) on the same draws")
    face_value_selected: list[str] = Field(default_factory=list)
    vss: float | None = Field(description="value of the stochastic solution: portfolio mean "
                              "minus face-value mean, MUSD")


class UncertaintyBlock(RiskFigures):
    """The chosen portfolio on the sample it was chosen on (in-sample: these figures flatter
    it), and where it was judged on fresh draws, that too."""

    draws: int
    alpha: float
    source: str = Field(description="generator, default (the data's default uncertainty "
                        "model), table or file")
    seed: int | None = None
    sample_sha256: str
    out_of_sample: OutOfSample | None = None


class Result(BaseModel):
    """The outcome of one solve; the same object from the CLI, the library and the HTTP API."""

    model_config = _OUT

    status: Status
    objective: float | None
    best_bound: float | None
    mip_gap: float | None
    selected: list[SelectedProject]
    totals: Totals
    binding: list[Binding] = Field(default_factory=list,
                                   description="scenario limits the portfolio meets exactly")
    diagnosis: Diagnosis | None
    solver: SolverInfo
    provenance: Provenance
    scenario_name: str = ""
    uncertainty: UncertaintyBlock | None = Field(
        None, description="under uncertainty: the portfolio on its sample (CONTRACT section 8)")

    @property
    def has_portfolio(self) -> bool:
        return self.status in WITH_PORTFOLIO


class BasePortfolioOnDraw(BaseModel):
    """Monte Carlo: the unperturbed optimum held fixed and priced on one draw."""

    model_config = _OUT

    objective: float
    regret: float | None = Field(description="the draw's own optimum minus this")
    meets_limits: bool
    broken: list[str] = Field(default_factory=list, description="limits it breaks (first 5)")
    breaches: list[dict[str, Any]] = Field(
        default_factory=list, description="each broken cap or floor: path, level, limit and "
        "excess (over a cap, under a floor), in the limit's unit")
    disrupted_projects: list[str] = Field(default_factory=list)


class BatchRow(BaseModel):
    """One row of a batch (CONTRACT section 6): the result object of section 4 (absent parts
    null for a failed row) plus where it sits in the batch and what it solved."""

    model_config = ConfigDict(extra="forbid")

    index: int
    status: RowStatus
    objective: float | None = None
    best_bound: float | None = None
    mip_gap: float | None = None
    selected: list[SelectedProject] = Field(default_factory=list)
    totals: Totals | None = None
    binding: list[Binding] = Field(default_factory=list)
    diagnosis: Diagnosis | None = None
    solver: SolverInfo | None = None
    provenance: Provenance | None = None
    scenario_name: str = ""
    uncertainty: UncertaintyBlock | None = None
    scenario: dict[str, Any] = Field(description="the merged scenario this row solved")
    draw: dict[str, Any] | None = Field(None, description="Monte Carlo: the draw's factors")
    base_portfolio: BasePortfolioOnDraw | None = None
    reused_from: int | None = Field(None, description="the looser row whose portfolio answers "
                                    "this one (no solve)")
    error: str | None = None
    traceback: str | None = None
    row_wall_s: float | None = None

    @classmethod
    def of(cls, index: int, result: Result, scenario: dict[str, Any], **more: Any) -> BatchRow:
        return cls(index=index, **dict(result), scenario=scenario, **more)

    @classmethod
    def failure(cls, index: int, scenario: dict[str, Any], error: str,
                trace: str | None = None) -> BatchRow:
        return cls(index=index, status="failed", scenario=scenario, error=error,
                   traceback=trace)

    def dump(self) -> dict[str, Any]:
        """The row as stored (JSON-ready; optional parts that do not apply left out)."""
        absent = {k for k in ("draw", "base_portfolio", "reused_from", "error", "traceback",
                              "row_wall_s", "uncertainty") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=absent)


