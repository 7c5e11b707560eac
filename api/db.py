"""Storage of datasets and runs with SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL when
``DATABASE_URL`` points at one.

Schema versioning: a ``schema_version`` table and an ordered list of migrations applied at
start-up inside one transaction. Two tables do not yet justify Alembic's machinery; the list
is where the first Alembic revision would take over (same idea, same place).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Integer,
    String,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
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


class BatchRow(Base):
    """A batch (CONTRACT section 6): its spec and dataset, progress counters, and who runs it.
    ``owner`` + ``heartbeat_at``: the server process running it and when it last said so; a
    running batch whose heartbeat is stale (its server was killed) is taken over."""

    __tablename__ = "batches"
    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class BatchResultRow(Base):
    """One finished row of a batch; (batch_id, idx) is unique, so a row is stored once."""

    __tablename__ = "batch_rows"
    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    row: Mapped[dict] = mapped_column(JSON)


class RunAnalysisRow(Base):
    """A run's report analysis (sensitivity re-solves and alternatives), computed once when
    its report is first asked for and kept: reports render from it without solving."""

    __tablename__ = "run_analyses"
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    analysis: Mapped[dict] = mapped_column(JSON)


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _v1(conn) -> None:
    Base.metadata.create_all(conn, tables=[DatasetRow.__table__, RunRow.__table__])


def _v2(conn) -> None:
    Base.metadata.create_all(conn, tables=[BatchRow.__table__, BatchResultRow.__table__])


def _v3(conn) -> None:
    Base.metadata.create_all(conn, tables=[RunAnalysisRow.__table__])


MIGRATIONS = [(1, _v1), (2, _v2), (3, _v3)]


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

    def get_analysis(self, run_id: str) -> dict | None:
        with self.session() as s:
            row = s.get(RunAnalysisRow, run_id)
            return None if row is None else row.analysis

    def put_analysis(self, run_id: str, analysis: dict) -> None:
        """Keep a run's analysis; a second one for the same run (computed concurrently) is
        dropped: the first stays."""
        with self.session() as s:
            s.add(RunAnalysisRow(run_id=run_id, created_at=datetime.now(UTC),
                                 analysis=analysis))
            try:
                s.commit()
            except IntegrityError:
                s.rollback()

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

    # batches ----------------------------------------------------------------------------
    def add_batch(self, *, spec: dict, dataset_id: str, name: str, kind: str,
                  total: int) -> BatchRow:
        row = BatchRow(batch_id=uuid.uuid4().hex, created_at=datetime.now(UTC), name=name,
                       kind=kind, status="queued", dataset_id=dataset_id, spec=spec,
                       total=total, done=0, failed=0)
        with self.session() as s:
            s.add(row)
            s.commit()
        return row

    def get_batch(self, batch_id: str) -> BatchRow | None:
        with self.session() as s:
            return s.get(BatchRow, batch_id)

    def list_batches(self, limit: int, offset: int) -> tuple[list[BatchRow], int]:
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(BatchRow))
            rows = s.scalars(select(BatchRow).order_by(BatchRow.created_at.desc(),
                                                       BatchRow.batch_id.desc())
                             .limit(limit).offset(offset)).all()
            return list(rows), int(total or 0)

    def claim_batch(self, owner: str, stale_after_s: float) -> BatchRow | None:
        """Take the oldest queued batch, or a running one whose server stopped beating
        (killed); atomic, so two servers never run one batch."""
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=stale_after_s)
        claimable = or_(BatchRow.status == "queued",
                        (BatchRow.status == "running") & (BatchRow.heartbeat_at < cutoff))
        with self.session() as s:
            for cand in s.scalars(select(BatchRow.batch_id).where(claimable)
                                  .order_by(BatchRow.created_at).limit(5)).all():
                res = s.execute(update(BatchRow).where(BatchRow.batch_id == cand, claimable)
                                .values(status="running", owner=owner, heartbeat_at=now,
                                        started_at=func.coalesce(BatchRow.started_at, now)))
                s.commit()
                if res.rowcount == 1:
                    return s.get(BatchRow, cand, populate_existing=True)
        return None

    def beat(self, batch_id: str, owner: str) -> str | None:
        """Record that ``owner`` still runs the batch; returns its status (a cancel made
        elsewhere shows up here)."""
        with self.session() as s:
            s.execute(update(BatchRow).where(BatchRow.batch_id == batch_id,
                                             BatchRow.owner == owner,
                                             BatchRow.status == "running")
                      .values(heartbeat_at=datetime.now(UTC)))
            s.commit()
            return s.scalar(select(BatchRow.status).where(BatchRow.batch_id == batch_id))

    def add_batch_rows(self, batch_id: str, rows: list[dict]) -> None:
        """Store finished rows (a row already stored is left alone) and the counters."""
        values = [{"batch_id": batch_id, "idx": int(r["index"]), "status": r["status"],
                   "objective": r.get("objective"), "row": r} for r in rows]
        table = BatchResultRow.__table__
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt = pg_insert(table).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            if values:
                conn.execute(stmt, values)
            done, failed = conn.execute(
                select(func.count(), func.count().filter(table.c.status == "failed"))
                .where(table.c.batch_id == batch_id)).one()
            conn.execute(update(BatchRow).where(BatchRow.batch_id == batch_id)
                         .values(done=done, failed=failed))

    def batch_indices(self, batch_id: str) -> set[int]:
        t = BatchResultRow.__table__
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.c.idx).where(t.c.batch_id == batch_id)).scalars())

    def batch_rows(self, batch_id: str, offset: int = 0, limit: int | None = None,
                   page: int = 500):
        """Stored rows in index order, fetched a page at a time (memory stays flat)."""
        t = BatchResultRow.__table__
        start, left = offset, limit
        while left is None or left > 0:
            n = page if left is None else min(page, left)
            with self.engine.connect() as conn:
                got = conn.execute(select(t.c.row).where(t.c.batch_id == batch_id)
                                   .order_by(t.c.idx).offset(start).limit(n)).scalars().all()
            yield from got
            if len(got) < n:
                return
            start += len(got)
            if left is not None:
                left -= len(got)

    def finish_batch(self, batch_id: str, owner: str, status: str, summary: dict | None,
                     error: str | None = None) -> None:
        with self.session() as s:
            s.execute(update(BatchRow).where(BatchRow.batch_id == batch_id,
                                             BatchRow.owner == owner,
                                             BatchRow.status == "running")
                      .values(status=status, summary=summary, error=error,
                              finished_at=datetime.now(UTC)))
            s.commit()

    def cancel_batch(self, batch_id: str) -> BatchRow | None:
        """Mark a queued or running batch cancelled (its runner stops within a heartbeat);
        finished rows stay."""
        with self.session() as s:
            s.execute(update(BatchRow).where(BatchRow.batch_id == batch_id,
                                             BatchRow.status.in_(("queued", "running")))
                      .values(status="cancelled", finished_at=datetime.now(UTC)))
            s.commit()
            return s.get(BatchRow, batch_id, populate_existing=True)
