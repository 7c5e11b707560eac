"""A scenario comparison pack: named scenarios solved on one built model and shown side by
side, each with what it changes from the base scenario, its portfolio and its NPV.

    python -m optimizer report --compare inputs/scenarios/ --format html --out pack.html

The base is ``--base FILE``, else the scenario named ``base`` among those given, else the
first. Each scenario is solved once (``Optimizer.solve``; no sensitivity re-solves), so the
pack of the twelve shipped scenarios takes a few seconds.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import ProjectData
from ..errors import InputError
from ..limits import measure
from ..sample import assessment_sample
from ..schema import WITH_PORTFOLIO, Result, Scenario
from .facts import (
    Currency,
    money,
    objective_unit,
    pct,
    product_name,
    question_parts,
    status_words,
)

SCENARIO_SUFFIXES = (".json", ".yaml", ".yml")
_SKIP = ("name", "description", "solver")  # not a change to the question


@dataclass
class Entry:
    """One scenario of the pack: where it came from, its result, what it changes."""

    source: str
    scenario: Scenario
    result: Result
    is_base: bool
    changes: list[tuple[str, str, str]]  # (field path, base value, this value), in words
    risk: Any = None  # RiskFigures: the portfolio on its assessment sample (CONTRACT 7a)

    @property
    def question(self) -> str:
        return question_parts(self.scenario.description)[0]

    @property
    def solved(self) -> bool:
        return self.result.status in WITH_PORTFOLIO


@dataclass
class Pack:
    entries: list[Entry]
    data: ProjectData
    currency: Currency
    # each entry's risk: measured on its own sample, else on the data's default model (the
    # same draws for every scenario without one, so those are compared on equal terms)

    @property
    def base(self) -> Entry:
        return next(e for e in self.entries if e.is_base)

    def stake_matrix(self) -> list[tuple[str, list[float | None]]]:
        """(project_id, [stake in each scenario or None]) for every project any one backs,
        the base portfolio's first."""
        ids: list[str] = []
        for e in sorted(self.entries, key=lambda e: not e.is_base):
            ids += [p.project_id for p in e.result.selected if p.project_id not in ids]
        stakes = [{p.project_id: p.stake for p in e.result.selected} for e in self.entries]
        return [(pid, [s.get(pid) for s in stakes]) for pid in ids]


def scenario_files(args: Sequence[str | Path]) -> list[Path]:
    """Each argument a scenario file or a folder of them (its *.json, *.yaml, *.yml, sorted)."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in SCENARIO_SUFFIXES)
            if not found:
                raise InputError(f"--compare: folder {str(p)!r} holds no scenario file "
                                 "(*.json, *.yaml)", loc=("compare",))
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"--compare: {str(p)!r} is neither a scenario file nor a folder",
                             loc=("compare",))
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def value_words(path: str, v: Any) -> str:
    """A scenario field's value for a reader."""
    if v is None or v == [] or v == {}:
        return "none"
    head = path.split(".")[0]
    if head.endswith("_musd"):
        if isinstance(v, list):
            return ", ".join("no cap" if x is None else f"{x:,.0f}" for x in v) + " (US$ M)"
        return money(v)
    if head in ("max_country_share", "max_china_processing_share", "max_chinese_ownership"):
        return pct(v, 0)
    if head == "min_output_t":
        return f"{v:,.0f} t/y"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def changes(base: Scenario, sc: Scenario) -> list[tuple[str, str, str]]:
    """What ``sc`` changes from ``base``: (field path, base value, its value) in words;
    floors and supply weights key by key."""
    a, b = base.model_dump(mode="json"), sc.model_dump(mode="json")
    out = []
    for key in b:
        if key in _SKIP or a.get(key) == b.get(key):
            continue
        if isinstance(b.get(key), dict) or isinstance(a.get(key), dict):
            da, db = a.get(key) or {}, b.get(key) or {}
            for k in sorted(set(da) | set(db)):
                if da.get(k) != db.get(k):
                    path = f"{key}.{k}"
                    out.append((path, value_words(path, da.get(k)), value_words(path, db.get(k))))
        else:
            out.append((key, value_words(key, a.get(key)), value_words(key, b.get(key))))
    return out


def build_pack(files: Sequence[Path], data: ProjectData, *, base: Path | None = None,
               currency: Currency | None = None,
               on_progress: Callable[[str], None] | None = None) -> Pack:
    """Solve every scenario file on one built model and say what each changes from the
    base."""
    from ..data import load_scenario
    from ..solve import Optimizer

    paths = list(files)
    if base is not None and base.resolve() not in {p.resolve() for p in paths}:
        paths.insert(0, base)
    scenarios = [(p, load_scenario(p)) for p in paths]
    if base is not None:
        k = next(i for i, (p, _) in enumerate(scenarios) if p.resolve() == base.resolve())
    else:
        k = next((i for i, (_, sc) in enumerate(scenarios) if sc.name == "base"), 0)
    opt = Optimizer(data)
    base_sc = scenarios[k][1]
    entries = []
    for i, (p, sc) in enumerate(scenarios):
        if on_progress is not None:
            on_progress(f"solving scenario {i + 1} of {len(scenarios)}: {sc.name}")
        res = opt.solve(sc)
        risk = None
        if res.status in WITH_PORTFOLIO:
            risk = measure(data, sc, assessment_sample(data, sc),
                           {q.project_id: q.stake for q in res.selected})
        entries.append(Entry(str(p), sc, res, i == k, [] if i == k else changes(base_sc, sc),
                             risk))
    return Pack(entries, data, currency or Currency.from_env())


