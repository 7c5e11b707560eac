"""Samples of draws of the uncertain figures (CONTRACT section 8), as data.

A :class:`Sample` holds, for each draw ``s`` and project ``p``, the four factors of a draws
table: ``price`` (on the value ``npv + equity_value``), ``overrun`` (on ``equity_value``, the
price paid), ``output`` (on every output column) and ``available`` (0: the asset yields
nothing in that draw but is still paid for). Every draw weighs the same.

Where a sample comes from (a scenario's ``uncertainty`` field):

- ``{"draws": N, "seed": S, ...perturbations}``: the Monte-Carlo generator of the batch engine
  (:func:`make_draw`; the same numbers a ``monte_carlo`` batch makes), a draw made from
  ``(seed, draw index)`` alone;
- ``{"draws": N, "seed": S}`` with no perturbation named: the data's **default uncertainty
  model** (:func:`default_draw`, parameters in ``inputs/facts/uncertainty.csv``, explained in
  inputs/README.md): spreads by each row's ``study_level`` (widened for old studies), a price
  factor per mineral with their correlation, and disruption as a country event;
- ``{"draws_file": PATH}`` (CLI) or ``{"draws_table": [rows]}`` (HTTP): a draws table.

A sample is made once per (data, scenario sample) and cached (:func:`sample_for`), so the
model, the independent check and the result's figures all see the very same draws.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from .errors import InputError, Problem
from .perturbations import MINERALS, Perturbations
from .schema import (
    MAX_DRAW_ROWS,
    STUDY_LEVELS,
    DrawRow,
    DrawsFile,
    DrawsTable,
    SampleSpec,
    Scenario,
)

if TYPE_CHECKING:
    from .data import ProjectData

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMETERS = PACKAGE_ROOT / "inputs" / "facts" / "uncertainty.csv"
# A sample of every run's recommended portfolio in the reports when its scenario has none
# (CONTRACT section 7a: the data's default model, at least 500 draws, a stated seed).
ASSESS_DRAWS, ASSESS_SEED = 1000, 1
MAX_SAMPLE_CELLS = 2_000_000  # draws x projects of one sample (memory ~ 4 x 8 bytes each)
BASE_YEAR = 2025  # the data's valuation base year (inputs/README.md): a study's age is from it
FACTORS = ("price", "overrun", "output", "available")


@dataclass(frozen=True, eq=False)
class Sample:
    """N equally likely draws: four (N, n) factor arrays in the table's row order."""

    labels: np.ndarray  # (N,) the draw labels
    price: np.ndarray
    overrun: np.ndarray
    output: np.ndarray
    available: np.ndarray
    source: str  # "generator", "default", "table" or "file"
    seed: int | None = None

    @property
    def n_draws(self) -> int:
        return len(self.labels)

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for a in (self.labels, self.price, self.overrun, self.output, self.available):
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())
        return h.hexdigest()

    def value_coefficients(self, data: ProjectData) -> np.ndarray:
        """(N, n) ``a_sp = available * value_p * price - equity_p * overrun``: a 100 % stake's
        NPV in each draw (R_s = sum_p a_sp s_p - deal_p x_p)."""
        equity = data.col("equity_value_musd")
        value = data.col("npv_musd") + equity
        return self.available * value * self.price - equity * self.overrun

    def cost_coefficients(self, data: ProjectData) -> np.ndarray:
        """(N, n) the price of a 100 % stake in each draw, ``equity_p * overrun``."""
        return data.col("equity_value_musd") * self.overrun


# ---------------------------------------------------------------------------------------------
# the generator (shared with the batch engine's Monte Carlo)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """One draw's perturbation of a table (arrays in row order)."""

    index: int
    price: dict[str, float]  # per mineral
    overrun: np.ndarray  # per project, on equity_value_musd
    output: np.ndarray  # per project, on every output
    disrupted: list[str]  # countries

    def summary(self) -> dict[str, Any]:
        """What a result row records of its draw (the arrays in brief; the draw itself is
        re-made exactly by ``make_draw(spec, data, index)``)."""
        return {"index": self.index, "price": self.price,
                "capex_overrun": _brief(self.overrun), "output_factor": _brief(self.output),
                "disrupted_countries": self.disrupted}


def _brief(a: np.ndarray) -> dict[str, float]:
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max())}


