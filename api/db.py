"""Storage of datasets and runs with SQLAlchemy 2: SQLite (WAL) by default, PostgreSQL when
``DATABASE_URL`` points at one.

Schema versioning: a ``schema_version`` table and an ordered list of migrations applied at
start-up inside one transaction. Two tables do not yet justify Alembic's machinery; the list
is where the first Alembic revision would take over (same idea, same place).
"""

from __future__ import annotations

import functools
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as SATimeoutError
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
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


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
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


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
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


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


class ApiKeyRow(Base):
    """A key kept in the database: its SHA-256 digest only, never the secret."""

    __tablename__ = "api_keys"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRow(Base):
    """Who did what: creates, deletes, cancels, shares and key changes, with the key's name."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ShareRow(Base):
    """A share link: the signed token carries this id; the row says what it opens, until
    when, and whether it was revoked."""

    __tablename__ = "shares"
    share_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # run | batch
    target: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ServerSecretRow(Base):
    """Secrets every server of one database must share (the share-link signing key)."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


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


def _v4(conn) -> None:
    """Access (CONTRACT section 9): who made each run, dataset and batch and how many bytes it
    holds, keys, the audit table, share links. Columns are added only where missing: a
    database created by this code's version-1 step already has them."""
    insp = inspect(conn)
    for table in ("runs", "datasets", "batches"):
        have = {c["name"] for c in insp.get_columns(table)}
        if "created_by" not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN created_by VARCHAR(64)"))
            conn.execute(text(f"CREATE INDEX ix_{table}_created_by ON {table} (created_by)"))
        if "bytes" not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN bytes BIGINT DEFAULT 0 NOT NULL"))
    Base.metadata.create_all(conn, tables=[ApiKeyRow.__table__, AuditRow.__table__,
                                           ShareRow.__table__, ServerSecretRow.__table__])


MIGRATIONS = [(1, _v1), (2, _v2), (3, _v3), (4, _v4)]


def make_engine(url: str, *, connect_timeout_s: float = 5.0,
                statement_timeout_s: float = 15.0) -> Engine:
    """An engine that never waits without bound: connecting (PostgreSQL ``connect_timeout``,
    TCP keepalives and ``tcp_user_timeout`` for a peer that vanished), each statement
    (``statement_timeout``; SQLite: the busy timeout) and taking a pooled connection."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        busy_ms = int(statement_timeout_s * 1000)
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": statement_timeout_s},
                               pool_timeout=statement_timeout_s)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.close()
    else:
        ms = int(statement_timeout_s * 1000)
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10,
            pool_timeout=statement_timeout_s,
            connect_args={"connect_timeout": max(2, math.ceil(connect_timeout_s)),
                          "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
                          "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
                          "keepalives_count": 3, "tcp_user_timeout": ms})
    return engine


class DatabaseUnavailable(Exception):
    """The database did not answer (connecting or a statement timed out, or it refused)."""


def check_reachable(engine: Engine, timeout_s: float) -> None:
    """Connect once and run ``SELECT 1``; :class:`DatabaseUnavailable` with a message naming
    the database (without its password) if that fails or takes over ``timeout_s``."""
    import concurrent.futures

    where = engine.url.render_as_string(hide_password=True)
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db-check")
    fut = ex.submit(_select_one, engine)
    try:
        fut.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise DatabaseUnavailable(f"the database {where} did not answer within {timeout_s:g} s "
                                  "(is it up, and is that the right host and port?)") from None
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear message
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        raise DatabaseUnavailable(f"cannot use the database {where}: "
                                  f"{type(exc).__name__}: {first}") from None
    finally:
        ex.shutdown(wait=False)


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


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


class WriteHealth:
    """Failed writes since the last successful one, for ``/ready``."""

    def __init__(self) -> None:
        self.failures = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None

    def ok(self) -> None:
        self.failures, self.last_error, self.failing_since = 0, None, None

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        self.last_error = f"{type(exc).__name__}: {first}"[:300]
        self.failing_since = self.failing_since or datetime.now(UTC)


def _writes(fn):
    """Record a write method's outcome in ``self.health`` (integrity conflicts are answers,
    not failures)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            out = fn(self, *args, **kwargs)
        except IntegrityError:
            raise
        except (DBAPIError, SATimeoutError) as exc:
            self.health.failed(exc)
            raise
        self.health.ok()
        return out
    return wrapper


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _audit(s, actor: str, action: str, kind: str, target: str, detail: str | None = None):
    s.add(AuditRow(at=datetime.now(UTC), actor=actor, action=action, kind=kind,
                   target=target, detail=None if detail is None else detail[:500]))


