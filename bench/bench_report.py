"""Time the committee report of a run on the shipped data (issue 9: under 3 s with sensitivity
and alternatives).

    .venv/bin/python bench/bench_report.py [--scenario inputs/scenarios/base.json]
        [--repeat 5] [--cli 3] [--json out.json]

Phases, in one process: imports (the library, then the report stack: Jinja2, matplotlib,
xlsxwriter), load + build, the run's solve, then ``--repeat`` times: the analysis (every
re-solve on the one built model), the HTML render and the Excel render. "report" = analysis
+ HTML render, the work of a report once the run is solved. Then ``--cli`` times the whole
``python -m optimizer report --format html`` command in a fresh process (interpreter start,
imports, load, build, solve, analysis, render, write). Min and median are printed: the
machine is shared, so the min is the cost and the median shows the noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", default=str(ROOT / "inputs" / "projects.csv"))
    ap.add_argument("--scenario", default=str(ROOT / "inputs" / "scenarios" / "base.json"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli", type=int, default=3, help="end-to-end CLI runs (0: none)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    t = time.perf_counter()
    from optimizer import Optimizer, load_projects, load_scenario

    imp_lib = time.perf_counter() - t
    t = time.perf_counter()
    from optimizer.reports import analyse
    from optimizer.reports.excel import render_xlsx
    from optimizer.reports.html import render_html

    imp_rep = time.perf_counter() - t
    t = time.perf_counter()
    data = load_projects(args.projects)
    sc = load_scenario(args.scenario)
    opt = Optimizer(data)
    build = time.perf_counter() - t
    t = time.perf_counter()
    result = opt.solve(sc)
    solve = time.perf_counter() - t

    runs = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        a = analyse(opt, sc, result)
        t1 = time.perf_counter()
        html = render_html(result, sc, data, a)
        t2 = time.perf_counter()
        xlsx = render_xlsx(result, sc, data, a)
        t3 = time.perf_counter()
        runs.append({"analysis_s": t1 - t0, "html_s": t2 - t1, "xlsx_s": t3 - t2,
                     "report_s": t2 - t0, "resolves": a.resolves,
                     "alternatives": len(a.alternatives), "html_bytes": len(html),
                     "xlsx_bytes": len(xlsx)})

    cli = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.cli):
            t = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "optimizer", "report", "--projects",
                                args.projects, "--scenario", args.scenario, "--format", "html",
                                "--out", str(Path(tmp) / "r.html")], cwd=ROOT,
                               capture_output=True, text=True)
            cli.append(time.perf_counter() - t)
            if p.returncode not in (0, 3):
                sys.exit(f"report CLI failed ({p.returncode}): {p.stderr}")

    def stat(key: str) -> tuple[float, float]:
        vals = [r[key] for r in runs]
        return min(vals), statistics.median(vals)

    print(f"scenario {sc.name!r} on {data.n} projects: {result.status}, "
          f"objective {result.objective:,.3f}; {runs[0]['resolves']} re-solves, "
          f"{runs[0]['alternatives']} alternatives")
    print(f"imports: library {imp_lib:.2f} s, report stack {imp_rep:.2f} s; "
          f"load+build {build:.3f} s; run's solve {solve:.3f} s")
    for key in ("analysis_s", "html_s", "xlsx_s", "report_s"):
        lo, med = stat(key)
        print(f"{key[:-2]:>14}: min {lo:.3f} s  median {med:.3f} s  (x{len(runs)})")
    if cli:
        print(f"CLI 'report --format html' end to end: min {min(cli):.2f} s  median "
              f"{statistics.median(cli):.2f} s  (x{len(cli)})")
    if args.json:
        args.json.write_text(json.dumps({
            "scenario": sc.name, "projects": data.n, "imports_library_s": imp_lib,
            "imports_report_s": imp_rep, "build_s": build, "solve_s": solve, "runs": runs,
            "cli_s": cli, "python": platform.python_version(), "machine": platform.machine(),
        }, indent=2))


if __name__ == "__main__":
    main()
