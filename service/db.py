"""The PostgreSQL connection pool; every new connection uses the credentials current at that moment.

Every database call runs through `Database.run`, which bounds it twice: the server cancels any statement after
`statement_timeout`, and a client-side deadline covers what the server cannot (a hung or unreachable host). When
the deadline passes, the connection's socket is shut down, so the call ends at once instead of waiting for a
cancellation the server would never answer; the pool then discards that connection.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from service.breaker import CircuitBreaker, CircuitOpen, DatabaseUnavailable
from service.credentials import CredentialSource, DbCredentials

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]

_AUTH_SQLSTATES = frozenset({"28P01", "28000"})
PROBE_CONNECT_TIMEOUT_SECONDS = 2
PROBE_QUERY_TIMEOUT_SECONDS = 2.0
# Dead peers (a failed-over or vanished host) are found by TCP, not by a query that never returns.
TCP_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}


class DatabaseTimeout(DatabaseUnavailable):
    """The database did not answer within the call's deadline."""


def is_auth_failure(exc: psycopg.OperationalError) -> bool:
    # libpq reports connection-time failures without a SQLSTATE, so the server's message is all there is.
    return exc.sqlstate in _AUTH_SQLSTATES or "authentication failed" in str(exc)


async def connect(source: CredentialSource, *, dbname: str, **kwargs: Any) -> Connection:
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


