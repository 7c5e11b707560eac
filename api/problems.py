"""RFC 9457 problem details for every error the service returns.

Every error body is ``application/problem+json`` with ``type``, ``title``, ``status`` and
``detail``; input errors add ``errors``: a list of ``{"loc": [...], "msg": "..."}`` worded as
the library words them. Nothing a client sends produces a 500, and no response carries a
stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from optimizer import InputError
from optimizer.data import scenario_problems

log = logging.getLogger("api")
PROBLEM = "application/problem+json"

TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 410: "Gone",
          413: "Request body too large",
          415: "Unsupported media type", 422: "Invalid input", 429: "Too many requests",
          500: "Internal error", 503: "Service busy", 504: "Solve deadline exceeded"}


PROBLEM_SCHEMA = {
    "title": "ProblemDetails", "type": "object", "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["loc", "msg"],
            "properties": {"loc": {"type": "array", "items": {
                "anyOf": [{"type": "string"}, {"type": "integer"}]}},
                "msg": {"type": "string"}}}},
    },
}


def doc(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json error."""
    return {"description": description,
            "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, errors: list[dict] | None = None,
                 headers: dict[str, str] | None = None, type_: str = "about:blank",
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.type = type_
        self.extra = extra  # RFC 9457 extension members


def problem_response(status: int, detail: str, *, errors: list[dict] | None = None,
                     headers: dict[str, str] | None = None, type_: str = "about:blank",
                     instance: str | None = None,
                     extra: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {**(extra or {}), "type": type_, "title": TITLES.get(status, "Error"),
                            "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def from_input_error(exc: InputError, prefix: tuple = ("body",)) -> Problem:
    errors = [{"loc": [*prefix, *p.loc], "msg": p.msg} for p in exc.problems]
    return Problem(422, str(exc), errors=errors)


def invalid(errors: list[dict]) -> Problem:
    """A 422 whose detail sums up the first few field errors."""
    return Problem(422, "; ".join(e["msg"] for e in errors[:5]) or "invalid request",
                   errors=errors)


def field_errors(errors: Iterable[dict[str, Any]]) -> list[dict]:
    """Pydantic error dicts (loc starting at "body") worded like the library: scenario fields
    as the library names them, any other field as ``field 'a.b': reason``."""
    out = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if loc[:2] in (["body", "scenario"], ["body", "base"]):
            p = scenario_problems([{**e, "loc": tuple(loc[2:])}], prefix=tuple(loc[:2]))[0]
            out.append({"loc": list(p.loc), "msg": p.msg})
        else:
            where = ".".join(str(x) for x in loc[1:] if x != "[key]") or "body"
            msg = e.get("msg", "invalid").removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":
                msg = "unknown field"
            if loc == ["body"] and e.get("type") == "value_error":  # about the whole body
                out.append({"loc": loc, "msg": msg})
                continue
            out.append({"loc": loc, "msg": f"field {where!r}: {msg}"})
    return out


def json_error_msg(reason: str, doc: str, pos: int) -> str:
    """``json.JSONDecodeError`` parts in words: what is wrong and at which line and column."""
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return f"the request body is not valid JSON: {reason} at line {line}, column {column}"


def body_json_problem(exc: json.JSONDecodeError) -> Problem:
    msg = json_error_msg(exc.msg, exc.doc, exc.pos)
    return Problem(422, msg, errors=[{"loc": ["body"], "msg": msg}])


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers,
                                type_=exc.type, instance=request.url.path, extra=exc.extra)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SATimeoutError)
    async def _database(request: Request, exc: Exception):  # outside AsyncStore (streams)
        log.warning("database unavailable on %s: %s", request.url.path, exc)
        retry = request.app.state.settings.retry_after_s
        return problem_response(503, "the database is unavailable; retry in "
                                f"{retry} s", headers={"Retry-After": str(retry)},
                                instance=request.url.path)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError):
        p = from_input_error(exc)
        return problem_response(422, p.detail, errors=p.errors, instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        bad_json = [e for e in exc.errors() if e.get("type") == "json_invalid"]
        if bad_json and isinstance(exc.body, str):  # FastAPI: loc ("body", char offset)
            e = bad_json[0]
            p = body_json_problem(json.JSONDecodeError(
                e.get("ctx", {}).get("error", "malformed"), exc.body, int(e["loc"][-1])))
        else:
            p = invalid(field_errors(exc.errors()))
        return problem_response(422, p.detail, errors=p.errors, instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, str(exc.detail), instance=request.url.path,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "internal error; it has been logged",
                                instance=request.url.path)
