"""ECS native blue/green/canary lifecycle hook (POST_TEST_TRAFFIC_SHIFT): smoke-test the green tasks.

ECS rolls the deployment back on FAILED, on an exception, and on a missing hookStatus, so every path returns one.
The whole smoke/ folder is the Lambda asset; the handler is lifecycle_hook.handler.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from smoke_test import DEFAULT_READY_WAIT, DEFAULT_TIMEOUT, CheckResult, run_smoke, safe_url

RESERVED_SECONDS = 20.0


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _ready_wait(context: Any) -> float:
    wanted = _float_env("READY_WAIT_SECONDS", DEFAULT_READY_WAIT)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return wanted
    # leave time for the API checks and the answer: a hook that times out gives ECS no hookStatus and no log line
    return max(0.0, min(wanted, remaining_ms() / 1000 - RESERVED_SECONDS))


def _execution_details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    # the payload nests the deployment fields under executionDetails; accept them at the top level too
    details = event.get("executionDetails")
    return details if isinstance(details, Mapping) else event


def handler(
    event: Mapping[str, Any],
    context: Any,
    *,
    smoke: Callable[..., list[CheckResult]] = run_smoke,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    started = time.monotonic()
    details = _execution_details(event or {})
    record: dict[str, Any] = {
        "logger": "lifecycle_hook",
        "event": "smoke",
        "lifecycleStage": (event or {}).get("lifecycleStage"),
        "targetServiceRevisionArn": details.get("targetServiceRevisionArn"),
    }
    try:
        base_url = os.environ["TEST_URL"].strip()
        if not base_url:
            raise KeyError("TEST_URL")
        expected_environment = os.environ.get("EXPECTED_ENVIRONMENT", "").strip() or None
        record.update(url=safe_url(base_url), expected_environment=expected_environment)
        results = smoke(
            base_url,
            expect_environment=expected_environment,
            expect_version=os.environ.get("EXPECTED_VERSION", "").strip() or None,
            timeout=_float_env("SMOKE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT),
            ready_wait=_ready_wait(context),
            host_header=os.environ.get("HOST_HEADER", "").strip() or None,
        )
        failed = [r for r in results if not r.ok]
        record.update(
            checks=len(results),
            failed=[{"check": r.name, "detail": r.detail} for r in failed],
        )
        status = "SUCCEEDED" if results and not failed else "FAILED"
    except Exception as exc:  # any error must still answer FAILED, never leave ECS guessing
        record.update(error=f"{type(exc).__name__}: {exc}")
        status = "FAILED"
    record.update(
        level="INFO" if status == "SUCCEEDED" else "ERROR",
        message=f"smoke test {status.lower()}",
        hookStatus=status,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    log(json.dumps(record, default=str))
    return {"hookStatus": status}
