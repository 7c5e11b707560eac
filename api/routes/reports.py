"""Committee reports of stored runs and batches (CONTRACT section 7), and an HTML index at
``/``.

``GET /runs/{id}/report`` (HTML) and ``GET /runs/{id}/report.xlsx`` render from the stored
run, its dataset and its analysis. The analysis (sensitivity re-solves, alternatives) is
computed once, in a solver worker on the built model of the run's dataset, the first time a
report of the run is asked for, and stored; later reports only render. Two requests for the
same new report share one computation. Rendering (charts, workbook) runs in a thread, never
on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import problems, report_worker
from ..db import RunRow, Store
from ..deps import PoolDep, SettingsDep, StoreDep
from ..pool import Busy, SolverPool
from ..problems import Problem
from ..schemas import RUN_ID
from ..service import in_worker

router = APIRouter(tags=["reports"])

OK = ("optimal", "feasible")
ANALYSIS = {"time_budget_s": 30.0, "resolve_time_limit_s": 10.0}  # AnalysisSettings fields
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESPONSES = {404: problems.doc("no such run"),
             503: problems.doc("all workers busy (Retry-After) or a worker died"),
             504: problems.doc("the analysis passed its hard deadline and was stopped")}


async def _run(store: Store, run_id: str) -> RunRow:
    row = None
    if re.fullmatch(RUN_ID, run_id):
        row = await run_in_threadpool(store.get_run, run_id)
    if row is None:
        raise Problem(404, f"no run with id {run_id[:64]!r}")
    return row


async def _compute(store: Store, pool: SolverPool, settings, row: RunRow) -> dict[str, Any]:
    ds = await run_in_threadpool(store.get_dataset, row.dataset_id)
    if ds is None:
        raise Problem(404, f"the dataset of run {row.run_id} is no longer stored")
    ref = await run_in_threadpool(pool.executor.dataset_ref, ds.id, ds.records)
    limit = min(ANALYSIS["resolve_time_limit_s"], row.scenario["solver"]["time_limit_s"])
    deadline = ANALYSIS["time_budget_s"] + 2 * limit + settings.deadline_grace_s
    try:
        with pool.admit():
            kind, body = await in_worker(pool, settings, "the report's analysis",
                                         report_worker.analyse_run, ref, row.scenario,
                                         row.result, ANALYSIS, deadline_s=deadline)
    except Busy as exc:  # not admitted
        raise Problem(503, f"{exc}; retry in {settings.retry_after_s} s",
                      headers={"Retry-After": str(settings.retry_after_s)}) from None
    if kind != "ok":
        raise Problem(500, f"the stored run cannot be analysed: {body}")
    await run_in_threadpool(store.put_analysis, row.run_id, body)
    return body


async def analysis_of(request: Request, store: Store, pool: SolverPool, settings,
                      row: RunRow) -> dict[str, Any] | None:
    """The run's stored analysis, computed and stored first if it is new (None for a run
    without a portfolio: its report shows the diagnosis instead)."""
    if row.status not in OK:
        return None
    stored = await run_in_threadpool(store.get_analysis, row.run_id)
    if stored is not None:
        return stored
    state = request.app.state
    inflight: dict[str, asyncio.Future] = getattr(state, "report_inflight", None) or {}
    state.report_inflight = inflight
    fut = inflight.get(row.run_id)
    if fut is None:
        fut = asyncio.ensure_future(_compute(store, pool, settings, row))
        inflight[row.run_id] = fut
        fut.add_done_callback(lambda _: inflight.pop(row.run_id, None))
    # shielded: a client that goes away does not stop the computation others will reuse
    return await asyncio.shield(fut)


async def _render(fmt: str, store: Store, row: RunRow, analysis: dict | None) -> bytes:
    from optimizer.reports.stored import render_stored

    ds = await run_in_threadpool(store.get_dataset, row.dataset_id)
    if ds is None:
        raise Problem(404, f"the dataset of run {row.run_id} is no longer stored")
    solved = row.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    generated = f"{now} from run {row.run_id} (solved {solved})"
    return await run_in_threadpool(render_stored, fmt, row.result, row.scenario, ds.records,
                                   analysis, generated=generated)


@router.get("/runs/{run_id}/report", response_class=HTMLResponse, responses=RESPONSES,
            summary="A stored run's committee report (one self-contained HTML page)")
async def run_report(run_id: Annotated[str, Path()], request: Request, store: StoreDep,
                     pool: PoolDep, settings: SettingsDep) -> HTMLResponse:
    row = await _run(store, run_id)
    analysis = await analysis_of(request, store, pool, settings, row)
    body = await _render("html", store, row, analysis)
    return HTMLResponse(body, media_type="text/html; charset=utf-8")


@router.get("/runs/{run_id}/report.xlsx", responses=RESPONSES,
            response_class=Response, summary="A stored run's committee report as Excel")
async def run_report_xlsx(run_id: Annotated[str, Path()], request: Request,
                          store: StoreDep, pool: PoolDep, settings: SettingsDep) -> Response:
    row = await _run(store, run_id)
    analysis = await analysis_of(request, store, pool, settings, row)
    body = await _render("xlsx", store, row, analysis)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", row.scenario_name or "run")[:60] or "run"
    return Response(body, media_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="{name}-{row.run_id[:8]}.xlsx"'})


async def _batch_view(store: Store, batch_id: str):
    from optimizer.batch.files import spec_sha256
    from optimizer.reports.batch import batch_view

    row = None
    if re.fullmatch(RUN_ID, batch_id) and hasattr(store, "get_batch"):
        row = await run_in_threadpool(store.get_batch, batch_id)
    if row is None:
        raise Problem(404, f"no batch with id {batch_id[:64]!r}")

    def build():
        summary = {**(row.summary or {}), "total": row.total}
        return batch_view(row.spec, store.batch_rows(row.batch_id), summary,
                          source=f"batch {row.batch_id} stored by the service",
                          spec_sha256=spec_sha256(row.spec), dataset_sha256=row.dataset_id,
                          finished=row.status == "done")

    return row, await run_in_threadpool(build)


@router.get("/batches/{batch_id}/report", response_class=HTMLResponse,
            responses={404: problems.doc("no such batch")},
            summary="A stored batch's report (one self-contained HTML page)")
async def batch_report(batch_id: Annotated[str, Path()], store: StoreDep) -> HTMLResponse:
    """Rendered from the rows stored so far: a batch still running reports what it has and
    says so."""
    from optimizer.reports.html import render_batch_html

    _, view = await _batch_view(store, batch_id)
    body = await run_in_threadpool(render_batch_html, view)
    return HTMLResponse(body, media_type="text/html; charset=utf-8")


@router.get("/batches/{batch_id}/report.xlsx", response_class=Response,
            responses={404: problems.doc("no such batch")},
            summary="A stored batch's report as Excel")
async def batch_report_xlsx(batch_id: Annotated[str, Path()], store: StoreDep) -> Response:
    from optimizer.reports.excel import render_batch_xlsx

    row, view = await _batch_view(store, batch_id)
    body = await run_in_threadpool(render_batch_xlsx, view)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", row.name or "batch")[:60] or "batch"
    return Response(body, media_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="{name}-{row.batch_id[:8]}.xlsx"'})


@router.get("/", response_class=HTMLResponse, summary="Recent runs, with links to reports")
async def index(store: StoreDep,
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HTMLResponse:
    """A page for people: the most recent runs (and batches), each with links to its report
    and workbook. Everything it links to is on this server."""
    from optimizer.reports.html import environment

    rows, total = await run_in_threadpool(store.list_runs, limit=limit, offset=offset,
                                          scenario_name=None, status=None)
    batches: list = []
    if hasattr(store, "list_batches"):
        batches, _ = await run_in_threadpool(store.list_batches, 20, 0)
    html = environment().get_template("index.html.j2").render(
        runs=rows, total=total, limit=limit, offset=offset, batches=batches,
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return HTMLResponse(html, media_type="text/html; charset=utf-8")
