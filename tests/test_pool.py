"""The service's asyncio layer over the executor (api.pool.SolverPool), without HTTP:
admission, waiting, and how each pebble outcome is reported."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from api.pool import Busy, DeadlineExceeded, SolverPool, WorkerCrashed
from optimizer.parallel import LocalExecutor

from . import worker_tasks


@pytest.fixture(scope="module")
def executor():
    with LocalExecutor(2) as ex:
        ex.start()
        yield ex


def test_admission_is_exact_under_a_burst(executor):
    async def main():
        pool = SolverPool(executor, max_queue=1)  # 2 workers + 1 waiting = 3 places

        async def one():
            with pool.admit():
                return await pool.run(worker_tasks.sleep, 1.0, deadline_s=30)

        answers = await asyncio.gather(*[one() for _ in range(10)], return_exceptions=True)
        return pool, answers

    pool, answers = asyncio.run(main())
    busy = [a for a in answers if isinstance(a, Busy)]
    assert len(busy) == 7 and len(answers) - len(busy) == 3, answers
    assert all(isinstance(a, int) for a in answers if not isinstance(a, Busy)), answers
    assert "at capacity: 2 solver workers busy and 1 more request waiting" in str(busy[0])
    load = pool.load()
    assert load["admitted"] == load["running"] == 0 and load["busy"] == 7
    assert load["capacity"] == 3 and load["solves"] == 3


def test_no_free_worker_within_the_deadline_is_busy(executor):
    async def main():
        pool = SolverPool(executor, max_queue=10)
        hold = [asyncio.ensure_future(pool.run(worker_tasks.sleep, 2.0, deadline_s=30))
                for _ in range(2)]
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        with pytest.raises(Busy, match=r"no solver worker became free within 0\.5 s"):
            await pool.run(worker_tasks.pid, deadline_s=0.5)
        waited = time.monotonic() - t0
        await asyncio.gather(*hold)
        return waited

    assert asyncio.run(main()) < 1.5


def test_deadline_crash_and_worker_errors_are_told_apart(executor):
    async def main():
        pool = SolverPool(executor, max_queue=0)
        with pytest.raises(DeadlineExceeded, match=r"within the 0\.5 s hard deadline"):
            await pool.run(worker_tasks.busy_loop, 30.0, deadline_s=0.5)
        with pytest.raises(WorkerCrashed, match="died during the solve .killed by signal 9"):
            await pool.run(worker_tasks.die, deadline_s=30)
        with pytest.raises(ValueError, match="boom") as info:
            await pool.run(worker_tasks.fail, "boom", deadline_s=30)
        assert "worker_tasks.py" in info.value.traceback  # pebble carries the traceback
        assert isinstance(await pool.run(worker_tasks.pid, deadline_s=30), int)
        return pool.load()

    load = asyncio.run(main())
    assert load["deadline_kills"] == 1 and load["crashes"] == 1


def test_cancelling_the_caller_stops_the_task_and_its_worker(executor):
    async def main():
        pool = SolverPool(executor, max_queue=0)
        task = asyncio.ensure_future(pool.run(worker_tasks.sleep, 30.0, deadline_s=60))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pool

    before = _workers()
    t0 = time.monotonic()
    pool = asyncio.run(main())
    assert pool.load()["cancelled"] == 1 and pool.load()["running"] == 0
    assert time.monotonic() - t0 < 10
    deadline = time.monotonic() + 10  # the cancelled task's worker is killed and replaced
    while len(before - _workers()) != 1 or len(_workers()) != 2:
        assert time.monotonic() < deadline, (before, _workers())
        time.sleep(0.05)


def _workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()
            if p.name == "pebble_pool_worker" and p.is_alive()}


class _FlakyExecutor:
    """Fails the first task as pebble does when it declares its pool broken."""

    workers = 1
    restarts = 0

    def __init__(self) -> None:
        self.calls = 0

    def submit(self, fn, *args, timeout=None):
        self.calls += 1
        f: Future = Future()
        if self.calls == 1:
            f.set_exception(BrokenProcessPool("All workers expired"))
        else:
            f.set_result(fn(*args))
        return f


def test_a_task_aborted_with_a_broken_pool_runs_once_more():
    flaky = _FlakyExecutor()

    async def main():
        pool = SolverPool(flaky, max_queue=0)
        return await pool.run(lambda: "solved", deadline_s=5), pool.load()

    answer, load = asyncio.run(main())
    assert answer == "solved" and flaky.calls == 2 and load["retried"] == 1
