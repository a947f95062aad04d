"""ECS native blue/green/canary lifecycle hook (POST_TEST_TRAFFIC_SHIFT): smoke-test the green tasks.

ECS rolls the deployment back on FAILED, on an exception, and on a missing hookStatus, so every path returns one,
and every invocation answers before the Lambda timeout: the smoke test gets the time the invocation has left
(`context.get_remaining_time_in_millis()`) minus a reserve for answering. When the new tasks are not ready yet, the
budget runs out, or the old version still answers, the hook returns IN_PROGRESS with a callBackDelay and ECS calls
it again; `hookDetails` carries the first invocation's time, so the whole hook gives up (FAILED) after
HOOK_DEADLINE_SECONDS. With EXPECTED_VERSION set, the hook passes only when the tasks behind the test listener
report that version, which proves it tested the new tasks.

The whole smoke/ folder is the Lambda asset; the handler is lifecycle_hook.handler. No AWS API calls.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from smoke_test import DEFAULT_READY_WAIT, DEFAULT_TIMEOUT, CheckResult, run_smoke, safe_url

# time kept back from each invocation to log and answer ECS
RESERVED_SECONDS = 5.0
# what the checks after readiness need: about a dozen requests against a healthy service
CHECKS_SECONDS = 20.0
# the least budget worth starting a run with: readiness probe plus the checks
MIN_RUN_SECONDS = CHECKS_SECONDS + DEFAULT_TIMEOUT
CALLBACK_DELAY_SECONDS = 15
DEFAULT_HOOK_DEADLINE_SECONDS = 600.0
# used when there is no Lambda context (local runs and tests)
DEFAULT_BUDGET_SECONDS = 60.0


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _execution_details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    # the payload nests the deployment fields under executionDetails; accept them at the top level too
    details = event.get("executionDetails")
    return details if isinstance(details, Mapping) else event


def _hook_state(event: Mapping[str, Any]) -> Mapping[str, Any]:
    # ECS passes back the hookDetails an IN_PROGRESS answer returned, at the top level of the next event
    state = event.get("hookDetails")
    return state if isinstance(state, Mapping) else {}


def _budget(context: Any) -> float:
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return DEFAULT_BUDGET_SECONDS
    return remaining_ms() / 1000 - RESERVED_SECONDS


def handler(
    event: Mapping[str, Any],
    context: Any,
    *,
    smoke: Callable[..., list[CheckResult]] = run_smoke,
    log: Callable[[str], None] = print,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    started = time.monotonic()
    event = event or {}
    details = _execution_details(event)
    state = _hook_state(event)
    try:
        first_invoked = float(state.get("firstInvokedAt") or now())
        attempt = int(state.get("attempt") or 0) + 1
    except (TypeError, ValueError):
        first_invoked, attempt = now(), 1
    record: dict[str, Any] = {
        "logger": "lifecycle_hook",
        "event": "smoke",
        "lifecycleStage": event.get("lifecycleStage"),
        "targetServiceRevisionArn": details.get("targetServiceRevisionArn"),
        "attempt": attempt,
    }
    answer: dict[str, Any]
    try:
        base_url = os.environ["TEST_URL"].strip()
        if not base_url:
            raise KeyError("TEST_URL")
        expected_environment = os.environ.get("EXPECTED_ENVIRONMENT", "").strip() or None
        expected_version = os.environ.get("EXPECTED_VERSION", "").strip() or None
        hook_deadline = first_invoked + _float_env("HOOK_DEADLINE_SECONDS", DEFAULT_HOOK_DEADLINE_SECONDS)

        def another_run_fits() -> bool:
            return hook_deadline - now() > CALLBACK_DELAY_SECONDS + MIN_RUN_SECONDS

        budget = min(_budget(context), hook_deadline - now())
        record.update(
            url=safe_url(base_url),
            expected_environment=expected_environment,
            expected_version=expected_version or "not checked",
            budget_seconds=round(budget, 1),
        )
        if budget < MIN_RUN_SECONDS:
            # too little time left in this invocation (or the hook's deadline) for a whole run
            answer = _again(first_invoked, attempt) if another_run_fits() else {"hookStatus": "FAILED"}
            record.update(error=f"only {budget:.0f}s left for a smoke test run")
        else:
            results = smoke(
                base_url,
                expect_environment=expected_environment,
                expect_version=expected_version,
                timeout=_float_env("SMOKE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT),
                ready_wait=max(0.0, min(_float_env("READY_WAIT_SECONDS", DEFAULT_READY_WAIT), budget - CHECKS_SECONDS)),
                host_header=os.environ.get("HOST_HEADER", "").strip() or None,
                budget=budget,
            )
            failed = [r for r in results if not r.ok]
            record.update(checks=len(results), failed=[{"check": r.name, "detail": r.detail} for r in failed])
            if results and not failed:
                answer = {"hookStatus": "SUCCEEDED"}
            elif failed and all(r.retryable for r in failed) and another_run_fits():
                answer = _again(first_invoked, attempt)
            else:
                answer = {"hookStatus": "FAILED"}
    except Exception as exc:  # any error must still answer FAILED, never leave ECS guessing
        record.update(error=f"{type(exc).__name__}: {exc}")
        answer = {"hookStatus": "FAILED"}
    status = answer["hookStatus"]
    record.update(
        level={"SUCCEEDED": "INFO", "IN_PROGRESS": "WARNING"}.get(status, "ERROR"),
        message=f"smoke test {status.lower().replace('_', ' ')}",
        hookStatus=status,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    log(json.dumps(record, default=str))
    return answer


def _again(first_invoked: float, attempt: int) -> dict[str, Any]:
    return {
        "hookStatus": "IN_PROGRESS",
        "callBackDelay": CALLBACK_DELAY_SECONDS,
        "hookDetails": {"firstInvokedAt": first_invoked, "attempt": attempt},
    }
