"""Local solver worker processes: a ``pebble.ProcessPool`` plus a model cache in each worker.

Used by the HTTP service and by batch runs alike. Two halves:

Parent side, :class:`LocalExecutor`:
    ``dataset_ref(sha256, records)`` writes a validated table once to a cache file and returns
    a small :class:`DatasetRef` (what a task carries instead of the rows);
    ``submit(fn, *args, timeout=...)`` runs ``fn(*args)`` in a worker process and returns
    pebble's future. Past ``timeout`` seconds of running, pebble kills that worker and starts
    a new one (the future raises ``TimeoutError``); a worker that dies mid-task makes the
    future raise ``pebble.ProcessExpired``; ``future.cancel()`` on a running task kills its
    worker. A worker exits after ``max_tasks`` tasks and is replaced (fresh memory).

Worker side, called from task functions:
    ``worker_optimizer(ref)`` returns this process's built :class:`~optimizer.Optimizer` for
    the dataset, building it on a cache miss (a few datasets are kept, least recently used
    dropped), so repeated solves on one dataset only re-parameterise a built model.

Workers are *spawned* (Pyomo keeps process-wide state; forking a process with threads or an
event loop is unsafe) and run HiGHS with one thread each (``OPTIMIZER_HIGHS_THREADS=1``):
HiGHS's scheduler is process-wide, so parallelism comes from processes.

Example (a batch of scenarios on one table)::

    from optimizer import load_projects
    from optimizer.parallel import LocalExecutor, worker_optimizer

    def solve_one(ref, scenario):              # module level: it runs in a worker
        return worker_optimizer(ref).solve(scenario).model_dump(mode="json")

    data = load_projects("inputs/projects.csv")
    with LocalExecutor(workers=2, max_tasks=500) as ex:
        ref = ex.dataset_ref(data.sha256, data.records())
        futures = [ex.submit(solve_one, ref, sc, timeout=135) for sc in scenarios]
        rows = [f.result() for f in futures]

pebble's own failure modes are handled here: a pool that pebble marks broken (it does so
when a worker dies while no task is running, e.g. killed by the OOM killer while idle) is
replaced by a fresh one at the next ``submit``; tasks it aborted fail with
``concurrent.futures.process.BrokenProcessPool`` and may simply be submitted again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .solve import Optimizer

log = logging.getLogger(__name__)

HIGHS_THREADS_ENV = "OPTIMIZER_HIGHS_THREADS"
MODEL_CACHE_SIZE = 4  # built models kept per worker process
DATASET_FILES = 64  # dataset cache files kept by an executor (least recently used dropped)


@dataclass(frozen=True)
class DatasetRef:
    """A validated projects table as a task carries it: its content hash and the cache file
    holding its records (read by a worker only when it has no model for the hash yet)."""

    sha256: str
    path: str


# ---------------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------------

_models: OrderedDict[tuple[str, bool], Optimizer] = OrderedDict()


def init_worker(niceness: int = 0) -> None:
    """Runs once in each new worker process, before its first task. ``niceness`` > 0 lowers
    the worker's CPU priority (batch workers yield to interactive solves)."""
    os.environ[HIGHS_THREADS_ENV] = "1"
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    # pebble stops a worker (deadline passed, task cancelled) with SIGTERM, then SIGKILL 3 s
    # later. Its SIGTERM handler is Python code, which cannot run while HiGHS's C++ search
    # holds the main thread; the default action ends the process at once instead.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import optimizer  # noqa: F401  - pay the imports (Pyomo, HiGHS) now, not in the first task


def worker_optimizer(ref: DatasetRef, *, mutable_data: bool = False) -> Optimizer:
    """This worker's built model for ``ref`` (built from the cache file on a miss).
    ``mutable_data``: the Monte-Carlo form (data coefficients as parameters), kept apart."""
    key = (ref.sha256, mutable_data)
    opt = _models.get(key)
    if opt is None:
        from .data import load_projects
        from .solve import Optimizer

        try:
            with open(ref.path, "rb") as fh:
                records = pickle.load(fh)
        except FileNotFoundError:
            raise RuntimeError(f"dataset cache file {ref.path} is gone (evicted or its "
                               "executor closed) while a task still referred to it") from None
        data = load_projects(records)
        if data.sha256 != ref.sha256:
            raise RuntimeError(f"dataset cache file {ref.path} holds content "
                               f"{data.sha256}, not {ref.sha256}")
        opt = Optimizer(data, mutable_data=mutable_data)
        _models[key] = opt
        while len(_models) > MODEL_CACHE_SIZE:
            _models.popitem(last=False)
    _models.move_to_end(key)
    return opt


def cached_models() -> list[str]:
    """Dataset hashes with a built model in this process, least recently used first."""
    return [sha for sha, _ in _models]


def _ping() -> int:
    return os.getpid()


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------


