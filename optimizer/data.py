"""Loading and validating candidate projects and scenarios.

Everything is checked before a model is built; all problems found are raised together as one
:class:`~optimizer.errors.InputError`, each naming the row and column (or scenario field).
Checks on the table are vectorised with pandas so validating 10,000 rows takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from .errors import InputError, Problem
from .sample import check_spec
from .schema import (
    AS_OF_RE,
    COLUMNS,
    MINERALS,
    OUTPUT_COLUMNS,
    PARTNERS,
    PRODUCTS,
    PROJECT_ID_RE,
    SPEND_SHARE_RE,
    SPEND_SHARE_TOL,
    Column,
    Scenario,
    iso_countries,
    spend_share_column,
)

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROJECTS = PACKAGE_ROOT / "inputs" / "projects.csv"
DEFAULT_SCENARIO = PACKAGE_ROOT / "inputs" / "scenarios" / "base.json"
MAX_PROBLEMS = 200  # stop collecting after this many; the first ones are what a user fixes

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass(frozen=True, eq=False)
class ProjectData:
    """A validated candidate-projects table plus the arrays the model is built from."""

    frame: pd.DataFrame  # one row a project, contract columns, typed; index 0..n-1
    n_years: int  # number of plan years in the spend profile (>= 1)
    spend: np.ndarray  # (n, n_years) fraction of each project's cost paid in each year
    sha256: str  # hash of the canonical content (same for CSV, JSON rows or a DataFrame)
    groups: dict[str, list[int]] = field(default_factory=dict)  # exclusive group -> rows
    requires: list[tuple[int, int]] = field(default_factory=list)  # (row, required row)
    # set only on a Monte-Carlo draw's perturbed copy (ProjectData.perturbed):
    unavailable: np.ndarray | None = None  # bool per row: may not be chosen in this draw
    output_factor: np.ndarray | None = None  # per-row factor on every output column

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> list[str]:
        return self.frame["project_id"].tolist()

    @cached_property
    def positions(self) -> dict[str, int]:
        """project_id -> row position."""
        return dict(zip(self.frame["project_id"], range(self.n), strict=True))

    def col(self, name: str) -> np.ndarray:
        """A numeric column as a float array (read-only; converted once and cached: the
        per-solve code reads the same columns thousands of times in a batch)."""
        cache = self._columns
        arr = cache.get(name)
        if arr is None:
            arr = self.frame[name].to_numpy(dtype=float, copy=True)
            arr.flags.writeable = False
            cache[name] = arr
        return arr

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        return {}

    def perturbed(self, *, equity: np.ndarray, npv: np.ndarray, output_factor: np.ndarray,
                  unavailable: np.ndarray) -> ProjectData:
        """A copy whose equity values, NPVs and outputs are those of a Monte-Carlo draw and
        whose ``unavailable`` rows may not be chosen. It shares the frame (text columns) and
        overrides the numbers ``col()`` and ``outputs`` return; ``sha256`` stays the base
        table's (a row records its draw separately)."""
        new = dataclasses.replace(self, unavailable=unavailable,
                                  output_factor=np.asarray(output_factor, dtype=float))
        cols = {"equity_value_musd": equity, "npv_musd": npv}
        base = self.outputs
        for j, m in enumerate(PRODUCTS):
            cols[OUTPUT_COLUMNS[m]] = base[:, j] * new.output_factor
        for k, v in cols.items():
            v = np.array(v, dtype=float)
            v.flags.writeable = False
            new._columns[k] = v
        outs = np.column_stack([cols[OUTPUT_COLUMNS[m]] for m in PRODUCTS])
        outs.flags.writeable = False
        new.__dict__["outputs"] = outs
        for key in ("country_codes", "china_mask", "positions"):  # share what is unchanged
            if key in self.__dict__:
                new.__dict__[key] = self.__dict__[key]
        return new

    @cached_property
    def country_codes(self) -> tuple[np.ndarray, list[str]]:
        """(code per row, sorted country list): countries as small integers for bincount."""
        names, codes = np.unique(self.frame["country"].to_numpy(dtype=str), return_inverse=True)
        return codes, names.tolist()

    @cached_property
    def china_mask(self) -> np.ndarray:
        return self.frame["china_processing"].to_numpy(dtype=bool)

    @cached_property
    def outputs(self) -> np.ndarray:
        """(n, 5) whole-project annual output per product, in PRODUCTS order (read-only)."""
        arr = self.frame[[OUTPUT_COLUMNS[m] for m in PRODUCTS]].to_numpy(dtype=float, copy=True)
        arr.flags.writeable = False
        return arr

    def output(self) -> np.ndarray:
        """(n, 5) whole-project annual output per product, in PRODUCTS order."""
        return self.outputs

    def records(self) -> list[dict[str, Any]]:
        """Rows as JSON-ready dicts (None for empty optional cells)."""
        return _canonical_records(self.frame)


