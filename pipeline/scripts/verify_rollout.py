"""Post-deploy check: the ECS service really runs the task definition this deployment shipped.

CloudFormation can report success after ECS rolled a deployment back (the "false green"), so the pipeline
asks ECS itself. Runs in a CodeBuild step with boto3; the three identifiers come from stack outputs.

Exit codes: 0 verified, 1 deployment failed or rolled back, 2 bad arguments, 3 timed out, 4 AWS API error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
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
    assumed_client,
    check_polling_arguments,
    env,
    run_check,
)

PASSED = "passed"
FAILED = "failed"
WAITING = "waiting"

NATIVE_STRATEGIES = frozenset({"BLUE_GREEN", "LINEAR", "CANARY"})
SERVICE_DEPLOYMENT_FAILED = frozenset(
    {"STOPPED", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}
)
# Service revisions hold the task definition; one ListServiceDeployments page covers every recent deployment.
LIST_PAGE_SIZE = 20
STALE_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Verdict:
    state: str
    message: str


@dataclass(frozen=True)
class Observation:
    """The raw API responses one poll saw; `decide` needs nothing else."""

    services: Mapping[str, Any]
    service_deployments: Mapping[str, Any] | None = None
    service_revisions: Mapping[str, Any] | None = None
    service_deployment_details: Mapping[str, Any] | None = None


def same_task_definition(actual: str | None, expected: str) -> bool:
    if not actual:
        return False
    if expected.startswith("arn:"):
        return actual == expected
    # "family:revision" is accepted for manual runs; a full ARN is compared exactly
    return actual.rsplit("task-definition/", 1)[-1] == expected


def short_td(arn: str | None) -> str:
    return (arn or "<none>").rsplit("task-definition/", 1)[-1]


def is_native(service: Mapping[str, Any]) -> bool:
    strategy = (service.get("deploymentConfiguration") or {}).get("strategy") or "ROLLING"
    return strategy in NATIVE_STRATEGIES


def newest_service_deployment_for(
    expected: str, service_deployments: Mapping[str, Any] | None, service_revisions: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The newest ListServiceDeployments entry whose target revision runs the expected task definition."""
    revision_td = {
        rev.get("serviceRevisionArn"): rev.get("taskDefinition")
        for rev in (service_revisions or {}).get("serviceRevisions", [])
    }
    matching = [
        brief
        for brief in (service_deployments or {}).get("serviceDeployments", [])
        if same_task_definition(revision_td.get(brief.get("targetServiceRevisionArn")), expected)
    ]
    if not matching:
        return None
    return max(matching, key=lambda brief: _timestamp(brief.get("createdAt")))


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _stale_for(brief: Mapping[str, Any], primary: Mapping[str, Any], expected: str) -> bool:
    # an old service deployment of this task definition says nothing about a newer ECS deployment of it
    if not same_task_definition(primary.get("taskDefinition"), expected):
        return False
    if not (brief.get("createdAt") and primary.get("createdAt")):
        return False
    return _timestamp(brief["createdAt"]) < _timestamp(primary["createdAt"]) - STALE_TOLERANCE_SECONDS


def _service_deployment_detail(observation: Observation, arn: str | None) -> Mapping[str, Any]:
    for detail in (observation.service_deployment_details or {}).get("serviceDeployments", []):
        if detail.get("serviceDeploymentArn") == arn:
            return detail
    return {}


def _describe_service_deployment(brief: Mapping[str, Any], detail: Mapping[str, Any]) -> str:
    parts = [f"service deployment {brief.get('status')}"]
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
    rollback_reason = (detail.get("rollback") or {}).get("reason")
    if rollback_reason:
        parts.append(f"rollback: {rollback_reason}")
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

    native_brief: Mapping[str, Any] | None = None
    native_text = ""
    if is_native(service):
        native_brief = newest_service_deployment_for(
            expected, observation.service_deployments, observation.service_revisions
        )
        if native_brief is not None and _stale_for(native_brief, primary, expected):
            native_brief = None
        if native_brief is not None:
            detail = _service_deployment_detail(observation, native_brief.get("serviceDeploymentArn"))
            native_text = "; " + _describe_service_deployment(native_brief, detail)

    if not same_task_definition(primary.get("taskDefinition"), expected):
        expected_deployment = next(
            (d for d in deployments if same_task_definition(d.get("taskDefinition"), expected)), None
        )
        extra = ""
        if expected_deployment is not None:
            extra = f"; the deployment of {short_td(expected)} is {expected_deployment.get('status')}"
            extra += f"/{expected_deployment.get('rolloutState')}"
            if expected_deployment.get("rolloutStateReason"):
                extra += f" ({expected_deployment['rolloutStateReason']})"
        return Verdict(
            FAILED,
            f"ROLLED BACK (false green): service {name} runs {short_td(primary.get('taskDefinition'))}, "
            f"not the deployed {short_td(expected)}{extra}{native_text}",
        )

    rollout = primary.get("rolloutState")
    rollout_text = f"rolloutState {rollout}"
    if primary.get("rolloutStateReason"):
        rollout_text += f" ({primary['rolloutStateReason']})"
    counts = f"running {primary.get('runningCount', '?')}/{primary.get('desiredCount', '?')}"

    if native_brief is not None and native_brief.get("status") in SERVICE_DEPLOYMENT_FAILED:
        return Verdict(FAILED, f"deployment of {short_td(expected)} failed: {rollout_text}{native_text}")
    if rollout == "FAILED":
        return Verdict(FAILED, f"deployment of {short_td(expected)} FAILED: {rollout_text}{native_text}")
    if rollout == "IN_PROGRESS":
        return Verdict(WAITING, f"deployment of {short_td(expected)} in progress: {counts}{native_text}")
    if rollout != "COMPLETED":
        return Verdict(WAITING, f"deployment of {short_td(expected)} has {rollout_text}")

    if is_native(service):
        if native_brief is None:
            return Verdict(
                WAITING,
                f"rolloutState COMPLETED but no service deployment for {short_td(expected)} is listed yet",
            )
        if native_brief.get("status") != "SUCCESSFUL":
            return Verdict(WAITING, f"deployment of {short_td(expected)} rolloutState COMPLETED{native_text}")
    return Verdict(PASSED, f"service {name} runs {short_td(expected)}, rollout COMPLETED, {counts}{native_text}")


