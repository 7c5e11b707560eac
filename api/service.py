"""What the routes do, kept out of the route functions: resolving the dataset a request
means, dispatching a solve to the pool, mapping pool outcomes to HTTP problems."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from optimizer import InputError, load_projects
from optimizer.data import ProjectData

from .config import Settings
from .db import DatasetRow, Store
from .pool import Busy, DeadlineExceeded, WorkerCrashed, WorkerPool
from .problems import Problem, from_input_error, invalid


@dataclass(frozen=True)
class Dataset:
    id: str
    records: list[dict[str, Any]]


def validate_rows(rows: Any) -> ProjectData:
    """Library validation of inline rows; errors become 422 naming body.projects.i.column."""
    try:
        return load_projects(rows)
    except InputError as exc:
        raise from_input_error(exc) from None


async def store_rows(store: Store, rows: Any, name: str = "") -> tuple[DatasetRow, bool]:
    """Validate rows and store them under their content hash: (stored row, newly created)."""
    data = await run_in_threadpool(validate_rows, rows)
    return await run_in_threadpool(store.put_dataset, data.sha256, data.records(), name)


async def resolve_dataset(store: Store, default: Dataset, projects: list | None,
                          dataset_id: str | None) -> Dataset:
    if projects is not None and dataset_id is not None:
        raise Problem(422, "send either projects or dataset_id, not both",
                      errors=[{"loc": ["body", "dataset_id"],
                               "msg": "field 'dataset_id': not allowed together with projects"}])
    if projects is not None:
        row, _ = await store_rows(store, projects)
        return Dataset(row.id, row.records)
    if dataset_id is not None:
        row = await run_in_threadpool(store.get_dataset, dataset_id)
        if row is None:
            raise Problem(404, f"no dataset {dataset_id}")
        return Dataset(row.id, row.records)
    return default


def request_sha256(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def solve(pool: WorkerPool, settings: Settings, dataset: Dataset,
                scenario: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a worker; returns the result dict or raises a Problem."""
    deadline = settings.deadline_for(scenario["solver"]["time_limit_s"])
    job = {"dataset_id": dataset.id, "records": dataset.records, "scenario": scenario}
    retry = {"Retry-After": str(settings.retry_after_s)}
    try:
        kind, body = await pool.run(job, deadline)
    except Busy as exc:
        raise Problem(503, f"{exc}; retry later", headers=retry) from None
    except DeadlineExceeded as exc:
        raise Problem(504, f"the solve was stopped: {exc} (HiGHS did not stop at its own "
                      f"time limit); lower solver.time_limit_s or simplify the scenario") from None
    except WorkerCrashed as exc:
        raise Problem(503, f"{exc}; it has been replaced, retry", headers=retry) from None
    if kind == "ok":
        return body
    if kind == "input":
        raise invalid([{"loc": ["body", *p["loc"]], "msg": p["msg"]} for p in body])
    if kind == "check_failed":
        raise Problem(500, "the solver's portfolio failed the independent constraint check, "
                      "so it is not reported: " + body)
    raise Problem(500, "the solve failed inside the solver process; it has been logged")
