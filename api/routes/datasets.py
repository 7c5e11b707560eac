"""Stored project tables: upload (JSON, CSV, multipart), list, read, delete."""

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
from ..access import READ, Writer
from ..bodies import JSONRoute, parse_json
from ..db import DatasetInUse
from ..deps import DbDep, SettingsDep, require_owner
from ..problems import Problem, field_errors, from_input_error, invalid
from ..schemas import (
    DATASET_ID,
    DatasetDetail,
    DatasetInfo,
    DatasetJSON,
    DatasetPage,
    Deleted,
    Text,
)
from ..service import check_storage, store_rows

router = APIRouter(tags=["datasets"], route_class=JSONRoute)
DatasetId = Annotated[str, Path(pattern=DATASET_ID)]
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
             openapi_extra=UPLOAD_BODY,
             responses={200: {"description": "identical content was already stored",
                              "model": DatasetInfo},
                        401: problems.doc("API key missing or wrong"),
                        403: problems.doc("the key's role may not, or its storage budget is "
                                          "spent"),
                        413: problems.doc("body too large"),
                        415: problems.doc("not JSON, CSV or a multipart upload"),
                        422: problems.doc("invalid rows; `errors` names row and column")},
             summary="Store a validated projects table; its id is its content hash")
async def create_dataset(who: Writer, request: Request, response: Response, db: DbDep,
                         settings: SettingsDep, name: Annotated[Text | None, Query(
                             max_length=200, description="the dataset's name, for a CSV body "
                             "(JSON and multipart bodies carry their own)")] = None,
                         ) -> DatasetInfo:
    """Send JSON `{"name", "projects": [rows]}`, a CSV body (`text/csv`) or a multipart upload
    (`file`, optional `name`). Rows are validated exactly as the library does; the id is the
    SHA-256 of the validated content, so posting identical content again returns the same id
    (200 instead of 201)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query_name, name = name, ""
    await check_storage(db, settings, who)
    if ctype == "application/json":
        try:
            payload = parse_json(await request.body())
            body = DatasetJSON.model_validate(payload)
        except json.JSONDecodeError as exc:
            raise problems.body_json_problem(exc) from None
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
    row, created = await store_rows(db, rows, name, who)
    response.status_code = 201 if created else 200
    return DatasetInfo(dataset_id=row.id, name=row.name, n_projects=row.n_projects,
                       created_at=row.created_at, created=created, created_by=row.created_by)


@router.get("/datasets", response_model=DatasetPage, dependencies=[READ],
            summary="Stored datasets, newest first")
async def list_datasets(db: DbDep,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50,
                        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> DatasetPage:
    rows, total = await db.list_datasets(limit, offset)
    items = [DatasetInfo(dataset_id=r["id"], name=r["name"], n_projects=r["n_projects"],
                         created_at=r["created_at"], created_by=r["created_by"]) for r in rows]
    return DatasetPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, dependencies=[READ],
            responses={404: problems.doc("no such dataset")}, summary="One dataset's rows")
async def get_dataset(db: DbDep, dataset_id: DatasetId) -> DatasetDetail:
    row = await db.get_dataset(dataset_id)
    if row is None:
        raise Problem(404, f"no dataset {dataset_id}")
    return DatasetDetail(dataset_id=row.id, name=row.name, n_projects=row.n_projects,
                         created_at=row.created_at, projects=row.records,
                         created_by=row.created_by)


@router.delete("/datasets/{dataset_id}", response_model=Deleted,
               responses={403: problems.doc("another key's dataset, or a cascade that would "
                                            "delete another key's runs or batches"),
                          404: problems.doc("no such dataset"),
                          409: problems.doc("stored runs or batches use it (cascade=true "
                                            "deletes them too), or it is the shipped default")},
               summary="Delete a dataset (refused while runs or batches use it, unless "
                       "cascade=true)")
async def delete_dataset(who: Writer, request: Request, db: DbDep, dataset_id: DatasetId,
                         cascade: Annotated[bool, Query(description="also delete the runs and "
                                                        "batches that use it")] = False
                         ) -> Deleted:
    """Analysts delete their own datasets (and, with `cascade=true`, runs and batches on it
    that their key made); admins any."""
    exists, owner = await db.dataset_owner(dataset_id)
    if not exists:
        raise Problem(404, f"no dataset {dataset_id}")
    if dataset_id == request.app.state.default_dataset.id:
        raise Problem(409, "this is the shipped default dataset, which the server solves on "
                      "when a request names no data; it cannot be deleted while it serves")
    require_owner(who, owner, f"dataset {dataset_id[:12]}")
    users = await db.dataset_users(dataset_id)
    if (users["runs"] or users["batches"]) and not cascade:
        raise Problem(409, f"dataset {dataset_id[:12]} is used by {len(users['runs'])} stored "
                      f"runs and {len(users['batches'])} batches; delete them first or send "
                      "cascade=true to delete them with it")
    for kind in ("runs", "batches"):
        for ident, by in users[kind]:
            require_owner(who, by, f"{kind[:-1]} {ident} (on this dataset)")
    for ident, _ in users["batches"]:
        await db.cancel_batch(ident)
        request.app.state.batches.cancel(ident)
    try:
        counts = await db.delete_dataset(dataset_id, who.name, cascade)
    except DatasetInUse as exc:  # a run was stored on it meanwhile
        raise Problem(409, f"dataset {dataset_id[:12]} is now {exc}; try again") from None
    if counts is None:
        raise Problem(404, f"no dataset {dataset_id}")
    return Deleted(deleted="dataset", id=dataset_id, **counts)
