"""Command line: ``python -m optimizer solve [--projects CSV] [--scenario FILE] [--format ...]``.

Exit codes (CONTRACT section 5): 0 optimal/feasible, 3 infeasible, 2 bad input (message on
stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import DEFAULT_PROJECTS, DEFAULT_SCENARIO
from .exit_codes import EXIT_ERROR, EXIT_OK, Failed, exit_codes, for_status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m optimizer",
                                description="Critical-mineral co-investment portfolio optimiser")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve one scenario and print the result")
    s.add_argument("--projects", type=Path, default=None,
                   help=f"candidate projects CSV (default: the shipped {DEFAULT_PROJECTS.name})")
    s.add_argument("--scenario", type=Path, default=None,
                   help="scenario JSON/YAML file (default: inputs/scenarios/base.json)")
    s.add_argument("--format", choices=("json", "table"), default="table",
                   help="json: the result object; table: a readable report (default)")
    b = sub.add_parser("batch", help="run a batch of what-if scenarios (CONTRACT section 6)")
    b.add_argument("spec", type=Path, help="batch spec, JSON or YAML")
    b.add_argument("--projects", type=Path, default=None,
                   help="candidate projects CSV (default: the spec's projects, else shipped)")
    b.add_argument("--out", type=Path, default=None,
                   help="output folder (default: batch-<spec name>); an existing one resumes")
    b.add_argument("--workers", type=int, default=2,
                   help="local worker processes (default 2; 0 = in this process)")
    b.add_argument("--scheduler", default=None,
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: "
                   "$DASK_SCHEDULER_ADDRESS; unset = local workers)")
    b.add_argument("--chunk-size", type=int, default=None,
                   help="rows per task (default: chosen from rows and workers)")
    b.add_argument("--max-rows", type=int, default=None,
                   help="refuse specs generating more rows (default 100,000 or "
                   "$OPTIMIZER_BATCH_MAX_ROWS)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    from .reports.command import add_parser

    add_parser(sub)
    d = sub.add_parser("draws", help="write a scenario's sample of draws as a draws table "
                       "(CONTRACT section 8)")
    d.add_argument("--projects", type=Path, default=None,
                   help=f"candidate projects CSV (default: the shipped {DEFAULT_PROJECTS.name})")
    d.add_argument("--scenario", type=Path, default=None,
                   help="scenario JSON/YAML file (default: inputs/scenarios/base.json); "
                   "without an uncertainty field, the data's default uncertainty model as "
                   "reports use it")
    d.add_argument("--out", type=Path, required=True, help="the CSV to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from .reports.command import run

        return run(args)
    if args.command == "batch":
        return _batch(args)
    if args.command == "draws":
        return _draws(args)
    try:
        with exit_codes():
            from .data import load_projects, load_scenario
            from .solve import optimize

            data = load_projects(args.projects)
            scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
            result = optimize(data, scenario)
    except Failed as f:
        return f.code
    if args.format == "json":
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from .report import render_table

        sys.stdout.write(render_table(result))
    return for_status(result.status)


def _draws(args) -> int:
    """The sample a run of this scenario is judged on, written so that anyone can re-evaluate a
    portfolio on exactly the same draws: the scenario's own sample, else the data's default
    model as reports use it (``optimizer.sample.assessment_sample``)."""
    try:
        with exit_codes(writing=args.out):
            from .data import check_scenario_against, load_projects, load_scenario
            from .sample import assessment_sample, to_table

            data = load_projects(args.projects)
            scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
            check_scenario_against(scenario, data)
            smp = assessment_sample(data, scenario)
            tmp = args.out.with_name(args.out.name + ".part")
            to_table(smp, data).to_csv(tmp, index=False, float_format="%.17g")
            tmp.replace(args.out)  # whole or not at all
    except Failed as f:
        return f.code
    seed = "" if smp.seed is None else f", seed {smp.seed}"
    print(f"{smp.n_draws:,} draws x {data.n:,} projects ({smp.source}{seed}) -> {args.out}",
          file=sys.stderr)
    return EXIT_OK


def _batch(args) -> int:
    """Exit 0 when every scenario has a row (failed rows included), 2 for a bad spec (nothing
    solved or written), 1 otherwise (e.g. interrupted)."""
    import json
    import os

    try:
        with exit_codes():
            from .batch.runner import run_to_folder
            from .batch.spec import DEFAULT_MAX_ROWS

            max_rows = args.max_rows or int(os.environ.get("OPTIMIZER_BATCH_MAX_ROWS",
                                                           DEFAULT_MAX_ROWS))
            summary = run_to_folder(args.spec, out=args.out, projects=args.projects,
                                    workers=args.workers, scheduler=args.scheduler,
                                    chunk_size=args.chunk_size, max_rows=max_rows,
                                    progress=not args.quiet)
    except Failed as f:
        return f.code
    except KeyboardInterrupt:
        print("interrupted: finished rows are kept; run again with the same --out to resume",
              file=sys.stderr)
        return EXIT_ERROR
    brief = {k: summary.get(k) for k in ("name", "kind", "total", "missing", "by_status",
                                          "wall_s", "out")}
    sys.stdout.write(json.dumps(brief, indent=2) + "\n")
    return EXIT_OK if summary["missing"] == 0 else EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
