from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from .. import problems
from ..deps import PoolDep, SettingsDep, StoreDep, WriteAccess
from ..pool import Busy
from ..problems import Problem
from ..schemas import OptimizeRequest, RunResult, Text
from ..service import request_sha256, resolve_dataset, solve, until_disconnected
from .runs import to_run_result

router = APIRouter(tags=["optimize"])
PROBLEMS = {401: problems.doc("API key missing or wrong"),
            404: problems.doc("unknown dataset_id"),
            409: problems.doc("Idempotency-Key reused with a different body"),
            413: problems.doc("body too large"),
            422: problems.doc("invalid input; `errors` names each field"),
            503: problems.doc("all workers busy (Retry-After) or a worker died"),
            504: problems.doc("the solve passed the hard deadline and was stopped")}


@router.post("/optimize", response_model=RunResult, dependencies=[WriteAccess],
             responses=PROBLEMS, summary="Solve one scenario and store the run")
async def optimize(body: OptimizeRequest, request: Request, store: StoreDep, pool: PoolDep,
                   settings: SettingsDep,
                   idempotency_key: Annotated[Text | None, Header(max_length=200)] = None,
                   ) -> RunResult:
    """Solve `scenario` on the inline `projects`, a stored `dataset_id`, or the shipped data.

    Infeasible scenarios are answers (status `infeasible` with a diagnosis), not errors. The
    scenario's `solver.time_limit_s` is capped by the server's `OPTIMIZER_MAX_TIME_LIMIT_S`.
    With an `Idempotency-Key`, repeating the same body returns the stored run.
    """
    payload = body.model_dump(mode="json")
    req_sha = request_sha256(payload) if idempotency_key else None
    if idempotency_key:
        prior = await run_in_threadpool(store.run_by_key, idempotency_key)
        if prior is not None:
            if prior.request_sha256 != req_sha:
                raise Problem(409, "this Idempotency-Key was used with a different body")
            return to_run_result(prior)
    scenario = payload["scenario"]
    scenario["solver"]["time_limit_s"] = min(scenario["solver"]["time_limit_s"],
                                             settings.max_time_limit_s)
    try:
        with pool.admit():  # 503 at once when workers + queue are taken
            dataset = await resolve_dataset(store, request.app.state.default_dataset,
                                            body.projects, body.dataset_id)
            result = await until_disconnected(request, solve(pool, settings, dataset,
                                                             scenario))
    except Busy as exc:
        raise Problem(503, f"{exc}; retry in {settings.retry_after_s} s",
                      headers={"Retry-After": str(settings.retry_after_s)}) from None
    try:
        row = await run_in_threadpool(store.add_run, dataset_id=dataset.id, scenario=scenario,
                                      result=result, idempotency_key=idempotency_key,
                                      request_sha256=req_sha)
    except IntegrityError:  # the same key raced in from another request
        prior = await run_in_threadpool(store.run_by_key, idempotency_key)
        if prior is None or prior.request_sha256 != req_sha:
            raise Problem(409, "this Idempotency-Key was used with a different body") from None
        row = prior
    return to_run_result(row)
