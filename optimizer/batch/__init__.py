"""Batches of what-if scenarios (CONTRACT section 6): lists, grids, Monte Carlo, frontiers.

``run_batch(spec, data, executor=..., sink=...)`` is the one engine the CLI and the HTTP
service share; ``run_to_folder`` is the CLI's form (files in a folder, resumable)."""

from .engine import BatchError, InProcessExecutor, Progress, run_batch
from .files import DirSink
from .spec import BatchSpec, parse_spec, row_count
from .summaries import Tally
from .table import varied_paths

__all__ = ["BatchError", "BatchSpec", "DirSink", "InProcessExecutor", "Progress", "Tally",
           "parse_spec", "row_count", "run_batch", "varied_paths"]
