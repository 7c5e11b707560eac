"""Share links (CONTRACT section 9): ``POST /runs/{id}/share`` and ``POST /batches/{id}/share``
make them (see :mod:`api.shares`); ``GET /shared/{token}`` and ``/shared/{token}/report.xlsx``
open the one report a link names, without a key; ``GET /shares`` lists links and
``DELETE /shares/{share_id}`` revokes one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from .. import problems
from ..access import READ, SHARED, Principal, Writer
from ..bodies import JSONRoute
from ..config import Settings
from ..deps import DbDep, require_owner
from ..problems import Problem
from ..schemas import RUN_ID, ShareCreated, ShareInfo
from ..service import AsyncStore
from ..shares import Grant, InvalidLink
from .reports import XLSX, batch_report_body, run_report_body

router = APIRouter(tags=["share links"], route_class=JSONRoute)
TOKEN = Annotated[str, Path(max_length=400, description="the signed token of a share link")]
LINK_RESPONSES = {403: problems.doc("not a valid share link (tampered or another server's)"),
                  404: problems.doc("the link was revoked or what it opened was deleted"),
                  410: problems.doc("the link has expired")}


async def create_share(request: Request, db: AsyncStore, settings: Settings, who: Principal,
                       kind: str, target: str, expires_in_s: float | None) -> ShareCreated:
    ttl = settings.share_ttl_s if expires_in_s is None else expires_in_s
    if ttl > settings.share_max_ttl_s:
        raise Problem(422, f"expires_in_s is over the longest life a link may have "
                      f"({settings.share_max_ttl_s:g} s, OPTIMIZER_SHARE_MAX_TTL_S)",
                      errors=[{"loc": ["body", "expires_in_s"],
                               "msg": f"field 'expires_in_s': at most "
                                      f"{settings.share_max_ttl_s:g}"}])
    expires = (datetime.now(UTC) + timedelta(seconds=ttl)).replace(microsecond=0)
    row = await db.add_share(kind, target, expires, who.name)
    token = request.app.state.signer.token(row.share_id, kind, target, expires)
    base = (settings.public_url or str(request.base_url)).rstrip("/")
    url = f"{base}/shared/{token}"
    return ShareCreated(url=url, xlsx_url=f"{url}/report.xlsx", expires=expires,
                        share_id=row.share_id)


async def _grant(request: Request, db: AsyncStore, token: str) -> Grant:
    """The grant of a valid, live link: signature, expiry, then its row (not revoked, and
    naming the same thing)."""
    try:
        grant = request.app.state.signer.verify(token)
    except InvalidLink:
        raise Problem(403, "this is not a valid share link") from None
    if grant.expires <= datetime.now(UTC):
        raise Problem(410, f"this share link expired at {grant.expires.isoformat()}")
    row = await db.get_share(grant.share_id)
    if row is None or row.revoked_at is not None or row.kind != grant.kind \
            or row.target != grant.target:
        raise Problem(404, "this share link was revoked, or what it opened was deleted")
    return grant


async def _shared(request: Request, db: AsyncStore, token: str, fmt: str) -> Response:
    grant = await _grant(request, db, token)
    if grant.kind == "run":
        row = await db.get_run(grant.target)
        if row is None:
            raise Problem(404, "the run this link opened was deleted")
        analysis = await db.get_analysis(row.run_id)  # computed when the link was made
        return await run_report_body(db, row, analysis, fmt)
    row = await db.get_batch(grant.target)
    if row is None:
        raise Problem(404, "the batch this link opened was deleted")
    return await batch_report_body(db, row, fmt)


@router.get("/shared/{token}", response_class=HTMLResponse, dependencies=[SHARED],
            responses=LINK_RESPONSES, summary="The report a share link opens (HTML)")
async def shared_report(request: Request, db: DbDep, token: TOKEN) -> Response:
    """No key: the signed link is the permission, for this one report only."""
    return await _shared(request, db, token, "html")


@router.get("/shared/{token}/report.xlsx", response_class=Response, dependencies=[SHARED],
            responses={**LINK_RESPONSES, 200: {"content": {XLSX: {}},
                                               "description": "the report as Excel"}},
            summary="The report a share link opens (Excel)")
async def shared_report_xlsx(request: Request, db: DbDep, token: TOKEN) -> Response:
    return await _shared(request, db, token, "xlsx")


@router.get("/shares", response_model=list[ShareInfo], dependencies=[READ],
            summary="Share links, newest first (without their tokens)")
async def list_shares(db: DbDep, kind: Literal["run", "batch"] | None = None,
                      target: Annotated[str | None, Query(pattern=RUN_ID)] = None
                      ) -> list[ShareInfo]:
    rows = await db.list_shares(kind, target)
    return [ShareInfo(share_id=r.share_id, kind=r.kind, target=r.target,
                      created_at=r.created_at, created_by=r.created_by, expires=r.expires_at,
                      revoked_at=r.revoked_at) for r in rows]


@router.delete("/shares/{share_id}", status_code=204, response_class=Response,
               responses={403: problems.doc("another key's link"),
                          404: problems.doc("no such link")},
               summary="Revoke a share link (it stops working at once)")
async def revoke_share(who: Writer, share_id: Annotated[str, Path(pattern=RUN_ID)],
                       db: DbDep) -> Response:
    row = await db.get_share(share_id)
    if row is None:
        raise Problem(404, f"no share link {share_id}")
    require_owner(who, row.created_by, f"share link {share_id}")
    await db.revoke_share(share_id, who.name)
    return Response(status_code=204)
