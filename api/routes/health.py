from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Database reachable and solver workers running",
            responses={503: {"description": "not ready; the body says what is missing",
                             "content": {"application/json": {}}}})
async def ready(request: Request):
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(state.store.ping)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        checks["database"] = f"unreachable: {type(exc).__name__}"
    load = state.pool.load()
    checks["solver"] = "ok" if load["ready"] > 0 else "no solver worker has started yet"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ok else "not ready", "checks": checks, "pool": load}
    return JSONResponse(body, status_code=200 if ok else 503)
