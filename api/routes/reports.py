"""Committee reports of stored runs and batches (CONTRACT section 7), and an HTML index at
``/``.

``GET /runs/{id}/report`` (HTML) and ``GET /runs/{id}/report.xlsx`` render from the stored
run, its dataset and its analysis (computed once in a solver worker and stored:
:class:`api.service.Analyses`). Rendering (charts, workbook) runs in a thread, never on the
event loop. The same renderers answer share links (:mod:`api.routes.shared`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import problems
from ..access import READ
from ..bodies import JSONRoute
from ..db import BatchRow, RunRow
from ..deps import AnalysesDep, BatchDep, DbDep, RunDep
from ..problems import Problem
from ..service import AsyncStore

router = APIRouter(tags=["reports"], route_class=JSONRoute)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESPONSES = {404: problems.doc("no such run"),
             503: problems.doc("all workers busy (Retry-After) or a worker died"),
             504: problems.doc("the analysis passed its hard deadline and was stopped")}
XLSX_RESPONSES = {200: {"content": {XLSX: {}}, "description": "the report as Excel"}}


def _file_name(name: str, default: str, ident: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or default)[:60] or default
    return f"{safe}-{ident[:8]}.xlsx"


async def run_report_body(db: AsyncStore, row: RunRow, analysis: dict | None,
                          fmt: str) -> Response:
    from optimizer.reports.stored import render_stored

    ds = await db.get_dataset(row.dataset_id)
    if ds is None:
        raise Problem(404, f"the dataset of run {row.run_id} is no longer stored")
    solved = row.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    generated = f"{now} from run {row.run_id} (solved {solved})"
    body = await run_in_threadpool(render_stored, fmt, row.result, row.scenario, ds.records,
                                   analysis, generated=generated)
    if fmt == "html":
        return HTMLResponse(body, media_type="text/html; charset=utf-8")
    name = _file_name(row.scenario_name, "run", row.run_id)
    return Response(body, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def batch_report_body(db: AsyncStore, row: BatchRow, fmt: str) -> Response:
    """Rendered from the rows stored so far: a batch still running reports what it has and
    says so."""
    from optimizer.batch.files import spec_sha256
    from optimizer.reports.batch import batch_view

    def build():
        summary = {**(row.summary or {}), "total": row.total}
        view = batch_view(row.spec, db.sync.batch_rows(row.batch_id), summary,
                          source=f"batch {row.batch_id} stored by the service",
                          spec_sha256=spec_sha256(row.spec), dataset_sha256=row.dataset_id,
                          finished=row.status == "done")
        if fmt == "html":
            from optimizer.reports.html import render_batch_html

            return render_batch_html(view)
        from optimizer.reports.excel import render_batch_xlsx

        return render_batch_xlsx(view)

    body = await run_in_threadpool(build)
    if fmt == "html":
        return HTMLResponse(body, media_type="text/html; charset=utf-8")
    name = _file_name(row.name, "batch", row.batch_id)
    return Response(body, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/runs/{run_id}/report", response_class=HTMLResponse, responses=RESPONSES,
            dependencies=[READ],
            summary="A stored run's committee report (one self-contained HTML page)")
async def run_report(row: RunDep, db: DbDep, analyses: AnalysesDep) -> Response:
    return await run_report_body(db, row, await analyses.of(row), "html")


@router.get("/runs/{run_id}/report.xlsx", responses={**RESPONSES, **XLSX_RESPONSES},
            dependencies=[READ], response_class=Response,
            summary="A stored run's committee report as Excel")
async def run_report_xlsx(row: RunDep, db: DbDep, analyses: AnalysesDep) -> Response:
    return await run_report_body(db, row, await analyses.of(row), "xlsx")


@router.get("/batches/{batch_id}/report", response_class=HTMLResponse, dependencies=[READ],
            responses={404: problems.doc("no such batch")},
            summary="A stored batch's report (one self-contained HTML page)")
async def batch_report(row: BatchDep, db: DbDep) -> Response:
    """Rendered from the rows stored so far: a batch still running reports what it has and
    says so."""
    return await batch_report_body(db, row, "html")


@router.get("/batches/{batch_id}/report.xlsx", response_class=Response, dependencies=[READ],
            responses={404: problems.doc("no such batch"), **XLSX_RESPONSES},
            summary="A stored batch's report as Excel")
async def batch_report_xlsx(row: BatchDep, db: DbDep) -> Response:
    return await batch_report_body(db, row, "xlsx")


@router.get("/", response_class=HTMLResponse, dependencies=[READ],
            summary="Recent runs, with links to reports")
async def index(db: DbDep,
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HTMLResponse:
    """A page for people: the most recent runs (and batches), each with links to its report
    and workbook. Everything it links to is on this server."""
    from optimizer.reports.html import environment

    rows, total = await db.list_runs(limit=limit, offset=offset, scenario_name=None,
                                     status=None)
    batches, _ = await db.list_batches(20, 0)
    html = environment().get_template("index.html.j2").render(
        runs=rows, total=total, limit=limit, offset=offset, batches=batches,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return HTMLResponse(html, media_type="text/html; charset=utf-8")
