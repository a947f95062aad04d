"""Post-deploy check: ECS really rolled out what this stage deployed, and nothing rolled it back.

CloudFormation can report success after ECS rolled a deployment back (the "false green"). When the task definition
did not change (a network, load balancer or deployment-setting change), the rolled-back service even runs the
"expected" task definition. So the pipeline asks ECS about every service deployment created since this stage
started (ListServiceDeployments, every page): none may have been rolled back, the newest must be SUCCESSFUL, and
the PRIMARY deployment must be that deployment's target revision (matched by id, not by time). With no service
deployment since the stage started, the stack changed nothing in the service: it passes only when the PRIMARY
deployment is COMPLETED on the expected task definition and the service's current deployment was not rolled back.

The stage's start comes from --since, or else from CloudFormation (the stack's LastUpdatedTime, or CreationTime for
a new stack). Runs in a CodeBuild step with boto3.

Exit codes: 0 verified, 1 deployment failed or rolled back, 2 bad arguments, 3 timed out, 4 AWS API error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# Run as a file in CodeBuild (and loaded by path in tests): the shared sibling module sits next to it.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Exit codes are part of each script's interface (documented in its --help), hence re-exported.
from aws_session import (  # noqa: E402, F401
    EXIT_AWS_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    Outcome,
    add_polling_arguments,
    assumed_session,
    check_polling_arguments,
    client_config,
    env,
    run_check,
)

PASSED = "passed"
FAILED = "failed"
WAITING = "waiting"

ROLLED_BACK = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
STOPPED = frozenset({"STOPPED", "STOP_REQUESTED"})
RUNNING = frozenset({"PENDING", "IN_PROGRESS"})
# a service deployment in one of these states never changes again, so its description is cached
FINAL = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
PAGE_SIZE = 100  # the most ListServiceDeployments returns per page
DESCRIBE_BATCH = 20  # the most ARNs DescribeServiceDeployments / DescribeServiceRevisions take
# ECS and CloudFormation clocks are both AWS's, but --since may come from the build's clock
SINCE_SKEW = timedelta(seconds=60)
DEFAULT_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Verdict:
    state: str
    message: str


@dataclass(frozen=True)
class Observation:
    """The raw API responses one poll saw; `decide` needs nothing else."""

    services: Mapping[str, Any]
    since: datetime | None = None
    # ListServiceDeployments entries created since the stage started, every page
    service_deployments: Sequence[Mapping[str, Any]] = ()
    # DescribeServiceRevisions / DescribeServiceDeployments entries by ARN
    revisions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def same_task_definition(actual: str | None, expected: str) -> bool:
    if not actual:
        return False
    if expected.startswith("arn:"):
        return actual == expected
    # "family:revision" is accepted for manual runs; a full ARN is compared exactly
    return actual.rsplit("task-definition/", 1)[-1] == expected


def short_td(arn: str | None) -> str:
    return (arn or "<none>").rsplit("task-definition/", 1)[-1]


def short_arn(arn: str | None) -> str:
    return (arn or "<none>").rsplit("/", 1)[-1]


def revision_id_of_deployment(deployment: Mapping[str, Any]) -> str:
    # a deployment "ecs-svc/N" runs service revision ".../service-revision/<cluster>/<service>/N"
    return str(deployment.get("id") or "").rsplit("/", 1)[-1]


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _order(brief: Mapping[str, Any]) -> tuple[float, float, str]:
    # ListServiceDeployments documents no order: sort by creation, then start, then ARN for a stable answer
    return _timestamp(brief.get("createdAt")), _timestamp(brief.get("startedAt")), brief.get("serviceDeploymentArn", "")


def _rolled_back(brief: Mapping[str, Any], detail: Mapping[str, Any]) -> bool:
    return brief.get("status") in ROLLED_BACK or detail.get("status") in ROLLED_BACK or bool(detail.get("rollback"))


def describe_service_deployment(
    brief: Mapping[str, Any], detail: Mapping[str, Any], revisions: Mapping[str, Mapping[str, Any]]
) -> str:
    status = detail.get("status") or brief.get("status")
    parts = [f"service deployment {short_arn(brief.get('serviceDeploymentArn'))} {status}"]
    td = (revisions.get(brief.get("targetServiceRevisionArn", "")) or {}).get("taskDefinition")
    if td:
        parts.append(f"of {short_td(td)}")
    if detail.get("lifecycleStage"):
        parts.append(f"at {detail['lifecycleStage']}")
    reason = detail.get("statusReason") or brief.get("statusReason")
    if reason:
        parts.append(f"({reason})")
    triggered = (detail.get("alarms") or {}).get("triggeredAlarmNames") or []
    if triggered:
        parts.append(f"alarms triggered: {', '.join(triggered)}")
    if (detail.get("deploymentCircuitBreaker") or {}).get("status") == "TRIGGERED":
        parts.append("circuit breaker triggered")
    rollback = detail.get("rollback") or {}
    if rollback:
        parts.append(f"rollback: {rollback.get('reason') or 'yes'}")
    return " ".join(parts)


def decide(expected: str, observation: Observation) -> Verdict:
    """Pure verdict over one poll's API responses."""
    services = observation.services.get("services") or []
    if not services:
        failures = "; ".join(
            f"{f.get('arn', '?')}: {f.get('reason', '?')}" for f in observation.services.get("failures") or []
        )
        return Verdict(FAILED, f"service not found ({failures or 'DescribeServices returned nothing'})")
    service = services[0]
    name = service.get("serviceName", "?")
    if service.get("status") != "ACTIVE":
        return Verdict(FAILED, f"service {name} is {service.get('status')}, not ACTIVE")
    controller = (service.get("deploymentController") or {}).get("type", "ECS")
    if controller != "ECS":
        return Verdict(FAILED, f"service {name} uses the {controller} deployment controller; only ECS is supported")

    deployments = service.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    if primary is None:
        return Verdict(WAITING, f"service {name} has no PRIMARY deployment yet")

    window = sorted(observation.service_deployments, key=_order)
    since = observation.since.isoformat() if observation.since else "the stage started"

    def text(brief: Mapping[str, Any]) -> str:
        detail = observation.details.get(brief.get("serviceDeploymentArn", "")) or {}
        return describe_service_deployment(brief, detail, observation.revisions)

    newest_text = f"; newest since {since}: {text(window[-1])}" if window else ""
    if not same_task_definition(primary.get("taskDefinition"), expected):
        return Verdict(
            FAILED,
            f"ROLLED BACK (false green): service {name} runs {short_td(primary.get('taskDefinition'))}, "
            f"not the deployed {short_td(expected)}{_other_deployment(deployments, expected)}{newest_text}",
        )

    rolled_back = [
        brief for brief in window
        if _rolled_back(brief, observation.details.get(brief.get("serviceDeploymentArn", "")) or {})
    ]
    if rolled_back:
        return Verdict(
            FAILED,
            f"ROLLED BACK (false green): since {since} ECS rolled back "
            + "; ".join(text(brief) for brief in rolled_back)
            + f"; service {name} runs {short_td(primary.get('taskDefinition'))}",
        )

    rollout = primary.get("rolloutState")
    rollout_text = f"rolloutState {rollout}"
    if primary.get("rolloutStateReason"):
        rollout_text += f" ({primary['rolloutStateReason']})"
    counts = f"running {primary.get('runningCount', '?')}/{primary.get('desiredCount', '?')}"
    if rollout == "FAILED":
        return Verdict(FAILED, f"deployment of {short_td(expected)} FAILED: {rollout_text}{newest_text}")

    if window:
        return _decide_newest(expected, service, primary, window[-1], observation, text(window[-1]), counts, since)
    return _decide_unchanged(expected, service, primary, observation, counts, since)


