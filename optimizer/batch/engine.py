"""The batch engine: one loop for the CLI and the HTTP service, any executor, any sink.

``run_batch(spec, data, executor=..., sink=...)`` validates every row first, then streams
chunks of rows to the executor (a bounded window in flight, so memory stays flat however many
rows), hands each finished chunk to the sink at once (the CLI's ``results.jsonl``, the
service's database) and keeps running summaries. Rows the sink already holds (a resumed run)
are never solved again. Cancelling stops submitting, cancels what is in flight and keeps
every finished row.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..data import ProjectData
from ..schema import PRODUCTS, WITH_PORTFOLIO, BatchRow, Scenario
from .spec import BatchSpec, SupplyFrontier, Task, expand, row_count, validate_rows
from .summaries import Tally
from .worker import ChunkContext, solve_tasks


class Sink(Protocol):
    """Where finished rows go. ``done`` holds the indices already stored (resume)."""

    done: set[int]

    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def stored_rows(self) -> Iterator[dict[str, Any]]: ...


class ChunkFuture(Protocol):
    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...

    def result(self, timeout: float | None = None) -> list[dict[str, Any]]: ...

    def cancel(self) -> bool: ...


class Executor(Protocol):
    """Runs chunks of rows somewhere (worker processes, a Dask cluster, this process)."""

    workers: int

    def prepare(self, data: ProjectData, mutable_data: bool) -> None: ...

    def submit(self, ctx: ChunkContext, tasks: list[Task]) -> ChunkFuture: ...

    def close(self) -> None: ...


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    resumed: int = 0  # rows already stored when this run started

    @property
    def rate(self) -> float:
        """Rows per second solved by this run."""
        dt = time.monotonic() - self.started
        return (self.done - self.resumed) / dt if dt > 0 else 0.0


def _chunks(tasks: Iterator[Task], size: int) -> Iterator[list[Task]]:
    chunk: list[Task] = []
    for t in tasks:
        chunk.append(t)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def auto_chunk(remaining: int, workers: int) -> int:
    """Rows per task: enough that Dask's ~1 ms per task is noise against ~20 ms per solve,
    few enough that every worker gets a dozen tasks (load balance at the end) and a cancel or
    a kill loses little."""
    return max(1, min(25, math.ceil(remaining / max(1, 12 * workers))))


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    """What another worker needs of a finished row to re-use it (optimizer.batch.reuse)."""
    return {"index": row["index"], "status": row["status"], "best_bound": row["best_bound"],
            "selected": [{"project_id": p["project_id"], "stake": p["stake"]}
                         for p in row["selected"]],
            "solver": {"termination": (row.get("solver") or {}).get("termination", "")}}


def prepare_context(spec: BatchSpec, data: ProjectData, executor: Executor
                    ) -> tuple[ChunkContext, tuple[float, float] | None, dict[str, Any]]:
    """Pre-solves a batch needs before its rows: the base portfolio (Monte Carlo) and the
    range of a supply frontier. Run on the executor like any row."""
    info: dict[str, Any] = {}
    base_stakes = None
    supply_range = None
    mc = spec.monte_carlo
    if mc is not None:
        fut = executor.submit(ChunkContext(diagnose=False), [Task(-1, dict(spec.base))])
        row = fut.result()[0]
        if row["status"] in WITH_PORTFOLIO:
            base_stakes = {p["project_id"]: p["stake"] for p in row["selected"]}
        info["base_solution"] = {"status": row["status"], "objective": row.get("objective"),
                                  "selected": base_stakes or {}}
    if isinstance(spec.frontier, SupplyFrontier):
        w = Scenario.model_validate(spec.base).weights()
        at_npv = {**spec.base, "objective": "npv"}
        at_max = {**spec.base, "objective": "supply"}
        rows = executor.submit(ChunkContext(diagnose=False),
                               [Task(-1, at_npv), Task(-2, at_max)]).result()
        supply = [sum(w[m] * r["totals"]["output_t"][m] for m in PRODUCTS)
                  if r["status"] in WITH_PORTFOLIO else None for r in rows]
        if None in supply:
            raise BatchError("the base scenario has no portfolio, so a supply frontier has no "
                             "range: " + "; ".join(r["status"] for r in rows))
        supply_range = (min(supply), max(supply))
        info["supply_range"] = list(supply_range)
    ctx = ChunkContext(diagnose=spec.diagnose, monte_carlo=mc, base_stakes=base_stakes,
                       frontier=spec.frontier is not None, grid=spec.grid,
                       reuse=spec.reuse and mc is None and spec.frontier is None,
                       token=uuid.uuid4().hex)
    return ctx, supply_range, info


class BatchError(RuntimeError):
    """The batch as a whole cannot run (not a bad row: those are rows with a status)."""


def run_batch(spec: BatchSpec, data: ProjectData, *, executor: Executor, sink: Sink,
              chunk_size: int | None = None, on_progress: Callable[[Progress], None] | None = None,
              cancel: threading.Event | None = None, validated: bool = False
              ) -> dict[str, Any]:
    """Solve every row of ``spec`` the sink does not hold yet; returns the summary.
    ``validated``: the caller has run :func:`validate_rows` already."""
    if not validated:
        validate_rows(spec, data)
    total = row_count(spec)
    tally = Tally(data.ids, spec.core_share, spec.exterior_share)
    for row in sink.stored_rows():
        tally.add(row)
    progress = Progress(total=total, done=len(sink.done),
                        failed=tally.status.get("failed", 0), resumed=len(sink.done))
    cancel = cancel or threading.Event()
    t0 = time.monotonic()
    executor.prepare(data, mutable_data=spec.monte_carlo is not None)
    ctx, supply_range, info = prepare_context(spec, data, executor)
    remaining = total - len(sink.done)
    size = chunk_size or (max(1, remaining) if ctx.frontier
                          else auto_chunk(remaining, executor.workers))
    order = expand(spec, data, supply_range, loose_first=ctx.reuse and spec.grid is not None)
    chunks = _chunks((t for t in order if t.index not in sink.done), size)
    if ctx.frontier and isinstance(spec.frontier, SupplyFrontier):
        # tight to loose within a chunk, so each point can pass its portfolio on
        chunks = (list(reversed(c)) for c in chunks)
    finished: queue.Queue = queue.Queue()
    window = max(2, 2 * executor.workers)
    in_flight: dict[int, tuple[ChunkFuture, list[Task]]] = {}
    counter = iter(range(1 << 62))
    recent: deque[tuple[dict[str, Any], dict[str, Any]]] = deque(maxlen=32)

    def submit_more() -> None:
        while len(in_flight) < window and not cancel.is_set():
            tasks = next(chunks, None)
            if tasks is None:
                return
            k = next(counter)
            chunk_ctx = dataclasses.replace(ctx, priors=tuple(recent)) if ctx.reuse else ctx
            fut = executor.submit(chunk_ctx, tasks)
            in_flight[k] = (fut, tasks)
            fut.add_done_callback(lambda f, k=k: finished.put((k, f)))

    if on_progress:
        on_progress(progress)
    submit_more()
    while in_flight:
        try:
            k, fut = finished.get(timeout=0.2)
        except queue.Empty:
            if cancel.is_set():
                for f, _ in in_flight.values():
                    f.cancel()
                break
            continue
        _, tasks = in_flight.pop(k)
        try:
            rows = fut.result()
        except Exception as exc:  # noqa: BLE001 - the chunk's rows fail, the batch goes on
            if cancel.is_set():
                continue
            why = f"the worker running this row failed: {type(exc).__name__}: {exc}"
            rows = [BatchRow.failure(t.index, t.scenario, why).dump() for t in tasks]
        rows.sort(key=lambda r: r["index"])
        sink.write(rows)
        for r in rows:
            tally.add(r)
            sink.done.add(r["index"])
            if ctx.reuse and r["status"] in WITH_PORTFOLIO and "reused_from" not in r:
                recent.append((r["scenario"], _brief(r)))
        progress.done += len(rows)
        progress.failed += sum(r["status"] == "failed" for r in rows)
        if on_progress:
            on_progress(progress)
        submit_more()
    progress.status = "cancelled" if cancel.is_set() and progress.done < total else "done"
    if on_progress:
        on_progress(progress)
    summary = tally.summary()
    summary.update(kind=spec.kind, name=spec.name, total=total, missing=total - progress.done,
                   status=progress.status, wall_s=time.monotonic() - t0,
                   workers=executor.workers, chunk_size=size, **info)
    return summary


class InProcessExecutor:
    """Runs chunks here, one after another (tests, tiny batches, a debugger)."""

    workers = 1

    def __init__(self) -> None:
        self._opt = None

    def prepare(self, data: ProjectData, mutable_data: bool) -> None:
        from ..solve import Optimizer

        self._opt = Optimizer(data, mutable_data=mutable_data)

    def submit(self, ctx: ChunkContext, tasks: list[Task]) -> ChunkFuture:
        from concurrent.futures import Future

        fut: Future = Future()
        try:
            fut.set_result(solve_tasks(self._opt, ctx, tasks))
        except Exception as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        self._opt = None