class LocalExecutor:
    """``workers`` spawned solver processes (a ``pebble.ProcessPool``) and a directory of
    dataset cache files. Thread-safe; use as a context manager or call :meth:`close`.

    ``max_tasks``: tasks before a worker process is replaced (0: never).
    ``cache_dir``: where dataset files go (default: a private temporary directory, removed
    by :meth:`close`); ``max_dataset_files`` of them are kept, least recently used dropped,
    never one that a task in flight refers to.
    """

    def __init__(self, workers: int, *, max_tasks: int = 0,
                 cache_dir: str | Path | None = None,
                 max_dataset_files: int = DATASET_FILES, niceness: int = 0) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.max_tasks = max_tasks
        self.niceness = niceness
        self.max_dataset_files = max_dataset_files
        self._own_dir = cache_dir is None
        self.cache_dir = Path(tempfile.mkdtemp(prefix="optimizer-datasets-")
                              if cache_dir is None else cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()
        self._closed = False
        self.restarts = 0  # pools replaced after pebble marked one broken
        self._pool = self._new_pool()
        self._futures: weakref.WeakSet[Future] = weakref.WeakSet()  # the pool's, unresolved

    # -- pool -------------------------------------------------------------------------------
    def _new_pool(self):
        from pebble import ProcessPool

        return ProcessPool(max_workers=self.workers, max_tasks=self.max_tasks,
                           initializer=init_worker, initargs=(self.niceness,),
                           context=multiprocessing.get_context("spawn"))

    def _healthy_pool(self):
        """The pebble pool, replaced first if pebble has marked it broken."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            if not self._pool.active:  # pebble: not RUNNING (broken, or never started)
                old, self._pool = self._pool, self._new_pool()
                orphans, self._futures = self._futures, weakref.WeakSet()
                self.restarts += 1
                log.warning("solver pool was broken (a worker died while none was running a "
                            "task); replaced it")
                threading.Thread(target=_stop_pool, args=(old, orphans), daemon=True).start()
            return self._pool

    @property
    def healthy(self) -> bool:
        """The pool is running (False after pebble marked it broken, until the next submit
        or :meth:`check` replaces it)."""
        return not self._closed and self._pool.active

    def check(self) -> bool:
        """Replace a broken pool now; True if the executor is usable."""
        try:
            self._healthy_pool()
        except RuntimeError:
            return False
        return True

    def start(self, timeout: float = 120.0) -> None:
        """Start the workers and wait until one has run a task (imports done, pool works)."""
        self.submit(_ping).result(timeout=timeout)

    def submit(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Future:
        """Run ``fn(*args)`` in a worker; ``timeout``: seconds of running before the worker
        is killed and replaced (the future then raises ``TimeoutError``). ``fn`` must be
        importable by name (module level). Returns pebble's ``ProcessFuture``."""
        refs = [a.sha256 for a in args if isinstance(a, DatasetRef)]
        with self._lock:
            self._pins.update(refs)
        try:
            try:
                future = self._healthy_pool().schedule(fn, args=args, timeout=timeout)
            except RuntimeError:  # pebble: the pool broke since the check; once more
                future = self._healthy_pool().schedule(fn, args=args, timeout=timeout)
        except BaseException:
            self._unpin(refs)
            raise
        self._futures.add(future)
        if refs:
            future.add_done_callback(lambda _f: self._unpin(refs))
        return future

    def _unpin(self, refs: list[str]) -> None:
        with self._lock:
            self._pins.subtract(refs)
            self._pins += Counter()  # drop zero counts

    def close(self, *, wait: bool = False) -> None:
        """Stop the workers (running tasks are killed unless ``wait``) and remove the cache
        directory if the executor made it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if wait:
            self._pool.close()
            self._pool.join()
        _stop_pool(self._pool, self._futures)
        if self._own_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)

    # -- datasets ---------------------------------------------------------------------------
    def dataset_ref(self, sha256: str, records: Sequence[Mapping[str, Any]]) -> DatasetRef:
        """The cache file for a validated table (``ProjectData.sha256`` and ``.records()``),
        written on first use. Blocking file I/O (a 20,000-row table is ~5 MB)."""
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        path = self.cache_dir / f"{sha256}.pickle"
        try:
            os.utime(path)  # mark as recently used
        except FileNotFoundError:
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    pickle.dump(list(records), fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)  # atomic: a reader sees the whole file or none
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._evict(keep=sha256)
        return DatasetRef(sha256, str(path))

    def _evict(self, keep: str) -> None:
        files = []
        for p in self.cache_dir.glob("*.pickle"):
            with contextlib.suppress(OSError):
                files.append((p.stat().st_mtime, p))
        excess = len(files) - self.max_dataset_files
        if excess <= 0:
            return
        with self._lock:
            pinned = {s for s, n in self._pins.items() if n > 0} | {keep}
        for _, p in sorted(files):
            if excess <= 0:
                break
            if p.stem not in pinned:
                with contextlib.suppress(OSError):
                    p.unlink()
                excess -= 1


def _stop_pool(pool, futures: weakref.WeakSet[Future]) -> None:
    """Stop a pebble pool now (pending tasks dropped, running ones' workers killed), then
    fail every future of it that pebble left unresolved (it leaves those of tasks it had not
    registered, or that were running when it stopped), so no caller waits forever."""
    try:
        pool.stop()
        pool.join(timeout=30)
    except Exception:  # noqa: BLE001 - best effort on a pool being discarded
        log.exception("stopping a solver pool failed")
    for future in list(futures):
        if not future.done():
            with contextlib.suppress(InvalidStateError):
                future.set_exception(BrokenProcessPool("the solver pool was stopped"))
