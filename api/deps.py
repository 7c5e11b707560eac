"""Dependencies shared by the routes: settings, storage, the worker pool, the API-key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from .config import Settings
from .db import Store
from .pool import SolverPool
from .problems import Problem


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_pool(request: Request) -> SolverPool:
    return request.app.state.pool


def require_key(request: Request,
                x_api_key: Annotated[str | None, Header(description="needed when the server "
                                                        "has API keys configured")] = None
                ) -> None:
    keys = request.app.state.settings.keys
    if keys and not any(hmac.compare_digest(x_api_key or "", k) for k in keys):
        raise Problem(401, "missing or wrong X-API-Key", headers={"WWW-Authenticate": "ApiKey"})


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
PoolDep = Annotated[SolverPool, Depends(get_pool)]
WriteAccess = Depends(require_key)
