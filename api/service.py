"""What the routes do, kept out of the route functions: resolving the dataset a request
means, dispatching a solve to the pool, mapping pool outcomes to HTTP problems."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from optimizer import InputError, load_projects
from optimizer.data import ProjectData

from . import worker
from .config import Settings
from .db import DatasetRow, Store
from .pool import Busy, DeadlineExceeded, SolverPool, WorkerCrashed
from .problems import Problem, from_input_error, invalid

log = logging.getLogger("api")
T = TypeVar("T")


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


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


async def until_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first (a solve nobody waits
    for is stopped and its worker replaced, instead of holding a worker to the deadline).
    Starlette does not cancel a request handler on disconnect; this watches for it."""

    async def disconnected() -> None:
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        except Exception:  # noqa: BLE001 - cannot tell: never take that for a disconnect
            await asyncio.Event().wait()

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left (or this handler itself is being cancelled)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


def request_sha256(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def in_worker(pool: SolverPool, settings: Settings, what: str, fn, *args: Any,
                    deadline_s: float, on_deadline: str = "") -> tuple[str, Any]:
    """``fn(*args)`` in a solver worker (the caller has been admitted); the pool's outcomes
    as HTTP problems: busy or crashed 503 with Retry-After, past the deadline 504, a bug in
    the worker 500 (logged with the worker's traceback)."""
    retry = {"Retry-After": str(settings.retry_after_s)}
    try:
        return await pool.run(fn, *args, deadline_s=deadline_s)
    except Busy as exc:
        raise Problem(503, f"{exc}; retry in {settings.retry_after_s} s",
                      headers=retry) from None
    except DeadlineExceeded as exc:
        raise Problem(504, f"{what} was stopped: {exc} {on_deadline}".rstrip()) from None
    except WorkerCrashed as exc:
        raise Problem(503, f"{exc}; it has been replaced, retry", headers=retry) from None
    except Exception as exc:  # a bug in the worker: pebble carries its traceback over
        log.error("%s failed in a worker: %r\n%s", what, exc, getattr(exc, "traceback", ""))
        raise Problem(500, f"{what} failed inside the solver process; it has been "
                      "logged") from None


async def solve(pool: SolverPool, settings: Settings, dataset: Dataset,
                scenario: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a worker; returns the result dict or raises a Problem.

    The worker gets a reference to the dataset's cache file, not the rows: a worker that
    has the model built already never reads them."""
    deadline = settings.deadline_for(scenario["solver"]["time_limit_s"])
    ref = await run_in_threadpool(pool.executor.dataset_ref, dataset.id, dataset.records)
    kind, body = await in_worker(
        pool, settings, "the solve", worker.solve, ref, scenario, deadline_s=deadline,
        on_deadline="(HiGHS did not stop at its own time limit); lower solver.time_limit_s or "
                    "simplify the scenario")
    if kind == "ok":
        return body
    if kind == "input":
        raise invalid([{"loc": ["body", *p["loc"]], "msg": p["msg"]} for p in body])
    if kind == "check_failed":
        raise Problem(500, "the solver's portfolio failed the independent constraint check, "
                      "so it is not reported: " + body)
    raise AssertionError(f"unknown worker answer {kind!r}")