def make_draw(spec: Perturbations, seed: int, data: ProjectData, index: int) -> Draw:
    """Draw ``index`` of the perturbations ``spec`` from ``(seed, index)`` alone. The random
    numbers are always taken in the same order (price normals, capex overruns, output factors,
    disruptions), whichever perturbations are on, so switching one on does not change the
    others (common random numbers across variants of a study)."""
    rng = np.random.default_rng([seed, index])
    n = data.n
    z = np.linalg.cholesky(spec.correlation_matrix()) @ rng.standard_normal(len(MINERALS))
    price = {m: float(spec.price[m].from_normal(z[k])) if m in spec.price else 1.0
             for k, m in enumerate(MINERALS)}
    zc = rng.standard_normal(n)
    zo = rng.standard_normal(n)
    codes, names = data.country_codes
    u = rng.random(len(names))
    overrun = spec.capex_overrun.from_normal(zc) if spec.capex_overrun else np.ones(n)
    output = spec.output.from_normal(zo) if spec.output else np.ones(n)
    disrupted: list[str] = []
    if spec.disruption is not None:
        p = np.array([spec.disruption.countries.get(c, spec.disruption.default) for c in names])
        disrupted = [c for c, hit in zip(names, u < p, strict=True) if hit]
    return Draw(index=index, price=price, overrun=np.asarray(overrun, dtype=float),
                output=np.asarray(output, dtype=float), disrupted=disrupted)


def generated(data: ProjectData, spec: Perturbations, draws: int, seed: int) -> Sample:
    """The generator's sample: draws 0..N-1 of ``spec`` from ``seed``."""
    mineral = data.frame["mineral"].to_numpy()
    country = data.frame["country"].to_numpy()
    cols = {k: np.empty((draws, data.n)) for k in FACTORS}
    for i in range(draws):
        d = make_draw(spec, seed, data, i)
        cols["price"][i] = np.array([d.price[m] for m in MINERALS])[_mineral_index(mineral)]
        cols["overrun"][i] = d.overrun
        cols["output"][i] = d.output
        cols["available"][i] = ~np.isin(country, d.disrupted)
    return Sample(np.arange(draws), **cols, source="generator", seed=seed)


def _mineral_index(mineral: np.ndarray) -> np.ndarray:
    return np.array([MINERALS.index(m) for m in mineral])


# ---------------------------------------------------------------------------------------------
# the data's default uncertainty model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultModel:
    """The parameters of inputs/facts/uncertainty.csv (inputs/README.md explains each)."""

    overrun_median: dict[str, float]
    overrun_sigma: dict[str, float]
    value_median: dict[str, float]
    value_sigma: dict[str, float]
    output_median: dict[str, float]
    output_sigma: dict[str, float]
    price_sigma: dict[str, float]
    price_corr: dict[str, float]
    disruption: dict[str, float]
    age_sigma_per_year: float
    age_grace_years: float

    def correlation(self) -> np.ndarray:
        k = len(MINERALS)
        c = np.eye(k)
        for i in range(k):
            for j in range(i + 1, k):
                v = self.price_corr.get(f"{MINERALS[i]}|{MINERALS[j]}",
                                        self.price_corr.get(f"{MINERALS[j]}|{MINERALS[i]}", 0.0))
                c[i, j] = c[j, i] = v
        return c


@cache
def default_model(path: Path = DEFAULT_PARAMETERS) -> DefaultModel:
    """Read (once) the default uncertainty model's parameters."""
    got: dict[str, dict[str, float]] = {}
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            got.setdefault(row["name"], {})[row["key"]] = float(row["value"])
    need = ("overrun_median", "overrun_sigma", "value_median", "value_sigma", "output_median",
            "output_sigma", "price_sigma", "price_corr", "disruption")
    missing = [k for k in need if k not in got]
    if missing:
        raise InputError(f"{path}: no rows for {', '.join(missing)}", loc=("uncertainty",))
    for k in need[:6]:
        absent = [lv for lv in STUDY_LEVELS if lv not in got[k]]
        if absent:
            raise InputError(f"{path}: {k} has no value for study level(s) {absent}",
                             loc=("uncertainty",))
    return DefaultModel(**{k: got[k] for k in need},
                        age_sigma_per_year=got.get("age_sigma_per_year", {}).get("all", 0.0),
                        age_grace_years=got.get("age_grace_years", {}).get("all", 0.0))


