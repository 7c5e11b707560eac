"""The report task, run in a solver worker process: the analysis of a stored run (its
sensitivity re-solves and alternatives) on the worker's built model of the run's dataset.

Answers plain data like :mod:`api.worker`: ``("ok", analysis)`` or ``("input", message)``
when the stored run no longer fits the library (e.g. a scenario field since renamed).
"""

from __future__ import annotations

from typing import Any

from optimizer import InputError, Result, load_scenario
from optimizer.parallel import DatasetRef, worker_optimizer
from optimizer.reports.analysis import AnalysisSettings, analyse


def analyse_run(ref: DatasetRef, scenario: dict[str, Any], result: dict[str, Any],
                settings: dict[str, Any]) -> tuple[str, Any]:
    try:
        sc = load_scenario(scenario)
        res = Result.model_validate(result)
    except (InputError, ValueError) as exc:
        return "input", str(exc)
    opt = worker_optimizer(ref)
    return "ok", analyse(opt, sc, res, AnalysisSettings(**settings)).model_dump(mode="json")
