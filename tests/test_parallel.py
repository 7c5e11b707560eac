"""The local executor (optimizer.parallel): real spawned workers through pebble.

Deadlines, crashes, recycling and the per-worker model cache, driven as the batch engine and
the service drive them. Task functions live in tests/worker_tasks.py (importable by name).
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from pebble import ProcessExpired

from optimizer import load_projects, optimize
from optimizer.parallel import HIGHS_THREADS_ENV, DatasetRef, LocalExecutor

from . import worker_tasks
from .conftest import TINY_ROWS

TINY = load_projects(TINY_ROWS)
SCENARIO = {"name": "tiny", "budget_musd": 120, "solver": {"mip_gap": 0, "time_limit_s": 30}}


def wait_until(pred, timeout_s: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout_s} s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def executor():
    with LocalExecutor(1) as ex:
        ex.start()
        yield ex


def test_solve_in_a_worker_matches_the_library_and_reuses_the_built_model(executor):
    ref = executor.dataset_ref(TINY.sha256, TINY.records())
    first = executor.submit(worker_tasks.solve, ref, SCENARIO, timeout=60).result(60)
    want = optimize(TINY_ROWS, SCENARIO)
    assert first["status"] == want.status == "optimal"
    assert first["objective"] == pytest.approx(want.objective, abs=1e-9)
    assert first["selected"] == pytest.approx({p.project_id: p.stake for p in want.selected})
    assert first["pid"] != os.getpid()
    # the cache file is only read on a miss: with it gone, the same worker still solves
    os.unlink(ref.path)
    second = executor.submit(worker_tasks.solve, ref, dict(SCENARIO, budget_musd=60),
                             timeout=60).result(60)
    assert second["pid"] == first["pid"] and second["model"] == first["model"]
    assert second["cached"] == [TINY.sha256]
    assert second["objective"] == pytest.approx(optimize(TINY_ROWS, dict(
        SCENARIO, budget_musd=60)).objective, abs=1e-9)
    # and the parent writes it again when asked for the reference again
    again = executor.dataset_ref(TINY.sha256, TINY.records())
    assert again == ref and os.path.exists(ref.path)


def test_workers_run_highs_with_one_thread(executor):
    assert executor.submit(worker_tasks.env, HIGHS_THREADS_ENV).result(30) == "1"


def test_deadline_kills_the_worker_and_a_new_one_takes_the_next_task(executor):
    before = executor.submit(worker_tasks.pid).result(30)
    t0 = time.monotonic()
    fut = executor.submit(worker_tasks.busy_loop, 60.0, timeout=0.5)
    with pytest.raises(FutureTimeout):
        fut.result(30)
    took = time.monotonic() - t0
    assert took < 5, f"deadline of 0.5 s answered after {took:.1f} s"
    wait_until(lambda: not alive(before), 10, "killed worker gone")
    after = executor.submit(worker_tasks.pid).result(60)
    assert after != before


def test_worker_killed_mid_task_raises_process_expired_and_is_replaced(executor):
    fut = executor.submit(worker_tasks.sleep, 60.0, timeout=120)
    wait_until(fut.running, 30, "task started")
    pid = _worker_pids()[0]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ProcessExpired) as info:
        fut.result(30)
    assert info.value.exitcode == -signal.SIGKILL
    assert executor.submit(worker_tasks.pid).result(60) != pid


def test_worker_killed_while_idle_breaks_pebble_pool_which_is_replaced(executor):
    """pebble declares its whole pool broken when a worker dies while no task runs (e.g. the
    OOM killer); the executor replaces the pool at the next submit."""
    pid = executor.submit(worker_tasks.pid).result(60)
    restarts = executor.restarts
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not executor.healthy, 10, "pebble noticing the dead worker")
    assert executor.submit(worker_tasks.pid).result(60) != pid
    assert executor.restarts == restarts + 1 and executor.healthy


def test_cancelling_a_running_task_kills_its_worker(executor):
    fut = executor.submit(worker_tasks.sleep, 60.0, timeout=120)
    wait_until(fut.running, 30, "task started")
    pid = _worker_pids()[0]
    assert fut.cancel()
    wait_until(lambda: not alive(pid), 10, "cancelled task's worker gone")
    assert executor.submit(worker_tasks.pid).result(60) != pid


def test_workers_are_recycled_after_max_tasks():
    with LocalExecutor(1, max_tasks=2) as ex:
        pids = [ex.submit(worker_tasks.pid).result(60) for _ in range(6)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5], pids


def test_dataset_files_written_once_and_least_recently_used_evicted(tmp_path):
    ex = LocalExecutor(1, cache_dir=tmp_path, max_dataset_files=2)
    try:
        refs = [ex.dataset_ref(f"{i:064x}", [{"i": i}]) for i in range(2)]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            f"{i:064x}.pickle" for i in range(2)]
        os.utime(refs[0].path, (1, 1))  # ref 0 long unused
        os.utime(refs[1].path, (2, 2))
        pinned = ex.submit(worker_tasks.sleep, 0.0, refs[0])  # in flight: never evicted
        ex.dataset_ref(f"{2:064x}", [{"i": 2}])
        pinned.result(60)
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [f"{i:064x}.pickle" for i in (0, 2)], names
        with open(refs[0].path, "rb") as fh:
            assert pickle.load(fh) == [{"i": 0}]
        with pytest.raises(ValueError):
            ex.dataset_ref("not-a-hash", [])
    finally:
        ex.close()
    assert tmp_path.exists()  # a directory the caller gave is left in place


def test_a_cache_file_with_other_content_is_refused(executor, tmp_path):
    path = tmp_path / "wrong.pickle"
    path.write_bytes(pickle.dumps(TINY.records()))
    ref = DatasetRef("f" * 64, str(path))
    with pytest.raises(RuntimeError, match="holds content"):
        executor.submit(worker_tasks.solve, ref, SCENARIO).result(60)


def test_closed_executor_fails_running_tasks_refuses_work_and_removes_its_directory():
    ex = LocalExecutor(1)
    cache = ex.cache_dir
    ex.dataset_ref(TINY.sha256, TINY.records())
    running = ex.submit(worker_tasks.sleep, 60.0)
    wait_until(running.running, 30, "task started")
    t0 = time.monotonic()
    ex.close()
    with pytest.raises(BrokenProcessPool):  # not left waiting forever
        running.result(5)
    assert time.monotonic() - t0 < 10
    assert not cache.exists()
    with pytest.raises(RuntimeError, match="closed"):
        ex.submit(worker_tasks.pid)
    assert not ex.healthy and not ex.check()


def _worker_pids() -> list[int]:
    """Live worker processes of this test process (spawned children)."""
    import multiprocessing

    return [p.pid for p in multiprocessing.active_children()
            if p.name == "pebble_pool_worker" and p.pid is not None and alive(p.pid)]
