from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from .. import problems
from ..db import RunRow
from ..deps import StoreDep
from ..problems import Problem
from ..schemas import RUN_ID, RunPage, RunResult, RunSummary, Text

router = APIRouter(tags=["runs"])


def to_run_result(row: RunRow) -> RunResult:
    return RunResult.model_validate({**row.result, "run_id": row.run_id,
                                     "created_at": row.created_at, "dataset_id": row.dataset_id,
                                     "scenario": row.scenario})


@router.get("/runs", response_model=RunPage, summary="Stored runs, newest first")
async def list_runs(store: StoreDep,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                    scenario_name: Annotated[Text | None, Query(max_length=200)] = None,
                    status: Literal["optimal", "feasible", "infeasible", "no_solution"]
                    | None = None) -> RunPage:
    rows, total = await run_in_threadpool(store.list_runs, limit=limit, offset=offset,
                                          scenario_name=scenario_name, status=status)
    items = [RunSummary(run_id=r.run_id, created_at=r.created_at,
                        scenario_name=r.scenario_name, status=r.status,
                        objective=r.result.get("objective"), dataset_id=r.dataset_id)
             for r in rows]
    return RunPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunResult,
            responses={404: problems.doc("no such run")}, summary="One stored run")
async def get_run(store: StoreDep, run_id: Annotated[str, Path()]) -> RunResult:
    """Run ids are 32 hex digits; anything else is unknown, without asking the database."""
    row = None
    if re.fullmatch(RUN_ID, run_id):
        row = await run_in_threadpool(store.get_run, run_id)
    if row is None:
        raise Problem(404, f"no run with id {run_id[:64]!r}")
    return to_run_result(row)