# ---------------------------------------------------------------------------------------------
# projects
# ---------------------------------------------------------------------------------------------


def load_projects(source: str | Path | pd.DataFrame | Iterable[Mapping[str, Any]] | None = None,
                  ) -> ProjectData:
    """Read and validate a projects table from a CSV path, a DataFrame or a list of row dicts.

    ``None`` loads the shipped ``inputs/projects.csv``. Raises :class:`InputError` naming every
    bad row and column.
    """
    if source is None:
        source = DEFAULT_PROJECTS
    if isinstance(source, (str, Path)):
        raw = read_projects_csv(Path(source))
    elif isinstance(source, pd.DataFrame):
        raw = source.copy()
    else:
        rows = list(source)
        bad = [Problem(("projects", i), f"row {i + 1}: must be an object")
               for i, r in enumerate(rows) if not isinstance(r, Mapping)]
        # in row dicts (JSON) NaN/inf are explicit values, not empty cells: null is empty
        bad += [Problem(("projects", i, str(k)), f"row {i + 1}"
                        + (f" (project_id {r.get('project_id')!r})" if r.get("project_id")
                           else "") + f", column {str(k)!r}: must be a finite number, got {v!r}")
                for i, r in enumerate(rows) if isinstance(r, Mapping)
                for k, v in r.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise InputError(bad)
        raw = pd.DataFrame.from_records(rows)
    return validate_projects(raw)


def read_projects_csv(source: Path | IO[bytes], label: str | None = None) -> pd.DataFrame:
    """Read a projects CSV as text cells (typing is validation's job). Empty cells stay empty
    strings: pandas' default would read Namibia's code ``NA`` as missing."""
    label = label or (f"projects file {str(source)!r}" if isinstance(source, Path)
                      else "the projects CSV")
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise InputError(f"{label} does not exist", loc=("projects",)) from None
    except IsADirectoryError:
        raise InputError(f"{label} is a directory, not a CSV file", loc=("projects",)) from None
    except PermissionError:
        raise InputError(f"{label} cannot be read (permission denied)",
                         loc=("projects",)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as exc:
        raise InputError(f"{label} is not a readable CSV: {exc}", loc=("projects",)) from None


def validate_projects(raw: pd.DataFrame) -> ProjectData:
    """Check a raw table against the column spec; return typed :class:`ProjectData`."""
    problems: list[Problem] = []
    if len(raw) == 0:
        raise InputError("the projects table has no rows", loc=("projects",))
    raw = raw.reset_index(drop=True)
    raw.columns = [str(c).strip() for c in raw.columns]

    years = _spend_years(raw.columns, problems)
    known = {c.name for c in COLUMNS} | {f"spend_share_{k}" for k in years}
    nul = [c for c in raw.columns if "\x00" in c]
    if nul:
        raise InputError("the projects table has a NUL character in a column name; is it a "
                         "binary file rather than a CSV?", loc=("projects",))
    for c in raw.columns:
        if c not in known:
            hint = difflib.get_close_matches(c, sorted(known), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(Problem(("projects", c), f"unknown column {c!r}{more}"))
    for c in COLUMNS:
        if c.required and c.name not in raw.columns:
            problems.append(Problem(("projects", c.name), f"missing required column {c.name!r}"))
    if problems:
        raise InputError(problems)

    ids = _texts(raw["project_id"])
    out = pd.DataFrame(index=raw.index)

    def where(i: int) -> str:
        pid = ids.iloc[i]
        return f"row {i + 1}" + (f" (project_id {pid!r})" if pid else "")

    def add(rows: Iterable[int], column: str, what: str) -> None:
        for i in rows:
            if len(problems) >= MAX_PROBLEMS:
                return
            bad = raw[column].iloc[i] if column in raw.columns else None
            shown = "" if bad is None else f", got {_show(bad)}"
            problems.append(Problem(("projects", int(i), column),
                                    f"{where(i)}, column {column!r}: {what}{shown}"))

    spend_cols = [spend_share_column(k) for k in years]
    for col in (*COLUMNS, *spend_cols):
        # an absent optional column is typed exactly like a present, empty one (same hash)
        cells = raw[col.name] if col.name in raw.columns else pd.Series("", index=raw.index)
        out[col.name] = _coerce(cells, col, add)

    # identity and enumerations
    add(np.flatnonzero(~ids.map(lambda s: bool(PROJECT_ID_RE.match(s)))), "project_id",
        "must match [A-Za-z0-9_.-]{1,64}")
    dup = ids.duplicated(keep="first") & (ids != "")
    for i in np.flatnonzero(dup):
        first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
        add([i], "project_id", f"duplicate of row {first + 1}")
    country = _texts(raw["country"]).str.upper()
    add(np.flatnonzero(~country.isin(iso_countries())), "country",
        "must be an ISO 3166-1 alpha-2 country code such as 'MW'")
    out["country"] = country
    mineral = _texts(raw["mineral"]).str.lower()
    add(np.flatnonzero(~mineral.isin(MINERALS)), "mineral",
        "unknown mineral; must be one of " + ", ".join(MINERALS))
    out["mineral"] = mineral
    partner = _texts(raw["partner"]).str.upper()
    add(np.flatnonzero(~partner.isin(PARTNERS)), "partner",
        "must be one of " + ", ".join(PARTNERS))
    out["partner"] = partner
    out["project_id"] = ids

    # cross-column rules
    # NUL in any text cell: PostgreSQL cannot store it, and no real cell has one
    for c in raw.columns:
        if c in out.columns and not pd.api.types.is_numeric_dtype(raw[c].dtype):
            cells = raw[c].astype(object)
            has = cells.map(lambda v: isinstance(v, str) and "\x00" in v, na_action="ignore")
            add(np.flatnonzero(has.fillna(False).to_numpy(dtype=bool)), c,
                "must not contain the NUL character")
    ree = out["output_ree_t"]
    magnets = out["output_ndpr_t"].fillna(0.0) + out["output_dytb_t"].fillna(0.0)
    add(np.flatnonzero((magnets > ree * (1 + 1e-12)).fillna(False)), "output_ndpr_t",
        "output_ndpr_t + output_dytb_t exceed output_ree_t (NdPr and Dy+Tb oxides are part "
        "of the TREO)")
    both = out["min_stake"].notna() & out["max_stake"].notna()
    add(np.flatnonzero(both & (out["min_stake"] > out["max_stake"])), "min_stake",
        "min_stake is greater than max_stake")
    if years:
        shares = out[[c.name for c in spend_cols]]
        given = pd.concat([_texts(raw[c.name]).ne("") for c in spend_cols], axis=1).any(axis=1)
        total = shares.fillna(0.0).sum(axis=1)
        off = given & ((total - 1.0).abs() > SPEND_SHARE_TOL)
        for i in np.flatnonzero(off):
            add([i], spend_cols[0].name,
                f"spend_share_1..{max(years)} must sum to 1, they sum to {total.iloc[i]:.6g}")
        shares = shares.fillna(0.0)
        shares.loc[~given, spend_cols[0].name] = 1.0
        out[[c.name for c in spend_cols]] = shares
    known_ids = set(ids)
    req = out["requires"]
    for i in np.flatnonzero(req.notna()):
        if req.iloc[i] not in known_ids:
            add([i], "requires", f"names unknown project {req.iloc[i]!r}")
        elif req.iloc[i] == ids.iloc[i]:
            add([i], "requires", "a project cannot require itself")
    if not problems:
        for cycle in _requires_cycles(ids.tolist(), req.tolist()):
            i = ids.tolist().index(cycle[0])
            add([i], "requires", "the requires links form a cycle "
                + " -> ".join([*cycle, cycle[0]]) + "; a cycle would force all or none of "
                "them: model such a package as one project, or drop one link")
    if problems:
        raise InputError(problems)

    out = out[[c.name for c in COLUMNS] + [c.name for c in spend_cols]]
    n_years = max(years) if years else 1
    spend = (out[[c.name for c in spend_cols]].to_numpy(dtype=float) if years
             else np.ones((len(out), 1)))
    pos = {pid: i for i, pid in enumerate(out["project_id"])}
    groups: dict[str, list[int]] = {}
    for i, g in enumerate(out["exclusive_group"]):
        if isinstance(g, str):
            groups.setdefault(g, []).append(i)
    requires = [(i, pos[r]) for i, r in enumerate(out["requires"]) if isinstance(r, str)]
    return ProjectData(frame=out, n_years=n_years, spend=spend, sha256=dataset_sha256(out),
                       groups=groups, requires=requires)


def _requires_cycles(ids: list[str], requires: list[Any]) -> list[list[str]]:
    """Cycles of the ``requires`` graph (each project requires at most one other, so every
    cycle is found by walking the links from each project once)."""
    nxt = {p: r for p, r in zip(ids, requires, strict=True) if isinstance(r, str)}
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = done
    cycles = []
    for start in ids:
        path: list[str] = []
        p: str | None = start
        while p is not None and p not in state:
            state[p] = 1
            path.append(p)
            p = nxt.get(p)
        if p is not None and state.get(p) == 1:
            cycles.append(path[path.index(p):])
        for q in path:
            state[q] = 2
    return cycles


def _spend_years(columns: Iterable[str], problems: list[Problem]) -> list[int]:
    years = sorted(int(m.group(1)) for c in columns if (m := SPEND_SHARE_RE.match(c)))
    if years and years != list(range(1, len(years) + 1)):
        problems.append(Problem(("projects", "spend_share_1"),
                                f"spend_share columns must be spend_share_1..spend_share_T with no "
                                f"gaps; found years {years}"))
    return years


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _texts(series: pd.Series) -> pd.Series:
    """Cells as stripped strings, '' for missing (vectorised form of :func:`_text`)."""
    if pd.api.types.is_numeric_dtype(series.dtype) and series.dtype != bool:
        num = series.astype(float)
        return num.map(repr).where(num.notna(), "")
    return series.astype(object).where(series.notna(), "").astype(str).str.strip()


def _show(v: Any) -> str:
    t = _text(v)
    return "an empty cell" if t == "" else repr(t if len(t) <= 40 else t[:37] + "...")




def _coerce(series: pd.Series, col: Column, add) -> pd.Series:
    """Type one column; report unparsable, missing, non-finite and out-of-range cells."""
    numeric_input = pd.api.types.is_numeric_dtype(series.dtype) and series.dtype != bool
    if col.kind in ("float", "int") and numeric_input:
        num = series.astype(float)  # already numbers (DataFrame / JSON input): no parsing
        empty = num.isna()
        text = pd.Series("", index=series.index)
    else:
        text = _texts(series)
        empty = text.eq("")
        if col.kind in ("float", "int"):
            num = pd.to_numeric(text.where(~empty, None), errors="coerce").astype(float)
    if col.kind in ("float", "int"):
        unparsable = num.isna() & ~empty
        add(np.flatnonzero(unparsable & ~text.str.lower().isin(["nan", "inf", "-inf",
                                                                 "infinity", "-infinity"])),
            col.name, "not a number")
        nonfinite = (unparsable & text.str.lower().isin(["nan"])) | np.isinf(num)
        nonfinite |= unparsable & text.str.lower().isin(["inf", "-inf", "infinity", "-infinity"])
        add(np.flatnonzero(nonfinite), col.name, "must be a finite number")
        if col.required:
            add(np.flatnonzero(empty), col.name, "missing value")
        ok = num.notna() & ~np.isinf(num)
        if col.lo is not None:
            low = num <= col.lo if col.lo_open else num < col.lo
            add(np.flatnonzero(ok & low), col.name, f"out of range: must be {col.rule}")
        if col.hi is not None:
            add(np.flatnonzero(ok & (num > col.hi)), col.name, f"out of range: must be {col.rule}")
        if col.lo is not None:
            ok &= ~low
        if col.hi is not None:
            ok &= ~(num > col.hi)
        if col.kind == "int":
            frac = ok & (num != np.round(num))
            add(np.flatnonzero(frac), col.name, "must be a whole number")
            return num.where(ok & ~frac).astype("Int64")
        if col.default is not None:
            return num.where(ok, np.where(empty, col.default, np.nan))
        return num.where(ok)
    if col.kind == "bool":
        low = text.str.lower()
        add(np.flatnonzero(~low.isin(_TRUE | _FALSE)), col.name, "must be true or false")
        return low.isin(_TRUE)
    if col.required:
        add(np.flatnonzero(empty), col.name, "missing value")
    if col.kind == "choice":
        low = text.str.lower()
        add(np.flatnonzero(~empty & ~low.isin(col.choices)), col.name, f"must be {col.rule}")
        return low.where(~empty, col.default)
    if col.kind == "date":
        add(np.flatnonzero(~empty & ~text.map(_valid_date)), col.name, f"must be {col.rule}")
    return text.where(~empty, None)


def _valid_date(v: str) -> bool:
    """``YYYY-MM`` or a real calendar date ``YYYY-MM-DD``."""
    if not AS_OF_RE.match(v):
        return False
    if len(v) == 7:
        return True
    try:
        datetime.date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _canonical_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    recs = []
    for row in frame.to_dict(orient="records"):
        rec = {}
        for k, v in row.items():
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                rec[k] = None
            elif isinstance(v, (np.bool_, bool)):
                rec[k] = bool(v)
            elif isinstance(v, (np.integer,)):
                rec[k] = int(v)
            elif isinstance(v, (np.floating, float)):
                rec[k] = float(v)
            else:
                rec[k] = v
        recs.append(rec)
    return recs


def dataset_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of the validated table's content: the same rows give the same hash whether they
    came as CSV, JSON rows or a DataFrame. Numbers are hashed by their float64 bits, text by its
    characters, column by column (vectorised: ~10 ms for 10,000 rows)."""
    h = hashlib.sha256()
    for name in frame.columns:
        col = frame[name]
        h.update(b"\x1e" + name.encode())
        if col.dtype == bool:
            h.update(col.to_numpy(dtype=np.uint8).tobytes())
        elif pd.api.types.is_numeric_dtype(col.dtype):
            vals = col.to_numpy(dtype=float, na_value=np.nan)
            vals = np.where(np.isnan(vals), np.nan, vals + 0.0)  # one NaN, no -0.0
            h.update(vals.astype("<f8").tobytes())
        else:
            h.update("\x1f".join("\x00" if v is None else str(v) for v in col).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario | None = None) -> Scenario:
    """Read and validate a scenario from a JSON/YAML file, a dict or a Scenario.

    ``None`` loads the shipped ``inputs/scenarios/base.json``.
    """
    if source is None:
        source = DEFAULT_SCENARIO
    if isinstance(source, Scenario):
        # A Scenario object may have been changed without validation (``model_copy(update=)``
        # does not validate): check it again, so no unvalidated number reaches the model.
        source = _plain(source.model_dump(warnings=False))
    if isinstance(source, (str, Path)):
        path = Path(source)
        source = read_json_or_yaml(path, "scenario file", "scenario")
        source = _draws_file_beside(source, path.parent)
    if not isinstance(source, Mapping):
        raise InputError("a scenario must be a JSON object", loc=("scenario",))
    try:
        return Scenario.model_validate(dict(source))
    except ValidationError as exc:
        raise scenario_error(exc) from None


def _draws_file_beside(raw: Any, folder: Path) -> Any:
    """A scenario file's ``uncertainty.draws_file`` is read from the scenario's folder when
    relative (CONTRACT section 8)."""
    unc = raw.get("uncertainty") if isinstance(raw, dict) else None
    if isinstance(unc, dict) and isinstance(unc.get("draws_file"), str):
        f = Path(unc["draws_file"])
        if not f.is_absolute():
            raw = {**raw, "uncertainty": {**unc, "draws_file": str((folder / f).resolve())}}
    return raw


def read_json_or_yaml(path: Path, what: str, loc: str) -> Any:
    """A JSON or YAML (by suffix) file's content; InputError in plain words for a missing,
    unreadable, binary or malformed file."""
    label = f"{what} {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{label} does not exist", loc=(loc,)) from None
    except IsADirectoryError:
        raise InputError(f"{label} is a directory, not a JSON or YAML file",
                         loc=(loc,)) from None
    except PermissionError:
        raise InputError(f"{label} cannot be read (permission denied)", loc=(loc,)) from None
    except UnicodeDecodeError:
        raise InputError(f"{label} is not UTF-8 text (a binary file?)", loc=(loc,)) from None
    if "\x00" in text:
        raise InputError(f"{label} contains NUL characters (a binary file?)", loc=(loc,))
    yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        return _yaml_load(text) if yaml else json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's input
        raise InputError(f"{label} is not valid {'YAML' if yaml else 'JSON'}: {exc}",
                         loc=(loc,)) from None


def _plain(v: Any) -> Any:
    """numpy scalars inside a dumped scenario as Python numbers (strict validation would
    reject ``np.int64(4)`` as a whole number)."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _yaml_load(text: str) -> Any:
    """YAML with ``1e3`` read as a number: plain YAML 1.1 reads it as the string '1e3', which
    strict scenario validation would then reject."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def scenario_error(exc: ValidationError, prefix: tuple = ("scenario",)) -> InputError:
    """Turn pydantic's errors into one InputError naming each field."""
    return InputError(scenario_problems(exc.errors(), prefix))


def scenario_problems(errors: Iterable[Mapping[str, Any]], prefix: tuple = ("scenario",)
                      ) -> list[Problem]:
    """Pydantic error dicts for a scenario -> Problems worded as the library words them
    (shared with the HTTP service so both say the same thing)."""
    problems = []
    for e in errors:
        raw = [p for p in e["loc"] if p != "[key]"]
        # the tag of the uncertainty union (generator/file/table) is pydantic's, not a field
        loc = tuple(p for i, p in enumerate(raw)
                    if not (i and raw[i - 1] == "uncertainty" and p in ("generator", "file",
                                                                        "table")))
        path = ".".join(str(p) for p in loc) or "scenario"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            fields = sorted(Scenario.model_fields)
            hint = difflib.get_close_matches(str(loc[-1]), fields, n=1)
            msg = "unknown field" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f", got {e['input']!r}"
        problems.append(Problem((*prefix, *loc), f"scenario field {path!r}: {msg}"))
    return problems


def check_scenario_against(scenario: Scenario, data: ProjectData) -> None:
    """Cross-checks that need the data: named projects and countries must exist."""
    known = set(data.frame["project_id"])
    problems = []
    hosts = set(data.frame["country"])
    for i, c in enumerate(scenario.exclude_countries):
        if c not in hosts:
            problems.append(Problem(("scenario", "exclude_countries", i),
                                    f"scenario field 'exclude_countries': no project in the data "
                                    f"is in {c!r} (host countries: {', '.join(sorted(hosts))})"))
    for fld in ("include_projects", "exclude_projects"):
        for i, pid in enumerate(getattr(scenario, fld)):
            if pid not in known:
                hint = [k for k in known if k.lower() == pid.lower()] or \
                    difflib.get_close_matches(pid, sorted(known), n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(Problem(("scenario", fld, i),
                                        f"scenario field '{fld}': unknown project {pid!r}{more}"))
    if problems:
        raise InputError(problems)
    if scenario.uncertainty is not None:  # its size and names, before anything is drawn
        check_spec(data, scenario.uncertainty)


def scenario_sha256(scenario: Scenario) -> str:
    """SHA-256 of the scenario with every default filled in (what was actually solved)."""
    payload = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
