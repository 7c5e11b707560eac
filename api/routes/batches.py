"""Batches of what-if scenarios over HTTP (CONTRACT section 6)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from optimizer import InputError
from optimizer.batch import parse_spec, row_count, varied_paths
from optimizer.batch.spec import validate_rows
from optimizer.batch.summaries import Tally
from optimizer.batch.table import FLAT_HEAD, flat_row

from .. import problems
from ..db import BatchRow
from ..deps import SettingsDep, StoreDep, WriteAccess
from ..problems import Problem, from_input_error
from ..schemas import BatchAccepted, BatchPage, BatchStatus
from ..service import resolve_dataset
from ..service import validate_rows as validate_project_rows

router = APIRouter(tags=["batches"])
ID = Annotated[str, Path(max_length=64, pattern=r"^[0-9a-f]{1,64}$")]


def status_of(row: BatchRow) -> BatchStatus:
    return BatchStatus(batch_id=row.batch_id, name=row.name, kind=row.kind,
                       status=row.status, total=row.total, done=row.done, failed=row.failed,
                       created_at=row.created_at, started_at=row.started_at,
                       finished_at=row.finished_at, dataset_id=row.dataset_id,
                       summary=row.summary, error=row.error)


async def _get(store, batch_id: str) -> BatchRow:
    row = await run_in_threadpool(store.get_batch, batch_id)
    if row is None:
        raise Problem(404, f"no batch {batch_id}")
    return row


@router.post("/batches", status_code=202, response_model=BatchAccepted,
             dependencies=[WriteAccess],
             responses={401: problems.doc("API key missing or wrong"),
                        404: problems.doc("unknown dataset_id"),
                        422: problems.doc("invalid spec; `errors` names each field or index")},
             summary="Start a batch of what-if scenarios")
async def create_batch(request: Request, store: StoreDep, settings: SettingsDep,
                       spec: Annotated[dict[str, Any], Body(examples=[{
                           "name": "budget sweep", "base": {"budget_musd": 1600,
                                                            "max_country_share": 0.3},
                           "grid": {"budget_musd": [800, 1200, 1600, 2000]}}])]
                       ) -> BatchAccepted:
    """The spec of CONTRACT section 6 (`base` plus one of `scenarios`, `grid`,
    `monte_carlo`, `frontier`; `projects` as rows or `dataset_id`, else the shipped data).
    Every generated scenario is validated first: a bad one is a 422 naming its index and
    field, and nothing is stored. Answers 202 with the `batch_id`; rows are stored as they
    finish (`GET /batches/{id}`, `/results`)."""
    try:
        parsed = parse_spec(spec, max_rows=settings.batch_max_rows)
    except InputError as exc:
        raise from_input_error(exc) from None
    if isinstance(parsed.projects, str):
        raise Problem(422, "projects must be rows over HTTP (a file path is for the CLI)",
                      errors=[{"loc": ["body", "projects"],
                               "msg": "spec field 'projects': rows or dataset_id, not a path"}])
    dataset = await resolve_dataset(store, request.app.state.default_dataset, parsed.projects,
                                    parsed.dataset_id)
    data = await run_in_threadpool(validate_project_rows, dataset.records)
    try:
        await run_in_threadpool(validate_rows, parsed, data)
    except InputError as exc:
        raise from_input_error(exc) from None
    stored = {k: v for k, v in spec.items() if k != "projects"}  # the rows live in datasets
    row = await run_in_threadpool(store.add_batch, spec=stored, dataset_id=dataset.id,
                                  name=parsed.name, kind=parsed.kind, total=row_count(parsed))
    return BatchAccepted(batch_id=row.batch_id, status=row.status, total=row.total,
                         links={"self": f"/batches/{row.batch_id}",
                                "results": f"/batches/{row.batch_id}/results"})


@router.get("/batches", response_model=BatchPage, summary="Batches, newest first")
async def list_batches(store: StoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> BatchPage:
    rows, total = await run_in_threadpool(store.list_batches, limit, offset)
    return BatchPage(items=[status_of(r) for r in rows], total=total, limit=limit,
                     offset=offset)


@router.get("/batches/{batch_id}", response_model=BatchStatus,
            responses={404: problems.doc("no such batch")}, summary="A batch's progress")
async def get_batch(store: StoreDep, batch_id: ID) -> BatchStatus:
    return status_of(await _get(store, batch_id))


@router.delete("/batches/{batch_id}", response_model=BatchStatus, dependencies=[WriteAccess],
               responses={404: problems.doc("no such batch")},
               summary="Cancel a batch (finished rows are kept)")
async def cancel_batch(request: Request, store: StoreDep, batch_id: ID) -> BatchStatus:
    await _get(store, batch_id)
    row = await run_in_threadpool(store.cancel_batch, batch_id)
    request.app.state.batches.cancel(batch_id)
    return status_of(row)


@router.get("/batches/{batch_id}/results", responses={404: problems.doc("no such batch")},
            summary="Stored rows in index order, paged")
async def batch_results(store: StoreDep, batch_id: ID,
                        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                        limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    row = await _get(store, batch_id)
    rows = await run_in_threadpool(lambda: list(store.batch_rows(batch_id, offset, limit)))
    return {"batch_id": batch_id, "status": row.status, "total": row.total,
            "offset": offset, "limit": limit, "rows": rows}


@router.get("/batches/{batch_id}/results.csv", responses={404: problems.doc("no such batch")},
            summary="The flat table (results.csv of the CLI), streamed")
async def batch_results_csv(store: StoreDep, batch_id: ID) -> StreamingResponse:
    row = await _get(store, batch_id)
    varied = varied_paths(parse_spec(row.spec))

    def lines():
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["index", *varied, *FLAT_HEAD])
        for i, r in enumerate(store.batch_rows(batch_id)):
            w.writerow(flat_row(r, varied))
            if i % 200 == 199:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(lines(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"'})


@router.get("/batches/{batch_id}/selection", responses={404: problems.doc("no such batch")},
            summary="Per project: how often chosen, mean stake, robust-core class")
async def batch_selection(store: StoreDep, batch_id: ID) -> dict[str, Any]:
    row = await _get(store, batch_id)
    spec = parse_spec(row.spec)
    ds = await run_in_threadpool(store.get_dataset, row.dataset_id)

    def tally() -> Tally:
        t = Tally([r["project_id"] for r in ds.records], spec.core_share, spec.exterior_share)
        for r in store.batch_rows(batch_id):
            t.add(r)
        return t

    t = await run_in_threadpool(tally)
    return {"batch_id": batch_id, "status": row.status, "rows": t.ok_rows,
            "projects": t.selection(), "robust_core": t.summary()["robust_core"]}
