"""The asyncio side of the solver workers: admission, waiting for a worker, outcomes.

The processes themselves are :class:`optimizer.parallel.LocalExecutor` (a pebble pool with
hard per-task deadlines, worker replacement and recycling). This layer adds what a web
service needs on top:

- **Admission**: at most ``workers + max_queue`` requests are admitted at once (solving or
  waiting). The check and the increment happen in one synchronous step (:meth:`admit`), so a
  burst cannot slip past the limit; beyond it :class:`Busy` is raised at once (503).
- **Waiting**: an admitted request waits for one of ``workers`` slots, at most the solve's
  hard deadline (then :class:`Busy`); a task is handed to pebble only when a slot is free,
  so a request that goes away while waiting costs nothing.
- **Outcomes**: pebble's ``TimeoutError`` (the worker was killed and replaced) is
  :class:`DeadlineExceeded`; ``ProcessExpired`` (the worker died) is :class:`WorkerCrashed`;
  a task aborted because pebble declared its whole pool broken is run once more on the
  replacement pool. Cancelling the awaiting coroutine (client gone) cancels the task, which
  kills its worker.
- A watchdog at deadline + :data:`WATCHDOG_GRACE_S` guards against a task pebble never
  resolves (known pebble races); it is answered like a deadline overrun.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pebble import ProcessExpired

from optimizer.parallel import LocalExecutor

WATCHDOG_GRACE_S = 60.0  # covers a replacement worker's start-up and pebble's kill


class Busy(Exception):
    """Every worker is busy and the waiting line is full (or no worker became free)."""


class DeadlineExceeded(Exception):
    """The solve ran past its hard deadline; its worker was killed and replaced."""


class WorkerCrashed(Exception):
    """The worker process died during the solve; it has been replaced."""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


class SolverPool:
    """Admission and awaiting on top of a :class:`LocalExecutor` (one event loop)."""

    def __init__(self, executor: LocalExecutor, max_queue: int) -> None:
        self.executor = executor
        self.workers = executor.workers
        self.max_queue = max_queue
        self.capacity = self.workers + max_queue
        self._admitted = 0
        self._running = 0
        self._slots = asyncio.Semaphore(self.workers)
        self._closed = False
        self.stats: Counter[str] = Counter(solves=0, deadline_kills=0, crashes=0, busy=0,
                                           cancelled=0, retried=0)

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of ``workers + max_queue`` places for the body of the ``with``; raises
        :class:`Busy` at once when none is left. No await between check and increment."""
        if self._closed:
            raise Busy("the server is shutting down")
        if self._admitted >= self.capacity:
            self.stats["busy"] += 1
            raise Busy(f"the server is at capacity: {_count(self.workers, 'solver worker')} "
                       f"busy and {_count(self.max_queue, 'more request')} waiting")
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    def load(self) -> dict[str, Any]:
        return {"workers": self.workers, "capacity": self.capacity,
                "admitted": self._admitted, "running": self._running,
                "waiting": self._admitted - self._running,
                "pool_restarts": self.executor.restarts, **self.stats}

    async def run(self, fn: Callable[..., Any], *args: Any, deadline_s: float) -> Any:
        """``fn(*args)`` in a worker, killed after ``deadline_s`` seconds of running."""
        try:
            async with asyncio.timeout(deadline_s):
                await self._slots.acquire()
        except TimeoutError:
            self.stats["busy"] += 1
            raise Busy(f"no solver worker became free within {deadline_s:g} s") from None
        self._running += 1
        try:
            return await self._run_in_worker(fn, args, deadline_s)
        finally:
            self._running -= 1
            self._slots.release()

    async def _run_in_worker(self, fn: Callable[..., Any], args: tuple, deadline_s: float):
        for attempt in range(2):
            future = self.executor.submit(fn, *args, timeout=deadline_s)
            try:
                async with asyncio.timeout(deadline_s + WATCHDOG_GRACE_S):
                    result = await asyncio.wrap_future(future)
            except TimeoutError:  # pebble killed the worker, or the watchdog fired
                future.cancel()
                self.stats["deadline_kills"] += 1
                raise DeadlineExceeded(
                    f"no answer within the {deadline_s:g} s hard deadline") from None
            except ProcessExpired as exc:
                self.stats["crashes"] += 1
                raise WorkerCrashed("the solver process died during the solve "
                                    f"({_describe_exit(exc.exitcode)})") from None
            except BrokenProcessPool:
                self.stats["retried"] += 1
                if attempt == 0:
                    continue  # the executor replaces the broken pool on the next submit
                self.stats["crashes"] += 1
                raise WorkerCrashed("the solver pool failed twice in a row") from None
            except asyncio.CancelledError:
                future.cancel()  # the client went away: stop the solve, free the worker
                self.stats["cancelled"] += 1
                raise
            self.stats["solves"] += 1
            return result
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self.executor.close)