def render_compare_html(pack: Pack, *, generated: str | None = None) -> bytes:
    """The pack as one self-contained HTML page."""
    from .html import environment

    html = environment().get_template("compare.html.j2").render(
        pack=pack, cur=pack.currency, base=pack.base, matrix=pack.stake_matrix(),
        status_words=status_words, objective_unit=objective_unit, product_name=product_name,
        generated=generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return html.encode("utf-8")


def render_compare_xlsx(pack: Pack) -> bytes:
    """The pack as an Excel workbook: Scenarios, Changes, Stakes, Provenance."""
    from .excel import _Book, _widths

    buf = io.BytesIO()
    book = _Book(buf)
    cur = pack.currency
    ws = book.wb.add_worksheet("Scenarios")
    cols = [("Scenario", None), ("Base", None), ("Question", "wrap"), ("Status", None),
            ("Objective", "num3"), ("Objective's unit", None), ("NPV (US$ M)", "musd"),
            ("NPV (INR crore)", "musd"), ("Cost (US$ M)", "musd"), ("Cost (INR crore)", "musd"),
            ("KABIL (US$ M)", "musd"), ("US partners (US$ M)", "musd"), ("Projects", "int"),
            ("Countries", "int"), ("NPV P5 over draws (US$ M)", "musd"),
            ("NPV median over draws (US$ M)", "musd"), ("NPV mean over draws (US$ M)", "musd"),
            ("CVaR (US$ M)", "musd"), ("Draws within every cap", "pct"),
            ("Changes from the base", "wrap"), ("Portfolio", "wrap")]
    rows = []
    for e in pack.entries:
        t = e.result.totals
        ok = e.solved
        rows.append([e.scenario.name, "yes" if e.is_base else "", e.question,
                     e.result.status, e.result.objective, objective_unit(e.scenario),
                     t.npv_musd if ok else None, cur.crore(t.npv_musd) if ok else None,
                     t.cost_musd if ok else None, cur.crore(t.cost_musd) if ok else None,
                     t.kabil_musd if ok else None, t.us_musd if ok else None,
                     t.n_projects if ok else None, t.n_countries if ok else None,
                     *((e.risk.p5, e.risk.p50, e.risk.mean, e.risk.cvar,
                        e.risk.within_caps_share) if e.risk else (None,) * 5),
                     "; ".join(f"{p}: {a} -> {b}" for p, a, b in e.changes),
                     ", ".join(p.project_id for p in e.result.selected)])
    _widths(ws, [26, 6, 60, 11, 13, 22, 13, 13, 13, 13, 13, 13, 9, 9, 13, 13, 13, 13, 11,
                 60, 80])
    end = book.table(ws, 0, 0, cols, rows, "Scenarios")
    ws.write(end + 1, 0, cur.statement, book.fmt["note"])
    ws.freeze_panes(1, 1)
    ws = book.wb.add_worksheet("Changes")
    book.table(ws, 0, 0, [("Scenario", None), ("Field", None), ("Base", None), ("This", None)],
               [[e.scenario.name, p, a, b] for e in pack.entries for p, a, b in e.changes],
               "Changes")
    _widths(ws, [26, 30, 30, 30])
    ws.freeze_panes(1, 0)
    ws = book.wb.add_worksheet("Stakes")
    matrix = pack.stake_matrix()
    book.table(ws, 0, 0, [("Project", None)] + [(_unique(e.scenario.name, k), "pct")
                                               for k, e in enumerate(pack.entries)],
               [[pid, *st] for pid, st in matrix], "Stakes")
    _widths(ws, [28] + [14] * len(pack.entries))
    ws.freeze_panes(1, 1)
    ws = book.wb.add_worksheet("Provenance")
    prov: list[list[Any]] = [["Dataset SHA-256", pack.data.sha256], ["Dataset rows", pack.data.n],
                             ["INR rate", cur.statement]]
    for e in pack.entries:
        prov.append([f"Scenario {e.scenario.name}: file", e.source])
        prov.append([f"Scenario {e.scenario.name}: SHA-256", e.result.provenance.scenario_sha256])
        prov.append([f"Scenario {e.scenario.name}: JSON",
                     json.dumps(e.scenario.model_dump(mode="json"), sort_keys=True)])
    book.table(ws, 0, 0, [("Item", None), ("Value", "wrap")], prov, "Provenance")
    _widths(ws, [40, 100])
    ws.freeze_panes(1, 0)
    book.close()
    return buf.getvalue()


def _unique(name: str, k: int) -> str:
    """A column header per scenario (Excel table headers must differ)."""
    return f"{k + 1}. {name}"[:250]


__all__ = ["Entry", "Pack", "build_pack", "changes", "render_compare_html",
           "render_compare_xlsx", "scenario_files"]
