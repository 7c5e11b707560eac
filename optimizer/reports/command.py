"""``python -m optimizer report``: solve one run and write its report (CONTRACT section 7).

    python -m optimizer report [--projects CSV] [--scenario FILE] --format html|xlsx --out PATH
    python -m optimizer report --batch DIR --format html|xlsx --out PATH
    python -m optimizer report --compare DIR_OR_FILES... [--base FILE] --format html|xlsx --out PATH

Exit codes as ``solve``: 0 optimal/feasible, 3 infeasible (the report of the infeasible run is
still written), 2 bad input (message on stderr), 1 anything else. A batch's report: 0
written, 2 not a batch folder; a comparison pack: 0 written, 2 bad input. A short summary goes
to stdout; when the work takes more than about 2 s, progress goes to stderr. Files are written
with the user's umask (like any other file the user creates).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
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
    r.add_argument("--compare", nargs="+", default=None, metavar="DIR_OR_FILE",
                   help="a comparison pack: these scenario files (or folders of them, e.g. "
                   "inputs/scenarios/) side by side")
    r.add_argument("--base", type=Path, default=None, metavar="FILE",
                   help="with --compare: the scenario the others are compared with (default: "
                   "the one named 'base', else the first)")
    r.add_argument("--inr-per-usd", type=float, default=None, metavar="RATE",
                   help="INR per US$ for the INR crore figures (default: OPTIMIZER_INR_PER_USD, "
                   "else the data's convention, 84)")
    r.add_argument("--inr-rate-date", default=None, metavar="TEXT",
                   help="the date of --inr-per-usd, stated on the report")
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
    if args.batch is not None and args.compare is not None:
        print("error: --batch and --compare are two kinds of report; give one",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.batch is not None:
        if args.projects is not None or args.scenario is not None:
            print("error: --batch reports a batch's output folder; --projects and --scenario "
                  "do not apply to it", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _batch(args.batch, args.format, out)
    if args.compare is not None:
        if args.scenario is not None:
            print("error: --compare takes its scenarios as arguments (and --base); --scenario "
                  "does not apply to it", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _compare(args, out)
    progress = Progress()
    try:
        with exit_codes(writing=out), progress:
            from ..data import DEFAULT_SCENARIO, load_projects, load_scenario
            from ..solve import Optimizer
            from .analysis import AnalysisSettings, analyse

            try:
                settings = AnalysisSettings(alternatives=args.alternatives,
                                            alternative_slack=args.slack)
            except ValueError as exc:
                raise InputError(f"--alternatives/--slack: {exc}", loc=("options",)) from None
            currency = _currency(args)
            progress("loading the data and building the model")
            data = load_projects(args.projects)
            scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
            opt = Optimizer(data)
            progress(f"solving scenario {scenario.name!r}")
            result = opt.solve(scenario)
            analysis = analyse(opt, scenario, result, settings, on_progress=progress)
            progress(f"writing the {args.format} report")
            if args.format == "html":
                from .html import render_html

                body = render_html(result, scenario, data, analysis, currency=currency)
            else:
                from .excel import render_xlsx

                body = render_xlsx(result, scenario, data, analysis, currency=currency)
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

    progress = Progress()
    try:
        with exit_codes(writing=out), progress:
            progress(f"reading the batch folder {str(folder)!r}")
            view = load_batch(folder)
            progress(f"writing the {fmt} report of {len(view.rows):,} rows")
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


def _compare(args: argparse.Namespace, out: Path) -> int:
    """A comparison pack of scenario files: 0 written, 2 bad input."""
    from ..cli import EXIT_OK, Failed, exit_codes

    progress = Progress()
    try:
        with exit_codes(writing=out), progress:
            from ..data import load_projects
            from .compare import (
                build_pack,
                render_compare_html,
                render_compare_xlsx,
                scenario_files,
            )

            currency = _currency(args)
            files = scenario_files(args.compare)
            progress("loading the data and building the model")
            data = load_projects(args.projects)
            pack = build_pack(files, data, base=args.base, currency=currency,
                              on_progress=progress)
            progress(f"writing the {args.format} report")
            body = (render_compare_html(pack) if args.format == "html"
                    else render_compare_xlsx(pack))
            _write(out, body)
    except Failed as f:
        return f.code
    for e in pack.entries:
        t = e.result.totals
        what = (f"NPV {t.npv_musd:,.1f}, cost {t.cost_musd:,.1f}, {t.n_projects} projects"
                if e.solved else e.result.status)
        sys.stdout.write(f"{e.scenario.name}{' (base)' if e.is_base else ''}: {what}\n")
    sys.stdout.write(f"Report written to {out} ({len(body):,} bytes).\n")
    return EXIT_OK


def _currency(args: argparse.Namespace):
    from .facts import Currency

    if args.inr_per_usd is None:
        if args.inr_rate_date is not None:
            raise InputError("--inr-rate-date needs --inr-per-usd", loc=("inr_rate_date",))
        return Currency.from_env()
    return Currency(args.inr_per_usd, args.inr_rate_date or "date not stated",
                    "set by --inr-per-usd")


class Progress:
    """Progress lines on stderr for work that takes a while: silent for the first ``after``
    seconds (a quick report prints nothing), then the step in hand and every later step,
    with the time so far."""

    def __init__(self, after: float = 2.0, stream=None) -> None:
        self.after = after
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.step = ""
        self.shown = False
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None

    def __enter__(self) -> Progress:
        self.t0 = time.perf_counter()
        self.timer = threading.Timer(self.after, self._late)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
        with self.lock:
            if self.shown:
                self._print("done")

    def __call__(self, step: str) -> None:
        with self.lock:
            self.step = step
            if self.shown or time.perf_counter() - self.t0 >= self.after:
                self.shown = True
                self._print(step)

    def _late(self) -> None:
        with self.lock:
            if not self.shown and self.step:
                self.shown = True
                self._print(self.step)

    def _print(self, text: str) -> None:
        self.stream.write(f"[{time.perf_counter() - self.t0:5.1f} s] {text}\n")
        self.stream.flush()


def _write(path: Path, body: bytes) -> None:
    """Write atomically (a reader never sees half a report) and with the user's umask, as
    any file the user creates: the temporary file is opened with mode 0o666 and the umask
    takes off what it takes off (tempfile.mkstemp would make it 0600)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
