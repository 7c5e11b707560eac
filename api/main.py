"""The FastAPI application: wiring only (settings, storage, worker pool, routes, errors)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from optimizer import load_projects
from optimizer.parallel import LocalExecutor
from optimizer.solve import SOFTWARE_VERSION

from . import problems
from .batches import BatchManager
from .config import Settings, get_settings
from .db import Store, make_engine, migrate
from .pool import SolverPool
from .routes import batches, datasets, health, optimize, reports, runs
from .service import ClientDisconnected, Dataset

log = logging.getLogger("api")


class BodyLimit:
    """413 for bodies over ``max_bytes``: checked on Content-Length and while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:  # raised where no handler sits between us and the reader
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        resp = problems.problem_response(413, f"request body over {self.max_bytes} bytes")
        await send({"type": "http.response.start", "status": 413,
                    "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


class _TooLarge(StarletteHTTPException):
    """Raised from inside body reading; an HTTPException so FastAPI's body parser passes it
    on (it turns any other exception into a 400) and the problem handler renders it."""

    def __init__(self) -> None:
        super().__init__(413, "request body too large")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url)
        await run_in_threadpool(migrate, engine)
        store = Store(engine)
        data = await run_in_threadpool(load_projects, settings.default_projects)
        records = data.records()
        await run_in_threadpool(store.put_dataset, data.sha256, records, "shipped default")
        executor = LocalExecutor(settings.workers, max_tasks=settings.worker_max_tasks,
                                 cache_dir=settings.dataset_cache_dir)
        try:
            await asyncio.to_thread(executor.start)  # a worker has imported and answered
            await asyncio.to_thread(executor.dataset_ref, data.sha256, records)
        except BaseException:
            await asyncio.to_thread(executor.close)
            raise
        pool = SolverPool(executor, settings.max_queue)
        app.state.settings = settings
        app.state.store = store
        app.state.pool = pool
        app.state.default_dataset = Dataset(data.sha256, records)
        manager = BatchManager(store, settings)
        app.state.batches = manager
        await manager.start()  # also resumes batches a killed server left running
        loop = asyncio.get_running_loop()
        log.info("ready: %d solver workers, database %s, event loop %s.%s", settings.workers,
                 engine.url.render_as_string(), type(loop).__module__, type(loop).__qualname__)
        try:
            yield
        finally:
            await manager.close()
            await pool.close()
            engine.dispose()

    app = FastAPI(
        title="Critical-minerals co-investment optimiser",
        version=SOFTWARE_VERSION,
        description="Choose overseas tantalum, niobium and rare-earth co-investments and stakes "
        "for KABIL and US partners under budget and diversification limits (Pyomo + HiGHS). "
        "Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        responses={400: problems.doc("malformed request body (e.g. not UTF-8 JSON)"),
                   422: problems.doc("invalid input; `errors` names each field"),
                   500: problems.doc("internal error (never caused by the request's content)")},
    )
    problems.install(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(request, exc):  # nobody reads this answer; 499 as nginx logs it
        log.info("client went away during %s; its solve was stopped", request.url.path)
        return Response(status_code=499)

    for r in (optimize.router, runs.router, reports.router, datasets.router, batches.router,
              health.router):
        app.include_router(r)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
