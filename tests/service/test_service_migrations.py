"""Schema migrations when several tasks start at the same moment: one applies, the others wait, all succeed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import psycopg
import pytest
from service_support import wait_until
from svc_postgres import Database

from service.migrations import ADVISORY_LOCK_KEY, MIGRATIONS, Migration, migrate

pytestmark = pytest.mark.xdist_group("service")

STARTERS = 8


def conninfo(db: Database) -> str:
    return f"host=127.0.0.1 port={db.server.port} user={db.user} password={db.password} dbname={db.name}"


def run_migrate(db: Database, start: threading.Barrier, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    async def go() -> list[int]:
        async with await psycopg.AsyncConnection.connect(conninfo(db), autocommit=True) as conn:
            start.wait(timeout=10)
            return await migrate(conn, migrations)

    return asyncio.run(go())


def test_concurrent_starts_apply_each_migration_exactly_once(database: Database) -> None:
    start = threading.Barrier(STARTERS)
    with concurrent.futures.ThreadPoolExecutor(STARTERS) as pool:
        results = list(pool.map(lambda _: run_migrate(database, start), range(STARTERS)))

    versions = [m.version for m in MIGRATIONS]
    assert sorted(results, key=len, reverse=True) == [versions] + [[]] * (STARTERS - 1)
    with database.connect() as conn:
        recorded = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        columns = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'notes'"
            ).fetchall()
        )
    assert recorded == versions
    assert columns == {
        "id": "uuid",
        "title": "text",
        "body": "text",
        "created_at": "timestamp with time zone",
    }


def test_starters_wait_for_the_one_holding_the_lock(database: Database) -> None:
    start = threading.Barrier(4)
    with database.connect() as holder:
        # Stand in for a task that is migrating right now.
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(run_migrate, database, start) for _ in range(3)]
            start.wait(timeout=10)

            def waiting() -> bool:
                with database.connect() as monitor:
                    row = monitor.execute(
                        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
                        (database.name,),
                    ).fetchone()
                return bool(row and row[0] == 3)

            wait_until(waiting, timeout=10, what="three starters waiting on the lock")
            assert not any(f.done() for f in futures)
            holder.execute("COMMIT")
            results = [f.result(timeout=10) for f in futures]
    assert sorted(map(len, results)) == [0, 0, len(MIGRATIONS)]


def test_rerun_is_a_no_op_and_new_versions_apply_in_order(database: Database) -> None:
    assert run_migrate(database, threading.Barrier(1)) == [m.version for m in MIGRATIONS]
    assert run_migrate(database, threading.Barrier(1)) == []
    last = MIGRATIONS[-1].version
    later = (
        *MIGRATIONS,
        Migration(
            version=last + 2, name="third", sql="ALTER TABLE notes ADD COLUMN pinned boolean NOT NULL DEFAULT false"
        ),
        Migration(version=last + 1, name="second", sql="CREATE INDEX notes_title ON notes (title)"),
    )
    assert run_migrate(database, threading.Barrier(1), later) == [last + 1, last + 2]
    with database.connect() as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM schema_migrations ORDER BY applied_at, version")]
    assert names[-2:] == ["second", "third"]


def test_a_failing_migration_leaves_nothing_behind(database: Database) -> None:
    broken = (
        *MIGRATIONS,
        Migration(version=MIGRATIONS[-1].version + 1, name="broken", sql="ALTER TABLE no_such_table ADD COLUMN x int"),
    )
    with pytest.raises(psycopg.errors.UndefinedTable):
        run_migrate(database, threading.Barrier(1), broken)
    with database.connect() as conn:
        exists = conn.execute("SELECT to_regclass('notes'), to_regclass('schema_migrations')").fetchone()
    assert exists == (None, None)
