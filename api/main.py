"""The FastAPI application: wiring only (settings, storage, worker pool, routes, errors)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optimizer import load_projects
from optimizer.parallel import LocalExecutor
from optimizer.solve import SOFTWARE_VERSION

from . import problems
from .access import Key, Keyring, Role, parse_env_keys
from .batches import BatchManager
from .bodies import JSONRoute
from .config import Settings, get_settings
from .db import DatabaseUnavailable, Store, check_reachable, make_engine, migrate
from .pool import SolverPool
from .routes import batches, datasets, docs, health, optimize, reports, runs, shared
from .service import Analyses, AsyncStore, ClientDisconnected, Dataset
from .shares import SECRET_NAME, Signer, new_secret

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


# Every page and file: no sniffing, no framing, no referrer (a share link's token must not
# leak to another site), and nothing loaded from elsewhere. Reports are self-contained HTML
# with inline styles and SVG, so styles may be inline; scripts may not run at all.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src data:; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (a route's own CSP or Cache-Control
    wins), and ``Cache-Control: no-store`` unless the route set one: everything this service
    answers may hold confidential deal figures."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                headers = MutableHeaders(scope=msg)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(msg)

        await self.app(scope, receive, with_headers)


async def _refresh_keys(keyring: Keyring, store: Store) -> None:
    """Re-read the database's keys every ``keyring.refresh_s`` (a key added or revoked with
    ``python -m api keys`` or by another server is seen within it)."""
    while True:
        await asyncio.sleep(keyring.refresh_s)
        try:
            keyring.set_db_keys(await asyncio.to_thread(db_keys, store))
        except Exception as exc:  # noqa: BLE001 - keep the last known keys
            log.warning("could not re-read API keys from the database: %s", exc)


def db_keys(store: Store) -> list[Key]:
    return [Key(name, Role[role], digest, "database")
            for name, role, digest in store.active_keys()]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    env_keys = parse_env_keys(settings.api_keys)  # a bad entry stops here, before serving

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = make_engine(settings.database_url,
                             connect_timeout_s=settings.db_connect_timeout_s,
                             statement_timeout_s=settings.db_timeout_s)
        try:
            await asyncio.to_thread(check_reachable, engine, settings.db_connect_timeout_s + 2)
        except DatabaseUnavailable as exc:
            log.error("cannot start: %s", exc)
            engine.dispose()
            raise
        await run_in_threadpool(migrate, engine)
        store = Store(engine)
        db = AsyncStore(store, settings.db_timeout_s, settings.retry_after_s)
        keyring = Keyring(env_keys, settings.key_refresh_s)
        keyring.set_db_keys(await run_in_threadpool(db_keys, store))
        secret = settings.share_secret or await run_in_threadpool(
            store.server_secret, SECRET_NAME, new_secret)
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
        app.state.db = db
        app.state.keyring = keyring
        app.state.signer = Signer(secret)
        app.state.pool = pool
        app.state.analyses = Analyses(db, pool, settings)
        app.state.default_dataset = Dataset(data.sha256, records)
        manager = BatchManager(store, settings)
        app.state.batches = manager
        await manager.start()  # also resumes batches a killed server left running
        refresher = asyncio.get_running_loop().create_task(_refresh_keys(keyring, store))
        loop = asyncio.get_running_loop()
        log.info("ready: %d solver workers, database %s, event loop %s.%s", settings.workers,
                 engine.url.render_as_string(), type(loop).__module__, type(loop).__qualname__)
        if keyring.configured:
            log.info("access: %d API keys (%d from OPTIMIZER_API_KEYS, %d from the database)",
                     len(keyring.keys), len(keyring.env_keys), len(keyring.keys)
                     - len(keyring.env_keys))
        else:
            log.warning("access: no API keys are configured, so only loopback clients "
                        "(127.0.0.1, ::1) are served; set OPTIMIZER_API_KEYS or add a key "
                        "with `python -m api keys add` to serve others")
        try:
            yield
        finally:
            refresher.cancel()
            await manager.close()
            await pool.close()
            engine.dispose()

    app = FastAPI(
        title="Critical-minerals co-investment optimiser",
        version=SOFTWARE_VERSION,
        description="Choose overseas tantalum, niobium and rare-earth co-investments and stakes "
        "for KABIL and US partners under budget and diversification limits (Pyomo + HiGHS). "
        "Errors are RFC 9457 problem+json. Every endpoint but `/health` needs an API key "
        "(`X-API-Key` or `Authorization: Bearer`) once keys are configured; roles: reader, "
        "analyst, admin (README, section Access).",
        lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,  # served with access rules: docs.py
        responses={400: problems.doc("malformed request body (e.g. not UTF-8 JSON)"),
                   401: problems.doc("API key missing or wrong (when keys are configured)"),
                   403: problems.doc("the key's role may not do this (or no key is configured "
                                     "and the client is not on loopback)"),
                   422: problems.doc("invalid input; `errors` names each field"),
                   500: problems.doc("internal error (never caused by the request's content)"),
                   503: problems.doc("busy or the database is unavailable (Retry-After)")},
    )
    app.router.route_class = JSONRoute
    problems.install(app)

    @app.exception_handler(ClientDisconnected)
    async def _gone(request, exc):  # nobody reads this answer; 499 as nginx logs it
        log.info("client went away during %s; its solve was stopped", request.url.path)
        return Response(status_code=499)

    for r in (optimize.router, runs.router, reports.router, datasets.router, batches.router,
              shared.router, health.router, docs.router):
        app.include_router(r)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