def _other_deployment(deployments: Iterable[Mapping[str, Any]], expected: str) -> str:
    other = next((d for d in deployments if same_task_definition(d.get("taskDefinition"), expected)), None)
    if other is None:
        return ""
    extra = f"; the deployment of {short_td(expected)} is {other.get('status')}/{other.get('rolloutState')}"
    if other.get("rolloutStateReason"):
        extra += f" ({other['rolloutStateReason']})"
    return extra


def _decide_newest(
    expected: str,
    service: Mapping[str, Any],
    primary: Mapping[str, Any],
    newest: Mapping[str, Any],
    observation: Observation,
    newest_text: str,
    counts: str,
    since: str,
) -> Verdict:
    status = (observation.details.get(newest.get("serviceDeploymentArn", "")) or {}).get("status") or newest.get(
        "status"
    )
    if status in STOPPED:
        return Verdict(FAILED, f"the newest deployment since {since} was stopped: {newest_text}")
    if status in RUNNING:
        return Verdict(WAITING, f"{newest_text}; {counts}")
    if status != "SUCCESSFUL":
        return Verdict(WAITING, f"{newest_text} (status not understood yet)")

    target = newest.get("targetServiceRevisionArn", "")
    target_td = (observation.revisions.get(target) or {}).get("taskDefinition")
    if target_td and not same_task_definition(target_td, expected):
        return Verdict(
            FAILED,
            f"the newest deployment since {since} deployed {short_td(target_td)}, not {short_td(expected)}: "
            f"{newest_text}",
        )
    if not _primary_is_target(service, primary, newest):
        return Verdict(
            WAITING,
            f"PRIMARY deployment {primary.get('id')} is not the target revision {short_arn(target)} of the newest "
            f"{newest_text}",
        )
    if primary.get("rolloutState") != "COMPLETED":
        return Verdict(WAITING, f"{newest_text}; PRIMARY rolloutState {primary.get('rolloutState')}, {counts}")
    return Verdict(
        PASSED, f"service {service.get('serviceName', '?')} runs {short_td(expected)}, {newest_text}, {counts}"
    )


