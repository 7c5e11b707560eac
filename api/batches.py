"""Batches in the service: the library's batch engine with the database as its sink.

``POST /batches`` validates and stores the spec (202); a :class:`BatchManager` in each server
process claims queued batches from the database and runs them in a thread, on worker
processes of its own (``OPTIMIZER_BATCH_WORKERS``, run at a lower CPU priority so interactive
``POST /optimize`` keeps its speed). Rows are stored as they finish. While running, the
manager beats a heartbeat into the batch's row; a batch whose server was killed stops
beating and is taken over (resumed) by the next server that looks, so no batch stays
``running`` forever. ``DELETE`` marks the batch cancelled; the runner sees it within a
heartbeat (or at once, in the same process) and cancels what is in flight, keeping finished
rows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from optimizer import load_projects
from optimizer.batch import parse_spec, run_batch
from optimizer.batch.executors import LocalProcesses

from .config import Settings
from .db import BatchRow, Store
from .service import batch_time_limit

log = logging.getLogger("api.batches")


class DbSink:
    """Rows of one batch into the database (CONTRACT: stored as they finish)."""

    def __init__(self, store: Store, batch_id: str) -> None:
        self.store = store
        self.batch_id = batch_id
        self.done: set[int] = store.batch_indices(batch_id)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.store.add_batch_rows(self.batch_id, rows)

    def stored_rows(self):
        return self.store.batch_rows(self.batch_id)


class BatchManager:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.owner = uuid.uuid4().hex
        self._cancel: dict[str, threading.Event] = {}
        self._task: asyncio.Task | None = None
        self._runs: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        s = self.settings
        while not self._stopping:
            try:
                if len(self._runs) < s.batch_concurrency:
                    row = await asyncio.to_thread(self.store.claim_batch, self.owner,
                                                  s.batch_stale_after_s)
                    if row is not None:
                        task = asyncio.get_running_loop().create_task(
                            asyncio.to_thread(self._run, row))
                        self._runs.add(task)
                        task.add_done_callback(self._runs.discard)
                        continue
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("batch manager: claiming failed")
            await asyncio.sleep(s.batch_poll_s)

    def cancel(self, batch_id: str) -> None:
        ev = self._cancel.get(batch_id)
        if ev is not None:
            ev.set()

    async def close(self) -> None:
        """Stop claiming and stop running batches without marking them: they stay
        ``running`` with a stale heartbeat and are resumed by the next server."""
        self._stopping = True
        if self._task:
            self._task.cancel()
        for ev in self._cancel.values():
            ev.set()
        if self._runs:
            await asyncio.wait(self._runs, timeout=30)

    # -- in a thread ------------------------------------------------------------------------
    def _run(self, row: BatchRow) -> None:
        bid = row.batch_id
        cancel = threading.Event()
        self._cancel[bid] = cancel
        stop_beat = threading.Event()
        beat = threading.Thread(target=self._beat, args=(bid, cancel, stop_beat), daemon=True,
                                name=f"batch-beat-{bid[:8]}")
        beat.start()
        executor = None
        try:
            spec = parse_spec(row.spec, max_rows=self.settings.batch_max_rows)
            ds = self.store.get_dataset(row.dataset_id)
            data = load_projects(ds.records)
            # the spec's time limits were capped when it was accepted (service)
            limit = min(batch_time_limit(row.spec), self.settings.max_time_limit_s)
            executor = LocalProcesses(self.settings.batch_workers,
                                      row_deadline_s=self.settings.deadline_for(limit),
                                      niceness=10)
            summary = run_batch(spec, data, executor=executor, sink=DbSink(self.store, bid),
                                cancel=cancel, validated=False)
            if self._stopping:
                return  # shutting down: leave it running, to be resumed
            status = "cancelled" if summary["status"] == "cancelled" else "done"
            self.store.finish_batch(bid, self.owner, status, _jsonable(summary))
        except Exception as exc:  # noqa: BLE001 - the batch fails, the server goes on
            log.exception("batch %s failed", bid)
            if not self._stopping:
                self.store.finish_batch(bid, self.owner, "failed", None,
                                        f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            stop_beat.set()
            if executor is not None:
                executor.close()
            self._cancel.pop(bid, None)

    def _beat(self, bid: str, cancel: threading.Event, stop: threading.Event) -> None:
        while not stop.wait(self.settings.batch_heartbeat_s):
            try:
                status = self.store.beat(bid, self.owner)
            except Exception:  # noqa: BLE001
                log.exception("batch %s: heartbeat failed", bid)
                continue
            if status != "running":  # cancelled through another server, or taken over
                cancel.set()
                return


def _jsonable(summary: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(summary, default=str))
