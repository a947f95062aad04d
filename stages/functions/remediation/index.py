"""Auto-remediation beyond rollback: the "running tasks below minimum" alarm is in ALARM, so replace the tasks.

Invoked by EventBridge on the alarm's change to ALARM, and every few minutes by a schedule: the rule fires only on
the transition, so a run that had to skip (deployment in progress, rate limit, tasks still starting) is retried by
the schedule for as long as the alarm stays in ALARM. Scheduled runs read the alarm's state themselves and stay
silent unless they act.

Forces a new deployment only when ECS is not already replacing tasks (no deployment in progress, no task pending),
the service is still short of tasks, and no deployment started within MIN_INTERVAL_SECONDS. Without reserved
concurrency two invocations can overlap, so acting needs a claim first: a conditional write in the claims table,
keyed by the deployment the decision was based on. Only one invocation wins it; a claim lapses after the interval,
so a run that claimed and then failed does not block the next one for long.

ECS ignores deployment alarms that are already in ALARM when a deployment starts: a forced deployment then has no
alarm rollback (the circuit breaker still applies). It redeploys the revision that is running, so a rollback would
lead back to the same revision; the run acts anyway and says so in its message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

ACT = "force_new_deployment"
SKIP = "skip"
DEFAULT_MIN_INTERVAL_SECONDS = 900
DEFAULT_RECHECK_MINUTES = 5
SUBJECT_LIMIT = 100
CLAIM_TTL_SECONDS = 86400
# skips that a later run (the schedule) may turn into an action while the alarm stays in ALARM
RETRIED = frozenset({"deployment_in_progress", "tasks_starting", "rate_limited", "claimed_elsewhere"})


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    detail: str


def decide(
    service: Mapping[str, Any] | None,
    *,
    alarm_state: str | None,
    now: datetime,
    min_interval_seconds: int,
    firing_deployment_alarms: Sequence[str] = (),
) -> Decision:
    """Pure decision over the alarm states and one DescribeServices entry."""
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

    running, pending, desired = (service.get(k, 0) for k in ("runningCount", "pendingCount", "desiredCount"))
    if running >= desired:
        return Decision(SKIP, "recovered", f"running {running} >= desired {desired}; the service has recovered")
    if running + pending >= desired:
        return Decision(
            SKIP,
            "tasks_starting",
            f"running {running} < desired {desired}, but ECS is starting {pending} task(s); a new deployment would "
            "only replace them",
        )

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
    detail = (
        f"running {running} (+{pending} pending) < desired {desired} with no deployment in progress; "
        "forcing a new deployment"
    )
    if firing_deployment_alarms:
        detail += (
            f". Deployment alarms already in ALARM: {', '.join(firing_deployment_alarms)}. ECS only acts on alarms "
            "that go into ALARM during a deployment, so this one has no alarm rollback (the circuit breaker still "
            "applies); it redeploys the running revision"
        )
    return Decision(ACT, "below_minimum", detail)


def _event_alarm(event: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    detail = event.get("detail") or {}
    state = detail.get("state") or {}
    return detail.get("alarmName"), state.get("value"), state.get("reason", "")


def _is_scheduled(event: Mapping[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def _subject(text: str) -> str:
    # SNS subjects: ASCII, no line breaks, at most 100 characters
    clean = " ".join(text.encode("ascii", "replace").decode("ascii").split())
    return clean if len(clean) <= SUBJECT_LIMIT else clean[: SUBJECT_LIMIT - 3] + "..."


def alarm_states(cloudwatch: Any, names: Sequence[str]) -> dict[str, str]:
    """Current state of each named alarm; a name missing from the answer is unknown."""
    if not names:
        return {}
    described = cloudwatch.describe_alarms(AlarmNames=list(names), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    found = list(described.get("MetricAlarms") or []) + list(described.get("CompositeAlarms") or [])
    return {alarm["AlarmName"]: alarm.get("StateValue", "") for alarm in found}


def claim(
    dynamodb: Any, *, table: str, key: str, event_id: str, now: datetime, lease_seconds: int
) -> bool:
    """Conditional write: True for the one invocation that may act after the deployment `key` names."""
    stamp = int(now.timestamp())
    try:
        dynamodb.put_item(
            TableName=table,
            Item={
                "claim": {"S": key},
                "claimedAt": {"N": str(stamp)},
                "expiresAt": {"N": str(stamp + CLAIM_TTL_SECONDS)},
                "eventId": {"S": event_id},
            },
            ConditionExpression="attribute_not_exists(#claim) OR #claimedAt < :lapsed",
            ExpressionAttributeNames={"#claim": "claim", "#claimedAt": "claimedAt"},
            ExpressionAttributeValues={":lapsed": {"N": str(stamp - lease_seconds)}},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    cluster: str
    service_name: str
    topic_arn: str
    alarm_name: str
    deployment_alarm_names: tuple[str, ...]
    claims_table: str
    min_interval_seconds: int
    recheck_minutes: int = DEFAULT_RECHECK_MINUTES


def remediate(
    event: Mapping[str, Any],
    *,
    ecs: Any,
    sns: Any,
    cloudwatch: Any,
    dynamodb: Any,
    settings: Settings,
    now: datetime,
) -> dict[str, Any]:
    scheduled = _is_scheduled(event)
    event_alarm, event_state, alarm_reason = _event_alarm(event)
    alarm_name = event_alarm or settings.alarm_name
    states = alarm_states(cloudwatch, [settings.alarm_name, *settings.deployment_alarm_names])
    # the state now, not at the transition: a late or repeated event must not act on an alarm that cleared
    alarm_state = states.get(settings.alarm_name) or event_state
    firing = [name for name in settings.deployment_alarm_names if states.get(name) == "ALARM"]
    if scheduled and alarm_state != "ALARM":
        decision = Decision(SKIP, "not_in_alarm", f"the alarm state is {alarm_state or 'unknown'}, not ALARM")
        return _quiet(decision, alarm_name, event)

    described = ecs.describe_services(cluster=settings.cluster, services=[settings.service_name])
    service = (described.get("services") or [None])[0]
    decision = decide(
        service,
        alarm_state=alarm_state,
        now=now,
        min_interval_seconds=settings.min_interval_seconds,
        firing_deployment_alarms=firing,
    )

    deployment_id = None
    error = None
    if decision.action == ACT:
        based_on = next((d.get("id") for d in (service or {}).get("deployments") or [] if d.get("status") == "PRIMARY"),
                        None) or "none"
        key = f"{settings.cluster}/{settings.service_name}/{based_on}"
        if not claim(dynamodb, table=settings.claims_table, key=key, event_id=str(event.get("id", "unknown")),
                     now=now, lease_seconds=settings.min_interval_seconds):
            decision = Decision(
                SKIP,
                "claimed_elsewhere",
                f"another invocation already claimed the remediation after deployment {based_on}; not forcing another",
            )
    if decision.action == ACT:
        try:
            updated = ecs.update_service(cluster=settings.cluster, service=settings.service_name,
                                         forceNewDeployment=True)
            primary = next(
                (d for d in updated["service"].get("deployments", []) if d.get("status") == "PRIMARY"), {}
            )
            deployment_id = primary.get("id")
        except Exception as exc:  # report the failure to people before the invocation fails
            error = f"{type(exc).__name__}: {exc}"

    verb = {ACT: "forced a new deployment" if error is None else "FAILED to force a new deployment"}.get(
        decision.action, f"skipped ({decision.reason})"
    )
    result = {
        "decision": asdict(decision),
        "acted": decision.action == ACT and error is None,
        "deploymentId": deployment_id,
        "error": error,
        "alarm": alarm_name,
        "alarmState": alarm_state,
        "deploymentAlarmsInAlarm": firing,
        "scheduled": scheduled,
        "eventId": event.get("id"),
    }
    print(json.dumps({"level": "ERROR" if error else "INFO", "logger": "remediation", "message": verb, **result}))
    if decision.action == ACT or not scheduled:
        lines = [
            f"Alarm: {alarm_name} ({alarm_state or 'unknown state'})",
            f"Alarm reason: {alarm_reason}" if alarm_reason else None,
            f"Service: {settings.service_name} in cluster {settings.cluster}",
            f"Decision: {verb}",
            f"Why: {decision.detail}",
            f"New deployment: {deployment_id}" if deployment_id else None,
            f"Error: {error}" if error else None,
            f"Re-checked every {settings.recheck_minutes} minutes while the alarm stays in ALARM."
            if decision.reason in RETRIED
            else None,
            f"Event id: {event.get('id', 'unknown')}{' (scheduled re-check)' if scheduled else ''}, "
            f"decided at {now.isoformat()}",
            "Next: if the service stays below its minimum, check stopped-task reasons and recent deploys."
            if decision.action == ACT
            else None,
        ]
        sns.publish(
            TopicArn=settings.topic_arn,
            Subject=_subject(f"Remediation {settings.service_name}: {verb}"),
            Message="\n".join(line for line in lines if line),
        )
    if error:
        raise RuntimeError(f"remediation failed: {error}")
    return result


def _quiet(decision: Decision, alarm_name: str, event: Mapping[str, Any]) -> dict[str, Any]:
    result = {"decision": asdict(decision), "acted": False, "alarm": alarm_name, "scheduled": True,
              "eventId": event.get("id")}
    print(json.dumps({"level": "DEBUG", "logger": "remediation", "message": "nothing to do", **result}))
    return result


_clients: dict[str, Any] = {}


def _client(name: str) -> Any:
    if name not in _clients:
        import boto3

        _clients[name] = boto3.client(name)
    return _clients[name]


def _whole_number(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def settings_from_environment() -> Settings:
    return Settings(
        cluster=os.environ["CLUSTER_NAME"],
        service_name=os.environ["SERVICE_NAME"],
        topic_arn=os.environ["TOPIC_ARN"],
        alarm_name=os.environ["ALARM_NAME"],
        deployment_alarm_names=tuple(
            name.strip() for name in os.environ.get("DEPLOYMENT_ALARM_NAMES", "").split(",") if name.strip()
        ),
        claims_table=os.environ["CLAIMS_TABLE"],
        min_interval_seconds=_whole_number("MIN_INTERVAL_SECONDS", DEFAULT_MIN_INTERVAL_SECONDS),
        recheck_minutes=_whole_number("RECHECK_MINUTES", DEFAULT_RECHECK_MINUTES),
    )


def handler(event: Mapping[str, Any], context: Any, *, ecs: Any = None, sns: Any = None, cloudwatch: Any = None,
            dynamodb: Any = None, now: datetime | None = None) -> dict[str, Any]:
    settings = settings_from_environment()
    return remediate(
        event or {},
        ecs=ecs or _client("ecs"),
        sns=sns or _client("sns"),
        cloudwatch=cloudwatch or _client("cloudwatch"),
        dynamodb=dynamodb or _client("dynamodb"),
        settings=settings,
        now=now or datetime.now(timezone.utc),
    )