def _primary_is_target(service: Mapping[str, Any], primary: Mapping[str, Any], newest: Mapping[str, Any]) -> bool:
    if revision_id_of_deployment(primary) == short_arn(newest.get("targetServiceRevisionArn")):
        return True
    # the service names its current service deployment too (it can lag behind a newer one, never run ahead)
    return bool(newest.get("serviceDeploymentArn")) and service.get("currentServiceDeployment") == newest.get(
        "serviceDeploymentArn"
    )


def _decide_unchanged(
    expected: str, service: Mapping[str, Any], primary: Mapping[str, Any], observation: Observation, counts: str,
    since: str,
) -> Verdict:
    rollout = primary.get("rolloutState")
    if rollout != "COMPLETED":
        return Verdict(WAITING, f"no service deployment since {since} yet; PRIMARY rolloutState {rollout}, {counts}")
    current_arn = service.get("currentServiceDeployment") or ""
    current = observation.details.get(current_arn) or {}
    if current and _rolled_back(current, current):
        return Verdict(
            FAILED,
            f"the service's current deployment, from before this stage, was rolled back, so the service does not "
            f"run what the stack describes: {describe_service_deployment(current, current, observation.revisions)}",
        )
    if current.get("status") in RUNNING:
        return Verdict(
            WAITING,
            f"no service deployment since {since}, but the current one is still running: "
            f"{describe_service_deployment(current, current, observation.revisions)}",
        )
    return Verdict(
        PASSED,
        f"service {service.get('serviceName', '?')} runs {short_td(expected)}, rollout COMPLETED, {counts}; "
        f"no service deployment since {since} (the deploy did not change the service)",
    )


