"""Fuzzing the HTTP service: Schemathesis against the app's own OpenAPI schema, and
non-finite / huge numbers in every numeric scenario field and project column.

One app for the module, driven through Schemathesis' in-process ASGI client (its lifespan
starts on first use and is shut down at the end of the module), so the solver worker and the
database are real. Time limits are capped at 1 s and examples are bounded to keep the file
well under half a minute.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from api.config import Settings
from api.main import create_app
from tests.conftest import TINY_ROWS


class PersistentLifespan:
    """ASGI wrapper that runs the app's lifespan once and keeps it running.

    Schemathesis' pytest plugin ends every ASGI lifespan at each test's teardown, and its
    client starts one again on the next request: with a lifespan that spawns a solver
    process that costs ~0.6 s a test. This wrapper answers those per-test lifespans itself,
    starting the real one on the first and stopping it only once ``close_requested`` is set.
    Everything runs on Schemathesis' one event-loop thread, as the worker pool requires."""

    def __init__(self, app) -> None:
        self.app = app
        self.close_requested = False
        self._task: asyncio.Task | None = None
        self._inbox: asyncio.Queue | None = None
        self._outbox: asyncio.Queue | None = None

    async def _start(self) -> None:
        self._inbox, self._outbox = asyncio.Queue(), asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": {}}
        self._task = asyncio.get_running_loop().create_task(
            self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            self._task = None
            raise RuntimeError(reply.get("message") or "the app failed to start")

    async def _stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        await self._task
        self._task = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        await receive()  # lifespan.startup
        if self._task is None:
            try:
                await self._start()
            except Exception as exc:  # noqa: BLE001 - reported through the ASGI protocol
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        if self.close_requested and self._task is not None:
            await self._stop()
        await send({"type": "lifespan.shutdown.complete"})


# Built at import (no I/O: nothing starts before the first request), so Schemathesis can
# parametrize over the schema. (The lazy `schemathesis.pytest.from_fixture` loader of the
# installed schemathesis 4.32 fails under pytest 9: `Function._nodeid` no longer exists.)
_TMP = tempfile.mkdtemp(prefix="api-fuzz-")
# With an admin key: every route (deletes included) is fuzzed past its access check.
AUTH = {"X-API-Key": "fuzz-admin-secret-0123456789"}
APP = PersistentLifespan(create_app(Settings(
    database_url=f"sqlite:///{_TMP}/fuzz.db", workers=1, max_queue=4, max_time_limit_s=1.0,
    deadline_grace_s=10, max_body_bytes=2_000_000,
    api_keys=f"fuzz:admin:{AUTH['X-API-Key']}")))
schema = schemathesis.openapi.from_dict(APP.app.openapi())
schema.app = APP

# A multipart upload leaks its temporary file (reported by
# tests/test_api.py::test_multipart_upload_closes_its_file); when Schemathesis generates one,
# the ResourceWarning must not be blamed on whichever test happens to be running at the time.
LEAK_OK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(scope="module")
def client():
    """Schemathesis' in-process client (a requests.Session) on the module's app."""
    with asgi.get_client(APP) as c:  # starts the app's lifespan (worker, database)
        c.headers.update(AUTH)
        yield c
    with asgi.get_client(APP):  # a lifespan is registered again, so
        APP.close_requested = True
    asgi.shutdown_lifespans()  # ... this stops the real one: workers, database
    shutil.rmtree(_TMP, ignore_errors=True)


def content_type(response) -> str:
    value = response.headers.get("content-type") or ""
    return (value[0] if isinstance(value, list) else value).split(";")[0].strip()


def assert_no_crash(response) -> None:
    text = response.text
    assert response.status_code < 500 or response.status_code == 503, \
        f"{response.status_code} from {response.request.method} {response.request.url}: " \
        f"{text[:1500]}"
    assert "Traceback" not in text and 'File "' not in text, text[:1500]


# ---------------------------------------------------------------------------------------------
# Schemathesis
# ---------------------------------------------------------------------------------------------


@LEAK_OK
@schema.parametrize()
@FAST
def test_schemathesis_no_server_errors(client, case):
    """Whatever Schemathesis generates (valid and invalid requests): never a 5xx, never a
    stack trace, and every error is problem+json."""
    response = case.call(headers=AUTH)
    assert_no_crash(response)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        assert content_type(response) == "application/problem+json", \
            (response.status_code, content_type(response), response.text[:300])
        body = response.json()
        assert body["status"] == response.status_code and body["title"] and body["detail"]


@LEAK_OK
@schema.parametrize()
@settings(FAST, max_examples=15)
def test_schemathesis_responses_match_the_schema(client, case):
    """Every response is documented: its status code, content type, headers and body.

    Known failures (bugs, see the report): 422 answers are application/problem+json while the
    schema documents FastAPI's application/json HTTPValidationError for them; stored
    ``created_at`` values have no UTC offset, so they are not RFC 3339 date-times."""
    response = case.call(headers=AUTH)
    assert_no_crash(response)
    case.validate_response(response, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_headers_conformance, response_schema_conformance])


