"""What the routes do, kept out of the route functions: the database with deadlines, the
dataset a request means, solves and analyses in the worker pool (their outcomes mapped to
HTTP problems here and nowhere else), storing runs (idempotency, races, retries), quotas.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from optimizer import InputError, load_projects
from optimizer.data import ProjectData
from optimizer.sample import sample_cells
from optimizer.schema import WITH_PORTFOLIO

from . import worker
from .access import Principal
from .config import Settings
from .db import DatasetRow, RunRow, Store
from .pool import Busy, DeadlineExceeded, SolverPool, WorkerCrashed
from .problems import Problem, from_input_error, invalid

log = logging.getLogger("api")
T = TypeVar("T")

# Database errors that say "not now" rather than "never": the answer is a 503 + Retry-After.
UNAVAILABLE = (OperationalError, InterfaceError, SATimeoutError)


def database_problem(exc: BaseException, retry_after_s: int) -> Problem:
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    return Problem(503, f"the database is unavailable ({type(exc).__name__}: {first[:200]}); "
                   f"retry in {retry_after_s} s", headers={"Retry-After": str(retry_after_s)})


class AsyncStore:
    """The :class:`Store`'s methods as coroutines run in a thread, each bounded in time: a
    database that does not answer within ``timeout_s`` gives a 503 with Retry-After instead
    of a request that hangs (the thread is abandoned; the engine's own timeouts end it)."""

    def __init__(self, store: Store, timeout_s: float, retry_after_s: int) -> None:
        self.sync = store
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.usage = Usage()  # storage used per key (quotas)
        self.batch_locks: dict[str, asyncio.Lock] = {}  # one batch admission per key at once

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs),
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise Problem(503, f"the database did not answer within {self.timeout_s:g} s; "
                          f"retry in {self.retry_after_s} s",
                          headers={"Retry-After": str(self.retry_after_s)}) from None
        except UNAVAILABLE as exc:
            raise database_problem(exc, self.retry_after_s) from None

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        fn = getattr(self.sync, name)
        if not callable(fn):
            raise AttributeError(name)
        return functools.partial(self.call, fn)


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


async def store_rows(db: AsyncStore, rows: Any, name: str, who: Principal
                     ) -> tuple[DatasetRow, bool]:
    """Validate rows and store them under their content hash: (stored row, newly created)."""
    data = await run_in_threadpool(validate_rows, rows)
    row, created = await db.put_dataset(data.sha256, data.records(), name, who.name)
    if created:
        db.usage.add(who.name, row.bytes)
    return row, created


async def resolve_dataset(db: AsyncStore, default: Dataset, projects: list | None,
                          dataset_id: str | None, who: Principal) -> Dataset:
    if projects is not None and dataset_id is not None:
        raise Problem(422, "send either projects or dataset_id, not both",
                      errors=[{"loc": ["body", "dataset_id"],
                               "msg": "field 'dataset_id': not allowed together with projects"}])
    if projects is not None:
        row, _ = await store_rows(db, projects, "", who)
        return Dataset(row.id, row.records)
    if dataset_id is not None:
        row = await db.get_dataset(dataset_id)
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


# ---------------------------------------------------------------------------------------------
# the worker pool: its outcomes as HTTP problems, in this one place
# ---------------------------------------------------------------------------------------------


def pool_problem(exc: BaseException, settings: Settings, what: str = "the request",
                 on_deadline: str = "") -> Problem:
    """The one mapping of the worker pool's outcomes to HTTP problems: busy or crashed 503
    with Retry-After, past the deadline 504, a bug in the worker 500 (logged with the
    worker's traceback)."""
    retry = {"Retry-After": str(settings.retry_after_s)}
    if isinstance(exc, Busy):
        return Problem(503, f"{exc}; retry in {settings.retry_after_s} s", headers=retry)
    if isinstance(exc, DeadlineExceeded):
        return Problem(504, f"{what} was stopped: {exc} {on_deadline}".rstrip())
    if isinstance(exc, WorkerCrashed):
        return Problem(503, f"{exc}; it has been replaced, retry", headers=retry)
    log.error("%s failed in a worker: %r\n%s", what, exc, getattr(exc, "traceback", ""))
    return Problem(500, f"{what} failed inside the solver process; it has been logged")


@contextlib.contextmanager
def admitted(pool: SolverPool, settings: Settings):
    """One of the pool's places for the body of the ``with``, or 503 + Retry-After at once."""
    try:
        with pool.admit():
            yield
    except Busy as exc:
        raise pool_problem(exc, settings) from None