class Store:
    """The service's storage operations (sync; routes call them from a thread pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)
        self.health = WriteHealth()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @_writes
    def probe_write(self) -> None:
        """A write that leaves nothing behind (``/ready`` asks whether writes work again)."""
        t = ServerSecretRow.__table__
        with self.engine.begin() as conn:
            conn.execute(t.insert().values(name="ready-probe", value=uuid.uuid4().hex,
                                           created_at=datetime.now(UTC)))
            conn.execute(t.delete().where(t.c.name == "ready-probe"))

    # datasets ---------------------------------------------------------------------------
    @_writes
    def put_dataset(self, sha: str, records: list[dict], name: str = "",
                    created_by: str | None = None) -> tuple[DatasetRow, bool]:
        """Store a validated dataset under its content hash; (row, created)."""
        with self.session() as s:
            row = s.get(DatasetRow, sha)
            if row is not None:
                return row, False
            row = DatasetRow(id=sha, name=name, n_projects=len(records), records=records,
                             created_at=datetime.now(UTC), created_by=created_by,
                             bytes=_json_bytes(records))
            s.add(row)
            if created_by is not None:
                _audit(s, created_by, "create", "dataset", sha, name)
            try:
                s.commit()
            except IntegrityError:  # stored concurrently by another request: same content
                s.rollback()
                return s.get(DatasetRow, sha), False
            return row, True

    def get_dataset(self, sha: str) -> DatasetRow | None:
        with self.session() as s:
            return s.get(DatasetRow, sha)

    def dataset_owner(self, sha: str) -> tuple[bool, str | None]:
        """(exists, created_by) without loading the rows."""
        with self.session() as s:
            got = s.execute(select(DatasetRow.created_by).where(DatasetRow.id == sha)).first()
            return (False, None) if got is None else (True, got[0])

    def list_datasets(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.session() as s:
            total = s.scalar(select(func.count()).select_from(DatasetRow))
            rows = s.execute(
                select(DatasetRow.id, DatasetRow.name, DatasetRow.n_projects,
                       DatasetRow.created_at, DatasetRow.created_by)
                .order_by(DatasetRow.created_at.desc(), DatasetRow.id)
                .limit(limit).offset(offset)).all()
            return [r._asdict() for r in rows], int(total or 0)

    def dataset_users(self, sha: str) -> dict[str, list[tuple[str, str | None]]]:
        """The runs and batches that use a dataset: ``{"runs": [(id, owner)], "batches": ...}``."""
        with self.session() as s:
            runs = s.execute(select(RunRow.run_id, RunRow.created_by)
                             .where(RunRow.dataset_id == sha)).all()
            batches = s.execute(select(BatchRow.batch_id, BatchRow.created_by)
                                .where(BatchRow.dataset_id == sha)).all()
        return {"runs": [tuple(r) for r in runs], "batches": [tuple(b) for b in batches]}

    @_writes
    def delete_dataset(self, sha: str, actor: str, cascade: bool) -> dict[str, int] | None:
        """Delete a dataset (and, with ``cascade``, the runs and batches using it) in one
        transaction; None if it does not exist. Without ``cascade`` the caller has checked
        that nothing uses it; a run stored meanwhile makes this fail (the rows stay)."""
        with self.session() as s:
            if s.get(DatasetRow, sha) is None:
                return None
            runs = list(s.scalars(select(RunRow.run_id).where(RunRow.dataset_id == sha)))
            batches = list(s.scalars(select(BatchRow.batch_id)
                                     .where(BatchRow.dataset_id == sha)))
            if (runs or batches) and not cascade:
                raise DatasetInUse(len(runs), len(batches))
            for rid in runs:
                self._delete_run(s, rid)
            for bid in batches:
                self._delete_batch(s, bid)
            s.execute(delete(DatasetRow).where(DatasetRow.id == sha))
            _audit(s, actor, "delete", "dataset", sha,
                   f"cascade: {len(runs)} runs, {len(batches)} batches" if cascade else None)
            s.commit()
            return {"runs": len(runs), "batches": len(batches)}

    # runs -------------------------------------------------------------------------------
    @_writes
    def add_run(self, *, dataset_id: str, scenario: dict, result: dict,
                idempotency_key: str | None, request_sha256: str | None,
                created_by: str | None = None) -> RunRow:
        row = RunRow(run_id=uuid.uuid4().hex, created_at=datetime.now(UTC),
                     scenario_name=str(scenario.get("name", ""))[:200],
                     status=result["status"], dataset_id=dataset_id, scenario=scenario,
                     result=result, idempotency_key=idempotency_key,
                     request_sha256=request_sha256, created_by=created_by,
                     bytes=_json_bytes(result) + _json_bytes(scenario))
        with self.session() as s:
            s.add(row)
            if created_by is not None:
                _audit(s, created_by, "create", "run", row.run_id, row.scenario_name)
            s.commit()
        return row

    def get_run(self, run_id: str) -> RunRow | None:
        with self.session() as s:
            return s.get(RunRow, run_id)

    def get_analysis(self, run_id: str) -> dict | None:
        with self.session() as s:
            row = s.get(RunAnalysisRow, run_id)
            return None if row is None else row.analysis

    @_writes
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

    @staticmethod
    def _delete_run(s, run_id: str) -> None:
        s.execute(delete(RunAnalysisRow).where(RunAnalysisRow.run_id == run_id))
        s.execute(update(ShareRow).where(ShareRow.kind == "run", ShareRow.target == run_id,
                                         ShareRow.revoked_at.is_(None))
                  .values(revoked_at=datetime.now(UTC)))
        s.execute(delete(RunRow).where(RunRow.run_id == run_id))

    @_writes
    def delete_run(self, run_id: str, actor: str) -> bool:
        with self.session() as s:
            if s.get(RunRow, run_id) is None:
                return False
            self._delete_run(s, run_id)
            _audit(s, actor, "delete", "run", run_id)
            s.commit()
            return True

    # batches ----------------------------------------------------------------------------
    @_writes
    def add_batch(self, *, spec: dict, dataset_id: str, name: str, kind: str,
                  total: int, created_by: str | None = None) -> BatchRow:
        row = BatchRow(batch_id=uuid.uuid4().hex, created_at=datetime.now(UTC), name=name,
                       kind=kind, status="queued", dataset_id=dataset_id, spec=spec,
                       total=total, done=0, failed=0, created_by=created_by,
                       bytes=_json_bytes(spec))
        with self.session() as s:
            s.add(row)
            if created_by is not None:
                _audit(s, created_by, "create", "batch", row.batch_id, f"{kind}, {total} rows")
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

    def unfinished(self, created_by: str | None) -> tuple[int, int]:
        """(batches queued or running, their rows not yet stored) of one key."""
        with self.session() as s:
            n, rows = s.execute(
                select(func.count(), func.coalesce(func.sum(BatchRow.total - BatchRow.done), 0))
                .where(BatchRow.created_by == created_by,
                       BatchRow.status.in_(("queued", "running")))).one()
        return int(n or 0), int(rows or 0)

    def claim_batch(self, owner: str, stale_after_s: float) -> BatchRow | None:
        """Take a batch to run; atomic, so two servers never run one batch.

        First a running batch whose server stopped beating (killed), oldest first; then a
        queued batch, round-robin by the key that made it: the key with the fewest batches
        running, then the one whose last batch started longest ago, gets its oldest queued
        batch (so one key's queue never holds up everyone else's)."""
        now = datetime.now(UTC)
        cutoff = now - timedelta(seconds=stale_after_s)
        stale = (BatchRow.status == "running") & (BatchRow.heartbeat_at < cutoff)
        queued = BatchRow.status == "queued"
        with self.session() as s:
            cands = list(s.scalars(select(BatchRow.batch_id).where(stale)
                                   .order_by(BatchRow.created_at).limit(5)))
            if not cands:
                cands = self._round_robin(s)
            for cand in cands:
                res = s.execute(update(BatchRow).where(BatchRow.batch_id == cand,
                                                       or_(queued, stale))
                                .values(status="running", owner=owner, heartbeat_at=now,
                                        started_at=func.coalesce(BatchRow.started_at, now)))
                s.commit()
                if res.rowcount == 1:
                    return s.get(BatchRow, cand, populate_existing=True)
        return None

    @staticmethod
    def _round_robin(s) -> list[str]:
        oldest: dict[str | None, tuple] = {}
        for bid, by, at in s.execute(select(BatchRow.batch_id, BatchRow.created_by,
                                            BatchRow.created_at)
                                     .where(BatchRow.status == "queued")
                                     .order_by(BatchRow.created_at, BatchRow.batch_id)):
            oldest.setdefault(by, (at, bid))
        if not oldest:
            return []
        running = dict(s.execute(select(BatchRow.created_by, func.count())
                                 .where(BatchRow.status == "running")
                                 .group_by(BatchRow.created_by)).all())
        last = dict(s.execute(select(BatchRow.created_by, func.max(BatchRow.started_at))
                              .where(BatchRow.started_at.is_not(None))
                              .group_by(BatchRow.created_by)).all())
        epoch = datetime(1970, 1, 1, tzinfo=UTC)

        def order(by):
            started = last.get(by) or epoch
            if started.tzinfo is None:  # SQLite's max() comes back as naive UTC
                started = started.replace(tzinfo=UTC)
            return running.get(by, 0), started, oldest[by][0]

        return [oldest[by][1] for by in sorted(oldest, key=order)][:5]

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

    @_writes
    def add_batch_rows(self, batch_id: str, rows: list[dict]) -> None:
        """Store finished rows (a row already stored is left alone) and the counters."""
        values = [{"batch_id": batch_id, "idx": int(r["index"]), "status": r["status"],
                   "objective": r.get("objective"), "row": r} for r in rows]
        added = sum(_json_bytes(r) for r in rows)
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
                         .values(done=done, failed=failed, bytes=BatchRow.bytes + added))

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

    @_writes
    def cancel_batch(self, batch_id: str, actor: str | None = None) -> BatchRow | None:
        """Mark a queued or running batch cancelled (its runner stops within a heartbeat);
        finished rows stay."""
        with self.session() as s:
            res = s.execute(update(BatchRow).where(BatchRow.batch_id == batch_id,
                                                   BatchRow.status.in_(("queued", "running")))
                            .values(status="cancelled", finished_at=datetime.now(UTC)))
            if res.rowcount and actor is not None:
                _audit(s, actor, "cancel", "batch", batch_id)
            s.commit()
            return s.get(BatchRow, batch_id, populate_existing=True)

    @staticmethod
    def _delete_batch(s, batch_id: str) -> None:
        s.execute(delete(BatchResultRow).where(BatchResultRow.batch_id == batch_id))
        s.execute(update(ShareRow).where(ShareRow.kind == "batch", ShareRow.target == batch_id,
                                         ShareRow.revoked_at.is_(None))
                  .values(revoked_at=datetime.now(UTC)))
        s.execute(delete(BatchRow).where(BatchRow.batch_id == batch_id))

    @_writes
    def purge_batch(self, batch_id: str, actor: str) -> bool:
        """Delete a batch and its rows (a running one is cancelled first by the caller)."""
        with self.session() as s:
            if s.get(BatchRow, batch_id) is None:
                return False
            self._delete_batch(s, batch_id)
            _audit(s, actor, "delete", "batch", batch_id)
            s.commit()
            return True

    # storage used -------------------------------------------------------------------------
    def usage_bytes(self, created_by: str | None) -> int:
        """JSON bytes of the runs, datasets and batches (with their rows) a key made."""
        total = 0
        with self.session() as s:
            for table in (RunRow, DatasetRow, BatchRow):
                total += int(s.scalar(select(func.coalesce(func.sum(table.bytes), 0))
                                      .where(table.created_by == created_by)) or 0)
        return total

    # keys ---------------------------------------------------------------------------------
    @_writes
    def add_key(self, name: str, role: str, digest: str, actor: str) -> ApiKeyRow:
        """A new key (IntegrityError if the name is taken, revoked or not)."""
        row = ApiKeyRow(name=name, role=role, digest=digest, created_at=datetime.now(UTC),
                        created_by=actor)
        with self.session() as s:
            s.add(row)
            _audit(s, actor, "key_add", "key", name, role)
            s.commit()
        return row

    def list_keys(self) -> list[ApiKeyRow]:
        with self.session() as s:
            return list(s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at)))

    def active_keys(self) -> list[tuple[str, str, str]]:
        """(name, role, digest) of every key not revoked."""
        with self.session() as s:
            return [tuple(r) for r in s.execute(
                select(ApiKeyRow.name, ApiKeyRow.role, ApiKeyRow.digest)
                .where(ApiKeyRow.revoked_at.is_(None)))]

    @_writes
    def revoke_key(self, name: str, actor: str) -> bool:
        with self.session() as s:
            res = s.execute(update(ApiKeyRow).where(ApiKeyRow.name == name,
                                                    ApiKeyRow.revoked_at.is_(None))
                            .values(revoked_at=datetime.now(UTC)))
            if res.rowcount:
                _audit(s, actor, "key_revoke", "key", name)
            s.commit()
            return bool(res.rowcount)

    # share links --------------------------------------------------------------------------
    @_writes
    def add_share(self, kind: str, target: str, expires_at: datetime, actor: str) -> ShareRow:
        row = ShareRow(share_id=uuid.uuid4().hex, kind=kind, target=target,
                       created_at=datetime.now(UTC), created_by=actor, expires_at=expires_at)
        with self.session() as s:
            s.add(row)
            _audit(s, actor, "share", kind, target,
                   f"link {row.share_id} until {expires_at.isoformat(timespec='seconds')}")
            s.commit()
        return row

    def get_share(self, share_id: str) -> ShareRow | None:
        with self.session() as s:
            return s.get(ShareRow, share_id)

    def list_shares(self, kind: str | None = None, target: str | None = None) -> list[ShareRow]:
        q = select(ShareRow)
        if kind is not None:
            q = q.where(ShareRow.kind == kind)
        if target is not None:
            q = q.where(ShareRow.target == target)
        with self.session() as s:
            return list(s.scalars(q.order_by(ShareRow.created_at.desc()).limit(1000)))

    @_writes
    def revoke_share(self, share_id: str, actor: str) -> bool:
        with self.session() as s:
            res = s.execute(update(ShareRow).where(ShareRow.share_id == share_id,
                                                   ShareRow.revoked_at.is_(None))
                            .values(revoked_at=datetime.now(UTC)))
            if res.rowcount:
                _audit(s, actor, "revoke", "share", share_id)
            s.commit()
            return bool(res.rowcount)

    # audit and server secrets ---------------------------------------------------------------
    def list_audit(self, limit: int = 100, offset: int = 0) -> list[AuditRow]:
        with self.session() as s:
            return list(s.scalars(select(AuditRow).order_by(AuditRow.id.desc())
                                  .limit(limit).offset(offset)))

    @_writes
    def server_secret(self, name: str, make) -> str:
        """The secret ``name``, created with ``make()`` by whichever server asks first."""
        with self.session() as s:
            row = s.get(ServerSecretRow, name)
            if row is not None:
                return row.value
            s.add(ServerSecretRow(name=name, value=make(), created_at=datetime.now(UTC)))
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
            return s.get(ServerSecretRow, name, populate_existing=True).value


class DatasetInUse(Exception):
    def __init__(self, runs: int, batches: int) -> None:
        super().__init__(f"used by {runs} runs and {batches} batches")
        self.runs = runs
        self.batches = batches
