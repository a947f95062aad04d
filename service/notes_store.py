"""SQL for notes; the only module that knows the table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from service.cursors import Position


@dataclass(frozen=True, kw_only=True)
class Note:
    id: uuid.UUID
    title: str
    body: str
    created_at: datetime

    @property
    def position(self) -> Position:
        return Position(created_at=self.created_at, id=self.id)


async def create(conn: psycopg.AsyncConnection[Any], *, title: str, body: str) -> Note:
    cursor = await conn.execute(
        "INSERT INTO notes (title, body) VALUES (%s, %s) RETURNING id, title, body, created_at", (title, body)
    )
    return Note(**await cursor.fetchone())  # type: ignore[arg-type]


class KeyReusedError(Exception):
    """The idempotency key was used before with another request."""


class KeyInUseError(Exception):
    """A request with this idempotency key is still being processed."""


# The first key of the two-key advisory locks that stand for "a request with this Idempotency-Key is in progress"
# (the second is the key's hash); the two-key space does not overlap the migrations' one-key lock.
IDEMPOTENCY_LOCK_NAMESPACE = 0x1DE0


@dataclass(frozen=True, kw_only=True)
class Stored:
    """The response to send for an idempotent request: the original one, or the one just produced."""

    status: int
    response: dict[str, Any]
    replayed: bool


# Claims the key, or takes over an expired one; under the key's advisory lock nobody else can hold it uncommitted.
_CLAIM = """
    INSERT INTO idempotency_keys AS k (key, fingerprint, expires_at)
    VALUES (%(key)s, %(fingerprint)s, clock_timestamp() + make_interval(secs => %(ttl)s))
    ON CONFLICT (key) DO UPDATE
        SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at,
            created_at = clock_timestamp(), status = NULL, response = NULL
        WHERE k.expires_at <= clock_timestamp()
    RETURNING key
"""


async def create_once(
    conn: psycopg.AsyncConnection[Any],
    *,
    key: str,
    fingerprint: bytes,
    ttl_seconds: int,
    title: str,
    body: str,
    render: Callable[[Note], dict[str, Any]],
) -> Stored:
    """Create the note once per key: the first request stores `render(note)` as its 201 response, retries get it.

    A retry that arrives while the first request is still running is refused (KeyInUseError) instead of waiting
    for it with a pooled connection held.
    """
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)) AS free", (IDEMPOTENCY_LOCK_NAMESPACE, key)
        )
        row = await cursor.fetchone()
        if not (row["free"] if isinstance(row, dict) else row[0]):
            raise KeyInUseError(key)
        cursor = await conn.execute(_CLAIM, {"key": key, "fingerprint": fingerprint, "ttl": ttl_seconds})
        claimed = await cursor.fetchone()
        if claimed:
            response = render(await create(conn, title=title, body=body))
            await conn.execute(
                "UPDATE idempotency_keys SET status = 201, response = %s WHERE key = %s", (Jsonb(response), key)
            )
            return Stored(status=201, response=response, replayed=False)
        cursor = await conn.execute("SELECT fingerprint, status, response FROM idempotency_keys WHERE key = %s", (key,))
        row = await cursor.fetchone()
    assert row is not None, "a live key cannot vanish while this transaction holds its lock"
    if bytes(row["fingerprint"]) != fingerprint:
        raise KeyReusedError(key)
    return Stored(status=row["status"], response=row["response"], replayed=True)


async def delete_expired_keys(conn: psycopg.AsyncConnection[Any], *, batch: int = 1000) -> int:
    cursor = await conn.execute(
        """
        DELETE FROM idempotency_keys WHERE key IN (
            SELECT key FROM idempotency_keys WHERE expires_at <= clock_timestamp() LIMIT %s FOR UPDATE SKIP LOCKED
        )
        """,
        (batch,),
    )
    return cursor.rowcount


async def get(conn: psycopg.AsyncConnection[Any], note_id: uuid.UUID) -> Note | None:
    cursor = await conn.execute("SELECT id, title, body, created_at FROM notes WHERE id = %s", (note_id,))
    row = await cursor.fetchone()
    return Note(**row) if row else None


async def delete(conn: psycopg.AsyncConnection[Any], note_id: uuid.UUID) -> bool:
    cursor = await conn.execute("DELETE FROM notes WHERE id = %s", (note_id,))
    return cursor.rowcount > 0


async def page(conn: psycopg.AsyncConnection[Any], *, limit: int, after: Position | None) -> tuple[list[Note], bool]:
    """Newest first; returns the notes and whether more follow."""
    if after is None:
        cursor = await conn.execute(
            "SELECT id, title, body, created_at FROM notes ORDER BY created_at DESC, id DESC LIMIT %s", (limit + 1,)
        )
    else:
        cursor = await conn.execute(
            """
            SELECT id, title, body, created_at FROM notes
            WHERE (created_at, id) < (%s, %s)
            ORDER BY created_at DESC, id DESC LIMIT %s
            """,
            (after.created_at, after.id, limit + 1),
        )
    rows = await cursor.fetchall()
    return [Note(**row) for row in rows[:limit]], len(rows) > limit
