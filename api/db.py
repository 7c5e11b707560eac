"""Storage of datasets and runs with SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL when
``DATABASE_URL`` points at one.

Schema versioning: a ``schema_version`` table and an ordered list of migrations applied at
start-up inside one transaction. Two tables do not yet justify Alembic's machinery; the list
is where the first Alembic revision would take over (same idea, same place).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    String,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class DatasetRow(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # content SHA-256
    name: Mapped[str] = mapped_column(String(200), default="")
    n_projects: Mapped[int] = mapped_column(Integer)
    records: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunRow(Base):
    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    scenario_name: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64), index=True)
    scenario: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _v1(conn) -> None:
    Base.metadata.create_all(conn, tables=[DatasetRow.__table__, RunRow.__table__])


MIGRATIONS = [(1, _v1)]


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    return engine


def migrate(engine: Engine, attempts: int = 5) -> int:
    """Bring the schema to the newest version; safe to run from several processes at once.

    PostgreSQL serialises migrators on an advisory lock. SQLite has no such lock, so a
    migrator that loses a race (table already created, version already recorded) simply
    retries: the next pass sees the winner's work and does nothing."""
    for attempt in range(attempts):
        try:
            return _migrate_once(engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate_once(engine: Engine) -> int:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        SchemaVersion.__table__.create(conn, checkfirst=True)
        done = set(conn.execute(select(SchemaVersion.version)).scalars())
        for version, step in MIGRATIONS:
            if version not in done:
                step(conn)
                conn.execute(SchemaVersion.__table__.insert().values(
                    version=version, applied_at=datetime.now(UTC)))
        return max(v for v, _ in MIGRATIONS)


class Store:
    """The service's storage operations (sync; routes call them from a thread pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # datasets ---------------------------------------------------------------------------
    def put_dataset(self, sha: str, records: list[dict], name: str = "") -> tuple[DatasetRow, bool]:
        """Store a validated dataset under its content hash; (row, created)."""
        with self.session() as s:
            row = s.get(DatasetRow, sha)
            if row is not None:
                return row, False
            row = DatasetRow(id=sha, name=name, n_projects=len(records), records=records,
                             created_at=datetime.now(UTC))
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # stored concurrently by another request: same content
                s.rollback()
                return s.get(DatasetRow, sha), False
            return row, True

    def get_dataset(self, sha: str) -> DatasetRow | None:
        with self.session() as s:
            return s.get(DatasetRow, sha)

    def list_datasets(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(DatasetRow))
            rows = s.execute(
                select(DatasetRow.id, DatasetRow.name, DatasetRow.n_projects,
                       DatasetRow.created_at)
                .order_by(DatasetRow.created_at.desc(), DatasetRow.id)
                .limit(limit).offset(offset)).all()
            return [r._asdict() for r in rows], int(total or 0)

    # runs -------------------------------------------------------------------------------
    def add_run(self, *, dataset_id: str, scenario: dict, result: dict,
                idempotency_key: str | None, request_sha256: str | None) -> RunRow:
        row = RunRow(run_id=uuid.uuid4().hex, created_at=datetime.now(UTC),
                     scenario_name=str(scenario.get("name", ""))[:200],
                     status=result["status"], dataset_id=dataset_id, scenario=scenario,
                     result=result, idempotency_key=idempotency_key,
                     request_sha256=request_sha256)
        with self.session() as s:
            s.add(row)
            s.commit()
        return row

    def get_run(self, run_id: str) -> RunRow | None:
        with self.session() as s:
            return s.get(RunRow, run_id)

    def run_by_key(self, key: str) -> RunRow | None:
        with self.session() as s:
            return s.scalars(select(RunRow).where(RunRow.idempotency_key == key)).first()

    def list_runs(self, *, limit: int, offset: int, scenario_name: str | None,
                  status: str | None) -> tuple[list[RunRow], int]:
        q = select(RunRow)
        if scenario_name is not None:
            q = q.where(RunRow.scenario_name == scenario_name)
        if status is not None:
            q = q.where(RunRow.status == status)
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(RunRow.created_at.desc(), RunRow.run_id.desc())
                             .limit(limit).offset(offset)).all()
            return list(rows), int(total or 0)