def abort(conn: Connection) -> None:
    """Shut the connection's socket down under libpq: whatever waits on it fails now, nothing waits for the server."""
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Lease:
    """One call's hold on a connection, so the deadline can find and abort it."""

    __slots__ = ("conn", "held_since", "expired", "held_for", "task", "refused")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.held_since = 0.0
        self.expired = False
        self.held_for = 0.0
        self.task: asyncio.Task[Any] | None = None
        self.refused = False

    def hold(self, conn: Connection) -> None:
        self.conn = conn
        self.held_since = time.monotonic()

    def expire(self) -> None:
        self.expired = True
        if self.conn is not None:
            self.held_for = time.monotonic() - self.held_since
            abort(self.conn)


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
        operation_timeout: float = 3.0,
        name: str = "service",
    ) -> None:
        self._credentials = credentials
        self._dbname = dbname
        self._connect_timeout = connect_timeout
        self._acquire_timeout = acquire_timeout
        self.operation_timeout = operation_timeout
        # The server gives up first, with an answer, so a slow statement costs one request and not the connection.
        self.statement_timeout = operation_timeout * 2 / 3
        self._options = (
            f"-c statement_timeout={round(self.statement_timeout * 1000)}"
            f" -c idle_in_transaction_session_timeout={round(operation_timeout * 2000)}"
        )
        self.breaker = CircuitBreaker(probe=self._probe, on_open=self._refuse_waiting)
        self._waiting: set[_Lease] = set()
        database = self

        # The pool's only hook for creating connections; each one asks for the credentials current at that moment.
        class CredentialedConnection(psycopg.AsyncConnection[Any]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
                return await database._pool_connect(**kwargs)

        self.pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            connection_class=CredentialedConnection,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime,
            timeout=acquire_timeout,
            # Stop backing off after a few seconds; once the database is back the next request reconnects at once.
            reconnect_timeout=5.0,
            name=name,
            open=False,
        )

    async def _connect(self, **kwargs: Any) -> Connection:
        kwargs.setdefault("connect_timeout", self._connect_timeout)
        kwargs.setdefault("application_name", "service")
        kwargs.setdefault("options", self._options)
        for key, value in TCP_KEEPALIVE.items():
            kwargs.setdefault(key, value)
        return await connect(self._credentials, dbname=self._dbname, **kwargs)

    async def _pool_connect(self, **kwargs: Any) -> Connection:
        try:
            conn = await self._connect(**kwargs)
        except psycopg.Error as exc:
            self.breaker.failure(exc)
            raise
        self.breaker.success()
        return conn

    async def _probe(self) -> None:
        conn = await self._connect(connect_timeout=PROBE_CONNECT_TIMEOUT_SECONDS, autocommit=True)
        lease = _Lease()
        lease.hold(conn)
        timer = asyncio.get_running_loop().call_later(PROBE_QUERY_TIMEOUT_SECONDS, lease.expire)
        try:
            await conn.execute("SELECT 1")
        finally:
            timer.cancel()
            await conn.close()

    async def open(self) -> None:
        # Never wait for the database here: the process must start (and answer /healthz) while it is down.
        await self.pool.open(wait=False)

    async def close(self, *, timeout: float = 5.0) -> None:
        await self.breaker.stop()
        await self.pool.close(timeout=timeout)

    async def run(self, operation: Callable[[Connection], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run `operation` on a pooled connection within `timeout` seconds (default: the operation timeout).

        Raises CircuitOpen at once while the database is known to be unreachable, DatabaseTimeout when the deadline
        passes, PoolTimeout when no connection frees up in time, and psycopg errors from the operation itself.
        """
        self.breaker.check()
        budget = self.operation_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        lease = _Lease()
        timer = loop.call_at(deadline, lease.expire)
        try:
            conn = await self._acquire(lease, deadline, loop)
            try:
                result = await operation(conn)
            except psycopg.Error as exc:
                self._judge(lease, conn, exc)
                raise
            finally:
                timer.cancel()
                lease.conn = None
                await self.pool.putconn(conn)
        except PoolTimeout as exc:
            # Waiting out the budget while the pool had room to connect means connecting failed or hung; with every
            # connection busy it only means load, which is no reason to refuse everyone.
            if self.pool.get_stats().get("pool_size", 0) < self.pool.max_size:
                self.breaker.failure(exc)
            raise
        except psycopg.Error as exc:
            if lease.expired:
                raise DatabaseTimeout(f"no answer from the database within {budget:g} s") from exc
            raise
        finally:
            timer.cancel()
        self.breaker.success()
        return result

    async def _acquire(self, lease: _Lease, deadline: float, loop: asyncio.AbstractEventLoop) -> Connection:
        while True:
            self.breaker.check()
            wait = min(self._acquire_timeout, deadline - loop.time())
            conn = await self._getconn(lease, max(wait, 0.001))
            if lease.expired:
                # Handed over just after the deadline, when no timer is left to bound what would follow.
                await self.pool.putconn(conn)
                raise DatabaseTimeout("no connection within the deadline")
            lease.hold(conn)
            try:
                # A pooled connection may have died with the server (restart, failover): test it before use.
                await AsyncConnectionPool.check_connection(conn)
            except psycopg.Error as exc:
                lease.conn = None
                await self.pool.putconn(conn)
                if lease.expired:
                    self._count_silence(lease, exc)
                    raise
                continue
            return conn

    async def _getconn(self, lease: _Lease, timeout: float) -> Connection:
        lease.task = asyncio.current_task()
        self._waiting.add(lease)
        try:
            return await self.pool.getconn(timeout=timeout)
        except asyncio.CancelledError:
            # Cancelled by _refuse_waiting, and by nobody else: answer now instead of waiting out the budget.
            if lease.refused and lease.task is not None and lease.task.uncancel() == 0:
                raise CircuitOpen("the database became unreachable while this call waited for a connection") from None
            raise
        finally:
            self._waiting.discard(lease)

    def _refuse_waiting(self) -> None:
        for lease in self._waiting:
            if lease.task is not None and not lease.refused:
                lease.refused = True
                lease.task.cancel()

    def _judge(self, lease: _Lease, conn: Connection, exc: psycopg.Error) -> None:
        if lease.expired:
            self._count_silence(lease, exc)
        elif conn.broken or conn.closed:
            self.breaker.failure(exc)
        else:
            # The server answered, if only with an error (a statement timeout included): it is reachable.
            self.breaker.success()

    def _count_silence(self, lease: _Lease, exc: BaseException) -> None:
        # Silence for longer than the server's own statement timeout means nobody is answering; a call that spent
        # its budget waiting for a pooled connection says nothing about the server.
        if lease.held_for >= self.statement_timeout:
            self.breaker.failure(exc)

    async def ping(self, *, timeout: float) -> None:
        await self.run(_select_one, timeout=timeout)


async def _select_one(conn: Connection) -> None:
    await conn.execute("SELECT 1")
