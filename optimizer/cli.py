"""Command line: ``python -m optimizer solve [--projects CSV] [--scenario FILE] [--format ...]``.

Exit codes (CONTRACT section 5): 0 optimal/feasible, 3 infeasible, 2 bad input (message on
stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data import DEFAULT_PROJECTS, DEFAULT_SCENARIO
from .errors import InputError

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INFEASIBLE = 0, 1, 2, 3


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
    from .reports.command import add_parser

    add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from .reports.command import run

        return run(args)
    try:
        from .data import load_projects, load_scenario
        from .solve import optimize

        data = load_projects(args.projects)
        scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
        result = optimize(data, scenario)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is an exit code, not a trace
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        from .report import render_table

        sys.stdout.write(render_table(result))
    if result.status in ("optimal", "feasible"):
        return EXIT_OK
    return EXIT_INFEASIBLE if result.status == "infeasible" else EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
