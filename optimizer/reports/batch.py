"""What a batch's report says, read from its output folder (CONTRACT section 6): the rows
(``results.jsonl``), the per-project selection (``selection.csv``), the summary
(``summary.json``) and the spec (``spec.json``). Nothing is solved.

Rows are read one line at a time and kept flat (figures, the chosen stakes, the reason a row
failed), so a 10,000-row batch fits in a few tens of MB.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import csvsafe
from ..batch.spec import parse_spec
from ..batch.summaries import quantiles
from ..batch.table import cell, varied_paths
from ..errors import InputError
from ..limits import entry_at
from ..schema import WITH_PORTFOLIO, Scenario

OK = WITH_PORTFOLIO
SIDE_BY_SIDE = 12  # rows in the side-by-side table of an HTML report


@dataclass
class BatchRow:
    index: int
    status: str
    objective: float | None
    best_bound: float | None
    mip_gap: float | None
    cost_musd: float | None
    kabil_musd: float | None
    us_musd: float | None
    npv_musd: float | None
    output_t: dict[str, float]
    stakes: dict[str, float]  # project_id -> stake, in the row's order
    varied: dict[str, Any]  # field path -> value this row used
    name: str = ""
    reason: str = ""  # why a row has no portfolio (diagnosis message or error)
    base_value: float | None = None  # Monte Carlo: the base portfolio's value in this draw
    base_regret: float | None = None
    base_meets_limits: bool | None = None
    base_broken: list[str] = field(default_factory=list)  # the limits it breaks, in brief
    # each broken cap or floor with its excess (rows written since the typed batch rows)
    base_breaches: list[dict[str, Any]] = field(default_factory=list)
    in_sample: dict[str, Any] | None = None  # a row solved under uncertainty: its block
    binding: list[str] = field(default_factory=list)  # scenario limits met exactly

    @property
    def ok(self) -> bool:
        return self.status in OK


@dataclass
class BatchView:
    """A batch's report content."""

    source: str  # where the rows came from: an output folder, or a stored batch
    name: str
    kind: str  # scenarios, grid, monte_carlo, frontier
    description: str
    spec: dict[str, Any]
    spec_sha256: str
    dataset_sha256: str
    varied: list[str]
    rows: list[BatchRow]
    selection: list[dict[str, Any]]
    summary: dict[str, Any]
    products: list[str] = field(default_factory=list)
    complete: bool = True

    @property
    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return dict(sorted(out.items()))

    @property
    def ok_rows(self) -> list[BatchRow]:
        return [r for r in self.rows if r.ok]

    @property
    def failed(self) -> list[BatchRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def frontier_kind(self) -> str | None:
        if self.kind != "frontier":
            return None
        return (self.spec.get("frontier") or {}).get("kind", "budget")

    @property
    def core(self) -> list[str]:
        return [s["project_id"] for s in self.selection if s["class"] == "core"]

    @property
    def borderline(self) -> list[str]:
        return [s["project_id"] for s in self.selection if s["class"] == "borderline"]

    def side_by_side(self, limit: int = SIDE_BY_SIDE) -> list[BatchRow]:
        """The rows shown next to each other: all of a small batch, else the first ones."""
        return self.rows[:limit]

    def limit_breaks(self) -> list[LimitBreak]:
        """Monte Carlo: each scenario limit the base portfolio, held fixed, breaks in some
        draws: in how many, and by how much (median and P95 of the excess over the limit)."""
        base_sc = self.spec.get("base") or {}
        by: dict[str, list[float | None]] = {}
        truncated = 0
        rows = [r for r in self.rows if r.base_meets_limits is not None]
        base = load_base(base_sc) if any(r.base_breaches for r in rows) else None
        for r in rows:
            if r.base_breaches or not r.base_broken:  # every break, each with its size
                for b in r.base_breaches:
                    fld = entry_at(base, b["path"]).field_path
                    scale = 100.0 if fld.split(".")[0] in SHARE_FIELDS else 1.0
                    by.setdefault(fld, []).append(float(b["excess"]) * scale)
                continue
            truncated += len(r.base_broken) >= BROKEN_KEPT  # an older folder: from the words
            for text in r.base_broken:
                fld, excess = parse_break(text, base_sc)
                by.setdefault(fld, []).append(excess)
        out = []
        for fld, xs in by.items():
            nums = [x for x in xs if x is not None]
            q = quantiles(nums) if nums else None
            out.append(LimitBreak(fld, path_words(fld), break_unit(fld), len(xs),
                                  len(xs) / len(rows) if rows else 0.0,
                                  q["p50"] if q else None, q["p95"] if q else None,
                                  truncated))
        out.sort(key=lambda b: (-b.draws, b.field))
        return out

    def regret_within(self) -> tuple[int, dict[str, float] | None]:
        """Monte Carlo: the base portfolio's regret among the draws where it stays within
        every limit (elsewhere it can "earn" more by overspending: negative regret)."""
        xs = [r.base_regret for r in self.rows
              if r.base_meets_limits and r.base_regret is not None]
        return len(xs), quantiles(xs)

    def grid_tables(self) -> list[GridTable]:
        """A grid's objective by its first field (rows) and second (columns); with more than
        two fields one table per combination of the others. A one-field grid is one column."""
        if self.kind != "grid" or not self.varied:
            return []
        grid = self.spec["grid"]
        f1 = self.varied[0]
        f2 = self.varied[1] if len(self.varied) > 1 else None
        rest = self.varied[2:]
        cell: dict[tuple, BatchRow] = {}
        for r in self.rows:
            cell[tuple(_key(r.varied.get(p)) for p in self.varied)] = r
        out = []
        for fixed in itertools.product(*(grid[p] for p in rest)):
            ys = list(grid[f1])
            xs = list(grid[f2]) if f2 else [None]
            values: list[list[float | None]] = []
            rows: list[list[BatchRow | None]] = []
            for y in ys:
                line, rline = [], []
                for x in xs:
                    key = (_key(y),) + ((_key(x),) if f2 else ()) + tuple(map(_key, fixed))
                    r = cell.get(key)
                    rline.append(r)
                    line.append(r.objective if r is not None and r.ok else None)
                values.append(line)
                rows.append(rline)
            out.append(GridTable(f1, f2, ys, xs, values, rows, dict(zip(rest, fixed,
                                                                        strict=True))))
        return out

    def frontier_view(self) -> FrontierView | None:
        """A frontier's points in order of the traded quantity, the base scenario's point,
        and the stretches where the objective stays flat with the limits that bind there."""
        fk = self.frontier_kind
        if fk is None or not self.varied:
            return None
        path = self.varied[0]
        pts = sorted((r for r in self.rows if r.ok and isinstance(r.varied.get(path),
                                                                   (int, float))),
                     key=lambda r: r.varied[path])
        base_x: float | None = None
        base_y: float | None = None
        if fk == "budget":
            base_x = (self.spec.get("base") or {}).get("budget_musd")
            hit = [r for r in pts if base_x is not None and abs(r.varied[path] - base_x) < 1e-9]
            base_y = hit[0].objective if hit else None
        elif pts:  # a supply frontier starts at the base scenario's NPV optimum
            base_x, base_y = pts[0].varied[path], pts[0].objective
        flats = []
        k = 0
        while k < len(pts) - 1:
            j = k
            while j + 1 < len(pts) and _same(pts[j + 1].objective, pts[k].objective):
                j += 1
            if j > k:
                stretch = pts[k:j + 1]
                binds: dict[str, None] = {}
                for r in stretch:
                    binds.update(dict.fromkeys(b for b in r.binding if b != path))
                flats.append(FlatStretch(stretch[0].varied[path], stretch[-1].varied[path],
                                         stretch[0].objective, [r.index for r in stretch],
                                         list(binds)))
            k = j + 1
        return FrontierView(path, pts, base_x, base_y, flats)

    def histogram(self, values: list[float], bins: int = 20) -> list[tuple[float, float, int]]:
        a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
        if a.size == 0:
            return []
        counts, edges = np.histogram(a, bins=min(bins, max(1, a.size)))
        return [(float(edges[i]), float(edges[i + 1]), int(counts[i]))
                for i in range(len(counts))]


BROKEN_KEPT = 5  # a batch row keeps at most this many broken limits (optimizer.batch.worker)


@dataclass
class LimitBreak:
    field: str
    words: str
    unit: str
    draws: int
    share: float
    median: float | None
    p95: float | None
    truncated_rows: int = 0  # rows that kept only the first BROKEN_KEPT broken limits


@dataclass
class GridTable:
    row_field: str
    col_field: str | None
    row_values: list[Any]
    col_values: list[Any]
    values: list[list[float | None]]  # objective [row][col]; None: no portfolio
    rows: list[list[BatchRow | None]]
    fixed: dict[str, Any]  # the other varied fields' values (grids of more than two fields)

    def marginals(self, axis: int) -> tuple[str, list[list[float | None]]]:
        """(unit, [[marginal]]) along the rows (axis 0: between row i and i + 1, per column)
        or the columns (axis 1): objective change per step of the field, scaled to a
        reader's unit (per US$100 M, per percentage point, or per unit)."""
        fld = self.row_field if axis == 0 else self.col_field
        vals = self.row_values if axis == 0 else self.col_values
        if fld is None:
            return "", []
        scale, unit = marginal_scale(fld)
        out: list[list[float | None]] = []
        if axis == 0:
            for i in range(len(vals) - 1):
                out.append([_slope(self.values[i][j], self.values[i + 1][j], vals[i],
                                   vals[i + 1], scale) for j in range(len(self.col_values))])
        else:
            for i in range(len(self.row_values)):
                out.append([_slope(self.values[i][j], self.values[i][j + 1], vals[j],
                                   vals[j + 1], scale) for j in range(len(vals) - 1)])
        return unit, out


@dataclass
class FlatStretch:
    low: float
    high: float
    objective: float | None
    indices: list[int]
    binding: list[str]  # limits that bind somewhere on it (the traded quantity left out)


@dataclass
class FrontierView:
    path: str
    points: list[BatchRow]
    base_x: float | None
    base_y: float | None
    flats: list[FlatStretch]


def _key(v: Any) -> Any:
    """A grid value as a dictionary key (lists from JSON become tuples; 1 and 1.0 alike)."""
    if isinstance(v, list):
        return tuple(_key(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def _slope(a: float | None, b: float | None, x0: Any, x1: Any, scale: float) -> float | None:
    if a is None or b is None or not all(isinstance(x, (int, float)) for x in (x0, x1)) \
            or x1 == x0:
        return None
    return (b - a) / (x1 - x0) * scale


def marginal_scale(path: str) -> tuple[float, str]:
    """How a marginal along a field is stated: (factor on d objective / d value, unit)."""
    head = path.split(".")[0]
    if head.endswith("_musd"):
        return 100.0, "per extra US$100 M"
    if head in SHARE_FIELDS:
        return 0.01, "per percentage point"
    return 1.0, "per unit of " + path


SHARE_FIELDS = ("max_country_share", "max_china_processing_share", "max_chinese_ownership")
FIELD_WORDS = {
    "budget_musd": "total budget (US$ M)", "kabil_budget_musd": "KABIL budget (US$ M)",
    "us_budget_musd": "US partners' budget (US$ M)",
    "max_country_share": "country cap (share of spend)",
    "min_countries": "host countries, at least",
    "max_projects": "projects, at most", "max_avg_risk": "average-risk cap (1-10)",
    "max_china_processing_share": "cap on China-processed spend (share)",
    "max_chinese_ownership": "cap on Chinese ownership of a project (share)",
    "min_weighted_supply": "floor on weighted supply", "objective": "objective",
    "exclude_countries": "countries excluded", "exclude_projects": "projects excluded",
    "include_projects": "projects forced in", "partners": "lead partners allowed",
    "draw.price.tantalum": "tantalum price factor", "draw.price.niobium": "niobium price factor",
    "draw.price.ree": "rare-earth price factor",
    "draw.capex_overrun.mean": "capex overrun factor (mean over projects)",
    "draw.output_factor.mean": "output factor (mean over projects)",
    "draw.disrupted_countries": "countries disrupted",
}
_PRODUCTS = {"tantalum": "Ta2O5", "niobium": "Nb2O5", "ree": "TREO", "ndpr": "NdPr oxide",
             "dytb": "Dy+Tb oxide"}


def path_words(path: str) -> str:
    """A scenario field path (or a Monte-Carlo draw figure) in words."""
    if path in FIELD_WORDS:
        return FIELD_WORDS[path]
    head, _, tail = path.partition(".")
    if head == "annual_budget_musd" and tail.isdigit():
        return f"spend cap in plan year {int(tail) + 1} (US$ M)"
    if head == "min_output_t":
        return f"floor on {_PRODUCTS.get(tail, tail)} offtake (t/y)"
    if head == "supply_weights":
        return f"supply weight of {_PRODUCTS.get(tail, tail)}"
    if head == "max_country_share" and tail:
        return f"country cap: {tail}"
    if head == "solver":
        return f"solver {tail}"
    return path


def break_unit(path: str) -> str:
    head = path.split(".")[0]
    if head.endswith("_musd"):
        return "US$ M over the cap"
    if head in SHARE_FIELDS:
        return "percentage points over the cap"
    if head == "max_avg_risk":
        return "risk points over the cap"
    if head == "min_output_t":
        return "t/y short of the floor"
    if head in ("min_countries", "max_projects"):
        return "count"
    if head == "min_weighted_supply":
        return "short of the floor"
    return ""


_NUM = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"


def load_base(base: dict[str, Any]) -> Scenario:
    """The batch's base scenario (validated when the batch ran)."""
    return Scenario.model_validate(base)


def parse_break(text: str, base: dict[str, Any]) -> tuple[str, float | None]:
    """(field, by how much) from one of the base portfolio's broken limits as the batch row
    words it (optimizer.check.violations): "budget_musd: 1650.2 exceeds 1600",
    "max_country_share: US takes 0.31 of spend", "min_output_t.ree: 900 < 1000", ..."""
    fld, _, rest = text.partition(":")
    fld = re.sub(r"\s*\(plan year \d+\)$", "", fld.strip())
    rest = rest.strip()
    head = fld.split(".")[0]
    if m := re.fullmatch(rf"(?:average risk )?{_NUM} exceeds {_NUM}", rest):
        return fld, float(m.group(1)) - float(m.group(2))
    if m := re.fullmatch(rf"{_NUM} ([<>]) {_NUM}", rest):
        a, b = float(m.group(1)), float(m.group(3))
        return fld, (a - b if m.group(2) == ">" else b - a)
    if head in SHARE_FIELDS and isinstance(base.get(head), (int, float)):
        m = re.search(rf"{_NUM} of spend", rest)
        if m:
            return head, (float(m.group(1)) - float(base[head])) * 100.0
    return fld, None


def _reason(row: dict[str, Any]) -> str:
    d = row.get("diagnosis")
    if isinstance(d, dict) and d.get("message"):
        return str(d["message"])
    if row.get("error"):
        return str(row["error"])
    if row.get("status") == "no_solution":
        return "stopped at its time limit before finding a portfolio"
    return ""


def _row(raw: dict[str, Any], varied: list[str]) -> BatchRow:
    t = raw.get("totals") or {}
    sc = raw.get("scenario") or {}
    base = raw.get("base_portfolio") or {}
    vals = {p: cell(raw, p) for p in varied}
    return BatchRow(
        index=int(raw["index"]), status=str(raw.get("status", "failed")),
        objective=raw.get("objective"), best_bound=raw.get("best_bound"),
        mip_gap=raw.get("mip_gap"), cost_musd=t.get("cost_musd"),
        kabil_musd=t.get("kabil_musd"), us_musd=t.get("us_musd"), npv_musd=t.get("npv_musd"),
        output_t=dict(t.get("output_t") or {}),
        stakes={p["project_id"]: float(p["stake"]) for p in raw.get("selected") or []},
        varied=vals, name=str(sc.get("name") or raw.get("scenario_name") or ""),
        reason=_reason(raw), base_value=base.get("objective"), base_regret=base.get("regret"),
        base_meets_limits=base.get("meets_limits"),
        base_broken=[str(b) for b in base.get("broken") or []],
        base_breaches=[b for b in base.get("breaches") or [] if isinstance(b, dict)],
        in_sample=raw.get("uncertainty") if isinstance(raw.get("uncertainty"), dict) else None,
        binding=[str(b.get("field")) for b in raw.get("binding") or [] if isinstance(b, dict)])


def _varied(spec: dict[str, Any]) -> list[str]:
    """The field paths the batch varies, as its results.csv has them (one definition:
    ``optimizer.batch.table``), less the labels (name, description) and the base portfolio's
    figures, which the report shows apart."""
    return [p for p in varied_paths(parse_spec(spec))
            if p not in ("name", "description") and not p.startswith("base_portfolio.")]


def load_batch(folder: str | Path) -> BatchView:
    """Read a batch's output folder; an :class:`InputError` when it is not one."""
    d = Path(folder)
    spec_file, rows_file = d / "spec.json", d / "results.jsonl"
    if not d.is_dir():
        raise InputError(f"batch folder {str(d)!r} does not exist", loc=("batch",))
    if not spec_file.exists() or not rows_file.exists():
        raise InputError(f"{str(d)!r} is not a batch output folder (no spec.json and "
                         "results.jsonl; run 'python -m optimizer batch SPEC --out DIR')",
                         loc=("batch",))
    try:
        meta = json.loads(spec_file.read_text(encoding="utf-8"))
        spec = meta["spec"]
    except (ValueError, KeyError) as exc:
        raise InputError(f"{str(spec_file)!r} is not readable: {exc}", loc=("batch",)) from None

    def lines():
        with rows_file.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # a torn last line of an interrupted batch

    summary: dict[str, Any] = {}
    if (d / "summary.json").exists():
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    return batch_view(spec, lines(), summary, selection=_selection(d / "selection.csv"),
                      source=str(d), spec_sha256=str(meta.get("spec_sha256", "")),
                      dataset_sha256=str(meta.get("dataset_sha256", "")),
                      finished=bool(summary))


def batch_view(spec: dict[str, Any], raw_rows: Iterable[dict[str, Any]],
               summary: dict[str, Any] | None, *, selection: list[dict[str, Any]] | None = None,
               source: str = "", spec_sha256: str = "", dataset_sha256: str = "",
               finished: bool = True) -> BatchView:
    """A batch's report content from its spec, its result rows (the row objects of CONTRACT
    section 6, any order) and its summary; the selection is recomputed from the rows when
    not given. Used for output folders and for batches stored by the service alike."""
    summary = dict(summary or {})
    kind = next((k for k in ("scenarios", "grid", "monte_carlo", "frontier") if k in spec),
                "scenarios")
    varied = _varied(spec)
    rows: dict[int, BatchRow] = {}
    for raw in raw_rows:
        rows.setdefault(int(raw["index"]), _row(raw, varied))
    ordered = [rows[i] for i in sorted(rows)]
    if not selection:
        selection = _selection_from(ordered, summary, spec)
    products: list[str] = []
    for r in ordered:
        products += [m for m in r.output_t if m not in products]
    total = summary.get("total")
    return BatchView(
        source=source, name=str(spec.get("name") or "batch"), kind=kind,
        description=str(spec.get("description") or ""), spec=spec, spec_sha256=spec_sha256,
        dataset_sha256=dataset_sha256, varied=varied, rows=ordered, selection=selection,
        summary=summary, products=products,
        complete=finished and (total is None or total == len(ordered)))


def _selection(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.append({"project_id": csvsafe.uncell(r["project_id"]), "chosen": int(r["chosen"]),
                        "share": float(r["share"]),
                        "mean_stake": float(r["mean_stake"]) if r["mean_stake"] else None,
                        "class": r["class"]})
    return out


def _selection_from(rows: list[BatchRow], summary: dict[str, Any],
                    spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Selection frequency and robust-core classes recomputed from the rows (a batch that did
    not finish, or one the service stored), with the batch engine's own tally."""
    from ..batch.summaries import Tally

    rc = summary.get("robust_core") or {}
    ids: dict[str, None] = {}
    for r in rows:
        ids.update(dict.fromkeys(r.stakes))
    t = Tally(list(ids), float(rc.get("core_share", spec.get("core_share", 0.9))),
              float(rc.get("exterior_share", spec.get("exterior_share", 0.0))))
    for r in rows:
        t.add({"status": r.status, "objective": r.objective,
               "selected": [{"project_id": p, "stake": st} for p, st in r.stakes.items()]})
    return t.selection()


__all__ = ["BatchRow", "BatchView", "batch_view", "load_batch"]
