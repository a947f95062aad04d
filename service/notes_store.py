"""SQL for notes; the only module that knows the table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

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
