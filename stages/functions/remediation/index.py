"""Auto-remediation beyond rollback: the "running tasks below minimum" alarm fired, so replace the tasks.

Invoked by EventBridge on the alarm's change to ALARM. Forces a new deployment only when ECS is not already
replacing tasks, the service is still short of tasks, and no deployment started within MIN_INTERVAL_SECONDS.
The rate limit doubles as idempotency: a forced deployment is the newest one, so a duplicate event skips.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

ACT = "force_new_deployment"
SKIP = "skip"
DEFAULT_MIN_INTERVAL_SECONDS = 900
SUBJECT_LIMIT = 100


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    detail: str


def decide(
    service: Mapping[str, Any] | None, *, alarm_state: str | None, now: datetime, min_interval_seconds: int
) -> Decision:
    """Pure decision over the alarm state and one DescribeServices entry."""
    if alarm_state != "ALARM":
        return Decision(SKIP, "not_in_alarm", f"the alarm state is {alarm_state or 'unknown'}, not ALARM")
    if not service or service.get("status") != "ACTIVE":
        status = service.get("status") if service else "not found"
        return Decision(SKIP, "service_unavailable", f"the service is {status}; nothing to remediate")

    deployments = service.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    if len(deployments) > 1 or primary.get("rolloutState") == "IN_PROGRESS":
        return Decision(
            SKIP,
            "deployment_in_progress",
            f"a deployment is in progress ({len(deployments)} deployment(s), primary rolloutState "
            f"{primary.get('rolloutState', 'unknown')}); ECS is already replacing tasks",
        )

    running, desired = service.get("runningCount", 0), service.get("desiredCount", 0)
    if running >= desired:
        return Decision(SKIP, "recovered", f"running {running} >= desired {desired}; the service has recovered")

    created = [d["createdAt"] for d in deployments if isinstance(d.get("createdAt"), datetime)]
    if created:
        age = (now - max(created)).total_seconds()
        if age < min_interval_seconds:
            return Decision(
                SKIP,
                "rate_limited",
                f"running {running} < desired {desired}, but the newest deployment started {age:.0f}s ago "
                f"(minimum interval {min_interval_seconds}s); not forcing another",
            )
    return Decision(
        ACT,
        "below_minimum",
        f"running {running} < desired {desired} with no deployment in progress; forcing a new deployment",
    )


def _alarm(event: Mapping[str, Any]) -> tuple[str, str | None, str]:
    detail = event.get("detail") or {}
    state = detail.get("state") or {}
    return detail.get("alarmName", "unknown alarm"), state.get("value"), state.get("reason", "")


def _subject(text: str) -> str:
    # SNS subjects: ASCII, no line breaks, at most 100 characters
    clean = " ".join(text.encode("ascii", "replace").decode("ascii").split())
    return clean if len(clean) <= SUBJECT_LIMIT else clean[: SUBJECT_LIMIT - 3] + "..."


def remediate(
    event: Mapping[str, Any],
    *,
    ecs: Any,
    sns: Any,
    cluster: str,
    service_name: str,
    topic_arn: str,
    min_interval_seconds: int,
    now: datetime,
) -> dict[str, Any]:
    alarm_name, alarm_state, alarm_reason = _alarm(event)
    described = ecs.describe_services(cluster=cluster, services=[service_name])
    service = (described.get("services") or [None])[0]
    decision = decide(service, alarm_state=alarm_state, now=now, min_interval_seconds=min_interval_seconds)

    deployment_id = None
    error = None
    if decision.action == ACT:
        try:
            updated = ecs.update_service(cluster=cluster, service=service_name, forceNewDeployment=True)
            primary = next(
                (d for d in updated["service"].get("deployments", []) if d.get("status") == "PRIMARY"), {}
            )
            deployment_id = primary.get("id")
        except Exception as exc:  # report the failure to people before the invocation fails
            error = f"{type(exc).__name__}: {exc}"

    verb = {ACT: "forced a new deployment" if error is None else "FAILED to force a new deployment"}.get(
        decision.action, f"skipped ({decision.reason})"
    )
    subject = _subject(f"Remediation {service_name}: {verb}")
    lines = [
        f"Alarm: {alarm_name} ({alarm_state or 'unknown state'})",
        f"Alarm reason: {alarm_reason}" if alarm_reason else None,
        f"Service: {service_name} in cluster {cluster}",
        f"Decision: {verb}",
        f"Why: {decision.detail}",
        f"New deployment: {deployment_id}" if deployment_id else None,
        f"Error: {error}" if error else None,
        f"Event id: {event.get('id', 'unknown')}, decided at {now.isoformat()}",
        "Next: if the service stays below its minimum, check stopped-task reasons and recent deploys."
        if decision.action == ACT
        else None,
    ]
    message = "\n".join(line for line in lines if line)
    result = {
        "decision": asdict(decision),
        "acted": decision.action == ACT and error is None,
        "deploymentId": deployment_id,
        "error": error,
        "alarm": alarm_name,
        "eventId": event.get("id"),
    }
    print(json.dumps({"level": "ERROR" if error else "INFO", "logger": "remediation", "message": verb, **result}))
    sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
    if error:
        raise RuntimeError(f"remediation failed: {error}")
    return result


_clients: dict[str, Any] = {}


def _client(name: str) -> Any:
    if name not in _clients:
        import boto3

        _clients[name] = boto3.client(name)
    return _clients[name]


def handler(event: Mapping[str, Any], context: Any, *, ecs: Any = None, sns: Any = None,
            now: datetime | None = None) -> dict[str, Any]:
    raw_interval = os.environ.get("MIN_INTERVAL_SECONDS", "").strip()
    try:
        min_interval = int(raw_interval) if raw_interval else DEFAULT_MIN_INTERVAL_SECONDS
    except ValueError:
        raise ValueError(f"MIN_INTERVAL_SECONDS must be a whole number of seconds, got {raw_interval!r}") from None
    return remediate(
        event,
        ecs=ecs or _client("ecs"),
        sns=sns or _client("sns"),
        cluster=os.environ["CLUSTER_NAME"],
        service_name=os.environ["SERVICE_NAME"],
        topic_arn=os.environ["TOPIC_ARN"],
        min_interval_seconds=min_interval,
        now=now or datetime.now(timezone.utc),
    )
