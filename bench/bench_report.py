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
    ap.add_argument("--batch-rows", type=int, default=0,
                    help="also time the report of a batch of this many rows (0: none)")
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
    batch = batch_bench(args.batch_rows) if args.batch_rows else None
    if args.json:
        args.json.write_text(json.dumps({"batch": batch,
            "scenario": sc.name, "projects": data.n, "imports_library_s": imp_lib,
            "imports_report_s": imp_rep, "build_s": build, "solve_s": solve, "runs": runs,
            "cli_s": cli, "python": platform.python_version(), "machine": platform.machine(),
        }, indent=2))


def batch_bench(n: int) -> dict:
    """A real 20-draw Monte-Carlo batch on the shipped data (base scenario), its rows
    replicated to ``n`` (new indices, same content: the size of a real n-row folder), then the
    report read from the folder and rendered, timed."""
    from optimizer.batch.runner import run_to_folder
    from optimizer.reports.batch import load_batch
    from optimizer.reports.excel import render_batch_xlsx
    from optimizer.reports.html import render_batch_html

    with tempfile.TemporaryDirectory() as tmp:
        base = json.loads((ROOT / "inputs" / "scenarios" / "base.json").read_text())
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"name": "bench", "base": base, "monte_carlo": {
            "draws": 20, "seed": 1, "price": {"ree": {"dist": "lognormal", "sigma": 0.3}},
            "capex_overrun": {"dist": "triangular", "low": 0.9, "mode": 1.0, "high": 1.5}}}))
        out = Path(tmp) / "out"
        run_to_folder(spec, out=out, workers=0, progress=False)
        lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x]
        with (out / "results.jsonl").open("w") as fh:
            for i in range(n):
                fh.write(json.dumps({**lines[i % len(lines)], "index": i}) + "\n")
        summary = json.loads((out / "summary.json").read_text())
        summary["total"] = n
        (out / "summary.json").write_text(json.dumps(summary))
        size = (out / "results.jsonl").stat().st_size
        t0 = time.perf_counter()
        view = load_batch(out)
        t1 = time.perf_counter()
        xlsx = render_batch_xlsx(view)
        t2 = time.perf_counter()
        html = render_batch_html(view)
        t3 = time.perf_counter()
    res = {"rows": n, "jsonl_mb": size / 1e6, "load_s": t1 - t0, "xlsx_s": t2 - t1,
           "xlsx_total_s": t2 - t0, "html_s": t3 - t2, "xlsx_mb": len(xlsx) / 1e6,
           "html_mb": len(html) / 1e6}
    print(f"batch of {n:,} rows ({res['jsonl_mb']:.0f} MB of results.jsonl): load "
          f"{res['load_s']:.2f} s, Excel {res['xlsx_s']:.2f} s ({res['xlsx_mb']:.1f} MB; "
          f"load + Excel {res['xlsx_total_s']:.2f} s), HTML {res['html_s']:.2f} s")
    return res


if __name__ == "__main__":
    main()