class Observer:
    """Collects one poll's responses; caches revisions (immutable) and finished service deployments."""

    def __init__(self, ecs: Any, *, cluster: str, service: str, since: datetime) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._service = service
        self._since = since
        self._revisions: dict[str, dict[str, Any]] = {}
        self._final: dict[str, dict[str, Any]] = {}

    def observe(self) -> Observation:
        services = self._ecs.describe_services(cluster=self._cluster, services=[self._service])
        found = services.get("services") or []
        if not found:
            return Observation(services=services, since=self._since)
        window = self._list_since()
        self._describe_revisions(brief.get("targetServiceRevisionArn") for brief in window)
        wanted = [brief["serviceDeploymentArn"] for brief in window if brief.get("serviceDeploymentArn")]
        if not wanted and found[0].get("currentServiceDeployment"):
            wanted = [found[0]["currentServiceDeployment"]]
        details = self._describe_deployments(wanted)
        return Observation(
            services=services,
            since=self._since,
            service_deployments=window,
            revisions=dict(self._revisions),
            details=details,
        )

    def _list_since(self) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "cluster": self._cluster,
            "service": self._service,
            "createdAt": {"after": self._since - SINCE_SKEW},
            "maxResults": PAGE_SIZE,
        }
        listed: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            page = self._ecs.list_service_deployments(**request)
            listed += page.get("serviceDeployments") or []
            token = page.get("nextToken")
            if not token or token in seen:
                return listed
            seen.add(token)
            request["nextToken"] = token

    def _describe_revisions(self, arns: Iterable[str | None]) -> None:
        unknown = sorted({arn for arn in arns if arn and arn not in self._revisions})
        for batch in _batches(unknown):
            described = self._ecs.describe_service_revisions(serviceRevisionArns=batch)
            for revision in described.get("serviceRevisions") or []:
                self._revisions[revision["serviceRevisionArn"]] = revision

    def _describe_deployments(self, arns: Sequence[str]) -> dict[str, dict[str, Any]]:
        details = {arn: self._final[arn] for arn in arns if arn in self._final}
        for batch in _batches(sorted({arn for arn in arns if arn not in self._final})):
            described = self._ecs.describe_service_deployments(serviceDeploymentArns=batch)
            for detail in described.get("serviceDeployments") or []:
                details[detail["serviceDeploymentArn"]] = detail
                if detail.get("status") in FINAL:
                    self._final[detail["serviceDeploymentArn"]] = detail
        return details


def _batches(items: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), DESCRIBE_BATCH):
        yield list(items[start : start + DESCRIBE_BATCH])


def stage_started_at(cloudformation: Any, stack_name: str) -> datetime:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return stack.get("LastUpdatedTime") or stack["CreationTime"]


