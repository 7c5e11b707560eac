"""Where a batch's chunks run: local worker processes (default) or a Dask distributed cluster.

Both keep one built model per worker process and dataset and move only numbers per row.
Locally that is :mod:`optimizer.parallel` (pebble worker processes, one HiGHS thread each).
On Dask it is a ``distributed.WorkerPlugin`` registered with ``Client.register_plugin``: it
carries the validated records (plain data) to every worker, present and future, and builds
the model there; the model itself is never pickled (highspy objects cannot be).
Start Dask workers with one thread each (``dask worker ADDRESS --nthreads 1 --nworkers N``):
a Pyomo model is not thread-safe and HiGHS's scheduler is process-wide, so parallelism comes
from processes; a worker with more threads runs its chunks one at a time.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..data import ProjectData
from .spec import Task
from .worker import ChunkContext, solve_tasks

PLUGIN_PREFIX = "critical-minerals-dataset-"


# ---------------------------------------------------------------------------------------------
# local worker processes
# ---------------------------------------------------------------------------------------------


def _run_local(ref, ctx: ChunkContext, tasks: list[Task]) -> list[dict[str, Any]]:
    from ..parallel import worker_optimizer

    return solve_tasks(worker_optimizer(ref, mutable_data=ctx.mutable_data), ctx, tasks)


class LocalProcesses:
    """Chunks on local worker processes (:class:`optimizer.parallel.LocalExecutor`)."""

    def __init__(self, workers: int, *, row_deadline_s: float | None = None,
                 max_tasks: int = 0, niceness: int = 0) -> None:
        from ..parallel import LocalExecutor

        self.workers = workers
        self.row_deadline_s = row_deadline_s
        self._ex = LocalExecutor(workers=workers, max_tasks=max_tasks, niceness=niceness)
        self._ref = None

    def prepare(self, data: ProjectData, mutable_data: bool) -> None:
        self._ref = self._ex.dataset_ref(data.sha256, data.records())

    def submit(self, ctx: ChunkContext, tasks: list[Task]):
        # a chunk's hard deadline: each row's own limit twice (solve + diagnosis) plus grace
        limit = None
        if self.row_deadline_s is not None:
            limit = self.row_deadline_s * len(tasks) + 30.0
        return self._ex.submit(_run_local, self._ref, ctx, tasks, timeout=limit)

    def close(self) -> None:
        self._ex.close()


# ---------------------------------------------------------------------------------------------
# Dask distributed
# ---------------------------------------------------------------------------------------------

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency; keep imports light
    _WorkerPlugin = object


class DatasetPlugin(_WorkerPlugin):
    """Puts one validated table on every Dask worker and builds its model there."""

    def __init__(self, sha256: str, records: list[dict[str, Any]], mutable_data: bool) -> None:
        self.sha256 = sha256
        self.records = records
        self.mutable_data = mutable_data
        self.name = PLUGIN_PREFIX + sha256[:16] + ("-mc" if mutable_data else "")

    def setup(self, worker) -> None:  # runs in the worker process
        os.environ.setdefault("OPTIMIZER_HIGHS_THREADS", "1")
        from ..data import load_projects
        from ..solve import Optimizer

        data = load_projects(self.records)
        if data.sha256 != self.sha256:
            raise RuntimeError(f"dataset {self.sha256} arrived as {data.sha256}")
        self.optimizer = Optimizer(data, mutable_data=self.mutable_data)
        self.lock = threading.Lock()  # one chunk at a time per worker process
        self.records = None  # built: the rows are not needed any more

    def teardown(self, worker) -> None:
        self.optimizer = None


def _run_dask(plugin_name: str, ctx: ChunkContext, tasks: list[Task]) -> list[dict[str, Any]]:
    from distributed import get_worker

    plugin = get_worker().plugins[plugin_name]
    with plugin.lock:
        return solve_tasks(plugin.optimizer, ctx, tasks)


class DaskCluster:
    """Chunks on a Dask distributed cluster (``tcp://host:port`` or a ``Client``)."""

    def __init__(self, address: str | Any) -> None:
        from distributed import Client

        self._own = isinstance(address, str)
        self.client = Client(address) if self._own else address
        self.workers = max(1, sum(self.client.nthreads().values()))
        self._plugin: str | None = None

    def prepare(self, data: ProjectData, mutable_data: bool) -> None:
        plugin = DatasetPlugin(data.sha256, data.records(), mutable_data)
        self.client.register_plugin(plugin)
        self._plugin = plugin.name

    def submit(self, ctx: ChunkContext, tasks: list[Task]):
        return self.client.submit(_run_dask, self._plugin, ctx, tasks, pure=False)

    def close(self) -> None:
        if self._plugin is not None:
            try:
                self.client.unregister_worker_plugin(self._plugin)
            except Exception:  # noqa: BLE001 - a cluster going away takes its plugins along
                pass
        if self._own:
            self.client.close()
