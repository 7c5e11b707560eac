"""The CLI's batch run: a spec file in, an output folder out (CONTRACT section 6)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..data import load_projects, read_json_or_yaml
from ..errors import InputError
from .engine import Progress, run_batch
from .files import DirSink
from .spec import DEFAULT_MAX_ROWS, BatchSpec, parse_spec
from .table import varied_paths


def load_spec_file(path: Path) -> Any:
    return read_json_or_yaml(path, "batch spec", "spec")


def resolve_projects(spec: BatchSpec, override: Path | None, spec_dir: Path):
    if override is not None:
        return load_projects(override)
    if isinstance(spec.projects, list):
        return load_projects(spec.projects)
    if isinstance(spec.projects, str):
        p = Path(spec.projects)
        return load_projects(p if p.is_absolute() else spec_dir / p)
    if spec.dataset_id is not None:
        raise InputError("dataset_id names a table stored by the HTTP service; the CLI "
                         "needs projects (a CSV path) or --projects", loc=("spec", "dataset_id"))
    return load_projects(None)


def make_executor(workers: int, scheduler: str | None, row_deadline_s: float | None):
    from .engine import InProcessExecutor

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address:
        from .executors import DaskCluster

        return DaskCluster(address)
    if workers <= 0:
        return InProcessExecutor()
    from .executors import LocalProcesses

    return LocalProcesses(workers, row_deadline_s=row_deadline_s)


def run_to_folder(spec_path: Path, *, out: Path | None = None, projects: Path | None = None,
                  workers: int = 2, scheduler: str | None = None,
                  chunk_size: int | None = None, max_rows: int = DEFAULT_MAX_ROWS,
                  progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the batch in ``spec_path`` into ``out``; returns the summary.
    Raises InputError for a bad spec before anything is solved or written."""
    raw = load_spec_file(spec_path)
    spec = parse_spec(raw, max_rows=max_rows)
    data = resolve_projects(spec, projects, spec_path.parent)
    from ..deadlines import hard_deadline_s
    from .spec import validate_rows

    validate_rows(spec, data)  # before the folder is touched
    out = out or Path(f"batch-{spec.name}")
    sink = DirSink(out, raw, data.sha256)
    resumed = len(sink.done)
    limit = max(float(raw.get("base", {}).get("solver", {}).get("time_limit_s", 60) or 60), 1)
    executor = make_executor(workers, scheduler, hard_deadline_s(limit))
    cancel = threading.Event()
    bar = _ProgressBar(spec.name) if progress else None
    try:
        summary = run_batch(spec, data, executor=executor, sink=sink, chunk_size=chunk_size,
                            on_progress=bar.update if bar else None, cancel=cancel,
                            validated=True)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        if bar:
            bar.close()
        executor.close()
    summary["out"] = str(out)
    summary["resumed_rows"] = resumed
    summary["peak_rss_mb"] = _peak_rss_mb()
    from .summaries import Tally

    tally = Tally(data.ids, spec.core_share, spec.exterior_share)
    for row in sink.stored_rows():
        tally.add(row)
    sink.finish(summary["total"], varied_paths(spec), tally.selection(), summary)
    sink.close()
    return summary


class _ProgressBar:
    """rich's progress bar on stderr: done/total, failed, rate, ETA."""

    def __init__(self, name: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(TextColumn(f"batch {name!r}"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[failed]} failed"),
                           TextColumn("{task.fields[rate]:.1f} rows/s"),
                           TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                           console=Console(file=sys.stderr), transient=False)
        self._task = None
        self._p.start()

    def update(self, pr: Progress) -> None:
        if self._task is None:
            self._task = self._p.add_task("rows", total=pr.total, completed=pr.done,
                                          failed=pr.failed, rate=0.0)
        self._p.update(self._task, completed=pr.done, failed=pr.failed, rate=pr.rate)

    def close(self) -> None:
        self._p.stop()


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (the workers are separate processes)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):  # pragma: no cover - not on Linux
        return None
