"""Batches of what-if scenarios over HTTP (CONTRACT section 6)."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from optimizer import InputError, csvsafe
from optimizer.batch import parse_spec, row_count, varied_paths
from optimizer.batch.spec import sample_variants, validate_rows
from optimizer.batch.summaries import Tally
from optimizer.batch.table import FLAT_HEAD, flat_row

from .. import problems
from ..access import READ, Writer
from ..bodies import JSONRoute
from ..db import BatchRow
from ..deps import BatchDep, DbDep, SettingsDep, require_owner
from ..problems import Problem, from_input_error
from ..schemas import BatchAccepted, BatchPage, BatchStatus, ShareCreated, ShareRequest
from ..service import (
    add_batch_within_quota,
    cap_batch_time_limits,
    check_sample_size,
    resolve_dataset,
)
from ..service import validate_rows as validate_project_rows
from .shared import create_share

router = APIRouter(tags=["batches"], route_class=JSONRoute)
NOT_FOUND = {404: problems.doc("no such batch")}
SPEC_EXAMPLE = {"name": "budget sweep", "base": {"budget_musd": 1600, "max_country_share": 0.3},
                "grid": {"budget_musd": [800, 1200, 1600, 2000]}}
# The body is read as a plain object so that errors are worded as the library words them;
# this is its documented shape (CONTRACT section 6).
SPEC_SCHEMA = {"type": "object", "required": ["base"], "examples": [SPEC_EXAMPLE],
               "properties": {
                   "name": {"type": "string", "maxLength": 200},
                   "description": {"type": "string", "maxLength": 2000},
                   "base": {"$ref": "#/components/schemas/Scenario"},
                   "projects": {"type": "array", "items": {"type": "object"}},
                   "dataset_id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                   "scenarios": {"type": "array", "items": {"type": "object"}},
                   "grid": {"type": "object",
                            "additionalProperties": {"type": "array"}},
                   "monte_carlo": {"type": "object", "required": ["draws"]},
                   "frontier": {"type": "object", "required": ["kind"]},
                   "diagnose": {"type": "boolean"}, "reuse": {"type": "boolean"},
                   "core_share": {"type": "number"}, "exterior_share": {"type": "number"}},
               "description": "base plus exactly one of scenarios, grid, monte_carlo, frontier"}


def status_of(row: BatchRow) -> BatchStatus:
    return BatchStatus(batch_id=row.batch_id, name=row.name, kind=row.kind,
                       status=row.status, total=row.total, done=row.done, failed=row.failed,
                       created_at=row.created_at, started_at=row.started_at,
                       finished_at=row.finished_at, dataset_id=row.dataset_id,
                       summary=row.summary, error=row.error, created_by=row.created_by)


@router.post("/batches", status_code=202, response_model=BatchAccepted,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": SPEC_SCHEMA}}}},
             responses={401: problems.doc("API key missing or wrong"),
                        403: problems.doc("the key's role may not, or its storage budget is "
                                          "spent"),
                        404: problems.doc("unknown dataset_id"),
                        422: problems.doc("invalid spec; `errors` names each field or index"),
                        429: problems.doc("the key has its quota of unfinished batches or "
                                          "rows (Retry-After)")},
             summary="Start a batch of what-if scenarios")
async def create_batch(who: Writer, request: Request, db: DbDep, settings: SettingsDep,
                       spec: Annotated[dict[str, Any], Body()]
                       ) -> BatchAccepted:
    """The spec of CONTRACT section 6 (`base` plus one of `scenarios`, `grid`,
    `monte_carlo`, `frontier`; `projects` as rows or `dataset_id`, else the shipped data).
    Every generated scenario is validated first: a bad one is a 422 naming its index and
    field, and nothing is stored. Every `solver.time_limit_s` is capped by
    `OPTIMIZER_MAX_TIME_LIMIT_S` as for POST /optimize. Answers 202 with the `batch_id`;
    rows are stored as they finish (`GET /batches/{id}`, `/results`). Batches wait their
    turn round-robin by key."""
    spec = cap_batch_time_limits(spec, settings.max_time_limit_s)
    try:
        parsed = parse_spec(spec, max_rows=settings.batch_max_rows)
    except InputError as exc:
        raise from_input_error(exc) from None
    if isinstance(parsed.projects, str):
        raise Problem(422, "projects must be rows over HTTP (a file path is for the CLI)",
                      errors=[{"loc": ["body", "projects"],
                               "msg": "spec field 'projects': rows or dataset_id, not a path"}])
    dataset = await resolve_dataset(db, request.app.state.default_dataset, parsed.projects,
                                    parsed.dataset_id, who)
    data = await run_in_threadpool(validate_project_rows, dataset.records)
    check_sample_size(settings, sample_variants(parsed), data.n, ("body",))
    try:
        await run_in_threadpool(validate_rows, parsed, data)
    except InputError as exc:
        raise from_input_error(exc) from None
    stored = {k: v for k, v in spec.items() if k != "projects"}  # the rows live in datasets
    row = await add_batch_within_quota(db, settings, who, spec=stored, dataset_id=dataset.id,
                                       name=parsed.name, kind=parsed.kind,
                                       total=row_count(parsed))
    return BatchAccepted(batch_id=row.batch_id, status=row.status, total=row.total,
                         links={"self": f"/batches/{row.batch_id}",
                                "results": f"/batches/{row.batch_id}/results"})


@router.get("/batches", response_model=BatchPage, dependencies=[READ],
            summary="Batches, newest first")
async def list_batches(db: DbDep, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> BatchPage:
    rows, total = await db.list_batches(limit, offset)
    return BatchPage(items=[status_of(r) for r in rows], total=total, limit=limit,
                     offset=offset)


@router.get("/batches/{batch_id}", response_model=BatchStatus, dependencies=[READ],
            responses=NOT_FOUND, summary="A batch's progress")
async def get_batch(row: BatchDep) -> BatchStatus:
    return status_of(row)


@router.delete("/batches/{batch_id}", response_model=BatchStatus,
               responses={**NOT_FOUND, 403: problems.doc("another key's batch")},
               summary="Cancel a batch (finished rows are kept); purge=true deletes it and "
                       "its rows")
async def cancel_batch(who: Writer, request: Request, row: BatchDep, db: DbDep,
                       purge: Annotated[bool, Query(description="also delete the batch and "
                                                    "its stored rows")] = False
                       ) -> BatchStatus:
    """Analysts cancel and delete the batches their own key made; admins any."""
    require_owner(who, row.created_by, f"batch {row.batch_id}")
    cancelled = await db.cancel_batch(row.batch_id, who.name)
    request.app.state.batches.cancel(row.batch_id)
    if purge:
        await db.purge_batch(row.batch_id, who.name)
    return status_of(cancelled or row)


@router.post("/batches/{batch_id}/share", response_model=ShareCreated, status_code=201,
             responses=NOT_FOUND,
             summary="A signed, expiring link to this batch's report (HTML and Excel)")
async def share_batch(who: Writer, request: Request, row: BatchDep, db: DbDep,
                      settings: SettingsDep,
                      body: Annotated[ShareRequest | None, Body()] = None) -> ShareCreated:
    """The link opens this batch's report (as stored when it is opened) in a browser without
    a key, until it expires or is revoked (`DELETE /shares/{share_id}`), and nothing else."""
    return await create_share(request, db, settings, who, "batch", row.batch_id,
                              body.expires_in_s if body else None)


@router.get("/batches/{batch_id}/results", responses=NOT_FOUND, dependencies=[READ],
            summary="Stored rows in index order, paged")
async def batch_results(row: BatchDep, db: DbDep,
                        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                        limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    rows = await db.call(lambda: list(db.sync.batch_rows(row.batch_id, offset, limit)))
    return {"batch_id": row.batch_id, "status": row.status, "total": row.total,
            "offset": offset, "limit": limit, "rows": rows}


@router.get("/batches/{batch_id}/results.csv", dependencies=[READ],
            response_class=StreamingResponse,
            responses={**NOT_FOUND, 200: {"description": "one flat line per stored row, in "
                                          "index order (CONTRACT section 6, results.csv)",
                                          "content": {"text/csv": {"schema": {
                                              "type": "string"}}}}},
            summary="The flat table (results.csv of the CLI), streamed")
async def batch_results_csv(row: BatchDep, db: DbDep) -> StreamingResponse:
    varied = varied_paths(parse_spec(row.spec))
    batch_id = row.batch_id

    def lines():
        buf = io.StringIO()
        w = csvsafe.writer(buf)
        w.writerow(["index", *varied, *FLAT_HEAD])
        for i, r in enumerate(db.sync.batch_rows(batch_id)):
            w.writerow(flat_row(r, varied))
            if i % 200 == 199:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(lines(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"'})


@router.get("/batches/{batch_id}/selection", responses=NOT_FOUND, dependencies=[READ],
            summary="Per project: how often chosen, mean stake, robust-core class")
async def batch_selection(row: BatchDep, db: DbDep) -> dict[str, Any]:
    spec = parse_spec(row.spec)
    ds = await db.get_dataset(row.dataset_id)
    if ds is None:
        raise Problem(404, f"the dataset of batch {row.batch_id} is no longer stored")

    def tally() -> Tally:
        t = Tally([r["project_id"] for r in ds.records], spec.core_share, spec.exterior_share)
        for r in db.sync.batch_rows(row.batch_id):
            t.add(r)
        return t

    t = await run_in_threadpool(tally)  # long for a big batch: no statement deadline
    return {"batch_id": row.batch_id, "status": row.status, "rows": t.ok_rows,
            "projects": t.selection(), "robust_core": t.summary()["robust_core"]}
