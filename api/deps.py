"""Dependencies shared by the routes: settings, storage, the worker pool, and the one lookup
of a run and of a batch by its id (404 otherwise). Access rules live in :mod:`api.access`."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Request

from .config import Settings
from .db import BatchRow, RunRow
from .pool import SolverPool
from .problems import Problem
from .schemas import RUN_ID
from .service import Analyses, AsyncStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> AsyncStore:
    return request.app.state.db


def get_pool(request: Request) -> SolverPool:
    return request.app.state.pool


def get_analyses(request: Request) -> Analyses:
    return request.app.state.analyses


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[AsyncStore, Depends(get_db)]
PoolDep = Annotated[SolverPool, Depends(get_pool)]
AnalysesDep = Annotated[Analyses, Depends(get_analyses)]


async def get_run_row(run_id: Annotated[str, Path(description="32 hex digits")],
                      db: DbDep) -> RunRow:
    """The stored run, or 404. Ids are 32 hex digits; anything else is unknown without
    asking the database (PostgreSQL cannot even compare text holding NUL)."""
    row = await db.get_run(run_id) if re.fullmatch(RUN_ID, run_id) else None
    if row is None:
        raise Problem(404, f"no run with id {run_id[:64]!r}")
    return row


async def get_batch_row(batch_id: Annotated[str, Path(description="32 hex digits")],
                        db: DbDep) -> BatchRow:
    row = await db.get_batch(batch_id) if re.fullmatch(RUN_ID, batch_id) else None
    if row is None:
        raise Problem(404, f"no batch with id {batch_id[:64]!r}")
    return row


RunDep = Annotated[RunRow, Depends(get_run_row)]
BatchDep = Annotated[BatchRow, Depends(get_batch_row)]


def require_owner(who, owner: str | None, what: str) -> None:
    """403 unless ``who`` may change what ``owner``'s key made (its own, or any as admin)."""
    if not who.may_change(owner):
        made = f"key {owner!r}" if owner else "no recorded key"
        raise Problem(403, f"{what} was made by {made}; only that key or an admin may "
                      "change or delete it")
