"""Where this task runs, from the ECS task metadata endpoint v4 (absent outside ECS)."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Placement:
    region: str | None = None
    availability_zone: str | None = None


class TaskMetadata:
    """Fetched once in the background at start-up and cached; until then (or without ECS) fields are None."""

    def __init__(self, *, uri: str | None, timeout: float = 2.0, attempts: int = 3) -> None:
        self._uri = uri
        self._timeout = timeout
        self._attempts = attempts
        self.placement = Placement()

    async def load(self) -> None:
        if not self._uri:
            return
        for attempt in range(self._attempts):
            try:
                document = await asyncio.to_thread(self._get, f"{self._uri}/task")
                self.placement = _placement(document)
                return
            except (OSError, ValueError) as exc:
                logger.warning("task metadata unavailable: %s", exc, extra={"event": "task_metadata_unavailable"})
                await asyncio.sleep(0.5 * 2**attempt)

    def _get(self, url: str) -> object:
        with urllib.request.urlopen(url, timeout=self._timeout) as response:
            return json.loads(response.read())


def _placement(document: object) -> Placement:
    if not isinstance(document, dict):
        raise ValueError("task metadata is not a JSON object")
    task_arn = document.get("TaskARN")
    region = task_arn.split(":")[3] if isinstance(task_arn, str) and task_arn.count(":") >= 5 else None
    zone = document.get("AvailabilityZone")
    return Placement(region=region or None, availability_zone=zone if isinstance(zone, str) else None)