class Observer:
    """Collects one poll's responses; caches revision → task definition (revisions are immutable)."""

    def __init__(self, ecs: Any, *, cluster: str, service: str, expected: str) -> None:
        self._ecs = ecs
        self._cluster = cluster
        self._service = service
        self._expected = expected
        self._revisions: dict[str, dict[str, Any]] = {}

    def observe(self) -> Observation:
        services = self._ecs.describe_services(cluster=self._cluster, services=[self._service])
        found = services.get("services") or []
        if not found or not is_native(found[0]):
            return Observation(services=services)

        listed = self._ecs.list_service_deployments(
            cluster=self._cluster, service=self._service, maxResults=LIST_PAGE_SIZE
        )
        unknown = sorted(
            {
                brief["targetServiceRevisionArn"]
                for brief in listed.get("serviceDeployments", [])
                if brief.get("targetServiceRevisionArn") and brief["targetServiceRevisionArn"] not in self._revisions
            }
        )
        if unknown:
            described = self._ecs.describe_service_revisions(serviceRevisionArns=unknown)
            for revision in described.get("serviceRevisions", []):
                self._revisions[revision["serviceRevisionArn"]] = revision
        revisions = {"serviceRevisions": list(self._revisions.values())}

        details = None
        brief = newest_service_deployment_for(self._expected, listed, revisions)
        if brief is not None and brief.get("serviceDeploymentArn"):
            details = self._ecs.describe_service_deployments(serviceDeploymentArns=[brief["serviceDeploymentArn"]])
        return Observation(
            services=services,
            service_deployments=listed,
            service_revisions=revisions,
            service_deployment_details=details,
        )


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="verify_rollout.py",
        description="Pass only when the ECS service's PRIMARY deployment runs the expected task definition "
        "and its rollout COMPLETED (and, for native blue/green/canary/linear, its service deployment is SUCCESSFUL).",
    )
    parser.add_argument("--cluster", default=env("CLUSTER_NAME"), help="cluster name or ARN [env CLUSTER_NAME]")
    parser.add_argument("--service", default=env("SERVICE_NAME"), help="service name or ARN [env SERVICE_NAME]")
    parser.add_argument(
        "--task-definition",
        default=env("TASK_DEFINITION_ARN"),
        help="task definition ARN the deploy shipped [env TASK_DEFINITION_ARN]",
    )
    add_polling_arguments(
        parser,
        role_env="VERIFIER_ROLE_ARN",
        role_help="e.g. a read-only role in the service's account",
        what="an in-progress rollout",
        timeout_env="VERIFY_TIMEOUT_SECONDS",
        timeout_default=900,
        interval_env="VERIFY_POLL_SECONDS",
        interval_default=15,
    )
    args = parser.parse_args(argv)
    missing = [flag for flag, value in (("--cluster", args.cluster), ("--service", args.service),
                                        ("--task-definition", args.task_definition)) if not value]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or the matching environment variable)")
    check_polling_arguments(parser, args)
    return args


def ecs_client(region: str | None, role_arn: str | None) -> Any:
    return assumed_client("ecs", region=region, role_arn=role_arn, session_name="verify-rollout")


def main(argv: list[str] | None = None, *, ecs: Any = None, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> int:
    args = parse_args(argv)
    print(
        f"verify-rollout: cluster={args.cluster} service={args.service} "
        f"expected={short_td(args.task_definition)} timeout={args.timeout:.0f}s"
        + (f" role={args.role_arn}" if args.role_arn else ""),
        flush=True,
    )

    def check() -> Outcome:
        client = ecs if ecs is not None else ecs_client(args.region, args.role_arn)
        observer = Observer(client, cluster=args.cluster, service=args.service, expected=args.task_definition)
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
