"""The service's task, run in a solver worker process (see :mod:`optimizer.parallel`).

Answers plain data, never a library exception object, so nothing but JSON-ready values
crosses the process boundary: ``("ok", result)``, ``("input", problems)`` (the scenario does
not fit the dataset: 422) or ``("check_failed", message)`` (500). Any other exception is a bug;
pebble hands it to the parent with its traceback.
"""

from __future__ import annotations

from typing import Any

from optimizer import InputError, SolutionCheckError
from optimizer.parallel import DatasetRef, worker_optimizer


def solve(ref: DatasetRef, scenario: dict[str, Any]) -> tuple[str, Any]:
    try:
        result = worker_optimizer(ref).solve(scenario)
    except InputError as exc:
        return "input", exc.to_list()
    except SolutionCheckError as exc:
        return "check_failed", str(exc)
    return "ok", result.model_dump(mode="json")