def default_sample(data: ProjectData, draws: int, seed: int) -> Sample:
    """The data's default uncertainty model: for draw ``s`` (numbers from ``(seed, s)``),
    price = M[mineral] x V_p, overrun O_p, output Q_p, lognormal around each study level's
    median with its spread (overrun and value spreads widened for studies older than the grace
    period: sqrt(sigma^2 + extra years x age_sigma_per_year^2)); the minerals' log price factors
    jointly normal with ``price_corr``; each host country disrupted with its probability, all
    its projects together (a country event)."""
    mdl = default_model()
    level = data.frame["study_level"].fillna("estimate").to_numpy()
    age = _age(data)
    extra = np.maximum(0.0, age - mdl.age_grace_years) * mdl.age_sigma_per_year ** 2

    def per_row(d: dict[str, float]) -> np.ndarray:
        return np.array([d[lv] for lv in level])

    o_med, v_med, q_med = (per_row(mdl.overrun_median), per_row(mdl.value_median),
                           per_row(mdl.output_median))
    o_sig = np.sqrt(per_row(mdl.overrun_sigma) ** 2 + extra)
    v_sig = np.sqrt(per_row(mdl.value_sigma) ** 2 + extra)
    q_sig = per_row(mdl.output_sigma)
    m_sig = np.array([mdl.price_sigma[m] for m in MINERALS])
    chol = np.linalg.cholesky(mdl.correlation())
    mi = _mineral_index(data.frame["mineral"].to_numpy())
    codes, names = data.country_codes
    p_down = np.array([mdl.disruption.get(c, mdl.disruption["default"]) for c in names])
    n = data.n
    cols = {k: np.empty((draws, n)) for k in FACTORS}
    for i in range(draws):
        rng = np.random.default_rng([seed, i])
        zm = chol @ rng.standard_normal(len(MINERALS))
        zv, zo, zq = rng.standard_normal((3, n))
        u = rng.random(len(names))
        cols["price"][i] = np.exp(m_sig * zm)[mi] * v_med * np.exp(v_sig * zv)
        cols["overrun"][i] = o_med * np.exp(o_sig * zo)
        cols["output"][i] = q_med * np.exp(q_sig * zq)
        cols["available"][i] = (u >= p_down)[codes]
    return Sample(np.arange(draws), **cols, source="default", seed=seed)


def _age(data: ProjectData) -> np.ndarray:
    """Years between each row's ``as_of`` and the valuation base year (0 when undated)."""
    years = pd.to_numeric(data.frame["as_of"].astype("string").str[:4], errors="coerce")
    return np.clip(BASE_YEAR - years.fillna(BASE_YEAR).to_numpy(dtype=float), 0.0, None)


# ---------------------------------------------------------------------------------------------
# draws tables
# ---------------------------------------------------------------------------------------------


def from_table(rows: pd.DataFrame | list[dict[str, Any]] | list[DrawRow], data: ProjectData,
               *, where: tuple[str | int, ...] = ("scenario", "uncertainty", "draws_table"),
               source: str = "table") -> Sample:
    """A sample from a draws table (long format, CONTRACT section 8): a (draw, project) pair
    left out has every factor 1 and is available. Every problem is an InputError naming the
    row and column."""
    if isinstance(rows, pd.DataFrame):
        frame = rows
    else:
        frame = pd.DataFrame([r.model_dump() if isinstance(r, DrawRow) else r for r in rows])
    if len(frame) == 0:
        raise InputError("the draws table has no rows", loc=where)
    if len(frame) > MAX_DRAW_ROWS:
        raise InputError(f"the draws table has {len(frame):,} rows, over the cap of "
                         f"{MAX_DRAW_ROWS:,}", loc=where)
    problems: list[Problem] = []
    for c in ("draw", "project_id"):
        if c not in frame.columns:
            problems.append(Problem((*where, c), f"the draws table has no column {c!r}"))
    unknown = [c for c in frame.columns if c not in ("draw", "project_id", *FACTORS)]
    problems += [Problem((*where, c), f"unknown column {c!r} in the draws table (columns: "
                                      f"draw, project_id, {', '.join(FACTORS)})") for c in unknown]
    if problems:
        raise InputError(problems)
    checked = []
    for i, rec in enumerate(frame.to_dict(orient="records")):
        rec = {k: v for k, v in rec.items() if not _empty(v)}
        try:
            checked.append(DrawRow.model_validate(_typed(rec)))
        except ValidationError as exc:
            for err in exc.errors()[:3]:
                col = ".".join(str(p) for p in err["loc"]) or "row"
                problems.append(Problem((*where, i, col), f"draws table row {i + 1}, column "
                                        f"{col!r}: {err['msg']}"))
        if len(problems) >= 50:
            break
    if problems:
        raise InputError(problems)
    pos = data.positions
    bad = [(i, r.project_id) for i, r in enumerate(checked) if r.project_id not in pos]
    if bad:
        raise InputError([Problem((*where, i, "project_id"), f"draws table row {i + 1}: "
                                  f"unknown project {pid!r}") for i, pid in bad[:50]])
    labels = np.array(sorted({r.draw for r in checked}))
    at = {d: k for k, d in enumerate(labels.tolist())}
    _cap_size(len(labels), data.n, where)
    cols = {k: np.ones((len(labels), data.n)) for k in FACTORS}
    seen: dict[tuple[int, int], int] = {}
    for i, r in enumerate(checked):
        key = (at[r.draw], pos[r.project_id])
        if key in seen:
            raise InputError(f"draws table row {i + 1}: draw {r.draw} of {r.project_id} is also "
                             f"row {seen[key] + 1}", loc=(*where, i))
        seen[key] = i
        for k in FACTORS:
            cols[k][key] = float(getattr(r, k))
    return Sample(labels, **cols, source=source)


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v == ""


