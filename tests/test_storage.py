"""The service's storage (api.db) against SQLite (a temp file, WAL) and the real PostgreSQL.

PostgreSQL: ``TEST_DATABASE_URL``, else the local server when it answers (see the
``pg_server`` fixture in conftest.py); each test gets a fresh database made on that server
(dropped WITH (FORCE) after).
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from api.db import MIGRATIONS, RunRow, SchemaVersion, Store, make_engine, migrate

from .conftest import BACKENDS, fresh_pg_database

NEWEST = max(v for v, _ in MIGRATIONS)
ALL_VERSIONS = sorted(v for v, _ in MIGRATIONS)


@pytest.fixture
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_pg_database(request.getfixturevalue("pg_server")) as pg_url:
        yield pg_url


@pytest.fixture
def engine(url):
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def store(engine) -> Store:
    migrate(engine)
    return Store(engine)


pytestmark = pytest.mark.parametrize("url", BACKENDS, indirect=True)


def result(status: str = "optimal", objective: float | None = 1.5) -> dict:
    return {"status": status, "objective": objective, "selected": [],
            "totals": {"cost_musd": 0.0, "nested": {"a": [1, 2.5, None]}}}


def add(store: Store, name: str = "s", status: str = "optimal", key: str | None = None,
        dataset_id: str = "d" * 64):
    return store.add_run(dataset_id=dataset_id, scenario={"name": name, "budget_musd": 10},
                         result=result(status), idempotency_key=key,
                         request_sha256=None if key is None else "f" * 64)


# ---------------------------------------------------------------------------------------------

def test_migrate_twice_is_idempotent(engine):
    assert migrate(engine) == NEWEST
    assert migrate(engine) == NEWEST
    names = set(inspect(engine).get_table_names())
    assert {"datasets", "runs", "schema_version", "run_analyses"} <= names
    with engine.connect() as conn:
        versions = conn.execute(select(SchemaVersion.version)).scalars().all()
    assert versions == ALL_VERSIONS
    # the data survive a third migrate
    store = Store(engine)
    run = add(store)
    migrate(engine)
    assert store.get_run(run.run_id) is not None


def test_migrate_from_several_threads_at_once(engine):
    """migrate() is safe to run from several processes at once (servers starting together).
    Regression on SQLite, which has no advisory lock: racing migrations used to fail with
    'table ... already exists' or a duplicate schema_version row."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def go():
        try:
            barrier.wait()
            migrate(engine)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], [repr(e)[:200] for e in errors]
    with engine.connect() as conn:
        assert conn.execute(select(SchemaVersion.version)).scalars().all() == ALL_VERSIONS


def test_put_dataset_is_idempotent_by_hash(store):
    records = [{"project_id": "A", "npv_musd": 40.0, "note": None},
               {"project_id": "B", "npv_musd": -1.25, "note": "x"}]
    sha = "a" * 64
    row, created = store.put_dataset(sha, records, "first")
    assert created is True and row.id == sha and row.n_projects == 2
    row2, created2 = store.put_dataset(sha, records, "second name, same content")
    assert created2 is False and row2.id == sha
    got = store.get_dataset(sha)
    assert got.records == records and got.name == "first" and got.n_projects == 2
    assert store.get_dataset("b" * 64) is None
    items, total = store.list_datasets(limit=10, offset=0)
    assert total == 1 and items[0]["id"] == sha


def test_add_and_get_run_round_trip(store):
    run = store.add_run(dataset_id="d" * 64, scenario={"name": "base", "budget_musd": 2000.5},
                        result=result(objective=538.1115478672982), idempotency_key=None,
                        request_sha256=None)
    assert len(run.run_id) == 32
    got = store.get_run(run.run_id)
    assert got.result == result(objective=538.1115478672982)  # floats bit-exact through JSON
    assert got.scenario == {"name": "base", "budget_musd": 2000.5}
    assert got.scenario_name == "base" and got.status == "optimal"
    assert got.dataset_id == "d" * 64 and got.idempotency_key is None
    assert store.get_run(uuid.uuid4().hex) is None


