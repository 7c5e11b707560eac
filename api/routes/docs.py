"""The OpenAPI document, Swagger UI (``/docs``) and ReDoc (``/redoc``), served from files on
this server (the ``fastapi-offline`` package ships Swagger UI's and ReDoc's bundles): the
pages work offline and load nothing from a CDN. Like every endpoint but ``/health``, they
need a key once keys are configured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from ..access import READ
from ..bodies import JSONRoute
from ..problems import Problem

router = APIRouter(route_class=JSONRoute, include_in_schema=False)

_BUNDLES = Path(fastapi_offline.__file__).resolve().parent / "static"
_OURS = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"swagger-ui-bundle.js": _BUNDLES / "swagger-ui-bundle.js",
          "swagger-ui.css": _BUNDLES / "swagger-ui.css",
          "redoc.standalone.js": _BUNDLES / "redoc.standalone.js",
          "favicon.png": _BUNDLES / "favicon.png",
          "swagger-init.js": _OURS / "swagger-init.js"}
# Swagger UI and ReDoc style their elements inline and ReDoc runs a web worker from a blob
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API docs</title>
<link rel="icon" href="docs/assets/favicon.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/swagger-init.js"></script></body></html>
"""
REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - ReDoc</title>
<link rel="icon" href="docs/assets/favicon.png"></head>
<body><redoc spec-url="openapi.json"></redoc>
<script src="docs/assets/redoc.standalone.js"></script></body></html>
"""


def _page(template: str, request: Request) -> HTMLResponse:
    from html import escape

    return HTMLResponse(template.format(title=escape(request.app.title)),
                        headers={"Content-Security-Policy": DOCS_CSP})


@router.get("/openapi.json", dependencies=[READ])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", dependencies=[READ])
async def swagger_ui(request: Request) -> HTMLResponse:
    return _page(SWAGGER, request)


@router.get("/redoc", dependencies=[READ])
async def redoc(request: Request) -> HTMLResponse:
    return _page(REDOC, request)


@router.get("/docs/assets/{name}", dependencies=[READ])
async def asset(name: Annotated[str, PathParam(max_length=40)]) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise Problem(404, f"no asset {name[:40]!r}")
    return FileResponse(path, headers={"Cache-Control": "private, max-age=86400"})
