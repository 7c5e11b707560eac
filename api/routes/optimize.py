"""``POST /optimize``: solve one scenario and store the run (CONTRACT section 5)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from .. import problems
from ..access import Writer
from ..bodies import JSONRoute
from ..deps import DbDep, PoolDep, SettingsDep
from ..schemas import OptimizeRequest, RunResult, Text
from ..service import create_run
from .runs import to_run_result

router = APIRouter(tags=["optimize"], route_class=JSONRoute)
PROBLEMS = {401: problems.doc("API key missing or wrong"),
            403: problems.doc("the key's role may not solve, or its storage budget is spent"),
            404: problems.doc("unknown dataset_id"),
            409: problems.doc("Idempotency-Key reused with a different body"),
            413: problems.doc("body too large"),
            422: problems.doc("invalid input; `errors` names each field"),
            503: problems.doc("all workers busy, a worker died, or the database is unavailable "
                              "(Retry-After); a run solved but not stored says so and carries "
                              "its `result`"),
            504: problems.doc("the solve passed the hard deadline and was stopped")}


@router.post("/optimize", response_model=RunResult, responses=PROBLEMS,
             summary="Solve one scenario and store the run")
async def optimize(who: Writer, body: OptimizeRequest, request: Request, db: DbDep,
                   pool: PoolDep, settings: SettingsDep,
                   idempotency_key: Annotated[Text | None, Header(max_length=200)] = None,
                   ) -> RunResult:
    """Solve `scenario` on the inline `projects`, a stored `dataset_id`, or the shipped data.

    Infeasible scenarios are answers (status `infeasible` with a diagnosis), not errors. The
    scenario's `solver.time_limit_s` is capped by the server's `OPTIMIZER_MAX_TIME_LIMIT_S`.
    With an `Idempotency-Key`, repeating the same body with the same API key returns the
    stored run.
    """
    row = await create_run(request, db, pool, settings, who, body.model_dump(mode="json"),
                           body.projects, body.dataset_id, idempotency_key)
    return to_run_result(row)
