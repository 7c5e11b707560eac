"""The one formula for a solve's hard wall-clock deadline, used by the HTTP service (single
solves, report analyses, batch rows) and the batch CLI.

HiGHS stops itself at ``solver.time_limit_s``; the hard deadline is where a worker process
that did not stop is killed. A scenario's time limit can be spent twice in one call: once by
the solve and once more by the diagnosis of an infeasible answer (``optimizer.diagnose`` works
within the same limit). ``grace_s`` covers what neither limit counts: building the model,
certification and a worker's start-up. Work that has its own budget on top (a report's
sensitivity re-solves) adds it as ``extra_s``.
"""

from __future__ import annotations

DEFAULT_GRACE_S = 15.0


def hard_deadline_s(time_limit_s: float, grace_s: float = DEFAULT_GRACE_S, *,
                    extra_s: float = 0.0) -> float:
    """Seconds after which a solve with HiGHS limit ``time_limit_s`` is stopped by force:
    ``extra_s + 2 * time_limit_s + grace_s``."""
    if time_limit_s < 0 or grace_s < 0 or extra_s < 0:
        raise ValueError("time limit, grace and extra time must be >= 0")
    return extra_s + 2.0 * time_limit_s + grace_s
