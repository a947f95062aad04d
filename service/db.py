"""The PostgreSQL connection pool; every new connection uses the credentials current at that moment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from service.credentials import CredentialSource, DbCredentials

_AUTH_SQLSTATES = frozenset({"28P01", "28000"})


def is_auth_failure(exc: psycopg.OperationalError) -> bool:
    # libpq reports connection-time failures without a SQLSTATE, so the server's message is all there is.
    return exc.sqlstate in _AUTH_SQLSTATES or "authentication failed" in str(exc)


async def connect(source: CredentialSource, *, dbname: str, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """Connect with the current credentials; when the password is refused, retry with re-read ones (rotation)."""
    credentials: DbCredentials = await source.current()
    try:
        return await psycopg.AsyncConnection.connect(dbname=dbname, **credentials.connect_kwargs(), **kwargs)
    except psycopg.OperationalError as exc:
        if not is_auth_failure(exc):
            raise
        refused = exc
    for candidate in await source.after_auth_failure(credentials):
        try:
            conn = await psycopg.AsyncConnection.connect(dbname=dbname, **candidate.connect_kwargs(), **kwargs)
        except psycopg.OperationalError as exc:
            if not is_auth_failure(exc):
                raise
            refused = exc
        else:
            source.accepted(candidate)
            return conn
    raise refused


class Database:
    def __init__(
        self,
        *,
        credentials: CredentialSource,
        dbname: str,
        min_size: int = 1,
        max_size: int = 10,
        max_lifetime: float = 30 * 60.0,
        acquire_timeout: float = 3.0,
        connect_timeout: int = 5,
        name: str = "service",
    ) -> None:
        self._credentials = credentials
        self._dbname = dbname
        self._connect_timeout = connect_timeout
        database = self

        # The pool's only hook for creating connections; each one asks for the credentials current at that moment.
        class CredentialedConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
                return await database._connect(**kwargs)

        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            connection_class=CredentialedConnection,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime,
            timeout=acquire_timeout,
            # A pooled connection may have died with the server (restart, failover): test it before handing it out.
            check=AsyncConnectionPool.check_connection,
            # Stop backing off after a few seconds; once the database is back the next request reconnects at once.
            reconnect_timeout=5.0,
            name=name,
            open=False,
        )

    async def _connect(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        kwargs.setdefault("connect_timeout", self._connect_timeout)
        kwargs.setdefault("application_name", "service")
        return await connect(self._credentials, dbname=self._dbname, **kwargs)

    async def open(self) -> None:
        # Never wait for the database here: the process must start (and answer /healthz) while it is down.
        await self.pool.open(wait=False)

    async def close(self, *, timeout: float = 5.0) -> None:
        await self.pool.close(timeout=timeout)

    @asynccontextmanager
    async def connection(self, *, timeout: float | None = None) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.pool.connection(timeout=timeout) as conn:
            yield conn

    async def ping(self, *, timeout: float) -> None:
        async with self.pool.connection(timeout=timeout) as conn:
            await conn.execute("SELECT 1")
