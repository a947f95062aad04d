"""The drill's fault switch: fail a share of requests and delay them, so a rollback can be rehearsed on demand.

Only `/` and `/api/*` are touched. `/healthz` and `/readyz` never are: ECS keeps the tasks, and the rollback the drill
rehearses is the one the 5xx and latency alarms start.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from service.settings import Settings


class InjectedFault(Exception):
    """Raised instead of serving a request; it becomes an ordinary 500 (logged, counted as a server error)."""


class FaultInjector:
    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        latency_ms: int = 0,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        self._draw = draw
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> FaultInjector:
        return cls(error_rate=settings.fault_error_rate, latency_ms=settings.fault_latency_ms)

    @property
    def enabled(self) -> bool:
        return self.error_rate > 0 or self.latency_ms > 0

    def describe(self) -> str:
        return f"FAULT_ERROR_RATE={self.error_rate:g} FAULT_LATENCY_MS={self.latency_ms}"

    @staticmethod
    def applies_to(path: str) -> bool:
        return path == "/" or path.startswith("/api/") or path == "/api"

    async def before(self, path: str) -> None:
        """Delay the request, then maybe fail it; a no-op for paths the switch leaves alone."""
        if not self.applies_to(path):
            return
        if self.latency_ms:
            await self._sleep(self.latency_ms / 1000)
        # random() is in [0, 1): a rate of 1 fails every request, a rate of 0 none.
        if self.error_rate and self._draw() < self.error_rate:
            raise InjectedFault(f"injected by the fault switch ({self.describe()})")