def _typed(rec: dict[str, Any]) -> dict[str, Any]:
    """CSV cells are text: numbers as numbers (strict validation stays for JSON rows)."""
    out = {}
    for k, v in rec.items():
        if isinstance(v, str) and k != "project_id":
            try:
                num = float(v)
                v = int(num) if k in ("draw", "available") and num.is_integer() else num
            except ValueError:
                pass
        elif isinstance(v, np.generic):
            v = v.item()
        if k in ("draw", "available") and isinstance(v, float) and v.is_integer():
            v = int(v)
        if k == "project_id":
            v = str(v)
        out[k] = v
    return out


def read_table(path: Path, data: ProjectData) -> Sample:
    """A draws table from a CSV file."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"draws file {str(path)!r} does not exist",
                         loc=("scenario", "uncertainty", "draws_file")) from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"draws file {str(path)!r} is not a readable CSV: {exc}",
                         loc=("scenario", "uncertainty", "draws_file")) from None
    return from_table(frame, data, where=("draws_file",), source="file")


def to_table(sample: Sample, data: ProjectData) -> pd.DataFrame:
    """The sample as a draws table (one line per draw and project, every factor written)."""
    n, ids = data.n, np.array(data.ids)
    return pd.DataFrame({
        "draw": np.repeat(sample.labels, n),
        "project_id": np.tile(ids, sample.n_draws),
        **{k: (getattr(sample, k).ravel() if k != "available"
               else getattr(sample, k).ravel().astype(int)) for k in FACTORS}})


def sample_cells(uncertainty: Any, n_projects: int) -> int:
    """The larger of a scenario sample's and its fresh sample's size, draws x projects, from
    the spec alone (a model or raw JSON; nothing is drawn): what a service caps before it
    builds anything."""
    if uncertainty is None:
        return 0
    raw = isinstance(uncertainty, dict)  # read in place: no copy of a large draws table

    def get(key: str) -> Any:
        return uncertainty.get(key) if raw else getattr(uncertainty, key, None)

    fresh = int(get("fresh_draws") or 0)
    table = get("draws_table")
    if table is not None:
        draws = len({r.get("draw") if isinstance(r, dict) else r.draw for r in table})
    elif get("draws_file") is not None:
        draws = 0  # a file on the server's disk: the CLI's, sized when read
    else:
        draws = int(get("draws") or 0)
    return max(draws, fresh) * n_projects


def check_spec(data: ProjectData, spec: SampleSpec | DrawsFile | DrawsTable) -> None:
    """The cheap checks of a scenario's sample, without drawing it: its size, a draws table's
    project ids, a draws file's existence (what a batch checks for every row up front)."""
    where = ("scenario", "uncertainty")
    _cap_size(sample_cells(spec, 1), data.n, where)
    if isinstance(spec, DrawsTable):
        pos = data.positions
        bad = [(i, r.project_id) for i, r in enumerate(spec.draws_table)
               if r.project_id not in pos]
        if bad:
            raise InputError([Problem((*where, "draws_table", i, "project_id"),
                                      f"draws table row {i + 1}: unknown project {pid!r}")
                              for i, pid in bad[:50]])
    elif isinstance(spec, DrawsFile) and not Path(spec.draws_file).is_file():
        raise InputError(f"draws file {spec.draws_file!r} does not exist",
                         loc=(*where, "draws_file"))