def verify(
    observe: Callable[[], Observation],
    *,
    expected: str,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> Outcome:
    start = clock()
    last_message = ""
    while True:
        verdict = decide(expected, observe())
        elapsed = clock() - start
        if verdict.state == PASSED:
            return Outcome(EXIT_OK, f"PASS: {verdict.message}")
        if verdict.state == FAILED:
            return Outcome(EXIT_FAILED, f"FAIL: {verdict.message}")
        if verdict.message != last_message:
            log(f"verify-rollout: [{elapsed:5.0f}s] waiting: {verdict.message}")
            last_message = verdict.message
        if elapsed + interval > timeout:
            return Outcome(
                EXIT_TIMEOUT, f"TIMEOUT after {elapsed:.0f}s (limit {timeout:.0f}s); last state: {verdict.message}"
            )
        sleep(interval)


def parse_since(value: str) -> datetime:
    """ISO 8601 (a time without offset is UTC) or seconds since the epoch."""
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or epoch seconds: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_rollout.py",
        description="Pass only when every ECS service deployment since the stage started finished without "
        "rollback, the newest is SUCCESSFUL and the PRIMARY deployment is its target and runs the expected "
        "task definition (or, with no deployment since, PRIMARY is COMPLETED on it and nothing was rolled back).",
    )
    parser.add_argument("--cluster", default=env("CLUSTER_NAME"), help="cluster name or ARN [env CLUSTER_NAME]")
    parser.add_argument("--service", default=env("SERVICE_NAME"), help="service name or ARN [env SERVICE_NAME]")
    parser.add_argument(
        "--task-definition",
        default=env("TASK_DEFINITION_ARN"),
        help="task definition ARN the deploy shipped [env TASK_DEFINITION_ARN]",
    )
    parser.add_argument(
        "--since",
        type=parse_since,
        default=env("DEPLOY_STARTED_AT"),
        help="when this stage's deploy started: ISO 8601 or epoch seconds [env DEPLOY_STARTED_AT]; "
        "default: the stack's last update, read from CloudFormation (--stack-name)",
    )
    parser.add_argument(
        "--stack-name",
        default=env("STACK_NAME"),
        help="the stack that deployed the service, read with DescribeStacks when --since is not given [env STACK_NAME]",
    )
    add_polling_arguments(
        parser,
        role_env="VERIFIER_ROLE_ARN",
        role_help="e.g. a read-only role in the service's account",
        what="an in-progress rollout: rollout + bake time + lifecycle hooks + margin",
        timeout_env="VERIFY_TIMEOUT_SECONDS",
        timeout_default=DEFAULT_TIMEOUT_SECONDS,
        interval_env="VERIFY_POLL_SECONDS",
        interval_default=15,
    )
    args = parser.parse_args(argv)
    missing = [flag for flag, value in (("--cluster", args.cluster), ("--service", args.service),
                                        ("--task-definition", args.task_definition)) if not value]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or the matching environment variable)")
    if args.since is None and not args.stack_name:
        parser.error("missing --since or --stack-name (or DEPLOY_STARTED_AT / STACK_NAME): "
                     "the check needs to know when this stage's deploy started")
    check_polling_arguments(parser, args)
    return args


def clients(region: str | None, role_arn: str | None) -> tuple[Any, Any]:
    """ECS and CloudFormation clients sharing one (renewing) assumed-role session."""
    session = assumed_session(region=region, role_arn=role_arn, session_name="verify-rollout")
    return session.client("ecs", config=client_config()), session.client("cloudformation", config=client_config())


def ecs_client(region: str | None, role_arn: str | None) -> Any:
    return clients(region, role_arn)[0]


def main(argv: Sequence[str] | None = None, *, ecs: Any = None, cloudformation: Any = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    args = parse_args(argv)
    print(
        f"verify-rollout: cluster={args.cluster} service={args.service} "
        f"expected={short_td(args.task_definition)} timeout={args.timeout:.0f}s"
        + (f" since={args.since.isoformat()}" if args.since else f" stack={args.stack_name}")
        + (f" role={args.role_arn}" if args.role_arn else ""),
        flush=True,
    )

    def check() -> Outcome:
        ecs_api, cfn_api = ecs, cloudformation
        if ecs_api is None or (cfn_api is None and args.since is None):
            made_ecs, made_cfn = clients(args.region, args.role_arn)
            ecs_api, cfn_api = ecs_api or made_ecs, cfn_api or made_cfn
        since = args.since or stage_started_at(cfn_api, args.stack_name)
        if args.since is None:
            print(f"verify-rollout: stack {args.stack_name} last updated at {since.isoformat()}", flush=True)
        observer = Observer(ecs_api, cluster=args.cluster, service=args.service, since=since)
        return verify(
            observer.observe,
            expected=args.task_definition,
            timeout=args.timeout,
            interval=args.interval,
            clock=clock,
            sleep=sleep,
            log=lambda line: print(line, flush=True),
        )

    return run_check("verify-rollout", check)


if __name__ == "__main__":
    sys.exit(main())
