"""Liveness and readiness, for GET and HEAD (load balancers probe with HEAD): a HEAD answer
has the GET answer's status and headers and no body."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["health"])

READY_RESPONSES = {503: {"description": "not ready; the body says what is missing",
                         "content": {"application/json": {}}}}


@router.get("/health", summary="The process is up")
@router.head("/health", summary="The process is up (no body)", operation_id="health_head")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Database reachable and solver workers running",
            responses=READY_RESPONSES)
@router.head("/ready", summary="Readiness as a status code (no body)",
             operation_id="ready_head", responses=READY_RESPONSES)
async def ready(request: Request):
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(state.store.ping)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        checks["database"] = f"unreachable: {type(exc).__name__}"
    # check() replaces a solver pool that pebble declared broken, so a probe heals it
    usable = await run_in_threadpool(state.pool.executor.check)
    checks["solver"] = "ok" if usable else "the solver worker pool is not running"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks,
            "pool": state.pool.load()}
    return JSONResponse(body, status_code=200 if ok else 503)