def _cap_size(draws: int, n: int, where: tuple) -> None:
    if draws * n > MAX_SAMPLE_CELLS:
        raise InputError(f"a sample of {draws:,} draws x {n:,} projects = {draws * n:,} cells "
                         f"is over the cap of {MAX_SAMPLE_CELLS:,} (fewer draws, or fewer "
                         "projects)", loc=where)


# ---------------------------------------------------------------------------------------------
# a scenario's sample
# ---------------------------------------------------------------------------------------------

_CACHE: OrderedDict[tuple[str, ...], Sample] = OrderedDict()
_CACHE_SIZE = 6


def _cached(key: tuple[str, ...], make) -> Sample:
    """A sample made once per key and kept (a few, least recently used dropped)."""
    got = _CACHE.get(key)
    if got is None:
        got = make()
        _CACHE[key] = got
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return got


def sample_for(data: ProjectData, sc: Scenario) -> Sample | None:
    """The scenario's sample on ``data`` (None without ``uncertainty``), made once."""
    spec = sc.uncertainty
    if spec is None:
        return None
    return _cached((data.sha256, "own", _spec_key(spec)), lambda: make_sample(data, spec))


def _spec_key(spec: Any) -> str:
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    if isinstance(spec, DrawsFile):  # the file's content may change under the same name
        try:
            st = Path(spec.draws_file).stat()
            text += f"|{st.st_size}|{st.st_mtime_ns}"
        except OSError:
            pass
    return hashlib.sha256(text.encode()).hexdigest()


def make_sample(data: ProjectData, spec: SampleSpec | DrawsFile | DrawsTable) -> Sample:
    if isinstance(spec, DrawsTable):
        return from_table(spec.draws_table, data)
    if isinstance(spec, DrawsFile):
        return read_table(Path(spec.draws_file), data)
    _cap_size(spec.draws, data.n, ("scenario", "uncertainty", "draws"))
    if spec.any:
        return generated(data, spec, spec.draws, spec.seed)
    return default_sample(data, spec.draws, spec.seed)


def fresh_sample(data: ProjectData, sc: Scenario) -> Sample | None:
    spec = sc.uncertainty
    if spec is None or spec.fresh_draws == 0:
        return None
    return _cached((data.sha256, "fresh", _spec_key(spec)), lambda: _fresh(data, sc))


def _fresh(data: ProjectData, sc: Scenario) -> Sample:
    """An independent sample to judge a run solved under uncertainty on: the scenario's own
    generator with seed + 1, or (a table or file sample) the data's default model with seed
    :data:`ASSESS_SEED`; ``fresh_draws`` draws (None when 0)."""
    spec = sc.uncertainty
    n = spec.fresh_draws
    _cap_size(n, data.n, ("scenario", "uncertainty", "fresh_draws"))
    if isinstance(spec, SampleSpec):
        if spec.any:
            return generated(data, spec, n, spec.seed + 1)
        return default_sample(data, n, spec.seed + 1)
    return default_sample(data, n, ASSESS_SEED)


def assessment_sample(data: ProjectData, sc: Scenario) -> Sample:
    """The sample a report measures a run's portfolio on: the scenario's own, else the data's
    default model (:data:`ASSESS_DRAWS` draws, seed :data:`ASSESS_SEED`)."""
    return sample_for(data, sc) or _cached(
        (data.sha256, "assess", str(ASSESS_DRAWS), str(ASSESS_SEED)),
        lambda: default_sample(data, ASSESS_DRAWS, ASSESS_SEED))


__all__ = ["ASSESS_DRAWS", "ASSESS_SEED", "Draw", "Sample", "assessment_sample", "check_spec",
           "sample_cells",
           "default_model", "default_sample", "fresh_sample", "from_table", "generated",
           "make_draw", "make_sample", "read_table", "sample_for", "to_table"]
