"""Liveness and readiness, for GET and HEAD (load balancers probe with HEAD): a HEAD answer
has the GET answer's status and headers and no body. ``/health`` is the one endpoint open
without a key; ``/ready`` shows the pool's load, so it needs one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..access import PUBLIC, READ
from ..bodies import JSONRoute

router = APIRouter(tags=["health"], route_class=JSONRoute)

READY_RESPONSES = {503: {"description": "not ready; the body says what is missing",
                         "content": {"application/json": {}}}}


@router.get("/health", dependencies=[PUBLIC], summary="The process is up")
@router.head("/health", dependencies=[PUBLIC], summary="The process is up (no body)",
             operation_id="health_head")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", dependencies=[READ], responses=READY_RESPONSES,
            summary="Database reachable and writable, solver workers running")
@router.head("/ready", dependencies=[READ], operation_id="ready_head",
             responses=READY_RESPONSES, summary="Readiness as a status code (no body)")
async def ready(request: Request):
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        await state.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        checks["database"] = f"unreachable: {getattr(exc, 'detail', type(exc).__name__)}"
    health = state.db.sync.health
    if health.failures:  # writes failed: does one succeed now (disk freed, database back)?
        try:
            await state.db.probe_write()
        except Exception:  # noqa: BLE001 - counted in health
            pass
    if health.failures:
        checks["writes"] = (f"{health.failures} failed since "
                            f"{health.failing_since.isoformat(timespec='seconds')}: "
                            f"{health.last_error}")
    else:
        checks["writes"] = "ok"
    # check() replaces a solver pool that pebble declared broken, so a probe heals it
    usable = await run_in_threadpool(state.pool.executor.check)
    checks["solver"] = "ok" if usable else "the solver worker pool is not running"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks,
            "pool": state.pool.load()}
    return JSONResponse(body, status_code=200 if ok else 503)
