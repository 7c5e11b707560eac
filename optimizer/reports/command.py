"""``python -m optimizer report``: solve one run and write its report (CONTRACT section 7).

    python -m optimizer report [--projects CSV] [--scenario FILE] --format html|xlsx --out PATH
    python -m optimizer report --batch DIR --format html|xlsx --out PATH

Exit codes as ``solve``: 0 optimal/feasible, 3 infeasible (the report of the infeasible run is
still written), 2 bad input (message on stderr), 1 anything else. A batch's report: 0
written, 2 not a batch folder. A short summary goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ..errors import InputError
from ..schema import WITH_PORTFOLIO


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..data import DEFAULT_PROJECTS

    r = sub.add_parser("report", help="solve one scenario and write its committee report")
    r.add_argument("--projects", type=Path, default=None,
                   help=f"candidate projects CSV (default: the shipped {DEFAULT_PROJECTS.name})")
    r.add_argument("--scenario", type=Path, default=None,
                   help="scenario JSON/YAML file (default: inputs/scenarios/base.json)")
    r.add_argument("--batch", type=Path, default=None, metavar="DIR",
                   help="report of a batch from its output folder ('batch SPEC --out DIR')")
    r.add_argument("--format", choices=("html", "xlsx"), required=True,
                   help="html: one self-contained page; xlsx: an Excel workbook")
    r.add_argument("--out", type=Path, required=True, help="file to write")
    r.add_argument("--alternatives", type=int, default=3, metavar="K",
                   help="alternative portfolios to look for (default 3; 0: none)")
    r.add_argument("--slack", type=float, default=0.02,
                   help="alternatives within this share of the optimum (default 0.02)")


def run(args: argparse.Namespace) -> int:
    from ..exit_codes import (
        EXIT_BAD_INPUT,
        EXIT_ERROR,
        EXIT_INFEASIBLE,
        EXIT_OK,
        Failed,
        exit_codes,
    )

    out: Path = args.out
    if not out.parent.exists() or out.is_dir():
        print(f"error: --out {str(out)!r}: " + ("is a directory" if out.is_dir() else
              f"folder {str(out.parent)!r} does not exist"), file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.batch is not None:
        if args.projects is not None or args.scenario is not None:
            print("error: --batch reports a batch's output folder; --projects and --scenario "
                  "do not apply to it", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _batch(args.batch, args.format, out)
    try:
        with exit_codes(writing=out):
            from ..data import DEFAULT_SCENARIO, load_projects, load_scenario
            from ..solve import Optimizer
            from .analysis import AnalysisSettings, analyse

            try:
                settings = AnalysisSettings(alternatives=args.alternatives,
                                            alternative_slack=args.slack)
            except ValueError as exc:
                raise InputError(f"--alternatives/--slack: {exc}", loc=("options",)) from None
            data = load_projects(args.projects)
            scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
            opt = Optimizer(data)
            result = opt.solve(scenario)
            analysis = analyse(opt, scenario, result, settings)
            if args.format == "html":
                from .html import render_html

                body = render_html(result, scenario, data, analysis)
            else:
                from .excel import render_xlsx

                body = render_xlsx(result, scenario, data, analysis)
            _write(out, body)
    except Failed as f:
        return f.code
    from .text import render_text

    sys.stdout.write(render_text(result, scenario, data, analysis))
    sys.stdout.write(f"Report written to {out} ({len(body):,} bytes).\n")
    if result.status in WITH_PORTFOLIO:
        return EXIT_OK
    return EXIT_INFEASIBLE if result.status == "infeasible" else EXIT_ERROR


def _batch(folder: Path, fmt: str, out: Path) -> int:
    """The report of a batch from its output folder: 0 written, 2 not a batch folder."""
    from ..exit_codes import EXIT_OK, Failed, exit_codes
    from .batch import load_batch

    try:
        with exit_codes(writing=out):
            view = load_batch(folder)
            if fmt == "html":
                from .html import render_batch_html

                body = render_batch_html(view)
            else:
                from .excel import render_batch_xlsx

                body = render_batch_xlsx(view)
            _write(out, body)
    except Failed as f:
        return f.code
    counts = ", ".join(f"{n} {st}" for st, n in view.by_status.items())
    sys.stdout.write(f"Batch {view.name!r}: {len(view.rows)} rows ({counts})"
                     + ("" if view.complete else "; the batch has not finished") + ".\n")
    if view.selection:
        sys.stdout.write("Robust core: " + (", ".join(view.core) or "none") + ".\n")
    sys.stdout.write(f"Report written to {out} ({len(body):,} bytes).\n")
    return EXIT_OK


def _write(path: Path, body: bytes) -> None:
    """Write atomically: a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
