"""JSON request bodies parsed so that every failure names where it is.

``json.loads`` gives a position for syntax errors only: a body nested deeper than Python's
recursion limit raised RecursionError (a 500 on POST /datasets, a bare "There was an error
parsing the body" elsewhere), and bytes that are not UTF-8 had no position either. Here both
become :class:`json.JSONDecodeError` with a position, which FastAPI turns into its
``json_invalid`` validation error and :mod:`api.problems` words with line and column.
Routes get this through :class:`JSONRoute` (each router's ``route_class``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pydantic_core
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_WHERE = re.compile(r"at line (\d+) column (\d+)")


def _offset(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based line and column (jiter's columns count from 1)."""
    start = 0
    for _ in range(line - 1):
        nl = text.find("\n", start)
        if nl < 0:
            break
        start = nl + 1
    return min(len(text), start + max(column - 1, 0))


def parse_json(raw: bytes) -> Any:
    """The body's JSON value; :class:`json.JSONDecodeError` (with a position) otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = raw.decode("utf-8", errors="replace")
        pos = len(raw[:exc.start].decode("utf-8", errors="replace"))
        raise json.JSONDecodeError(f"byte 0x{raw[exc.start]:02x} is not UTF-8", shown,
                                   pos) from None
    try:
        return json.loads(text)
    except RecursionError:
        # pydantic-core's parser (jiter) stops at depth 200 and says where, without
        # recursing in Python; the place it names is inside the over-deep nesting
        try:
            pydantic_core.from_json(text)
        except ValueError as exc:
            m = _WHERE.search(str(exc))
            pos = _offset(text, int(m[1]), int(m[2])) if m else 0
        else:  # cannot happen: jiter's limit is far below Python's
            pos = 0
        raise json.JSONDecodeError("nested too deeply (arrays or objects more than 200 "
                                   "levels deep)", text, pos) from None


class JSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """An APIRoute whose requests parse JSON with :func:`parse_json`."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return route
