"""Task functions for tests that run in executor worker processes (importable by name)."""

from __future__ import annotations

import os
import time

from optimizer.parallel import DatasetRef, cached_models, worker_optimizer


def pid() -> int:
    return os.getpid()


def env(name: str) -> str | None:
    return os.environ.get(name)


def sleep(seconds: float, *_refs: DatasetRef) -> int:
    time.sleep(seconds)
    return os.getpid()


def busy_loop(seconds: float) -> int:
    """Burn CPU in pure Python (a stand-in for a solve)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def solve(ref: DatasetRef, scenario: dict) -> dict:
    opt = worker_optimizer(ref)
    result = opt.solve(scenario)
    return {"pid": os.getpid(), "model": id(opt), "cached": cached_models(),
            "status": result.status, "objective": result.objective,
            "selected": {p.project_id: p.stake for p in result.selected}}


def die() -> None:
    os.kill(os.getpid(), 9)


def fail(message: str) -> None:
    raise ValueError(message)