# ---------------------------------------------------------------------------------------------
# non-finite and huge numbers
# ---------------------------------------------------------------------------------------------

INF = math.inf


class Field:
    """A numeric input and the values the contract allows for it (CONTRACT sections 1, 2)."""

    def __init__(self, path: tuple, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, integer: bool = False, scenario: dict | None = None):
        self.path, self.lo, self.hi = path, lo, hi
        self.lo_open, self.integer = lo_open, integer
        self.scenario = scenario or {}

    def valid(self, value: float | int) -> bool:
        """Allowed by the contract (finite and in range)."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and value > self.hi)

    def __repr__(self) -> str:
        return ".".join(map(str, self.path))


# Scenario fields. Where the contract gives no upper bound, a huge finite value is valid: the
# service may solve it (200) or refuse it with a 422 naming the field; nothing else.
SCENARIO_FIELDS = [
    Field(("budget_musd",), 0, lo_open=True),
    Field(("kabil_budget_musd",), 0, lo_open=True),
    Field(("us_budget_musd",), 0, lo_open=True),
    Field(("annual_budget_musd", 0), 0),
    Field(("annual_budget_musd", 1), 0),
    Field(("max_country_share",), 0, 1, lo_open=True),
    Field(("min_countries",), 0, integer=True),
    Field(("max_projects",), 0, integer=True),
    Field(("min_output_t", "tantalum"), 0),
    Field(("min_output_t", "ree"), 0),
    Field(("max_avg_risk",), 1, 10),
    Field(("max_china_processing_share",), 0, 1),
    Field(("supply_weights", "niobium"), 0),
    Field(("supply_weights", "ree"), 0, scenario={"objective": "supply"}),
    Field(("solver", "time_limit_s"), 0, lo_open=True),
    Field(("solver", "mip_gap"), 0),
]

# Project columns (CONTRACT section 1; first_production_year is descriptive, no range given).
PROJECT_COLUMNS = [
    Field(("india_share",), 0, 1),
    Field(("equity_value_musd",), 0, lo_open=True),
    Field(("min_stake",), 0, 1, lo_open=True),
    Field(("max_stake",), 0, 1, lo_open=True),
    Field(("deal_cost_musd",), 0),
    Field(("npv_musd",)),
    Field(("output_tantalum_t",), 0),
    Field(("output_niobium_t",), 0),
    Field(("output_ree_t",), 0),
    Field(("risk_score",), 1, 10),
    Field(("first_production_year",), integer=True),
    Field(("spend_share_1",), 0, 1),
    Field(("spend_share_2",), 0, 1),
]

# (JSON literal, the value Python's json module reads from it)
LITERALS = [
    ("NaN", math.nan), ("Infinity", INF), ("-Infinity", -INF),
    ("1e308", 1e308), ("-1e308", -1e308), ("1e400", INF), ("-1e400", -INF),
    (str(10 ** 40), 10 ** 40), (str(-10 ** 40), -10 ** 40),
]

PLACEHOLDER = '"__VALUE__"'


def _set(scenario: dict, path: tuple, value: Any) -> None:
    """Put ``value`` at ``path``: a top-level field, a plan year, or a per-mineral entry."""
    if len(path) == 1:
        scenario[path[0]] = value
    elif isinstance(path[1], int):
        years = [None] * (path[1] + 1)
        years[path[1]] = value
        scenario[path[0]] = years
    else:
        scenario.setdefault(path[0], {})[path[1]] = value


def scenario_body(field: Field, literal: str) -> str:
    scenario: dict[str, Any] = {"name": "fuzz", "budget_musd": 120,
                                "solver": {"time_limit_s": 1, "mip_gap": 0}, **field.scenario}
    _set(scenario, field.path, "__VALUE__")
    return json.dumps({"scenario": scenario, "projects": TINY_ROWS}).replace(PLACEHOLDER, literal)


def project_body(field: Field, row: int, literal: str) -> str:
    rows = [dict(r) for r in TINY_ROWS]
    rows[row][field.path[0]] = "__VALUE__"
    return json.dumps({"scenario": {"name": "fuzz", "budget_musd": 120,
                                    "solver": {"time_limit_s": 1, "mip_gap": 0}},
                       "projects": rows}).replace(PLACEHOLDER, literal)


def _strict_json(text: str) -> Any:
    def refuse(constant):
        raise AssertionError(f"response JSON contains {constant}")
    return json.loads(text, parse_constant=refuse)


def check_answer(response, loc: list, valid: bool, what: str) -> None:
    """422 naming ``loc``; or, only for a value the contract allows, a 200 result."""
    assert_no_crash(response)
    status = response.status_code
    if status == 200:
        assert valid, f"{what}: accepted a value the contract forbids: {response.text[:300]}"
        result = _strict_json(response.text)
        assert result["status"] in ("optimal", "feasible", "infeasible", "no_solution")
        return
    assert status == 422, f"{what}: {status} {response.text[:500]}"
    assert content_type(response) == "application/problem+json"
    body = _strict_json(response.text)
    assert body["status"] == 422 and body["detail"]
    errors = body.get("errors") or []
    assert any(e["loc"][:len(loc)] == loc for e in errors), \
        f"{what}: no error names {loc}: {errors}"


def _post(client, text: str):
    return client.post("/optimize", data=text.encode(),
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("literal, value", LITERALS, ids=[lit for lit, _ in LITERALS])
@pytest.mark.parametrize("field", SCENARIO_FIELDS, ids=repr)
def test_scenario_field_non_finite_and_huge(client, field, literal, value):
    response = _post(client, scenario_body(field, literal))
    check_answer(response, ["body", "scenario", *field.path], field.valid(value),
                 f"scenario.{field!r}={literal}")


@pytest.mark.parametrize("literal, value", LITERALS, ids=[lit for lit, _ in LITERALS])
@pytest.mark.parametrize("field", PROJECT_COLUMNS, ids=repr)
def test_project_column_non_finite_and_huge(client, field, literal, value):
    row = 2
    response = _post(client, project_body(field, row, literal))
    check_answer(response, ["body", "projects", row, field.path[0]], field.valid(value),
                 f"projects[{row}].{field!r}={literal}")


# Hypothesis: the same property over random huge magnitudes, signs, spellings and rows.
def _literal(x: float | int) -> str:
    return repr(x) if isinstance(x, float) else str(x)


HUGE = st.one_of(
    st.sampled_from([lit for lit, _ in LITERALS]).map(lambda s: ("raw", s)),
    st.floats(min_value=1e15, allow_infinity=False).map(lambda x: ("num", x)),
    st.floats(max_value=-1e15, allow_infinity=False).map(lambda x: ("num", x)),
    st.integers(min_value=10 ** 18, max_value=10 ** 80).map(lambda x: ("num", x)),
    st.integers(min_value=-10 ** 80, max_value=-10 ** 18).map(lambda x: ("num", x)),
    st.sampled_from(["1E+999", "-1e999", "9.99e307", "179769313486231570e291"])
    .map(lambda s: ("raw", s)),
)


def _decode(drawn) -> tuple[str, float | int]:
    """(JSON literal, the number Python's json module reads from it)."""
    kind, v = drawn
    if kind == "num":
        return _literal(v), v
    return v, json.loads(v)


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(SCENARIO_FIELDS), drawn=HUGE)
def test_scenario_fields_hypothesis(client, field, drawn):
    literal, value = _decode(drawn)
    response = _post(client, scenario_body(field, literal))
    check_answer(response, ["body", "scenario", *field.path], field.valid(value),
                 f"scenario.{field!r}={literal}")


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(PROJECT_COLUMNS), row=st.integers(0, len(TINY_ROWS) - 1),
       drawn=HUGE)
