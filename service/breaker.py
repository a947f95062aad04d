"""Fail fast while the database is unreachable.

After a few connection-level failures in a row (a connection refused or timed out, one dropped, a wait for a
connection the pool could not open, a server that let its own statement timeout pass without answering) the breaker
opens: every database call is refused at once, and calls already waiting for a connection are refused too, so
requests get their 503 in microseconds instead of each waiting out its budget. A background probe tries a fresh
connection every `probe_interval` seconds and closes the breaker on its first success. Any answer from the server in
between (a result or an SQL error) resets the count, so a slow or briefly unlucky database never opens it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be used right now; the request fails with 503 and Retry-After."""


class CircuitOpen(DatabaseUnavailable):
    """Refused without trying: the breaker is open."""


class CircuitBreaker:
    def __init__(
        self,
        *,
        probe: Callable[[], Awaitable[None]],
        on_open: Callable[[], None] = lambda: None,
        failure_threshold: int = 3,
        probe_interval: float = 0.25,
        log_interval: float = 10.0,
    ) -> None:
        self._probe = probe
        self._on_open = on_open
        self._threshold = failure_threshold
        self._interval = probe_interval
        self._log_interval = log_interval
        self._failures = 0
        self._opened_at: float | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._prober: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def check(self) -> None:
        if self._opened_at is not None:
            raise CircuitOpen(f"database unreachable for {time.monotonic() - self._opened_at:.1f} s; failing fast")

    def success(self) -> None:
        self._failures = 0
        if self._opened_at is not None:
            self._close()

    def failure(self, exc: BaseException) -> None:
        self._failures += 1
        if self._opened_at is None and self._failures >= self._threshold:
            self._open(exc)

    async def wait_closed(self, *, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._stopped = True
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
            self._prober = None

    def _open(self, exc: BaseException) -> None:
        self._opened_at = time.monotonic()
        self._closed.clear()
        logger.error(
            "database unreachable after %d failures in a row: failing fast until a probe succeeds",
            self._failures,
            exc_info=exc,
            extra={"event": "db_error", "circuit": "open"},
        )
        if not self._stopped and (self._prober is None or self._prober.done()):
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_reachable())
        self._on_open()

    def _close(self) -> None:
        opened_at, self._opened_at = self._opened_at, None
        self._failures = 0
        self._closed.set()
        outage = time.monotonic() - opened_at if opened_at is not None else 0.0
        logger.info(
            "database reachable again after %.1f s",
            outage,
            extra={"event": "db_recovered", "circuit": "closed", "outage_seconds": round(outage, 3)},
        )

    async def _probe_until_reachable(self) -> None:
        logged_at = time.monotonic()
        while self._opened_at is not None:
            await asyncio.sleep(self._interval)
            if self._opened_at is None:
                return
            try:
                await self._probe()
            except Exception as exc:  # noqa: BLE001 - any failure means "still unreachable"
                # One line now and then keeps the db_error alarm firing through a long outage without a flood.
                if time.monotonic() - logged_at >= self._log_interval:
                    logged_at = time.monotonic()
                    logger.warning(
                        "database still unreachable: %s: %s",
                        type(exc).__name__,
                        exc,
                        extra={"event": "db_error", "circuit": "open"},
                    )
            else:
                self.success()
