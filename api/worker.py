"""The solver worker process: receives jobs on a pipe, answers with plain data.

Runs in a *spawned* process (Pyomo keeps process-wide state, and forking a process that runs
an event loop and database pools is unsafe). Keeps a few built models (one per dataset) so a
repeated dataset re-solves on a persistent HiGHS instance instead of being rebuilt. Exits after
``max_tasks`` jobs so memory cannot creep; the pool starts a fresh one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MODEL_CACHE = 4  # built models kept per worker


def serve(conn: Any, max_tasks: int) -> None:
    from optimizer import InputError, Optimizer, SolutionCheckError, load_projects

    models: OrderedDict[str, Optimizer] = OrderedDict()
    conn.send(("ready", []))
    for _ in range(max_tasks):
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            sha = job["dataset_id"]
            opt = models.get(sha)
            if opt is None:
                data = load_projects(job["records"])
                opt = Optimizer(data)
                models[sha] = opt
                while len(models) > MODEL_CACHE:
                    models.popitem(last=False)
            models.move_to_end(sha)
            result = opt.solve(job["scenario"])
            reply = ("ok", result.model_dump(mode="json"))
        except InputError as exc:
            reply = ("input", exc.to_list())
        except SolutionCheckError as exc:
            reply = ("check_failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which answers 500
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send((reply[0], reply[1], list(models)))
