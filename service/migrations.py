"""Versioned schema migrations, safe when several tasks start at the same moment.

Every migration must stay compatible with the previous release's code: during a deploy (and after a
rollback) old and new tasks share one schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

logger = logging.getLogger(__name__)

# One fixed key for the whole service: whoever holds it migrates, the others wait and then find nothing to do.
ADVISORY_LOCK_KEY = 7_211_774_583_210_104_421
# Requests get a statement timeout of seconds; a migration (and the wait for another task's) may need minutes.
MIGRATION_STATEMENT_TIMEOUT_SECONDS = 240


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: LiteralString


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="create notes",
        sql="""
            CREATE TABLE notes (
                id uuid PRIMARY KEY DEFAULT uuidv7(),
                title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
                body text NOT NULL DEFAULT '' CHECK (length(body) <= 4000),
                created_at timestamptz NOT NULL DEFAULT clock_timestamp()
            );
            CREATE INDEX notes_newest_first ON notes (created_at DESC, id DESC);
        """,
    ),
    Migration(
        version=2,
        name="create idempotency keys",
        sql="""
            CREATE TABLE idempotency_keys (
                key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
                fingerprint bytea NOT NULL,
                status smallint,
                response jsonb,
                created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                expires_at timestamptz NOT NULL
            );
            CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
        """,
    ),
)


async def migrate(conn: psycopg.AsyncConnection[Any], migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the missing migrations in one transaction; return the versions this call applied."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('statement_timeout', %s, true)", (f"{MIGRATION_STATEMENT_TIMEOUT_SECONDS}s",)
        )
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        cursor = await conn.execute("SELECT version FROM schema_migrations")
        done = {_first(row) for row in await cursor.fetchall()}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
            applied.append(migration.version)
        unknown = sorted(v for v in done if v not in {m.version for m in migrations})
    if applied:
        logger.info("schema migrated", extra={"event": "migrations_applied", "versions": applied})
    if unknown:
        # A newer release migrated further; this one keeps working because migrations stay backward-compatible.
        logger.warning("schema is newer than this release", extra={"event": "migrations_ahead", "versions": unknown})
    return applied


def _first(row: Any) -> Any:
    return row["version"] if isinstance(row, dict) else row[0]
