"""A bounded pool of spawned solver processes with hard deadlines, driven from asyncio.

- At most ``size`` solves run at once; at most ``max_queue`` requests wait; beyond that
  :class:`Busy` is raised at once (the route answers 503 with Retry-After).
- Each job has a wall-clock deadline enforced here, not trusted to HiGHS: past it the worker
  is killed and replaced, and :class:`DeadlineExceeded` is raised.
- A worker that dies mid-job (kill -9, crash) raises :class:`WorkerCrashed` for that job only;
  it is replaced and the pool carries on.
- A worker is retired after ``max_tasks`` jobs (fresh memory) and replaced.
Waiting on a worker uses ``loop.add_reader`` on its pipe, so no thread sits blocked per solve.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import time
from typing import Any

from . import worker as worker_module


class Busy(Exception):
    """Every worker is busy and the waiting line is full."""


class DeadlineExceeded(Exception):
    """The solve ran past the hard deadline; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker died during the solve."""


class _Worker:
    def __init__(self, ctx: Any, max_tasks: int) -> None:
        self.max_tasks = max_tasks
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_module.serve, args=(child, max_tasks),
                                daemon=True, name="optimizer-worker")
        self.proc.start()
        child.close()
        self.tasks = 0
        self.cached: set[str] = set()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.join(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()


async def _readable(conn: Any, timeout: float | None) -> None:
    """Wait until ``conn`` has data (or EOF) without blocking the loop."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await asyncio.wait_for(fut, timeout)
    finally:
        loop.remove_reader(fd)


class WorkerPool:
    def __init__(self, size: int, max_tasks: int, max_queue: int, start_timeout_s: float = 120):
        self.size = size
        self.max_tasks = max_tasks
        self.max_queue = max_queue
        self.start_timeout_s = start_timeout_s
        self._ctx = mp.get_context("spawn")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._ready: set[_Worker] = set()  # started and imported, alive
        self._waiting = 0
        self._running = 0
        self._closed = False
        self._starting: set[asyncio.Task] = set()
        self.stats = {"solves": 0, "deadline_kills": 0, "crashes": 0, "retired": 0, "busy": 0}

    async def start(self, wait: bool = True) -> None:
        tasks = [self._spawn() for _ in range(self.size)]
        if wait:
            await asyncio.gather(*[t for t in tasks])

    def _spawn(self) -> asyncio.Task:
        """Start a worker; it joins the idle queue once it has imported everything."""
        task = asyncio.get_running_loop().create_task(self._start_one())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)
        return task

    async def _start_one(self) -> None:
        # +-25 % jitter so workers that share the load do not all retire (and spend ~1.5 s
        # starting their replacements) at the same moment
        w = _Worker(self._ctx, max(1, round(self.max_tasks * random.uniform(0.75, 1.25))))
        self._all.add(w)
        try:
            await _readable(w.conn, self.start_timeout_s)
            kind, _ = w.conn.recv()
            assert kind == "ready"
        except Exception:  # noqa: BLE001 - a worker that cannot start is replaced later
            self._discard(w)
            if not self._closed:
                await asyncio.sleep(1.0)
                self._spawn()
            return
        if self._closed:
            self._discard(w)
        else:
            self._ready.add(w)
            self._idle.put_nowait(w)

    def _discard(self, w: _Worker) -> None:
        self._all.discard(w)
        self._ready.discard(w)
        w.kill()

    def load(self) -> dict[str, int]:
        return {"workers": len(self._all), "ready": len(self._ready), "idle": self._idle.qsize(),
                "running": self._running, "waiting": self._waiting}

    async def run(self, job: dict[str, Any], deadline_s: float) -> tuple[str, Any]:
        """Run one job; returns (kind, payload) from the worker."""
        if self._closed:
            raise Busy("the pool is shutting down")
        if self._idle.empty() and self._waiting >= self.max_queue:
            self.stats["busy"] += 1
            raise Busy(f"all {self.size} workers are busy and {self._waiting} requests wait")
        started = time.monotonic()
        while True:
            w = await self._take(deadline_s - (time.monotonic() - started))
            payload = dict(job)
            if job["dataset_id"] in w.cached:
                payload["records"] = None  # the worker has this model built already
            try:
                w.conn.send(payload)
                break
            except (OSError, ValueError):  # died while idle: the job never started there
                self.stats["crashes"] += 1
                self._discard(w)
                self._spawn()
        self._running += 1
        try:
            try:
                left = deadline_s - (time.monotonic() - started)
                await _readable(w.conn, max(0.01, left))
                kind, body, cached = w.conn.recv()
            except TimeoutError:
                self.stats["deadline_kills"] += 1
                self._discard(w)
                self._spawn()
                raise DeadlineExceeded(f"no answer within the {deadline_s:g} s deadline") from None
            except (EOFError, OSError, BrokenPipeError, ValueError):
                self.stats["crashes"] += 1
                self._discard(w)
                self._spawn()
                raise WorkerCrashed("the solver process died during the solve") from None
            except asyncio.CancelledError:
                # the client went away mid-solve: the worker's answer can't be matched to a
                # request any more, so replace it rather than reuse a pipe with a stale reply
                self._discard(w)
                self._spawn()
                raise
            w.cached = set(cached)
            w.tasks += 1
            self.stats["solves"] += 1
            if w.tasks >= w.max_tasks:
                self.stats["retired"] += 1
                self._discard(w)
                self._spawn()
            else:
                self._idle.put_nowait(w)
            return kind, body
        finally:
            self._running -= 1

    async def _take(self, timeout: float) -> _Worker:
        """The next idle worker that is still alive (dead ones are replaced on the way)."""
        self._waiting += 1
        try:
            while True:
                try:
                    w = await asyncio.wait_for(self._idle.get(), max(0.01, timeout))
                except TimeoutError:
                    self.stats["busy"] += 1
                    raise Busy(f"no solver worker became free within {timeout:g} s") from None
                if w.proc.is_alive():
                    return w
                self.stats["crashes"] += 1  # killed while idle: replace, take the next
                self._discard(w)
                self._spawn()
        finally:
            self._waiting -= 1

    async def close(self) -> None:
        self._closed = True
        for t in list(self._starting):
            t.cancel()
        for w in list(self._all):
            with contextlib.suppress(Exception):
                w.conn.send(None)
        await asyncio.sleep(0)
        for w in list(self._all):
            with contextlib.suppress(Exception):
                w.proc.join(timeout=2)
            self._discard(w)
