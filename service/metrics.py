"""Per-request telemetry: one JSON line that is both the request log line and the EMF metrics document.

CloudWatch extracts the metrics from the `_aws` block and keeps the whole line as an ordinary log event,
so the metric filters in stages/ match the same line.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_embedded_metrics.logger.metrics_context import MetricsContext
from aws_embedded_metrics.serializers.log_serializer import LogSerializer
from aws_embedded_metrics.storage_resolution import StorageResolution

from service.logs import OUTPUT, LineWriter

REQUEST_LOGGER = "service.request"
METRICS = (("Requests", "Count"), ("ServerErrors", "Count"), ("Latency", "Milliseconds"))


def declare(*, environment: str, namespace: str) -> MetricsContext:
    """The request metrics as aws-embedded-metrics declares them: high resolution, dimension set [Environment]."""
    context = MetricsContext(namespace=namespace)
    context.set_dimensions([{"Environment": environment}])
    for name, unit in METRICS:
        context.put_metric(name, 0, unit, StorageResolution.HIGH)
    return context


class RequestTelemetry:
    """Writes one line per request: our log fields plus the EMF document the library serializes.

    The library validates and serializes the metric declarations once; per request only the values and
    the timestamp change, so we reuse its `_aws` directive instead of re-running its serializer, which
    would cost more than the rest of a `GET /` (tests check the line equals the library's own output).
    """

    def __init__(self, *, environment: str, namespace: str, writer: LineWriter = OUTPUT) -> None:
        document = json.loads(LogSerializer.serialize(declare(environment=environment, namespace=namespace))[0])
        self._directives: list[dict[str, Any]] = document["_aws"]["CloudWatchMetrics"]
        self._environment = environment
        self._writer = writer

    def record(self, *, request_id: str, method: str, path: str, status: int, duration_ms: float) -> None:
        server_error = status >= 500
        line = {
            "Environment": self._environment,
            # ERROR lines always carry a stack trace (logged where the error happened); a failed request is a WARNING.
            "level": "WARNING" if server_error else "INFO",
            "logger": REQUEST_LOGGER,
            "message": f"{method} {path} {status}",
            "event": "request",
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": self._directives},
            "Requests": 1,
            "ServerErrors": 1 if server_error else 0,
            "Latency": duration_ms,
        }
        self._writer.write_soon(json.dumps(line))