def test_project_columns_hypothesis(client, field, row, drawn):
    literal, value = _decode(drawn)
    response = _post(client, project_body(field, row, literal))
    check_answer(response, ["body", "projects", row, field.path[0]], field.valid(value),
                 f"projects[{row}].{field!r}={literal}")


def test_datasets_endpoint_rejects_non_finite_rows(client):
    """POST /datasets validates rows the same way (no 5xx, the cell is named)."""
    for literal, _ in LITERALS[:3]:
        rows = [dict(r) for r in TINY_ROWS]
        rows[1]["npv_musd"] = "__VALUE__"
        text = json.dumps({"projects": rows}).replace(PLACEHOLDER, literal)
        response = client.post("/datasets", data=text.encode(),
                               headers={"content-type": "application/json"})
        check_answer(response, ["body", "projects", 1, "npv_musd"], False, f"dataset {literal}")


# ---------------------------------------------------------------------------------------------
# a valid huge number must give the right answer (or a 422 naming it), not a wrong "optimal"
# ---------------------------------------------------------------------------------------------

# Hand-worked on TINY_ROWS with budget 120 (see tests/test_handworked.py): the optimum is
# A 0.55 + C 0.3 = 47. Without A (unaffordable / worthless): B + C 0.275 = 42.5.
# With every limit lifted: A + B + C at full stakes = 85.
HUGE_VALID_CASES = [
    # (id, where, path, value, expected: objective | "infeasible:<conflict>" | selected ids)
    ("budget=1e308", "scenario", ("budget_musd",), 1e308, 85.0),
    ("budget=1e40", "scenario", ("budget_musd",), 10 ** 40, 85.0),
    ("kabil_budget=1e308", "scenario", ("kabil_budget_musd",), 1e308, 47.0),
    ("us_budget=1e308", "scenario", ("us_budget_musd",), 1e308, 47.0),
    ("annual[0]=1e308", "scenario", ("annual_budget_musd", 0), 1e308, 47.0),
    ("max_projects=1e40", "scenario", ("max_projects",), 10 ** 40, 47.0),
    ("min_countries=1e40", "scenario", ("min_countries",), 10 ** 40, "infeasible:min_countries"),
    ("min_output_ree=1e308", "scenario", ("min_output_t", "ree"), 1e308,
     "infeasible:min_output_t.ree"),
    ("min_output_ta=1e40", "scenario", ("min_output_t", "tantalum"), 10 ** 40,
     "infeasible:min_output_t.tantalum"),
    ("supply_weight_ree=1e308 (npv objective)", "scenario", ("supply_weights", "ree"), 1e308,
     47.0),
    ("A.equity=1e308", 0, ("equity_value_musd",), 1e308, 42.5),
    ("A.equity=1e40", 0, ("equity_value_musd",), 10 ** 40, 42.5),
    ("A.equity=1e9", 0, ("equity_value_musd",), 1e9, 42.5),
    ("A.deal_cost=1e308", 0, ("deal_cost_musd",), 1e308, 42.5),
    ("A.npv=-1e308", 0, ("npv_musd",), -1e308, 42.5),
    ("A.output_ta=1e308", 0, ("output_tantalum_t",), 1e308, 47.0),
    ("A.output_ta=1e9", 0, ("output_tantalum_t",), 1e9, 47.0),
    ("C.output_ree=1e40", 2, ("output_ree_t",), 10 ** 40, 47.0),
]


@pytest.mark.parametrize("where, path, value, expected",
                         [c[1:] for c in HUGE_VALID_CASES], ids=[c[0] for c in HUGE_VALID_CASES])
def test_huge_valid_number_gives_the_right_answer_or_422(client, where, path, value, expected):
    literal = _literal(value)
    if where == "scenario":
        text = scenario_body(Field(path), literal)
        loc = ["body", "scenario", *path]
    else:
        text = project_body(Field(path), where, literal)
        loc = ["body", "projects", where, path[0]]
    response = _post(client, text)
    assert_no_crash(response)
    if response.status_code == 422:
        check_answer(response, loc, True, f"{path}={literal}")
        return
    assert response.status_code == 200, response.text[:500]
    result = _strict_json(response.text)
    if isinstance(expected, str):
        conflict = expected.split(":", 1)[1]
        assert result["status"] == "infeasible", (result["status"], result["objective"])
        assert conflict in result["diagnosis"]["conflicts"], result["diagnosis"]
    else:
        assert result["status"] == "optimal", (result["status"], result["objective"])
        assert result["objective"] == pytest.approx(expected, abs=1e-6), \
            [(s["project_id"], s["stake"]) for s in result["selected"]]