def test_list_runs_pages_newest_first_and_filters(store):
    made = []
    for i in range(7):
        made.append(add(store, name="even" if i % 2 == 0 else "odd",
                        status="infeasible" if i == 3 else "optimal"))
        time.sleep(0.002)  # distinct created_at even on a coarse clock
    newest_first = [r.run_id for r in reversed(made)]

    rows, total = store.list_runs(limit=3, offset=0, scenario_name=None, status=None)
    assert total == 7 and [r.run_id for r in rows] == newest_first[:3]
    rows, total = store.list_runs(limit=3, offset=3, scenario_name=None, status=None)
    assert total == 7 and [r.run_id for r in rows] == newest_first[3:6]
    rows, total = store.list_runs(limit=3, offset=6, scenario_name=None, status=None)
    assert [r.run_id for r in rows] == newest_first[6:]
    rows, total = store.list_runs(limit=3, offset=50, scenario_name=None, status=None)
    assert rows == [] and total == 7

    rows, total = store.list_runs(limit=50, offset=0, scenario_name="even", status=None)
    assert total == 4 and [r.run_id for r in rows] == [made[i].run_id for i in (6, 4, 2, 0)]
    rows, total = store.list_runs(limit=50, offset=0, scenario_name=None, status="infeasible")
    assert total == 1 and rows[0].run_id == made[3].run_id
    rows, total = store.list_runs(limit=50, offset=0, scenario_name="odd", status="optimal")
    assert total == 2 and [r.run_id for r in rows] == [made[5].run_id, made[1].run_id]
    rows, total = store.list_runs(limit=50, offset=0, scenario_name="none", status=None)
    assert rows == [] and total == 0


def test_idempotency_key_is_unique(store):
    first = add(store, key="k-1")
    assert store.run_by_key("k-1").run_id == first.run_id
    with pytest.raises(IntegrityError):
        add(store, key="k-1")
    # no key at all may repeat (NULLs are not equal), and the failed insert left nothing behind
    add(store)
    add(store)
    _, total = store.list_runs(limit=10, offset=0, scenario_name=None, status=None)
    assert total == 3
    assert store.run_by_key("k-2") is None


def test_concurrent_writes_from_eight_threads(store, engine):
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    per_thread = 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                add(store, name=f"t{t}", key=f"t{t}-{i}" if i % 2 else None)
                if i % 5 == 0:  # all threads race to store the same dataset too
                    store.put_dataset("c" * 64, [{"i": i}], "shared")
                store.list_runs(limit=5, offset=0, scenario_name=f"t{t}", status=None)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], [repr(e) for e in errors[:3]]
    assert not any("database is locked" in repr(e) for e in errors)
    _, total = store.list_runs(limit=1, offset=0, scenario_name=None, status=None)
    assert total == 8 * per_thread
    for t in range(8):
        _, n = store.list_runs(limit=1, offset=0, scenario_name=f"t{t}", status=None)
        assert n == per_thread
    assert store.list_datasets(limit=10, offset=0)[1] == 1


def test_datetimes_come_back(store):
    before = datetime.now(UTC)
    run = add(store)
    row, _ = store.put_dataset("e" * 64, [{"x": 1}])
    after = datetime.now(UTC)
    got = store.get_run(run.run_id)
    ds = store.get_dataset("e" * 64)
    listed, _ = store.list_runs(limit=1, offset=0, scenario_name=None, status=None)
    for stamp in (got.created_at, ds.created_at, listed[0].created_at,
                  store.list_datasets(limit=1, offset=0)[0][0]["created_at"]):
        assert isinstance(stamp, datetime)
        # SQLite keeps no zone: storage must hand back aware UTC datetimes all the same
        assert stamp.utcoffset() is not None, f"naive datetime from storage: {stamp!r}"
        assert before - timedelta(seconds=1) <= stamp <= after + timedelta(seconds=1)
    assert got.created_at == run.created_at


def test_run_row_columns_are_indexed_for_the_listing(engine):
    migrate(engine)
    indexed = {c for ix in inspect(engine).get_indexes(RunRow.__tablename__)
               for c in ix["column_names"]}
    assert {"created_at", "scenario_name", "status"} <= indexed


def test_a_version_1_database_gains_the_batch_tables(engine):
    """A database made by the first release (datasets and runs only) is brought to the newest
    schema at start-up, keeping its runs."""
    from datetime import UTC, datetime

    from sqlalchemy import inspect

    from api.db import _v1

    with engine.begin() as conn:
        SchemaVersion.__table__.create(conn)
        _v1(conn)
        conn.execute(SchemaVersion.__table__.insert().values(version=1,
                                                              applied_at=datetime.now(UTC)))
    store = Store(engine)
    store.add_run(dataset_id="d" * 64, scenario={"name": "old"}, result={"status": "optimal"},
                  idempotency_key=None, request_sha256=None)
    assert migrate(engine) == NEWEST
    assert {"batches", "batch_rows", "run_analyses"} <= set(inspect(engine).get_table_names())
    assert store.list_runs(limit=5, offset=0, scenario_name="old", status=None)[1] == 1


