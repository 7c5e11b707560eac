"""The service's tasks, run in a solver worker process (see :mod:`optimizer.parallel`).

Each answers one of the small typed values below, never a library exception object, so
nothing but plain data crosses the process boundary (they pickle as dataclasses of JSON-ready
values). Any other exception is a bug; pebble hands it to the parent with its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optimizer import InputError, Result, SolutionCheckError, load_scenario
from optimizer.parallel import DatasetRef, worker_optimizer


@dataclass(frozen=True)
class Solved:
    result: dict[str, Any]


@dataclass(frozen=True)
class Invalid:
    """The scenario does not fit the dataset (422): the library's problems as dicts."""

    problems: list[dict[str, Any]]


@dataclass(frozen=True)
class CheckFailed:
    """The solver's portfolio failed the independent constraint check (never shown)."""

    message: str


@dataclass(frozen=True)
class Analysed:
    analysis: dict[str, Any]


@dataclass(frozen=True)
class Unanalysable:
    """A stored run no longer fits the library (e.g. a scenario field since renamed)."""

    message: str


SolveAnswer = Solved | Invalid | CheckFailed
AnalysisAnswer = Analysed | Unanalysable


def solve(ref: DatasetRef, scenario: dict[str, Any]) -> SolveAnswer:
    try:
        result = worker_optimizer(ref).solve(scenario)
    except InputError as exc:
        return Invalid(exc.to_list())
    except SolutionCheckError as exc:
        return CheckFailed(str(exc))
    return Solved(result.model_dump(mode="json"))


def analyse_run(ref: DatasetRef, scenario: dict[str, Any], result: dict[str, Any],
                settings: dict[str, Any]) -> AnalysisAnswer:
    """A stored run's report analysis (sensitivity re-solves and alternatives) on the
    worker's built model of the run's dataset."""
    from optimizer.reports.analysis import AnalysisSettings, analyse

    try:
        sc = load_scenario(scenario)
        res = Result.model_validate(result)
    except (InputError, ValueError) as exc:
        return Unanalysable(str(exc))
    opt = worker_optimizer(ref)
    return Analysed(analyse(opt, sc, res, AnalysisSettings(**settings)).model_dump(mode="json"))
