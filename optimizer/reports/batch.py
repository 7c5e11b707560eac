"""What a batch's report says, read from its output folder (CONTRACT section 6): the rows
(``results.jsonl``), the per-project selection (``selection.csv``), the summary
(``summary.json``) and the spec (``spec.json``). Nothing is solved.

Rows are read one line at a time and kept flat (figures, the chosen stakes, the reason a row
failed), so a 10,000-row batch fits in a few tens of MB.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import csvsafe
from ..errors import InputError

OK = ("optimal", "feasible")
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

    def histogram(self, values: list[float], bins: int = 20) -> list[tuple[float, float, int]]:
        a = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
        if a.size == 0:
            return []
        counts, edges = np.histogram(a, bins=min(bins, max(1, a.size)))
        return [(float(edges[i]), float(edges[i + 1]), int(counts[i]))
                for i in range(len(counts))]


def _reason(row: dict[str, Any]) -> str:
    d = row.get("diagnosis")
    if isinstance(d, dict) and d.get("message"):
        return str(d["message"])
    if row.get("error"):
        return str(row["error"])
    if row.get("status") == "no_solution":
        return "stopped at its time limit before finding a portfolio"
    return ""


def _get(scenario: dict[str, Any], path: str) -> Any:
    parts = path.split(".")
    cur: Any = scenario.get(parts[0])
    for p in parts[1:]:
        if isinstance(cur, list):
            k = int(p)
            cur = cur[k] if k < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(p)
        else:
            return None
    return cur


def _row(raw: dict[str, Any], varied: list[str]) -> BatchRow:
    t = raw.get("totals") or {}
    sc = raw.get("scenario") or {}
    base = raw.get("base_portfolio") or {}
    vals: dict[str, Any] = {}
    for p in varied:
        if p.startswith(("draw.", "base_portfolio.")):
            cur: Any = raw
            for part in p.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            vals[p] = ";".join(cur) if isinstance(cur, list) else cur
        else:
            v = _get(sc, p)
            vals[p] = ";".join(map(str, v)) if isinstance(v, list) else v
    return BatchRow(
        index=int(raw["index"]), status=str(raw.get("status", "failed")),
        objective=raw.get("objective"), best_bound=raw.get("best_bound"),
        mip_gap=raw.get("mip_gap"), cost_musd=t.get("cost_musd"),
        kabil_musd=t.get("kabil_musd"), us_musd=t.get("us_musd"), npv_musd=t.get("npv_musd"),
        output_t=dict(t.get("output_t") or {}),
        stakes={p["project_id"]: float(p["stake"]) for p in raw.get("selected") or []},
        varied=vals, name=str(sc.get("name") or raw.get("scenario_name") or ""),
        reason=_reason(raw), base_value=base.get("objective"), base_regret=base.get("regret"),
        base_meets_limits=base.get("meets_limits"))


def _varied(spec: dict[str, Any], kind: str) -> list[str]:
    if kind == "grid":
        return list(spec["grid"])
    if kind == "scenarios":
        paths: dict[str, None] = {}
        for partial in spec["scenarios"]:
            for k, v in partial.items():
                if isinstance(v, dict) and k in ("min_output_t", "supply_weights", "solver"):
                    for kk in v:
                        paths[f"{k}.{kk}"] = None
                elif k != "name":
                    paths[k] = None
        return list(paths)
    if kind == "monte_carlo":
        return ["draw.price.tantalum", "draw.price.niobium", "draw.price.ree",
                "draw.capex_overrun.mean", "draw.output_factor.mean",
                "draw.disrupted_countries"]
    kind2 = (spec.get("frontier") or {}).get("kind", "budget")
    return ["budget_musd"] if kind2 == "budget" else ["min_weighted_supply"]


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
    varied = _varied(spec, kind)
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
