from __future__ import annotations

import io
import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from optimizer import InputError
from optimizer.data import read_projects_csv

from .. import problems
from ..deps import StoreDep, WriteAccess
from ..problems import Problem, field_errors, from_input_error, invalid
from ..schemas import (
    DATASET_ID,
    DatasetDetail,
    DatasetInfo,
    DatasetJSON,
    DatasetPage,
    Text,
)
from ..service import store_rows

router = APIRouter(tags=["datasets"])
NameField = TypeAdapter(Annotated[Text, Field(max_length=200)])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DatasetJSON.model_json_schema()},
    "text/csv": {"schema": {"type": "string"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "name": {"type": "string", "maxLength": 200}}}},
}}}


def _form_name(value) -> str:
    """The multipart ``name`` part, checked like the JSON body's ``name``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid([{"loc": ["body", "name"], "msg": "field 'name': must be text"}])
    try:
        return NameField.validate_python(value)
    except ValidationError as exc:
        raise invalid(field_errors({**e, "loc": ("body", "name")}
                                   for e in exc.errors())) from None


def _csv_rows(raw: bytes) -> list[dict]:
    try:
        frame = read_projects_csv(io.BytesIO(raw))
    except InputError as exc:
        raise from_input_error(exc) from None
    return frame.to_dict(orient="records")


@router.post("/datasets", response_model=DatasetInfo, status_code=201,
             dependencies=[WriteAccess], openapi_extra=UPLOAD_BODY,
             responses={200: {"description": "identical content was already stored",
                              "model": DatasetInfo},
                        401: problems.doc("API key missing or wrong"),
                        413: problems.doc("body too large"),
                        415: problems.doc("not JSON, CSV or a multipart upload"),
                        422: problems.doc("invalid rows; `errors` names row and column")},
             summary="Store a validated projects table; its id is its content hash")
async def create_dataset(request: Request, response: Response, store: StoreDep,
                         name: Annotated[Text | None, Query(
                             max_length=200, description="the dataset's name, for a CSV body "
                             "(JSON and multipart bodies carry their own)")] = None,
                         ) -> DatasetInfo:
    """Send JSON `{"name", "projects": [rows]}`, a CSV body (`text/csv`) or a multipart upload
    (`file`, optional `name`). Rows are validated exactly as the library does; the id is the
    SHA-256 of the validated content, so posting identical content again returns the same id
    (200 instead of 201)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query_name, name = name, ""
    if ctype == "application/json":
        try:
            payload = json.loads(await request.body())
            body = DatasetJSON.model_validate(payload)
        except json.JSONDecodeError as exc:
            raise problems.body_json_problem(exc) from None
        except UnicodeDecodeError as exc:
            raise Problem(422, f"the request body is not UTF-8 text: byte {exc.start} "
                          f"cannot be decoded", errors=[{"loc": ["body"], "msg": "not UTF-8"}]
                          ) from None
        except ValidationError as exc:
            raise invalid(field_errors({**e, "loc": ("body", *e["loc"])}
                                       for e in exc.errors())) from None
        rows, name = body.projects, body.name
    elif ctype in ("text/csv", "application/csv"):
        rows = await run_in_threadpool(_csv_rows, await request.body())
        name = query_name or ""
    elif ctype == "multipart/form-data":
        async with request.form() as form:  # closes the spooled upload file
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise Problem(422, "multipart upload needs a 'file' part",
                              errors=[{"loc": ["body", "file"], "msg": "field 'file': missing"}])
            raw = await upload.read()
            name = _form_name(form.get("name"))
        rows = await run_in_threadpool(_csv_rows, raw)
    else:
        raise Problem(415, "send application/json, text/csv or multipart/form-data")
    row, created = await store_rows(store, rows, name)
    response.status_code = 201 if created else 200
    return DatasetInfo(dataset_id=row.id, name=row.name, n_projects=row.n_projects,
                       created_at=row.created_at, created=created)


@router.get("/datasets", response_model=DatasetPage, summary="Stored datasets, newest first")
async def list_datasets(store: StoreDep,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50,
                        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> DatasetPage:
    rows, total = await run_in_threadpool(store.list_datasets, limit, offset)
    items = [DatasetInfo(dataset_id=r["id"], name=r["name"], n_projects=r["n_projects"],
                         created_at=r["created_at"]) for r in rows]
    return DatasetPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail,
            responses={404: problems.doc("no such dataset")}, summary="One dataset's rows")
async def get_dataset(store: StoreDep,
                      dataset_id: Annotated[str, Path(pattern=DATASET_ID)]) -> DatasetDetail:
    row = await run_in_threadpool(store.get_dataset, dataset_id)
    if row is None:
        raise Problem(404, f"no dataset {dataset_id}")
    return DatasetDetail(dataset_id=row.id, name=row.name, n_projects=row.n_projects,
                         created_at=row.created_at, projects=row.records)
