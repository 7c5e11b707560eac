"""Stored runs: list, read, delete, share."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request

from .. import problems
from ..access import READ, Writer
from ..bodies import JSONRoute
from ..db import RunRow
from ..deps import AnalysesDep, DbDep, RunDep, SettingsDep, require_owner
from ..schemas import Deleted, RunPage, RunResult, RunSummary, ShareCreated, ShareRequest, Text
from .shared import create_share

router = APIRouter(tags=["runs"], route_class=JSONRoute)
NOT_FOUND = {404: problems.doc("no such run")}
OWNER_ONLY = {403: problems.doc("the key may not do this (role, or another key's run)")}


def to_run_result(row: RunRow) -> RunResult:
    return RunResult.model_validate({**row.result, "run_id": row.run_id,
                                     "created_at": row.created_at, "dataset_id": row.dataset_id,
                                     "scenario": row.scenario, "created_by": row.created_by})


@router.get("/runs", response_model=RunPage, dependencies=[READ],
            summary="Stored runs, newest first")
async def list_runs(db: DbDep,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                    scenario_name: Annotated[Text | None, Query(max_length=200)] = None,
                    status: Literal["optimal", "feasible", "infeasible", "no_solution"]
                    | None = None) -> RunPage:
    rows, total = await db.list_runs(limit=limit, offset=offset, scenario_name=scenario_name,
                                     status=status)
    items = [RunSummary(run_id=r.run_id, created_at=r.created_at,
                        scenario_name=r.scenario_name, status=r.status,
                        objective=r.result.get("objective"), dataset_id=r.dataset_id,
                        created_by=r.created_by)
             for r in rows]
    return RunPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunResult, dependencies=[READ],
            responses=NOT_FOUND, summary="One stored run")
async def get_run(row: RunDep) -> RunResult:
    """Run ids are 32 hex digits; anything else is unknown, without asking the database."""
    return to_run_result(row)


@router.delete("/runs/{run_id}", response_model=Deleted, responses={**NOT_FOUND, **OWNER_ONLY},
               summary="Delete a run (its analysis and share links go with it)")
async def delete_run(who: Writer, row: RunDep, db: DbDep) -> Deleted:
    """Analysts delete the runs their own key made; admins any."""
    require_owner(who, row.created_by, f"run {row.run_id}")
    await db.delete_run(row.run_id, who.name)
    return Deleted(deleted="run", id=row.run_id)


@router.post("/runs/{run_id}/share", response_model=ShareCreated, status_code=201,
             responses={**NOT_FOUND, **OWNER_ONLY,
                        503: problems.doc("the report's analysis could not run now")},
             summary="A signed, expiring link to this run's report (HTML and Excel)")
async def share_run(who: Writer, request: Request, row: RunDep, db: DbDep,
                    settings: SettingsDep, analyses: AnalysesDep,
                    body: Annotated[ShareRequest | None, Body()] = None) -> ShareCreated:
    """The link opens this run's report in a browser without a key, until it expires or is
    revoked (`DELETE /shares/{share_id}`), and nothing else. The report's analysis is
    computed now if it is new, so opening the link never starts a solve."""
    await analyses.of(row)
    return await create_share(request, db, settings, who, "run", row.run_id,
                              body.expires_in_s if body else None)