def test_a_version_3_database_gains_owners_keys_audit_and_shares(engine):
    """A database of the release before access control (no created_by or bytes columns) is
    migrated in place: its runs stay, owned by no key (so only admins may delete them)."""
    from api.db import _v1, _v2, _v3

    with engine.begin() as conn:
        SchemaVersion.__table__.create(conn)
        for version, step in ((1, _v1), (2, _v2), (3, _v3)):
            step(conn)
            conn.execute(SchemaVersion.__table__.insert().values(
                version=version, applied_at=datetime.now(UTC)))
        for table in ("runs", "datasets", "batches"):  # as version 3 made them
            conn.execute(text(f"DROP INDEX ix_{table}_created_by"))
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN created_by"))
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN bytes"))
        conn.execute(text("INSERT INTO runs (run_id, created_at, scenario_name, status, "
                          "dataset_id, scenario, result) VALUES ('" + "a" * 32 + "', "
                          ":at, 'old', 'optimal', '" + "d" * 64 + "', '{}', '{}')"),
                     {"at": datetime.now(UTC)})
    assert migrate(engine) == NEWEST
    names = set(inspect(engine).get_table_names())
    assert {"api_keys", "audit", "shares", "server_secrets"} <= names
    store = Store(engine)
    old = store.get_run("a" * 32)
    assert old.created_by is None and old.bytes == 0
    new = store.add_run(dataset_id="d" * 64, scenario={"name": "new"}, result=result(),
                        idempotency_key=None, request_sha256=None, created_by="alice")
    assert store.get_run(new.run_id).created_by == "alice" and new.bytes > 0
    assert store.usage_bytes("alice") == new.bytes
    assert [(a.actor, a.action, a.target) for a in store.list_audit()] == [
        ("alice", "create", new.run_id)]


def _queue(store: Store, who: str, n: int = 1) -> list[str]:
    return [store.add_batch(spec={"base": {}}, dataset_id="d" * 64, name=f"{who}-{i}",
                            kind="scenarios", total=10, created_by=who).batch_id
            for i in range(n)]


def test_queued_batches_are_claimed_round_robin_by_key(store):
    """alice queues three batches, then bob one, then carol one: one server claiming one
    at a time runs alice, bob, carol, then alice's other two (not alice's three first)."""
    a = _queue(store, "alice", 3)
    b = _queue(store, "bob")
    c = _queue(store, "carol")
    order = []
    for _ in range(5):
        row = store.claim_batch("server-1", stale_after_s=60)
        order.append(row.batch_id)
        store.finish_batch(row.batch_id, "server-1", "done", None)
    assert order == [a[0], b[0], c[0], a[1], a[2]], order
    assert store.claim_batch("server-1", stale_after_s=60) is None


def test_a_key_with_a_batch_running_waits_behind_others(store):
    a = _queue(store, "alice", 2)
    first = store.claim_batch("s1", stale_after_s=60)  # alice's first, still running
    assert first.batch_id == a[0]
    b = _queue(store, "bob")
    assert store.claim_batch("s2", stale_after_s=60).batch_id == b[0]
    assert store.claim_batch("s3", stale_after_s=60).batch_id == a[1]
    assert store.unfinished("alice") == (2, 20)
    store.add_batch_rows(a[0], [{"index": i, "status": "optimal", "objective": 1.0}
                                for i in range(4)])
    assert store.unfinished("alice") == (2, 16)
    store.cancel_batch(a[1], "alice")
    assert store.unfinished("alice") == (1, 6)


def test_deleting_a_dataset_in_use_needs_cascade(store):
    from api.db import DatasetInUse

    ds, _ = store.put_dataset("e" * 64, [{"project_id": "A"}], "x", created_by="alice")
    run = store.add_run(dataset_id=ds.id, scenario={"name": "r"}, result=result(),
                        idempotency_key=None, request_sha256=None, created_by="alice")
    bid = store.add_batch(spec={}, dataset_id=ds.id, name="b", kind="grid", total=1,
                          created_by="alice").batch_id
    store.add_batch_rows(bid, [{"index": 0, "status": "optimal"}])
    with pytest.raises(DatasetInUse):
        store.delete_dataset(ds.id, "alice", cascade=False)
    assert store.get_run(run.run_id) is not None
    assert store.delete_dataset(ds.id, "alice", cascade=True) == {"runs": 1, "batches": 1}
    assert store.get_run(run.run_id) is None and store.get_batch(bid) is None
    assert list(store.batch_rows(bid)) == []
    assert store.get_dataset(ds.id) is None
