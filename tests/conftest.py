"""Shared fixtures: a hand-worked three-project table, the shipped data, scenario builders,
and the PostgreSQL server the storage and end-to-end tests use."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from optimizer import Optimizer, Scenario
from optimizer.data import ProjectData, validate_projects

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ROOT / "inputs"

# Three projects worked by hand in tests/test_handworked.py.
#   A: 100 MUSD for 100 %, stake 0.5..1, no deal cost, NPV 40  -> value 40 s, cost 100 s
#   B: 50 MUSD, stake exactly 1, deal cost 10, NPV 30          -> value 20,   cost 60
#   C: 200 MUSD, stake 0.1..0.3, deal cost 5, NPV 100          -> value 100 t - 5, cost 200 t + 5
TINY_ROWS = [
    dict(project_id="A", name="Alpha", country="MW", mineral="ree", partner="KABIL",
         india_share=1.0, equity_value_musd=100, min_stake=0.5, max_stake=1.0, deal_cost_musd=0,
         npv_musd=40, output_tantalum_t=0, output_niobium_t=0, output_ree_t=1000, risk_score=8,
         china_processing=False, spend_share_1=1.0, spend_share_2=0.0),
    dict(project_id="B", name="Bravo", country="BR", mineral="tantalum", partner="US",
         india_share=0.0, equity_value_musd=50, min_stake=1.0, max_stake=1.0, deal_cost_musd=10,
         npv_musd=30, output_tantalum_t=100, output_niobium_t=0, output_ree_t=0, risk_score=2,
         china_processing=False, spend_share_1=0.5, spend_share_2=0.5),
    dict(project_id="C", name="Charlie", country="TZ", mineral="ree", partner="JOINT",
         india_share=0.5, equity_value_musd=200, min_stake=0.1, max_stake=0.3, deal_cost_musd=5,
         npv_musd=100, output_tantalum_t=0, output_niobium_t=0, output_ree_t=3000, risk_score=5,
         china_processing=True, spend_share_1=0.0, spend_share_2=1.0),
]


# The same three projects with magnet rare earths and Chinese ownership (worked by hand in
# tests/test_new_fields.py and tests/test_limits.py): NdPr, Dy+Tb t/y and the Chinese share.
MAGNETS = {"A": (200.0, 20.0, 0.0), "B": (0.0, 0.0, 0.0), "C": (600.0, 10.0, 0.6)}


def magnet_rows() -> pd.DataFrame:
    df = pd.DataFrame(TINY_ROWS)
    df["output_ndpr_t"] = df["project_id"].map(lambda p: MAGNETS[p][0])
    df["output_dytb_t"] = df["project_id"].map(lambda p: MAGNETS[p][1])
    df["chinese_ownership"] = df["project_id"].map(lambda p: MAGNETS[p][2])
    return df


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    return pd.DataFrame(TINY_ROWS)


@pytest.fixture
def tiny(tiny_frame: pd.DataFrame) -> ProjectData:
    return validate_projects(tiny_frame)


@pytest.fixture(scope="module")
def tiny_opt() -> Optimizer:
    """One persistent model for many scenarios (each test sets every field it relies on)."""
    return Optimizer(validate_projects(pd.DataFrame(TINY_ROWS)))


def scenario(**fields) -> Scenario:
    """A scenario with exact solver settings (gap 1e-9) unless the test says otherwise."""
    fields.setdefault("solver", {"mip_gap": 1e-9, "time_limit_s": 30})
    return Scenario.model_validate(fields)


@pytest.fixture(scope="session")
def shipped() -> ProjectData:
    from optimizer import load_projects

    return load_projects(INPUTS / "projects.csv")


class ListSink:
    """A batch sink in memory (``optimizer.batch.engine.Sink``): rows in arrival order."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.done: set[int] = set()

    def write(self, rows):
        self.rows.extend(rows)

    def stored_rows(self):
        return iter(list(self.rows))


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m optimizer ARGS`` as a real subprocess from the repository root."""
    return subprocess.run([sys.executable, "-m", "optimizer", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# PostgreSQL for the storage and end-to-end tests
# ---------------------------------------------------------------------------------------------

LOCAL_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ["sqlite", "postgres"]


def _admin_conninfo(url: str) -> str:
    """psycopg conninfo for a SQLAlchemy URL (same server, user and database)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """SQLAlchemy URL of a PostgreSQL server the tests may create databases on.

    ``TEST_DATABASE_URL`` when set (unreachable is then a failure); otherwise the local
    server at ``LOCAL_PG_URL`` when it answers; otherwise the PostgreSQL cases are skipped
    with a reason saying what was tried and how to point the tests at a server."""
    import psycopg

    url = os.environ.get("TEST_DATABASE_URL")
    try:
        with psycopg.connect(_admin_conninfo(url or LOCAL_PG_URL), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if url:
            pytest.fail(f"TEST_DATABASE_URL={url} is set but PostgreSQL is unusable: {exc}")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"PostgreSQL tests skipped: TEST_DATABASE_URL is unset and no server "
                    f"answered at {LOCAL_PG_URL} ({first}); start one there or set "
                    f"TEST_DATABASE_URL=postgresql+psycopg://USER[:PASSWORD]@HOST:PORT/DB")
    return url or LOCAL_PG_URL


@contextlib.contextmanager
def fresh_pg_database(server_url: str, prefix: str = "optimizer_test") -> Iterator[str]:
    """A new, empty database on ``server_url``'s server (dropped WITH (FORCE) afterwards);
    yields its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = _admin_conninfo(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