async def in_worker(pool: SolverPool, settings: Settings, what: str, fn, *args: Any,
                    deadline_s: float, on_deadline: str = "") -> Any:
    """``fn(*args)`` in a solver worker (the caller holds a place: :func:`admitted`); any
    outcome but an answer becomes a problem (:func:`pool_problem`)."""
    try:
        return await pool.run(fn, *args, deadline_s=deadline_s)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every other outcome is mapped, in one place
        raise pool_problem(exc, settings, what, on_deadline) from None


async def solve(pool: SolverPool, settings: Settings, dataset: Dataset,
                scenario: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a worker; returns the result dict or raises a Problem.

    The worker gets a reference to the dataset's cache file, not the rows: a worker that
    has the model built already never reads them."""
    deadline = settings.deadline_for(scenario["solver"]["time_limit_s"])
    ref = await run_in_threadpool(pool.executor.dataset_ref, dataset.id, dataset.records)
    answer = await in_worker(
        pool, settings, "the solve", worker.solve, ref, scenario, deadline_s=deadline,
        on_deadline="(HiGHS did not stop at its own time limit); lower solver.time_limit_s or "
                    "simplify the scenario")
    match answer:
        case worker.Solved(result):
            return result
        case worker.Invalid(problems):
            raise invalid([{"loc": ["body", *p["loc"]], "msg": p["msg"]} for p in problems])
        case worker.CheckFailed(message):
            raise Problem(500, "the solver's portfolio failed the independent constraint "
                          "check, so it is not reported: " + message)
    raise AssertionError(f"unknown worker answer {answer!r}")


def check_sample_size(settings: Settings, scenarios: Iterable[dict[str, Any]], n_projects: int,
                      loc: tuple[str, ...]) -> None:
    """413 when a scenario's sample (draws, or fresh draws, x projects) is over the server's
    cap (``OPTIMIZER_MAX_SAMPLE_CELLS``): checked from the spec, before anything is drawn."""
    for sc in scenarios:
        cells = sample_cells((sc or {}).get("uncertainty"), n_projects)
        if cells > settings.max_sample_cells:
            raise Problem(413, f"the scenario's sample is {cells:,} cells (draws x {n_projects:,} "
                          f"projects), over this server's cap of {settings.max_sample_cells:,} "
                          "(OPTIMIZER_MAX_SAMPLE_CELLS): fewer draws",
                          errors=[{"loc": [*loc, "uncertainty"],
                                   "msg": f"sample of {cells:,} cells over the cap of "
                                          f"{settings.max_sample_cells:,}"}])


# ---------------------------------------------------------------------------------------------
# runs: idempotency, races and retries
# ---------------------------------------------------------------------------------------------


def request_sha256(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def scoped_idempotency_key(who: Principal, key: str) -> str:
    """Idempotency keys belong to the key that sent them: two clients using the same header
    value never see each other's runs. Stored as a digest of (key name, header value)."""
    return hashlib.sha256(f"{who.name}\x00{key}".encode()).hexdigest()


async def create_run(request: Request, db: AsyncStore, pool: SolverPool, settings: Settings,
                     who: Principal, payload: dict[str, Any], projects: list | None,
                     dataset_id: str | None, idempotency_key: str | None) -> RunRow:
    """POST /optimize: the stored run for a repeated Idempotency-Key, else solve and store."""
    key = scoped_idempotency_key(who, idempotency_key) if idempotency_key else None
    req_sha = request_sha256(payload) if key else None
    if key:
        prior = await db.run_by_key(key)
        if prior is not None:
            return _same_body(prior, req_sha)
    await check_storage(db, settings, who)
    scenario = payload["scenario"]
    scenario["solver"]["time_limit_s"] = min(scenario["solver"]["time_limit_s"],
                                             settings.max_time_limit_s)
    with admitted(pool, settings):  # 503 at once when workers + queue are taken
        dataset = await resolve_dataset(db, request.app.state.default_dataset, projects,
                                        dataset_id, who)
        check_sample_size(settings, [scenario], len(dataset.records), ("body", "scenario"))
        result = await until_disconnected(request, solve(pool, settings, dataset, scenario))
    try:
        return await store_run(db, settings, who, dataset.id, scenario, result, key, req_sha)
    except IntegrityError:  # the same key raced in from another request
        prior = await db.run_by_key(key)
        if prior is None:
            raise
        return _same_body(prior, req_sha)


def _same_body(prior: RunRow, req_sha: str | None) -> RunRow:
    if prior.request_sha256 != req_sha:
        raise Problem(409, "this Idempotency-Key was used with a different body")
    return prior


async def store_run(db: AsyncStore, settings: Settings, who: Principal, dataset_id: str,
                    scenario: dict, result: dict, key: str | None,
                    req_sha: str | None) -> RunRow:
    """Store a solved run, trying ``store_attempts`` times (a full disk or a database that
    went away may come back); otherwise a 503 that says the run is not stored and carries
    the result, so the work is not lost to the client."""
    last: Problem | None = None
    for attempt in range(settings.store_attempts):
        if attempt:
            await asyncio.sleep(min(0.25 * 2 ** attempt, 2.0))
        try:
            row = await db.call(db.sync.add_run, dataset_id=dataset_id, scenario=scenario,
                                result=result, idempotency_key=key, request_sha256=req_sha,
                                created_by=who.name)
            db.usage.add(who.name, row.bytes)
            return row
        except IntegrityError:
            raise
        except DBAPIError as exc:  # not "unavailable" but failed all the same: try again
            last = database_problem(exc, settings.retry_after_s)
        except Problem as exc:
            last = exc
        log.warning("storing a run failed (attempt %d of %d): %s", attempt + 1,
                    settings.store_attempts, last.detail if last else "")
    reason = last.detail if last else "unknown"
    raise Problem(503, f"the scenario was solved (status {result.get('status')}) but the run "
                  f"could NOT be stored after {settings.store_attempts} attempts, so it has "
                  f"no run_id; the result is in this answer's `result`. Cause: {reason}",
                  headers={"Retry-After": str(settings.retry_after_s)},
                  extra={"result": result, "stored": False})


# ---------------------------------------------------------------------------------------------
# report analyses: computed once, shared by concurrent requests
# ---------------------------------------------------------------------------------------------

ANALYSIS = {"time_budget_s": 30.0, "resolve_time_limit_s": 10.0}  # AnalysisSettings fields


class Analyses:
    """A run's report analysis (sensitivity re-solves, alternatives): the stored one, or
    computed once in a solver worker and stored; concurrent requests for the same new one
    share one computation, which a client going away does not stop."""

    def __init__(self, db: AsyncStore, pool: SolverPool, settings: Settings) -> None:
        self.db = db
        self.pool = pool
        self.settings = settings
        self._inflight: dict[str, asyncio.Future] = {}

    async def of(self, row: RunRow) -> dict[str, Any] | None:
        """None for a run without a portfolio: its report shows the diagnosis instead."""
        if row.status not in WITH_PORTFOLIO:
            return None
        stored = await self.db.get_analysis(row.run_id)
        if stored is not None:
            return stored
        fut = self._inflight.get(row.run_id)
        if fut is None:
            fut = asyncio.ensure_future(self._compute(row))
            self._inflight[row.run_id] = fut
            fut.add_done_callback(lambda _: self._inflight.pop(row.run_id, None))
        return await asyncio.shield(fut)

    async def _compute(self, row: RunRow) -> dict[str, Any]:
        ds = await self.db.get_dataset(row.dataset_id)
        if ds is None:
            raise Problem(404, f"the dataset of run {row.run_id} is no longer stored")
        ref = await run_in_threadpool(self.pool.executor.dataset_ref, ds.id, ds.records)
        limit = min(ANALYSIS["resolve_time_limit_s"], row.scenario["solver"]["time_limit_s"])
        deadline = self.settings.deadline_for(limit, extra_s=ANALYSIS["time_budget_s"])
        with admitted(self.pool, self.settings):
            answer = await in_worker(self.pool, self.settings, "the report's analysis",
                                     worker.analyse_run, ref, row.scenario, row.result,
                                     ANALYSIS, deadline_s=deadline)
        if not isinstance(answer, worker.Analysed):
            raise Problem(500, f"the stored run cannot be analysed: {answer.message}")
        await self.db.put_analysis(row.run_id, answer.analysis)
        return answer.analysis


# ---------------------------------------------------------------------------------------------
# quotas
# ---------------------------------------------------------------------------------------------

_USAGE_TTL_S = 10.0


class Usage:
    """Storage used per key: read from the database at most every 10 s (a request does not
    pay three sums), plus what this process stored for the key since."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, int]] = {}

    async def of(self, db: AsyncStore, name: str) -> int:
        at, used = self._seen.get(name, (0.0, 0))
        if time.monotonic() - at > _USAGE_TTL_S:
            used = await db.usage_bytes(name)
            self._seen[name] = (time.monotonic(), used)
        return used

    def add(self, name: str, n: int) -> None:
        if name in self._seen:
            at, used = self._seen[name]
            self._seen[name] = (at, used + n)



async def check_storage(db: AsyncStore, settings: Settings, who: Principal) -> None:
    """403 when the key's stored runs, datasets and batch rows are over its budget."""
    if settings.storage_budget_mb <= 0:
        return
    used = await db.usage.of(db, who.name)
    budget = settings.storage_budget_mb * 1e6
    if used >= budget:
        raise Problem(403, f"key {who.name!r} holds {used / 1e6:,.1f} MB of stored runs, "
                      f"datasets and batch rows, its storage budget is "
                      f"{settings.storage_budget_mb:,.0f} MB (OPTIMIZER_STORAGE_BUDGET_MB); "
                      "delete some (DELETE /runs/{id}, /datasets/{id}, "
                      "/batches/{id}?purge=true) first", type_="/problems/storage-budget")



async def add_batch_within_quota(db: AsyncStore, settings: Settings, who: Principal,
                                 **batch: Any):
    """Store a new batch unless the key would then have more than its quota of unfinished
    batches or rows (429 + Retry-After). The count and the insert are one step per key in
    this process (a burst cannot slip past)."""
    await check_storage(db, settings, who)
    lock = db.batch_locks.setdefault(who.name, asyncio.Lock())
    async with lock:
        n, rows = await db.unfinished(who.name)
        max_n = settings.batch_max_unfinished_per_key
        max_rows = settings.batch_max_unfinished_rows_per_key
        retry = {"Retry-After": str(settings.quota_retry_after_s)}
        if n + 1 > max_n:
            raise Problem(429, f"key {who.name!r} has {n} batches queued or running, the most "
                          f"it may have (OPTIMIZER_BATCH_MAX_UNFINISHED_PER_KEY={max_n}); "
                          f"retry when one finishes", headers=retry)
        if rows + batch["total"] > max_rows:
            raise Problem(429, f"key {who.name!r} has {rows:,} batch rows queued or running; "
                          f"{batch['total']:,} more would pass its quota of {max_rows:,} "
                          "(OPTIMIZER_BATCH_MAX_UNFINISHED_ROWS_PER_KEY); retry when some "
                          "finish", headers=retry)
        row = await db.add_batch(created_by=who.name, **batch)
        db.usage.add(who.name, row.bytes)
        return row


def cap_batch_time_limits(spec: dict[str, Any], cap: float) -> dict[str, Any]:
    """The spec with every ``solver.time_limit_s`` it sets capped at ``cap`` (the base's
    default too), as POST /optimize caps a scenario's; values that are not numbers are left
    for validation to name."""
    def capped(v):
        return min(v, cap) if isinstance(v, int | float) and not isinstance(v, bool) else v

    out = dict(spec)
    base = out.get("base")
    if isinstance(base, dict):
        solver = base.get("solver")
        solver = dict(solver) if isinstance(solver, dict) else {} if solver is None else solver
        if isinstance(solver, dict):
            solver["time_limit_s"] = capped(solver.get("time_limit_s", cap))
            out["base"] = {**base, "solver": solver}
    if isinstance(out.get("scenarios"), list):
        out["scenarios"] = [
            {**p, "solver": {**p["solver"], "time_limit_s": capped(p["solver"]["time_limit_s"])}}
            if isinstance(p, dict) and isinstance(p.get("solver"), dict)
            and "time_limit_s" in p["solver"] else p for p in out["scenarios"]]
    grid = out.get("grid")
    if isinstance(grid, dict) and isinstance(grid.get("solver.time_limit_s"), list):
        out["grid"] = {**grid, "solver.time_limit_s": [capped(v)
                                                       for v in grid["solver.time_limit_s"]]}
    return out


def batch_time_limit(spec: dict[str, Any]) -> float:
    """The largest HiGHS time limit of a (capped) spec's rows: its rows' hard deadline."""
    limits = [spec.get("base", {}).get("solver", {}).get("time_limit_s", 60.0)]
    for p in spec.get("scenarios") or []:
        if isinstance(p, dict) and isinstance(p.get("solver"), dict):
            limits.append(p["solver"].get("time_limit_s", limits[0]))
    limits += (spec.get("grid") or {}).get("solver.time_limit_s", [])
    return max(float(v) for v in limits if isinstance(v, int | float))
