"""python -m tools.drill ENV: prove alarm-based rollback in a real environment, and time it.

Registers a copy of the service's current task definition with the fault switch on (FAULT_ERROR_RATE on the `web`
container), deploys it, drives light traffic at the environment's URL and records: first failed request, a deployment
alarm in ALARM, ECS starting the rollback, rollback complete, the original task definition primary again. Whatever
happens (success, no rollback, timeout, error, Ctrl-C) the service is put back on its original task definition.
Credentials: the environment account's (AWS_PROFILE); refuses the last environment unless --i-mean-prod.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NO_CREDENTIALS = 3
EXIT_INTERRUPTED = 130
FAULT_CONTAINER = "web"
# RegisterTaskDefinition's request members that DescribeTaskDefinition returns (botocore ecs model).
REGISTER_KEYS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode", "proxyConfiguration",
    "inferenceAccelerators", "ephemeralStorage", "runtimePlatform", "enableFaultInjection",
)
ROLLBACK_STARTED = {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
EVENTS = (
    ("fault_deployed", "fault deployed (UpdateService)"),
    ("first_failure", "first failed request"),
    ("alarm", "deployment alarm in ALARM"),
    ("rollback_started", "ECS starts the rollback"),
    ("rollback_complete", "rollback complete"),
    ("original_primary", "original task definition primary again"),
)


class DrillError(Exception):
    """The drill did not see the rollback it exists to prove."""


@dataclass
class Timeline:
    environment: str
    original: str
    faulty: str | None = None
    at: dict[str, dt.datetime] = field(default_factory=dict)
    alarm_name: str | None = None
    outcome: str = "not started"
    restored: bool = False

    def mark(self, key: str, when: dt.datetime) -> None:
        self.at.setdefault(key, when)


def modelled(report: Path, environment: str) -> dict[str, str]:
    """The rollback decision bound and replacement time docs/report.md models for this environment."""
    if not report.exists():
        return {}
    pattern = re.compile(
        rf"^- {re.escape(environment.capitalize())}: rollback decision ≤ ([^(;]+?) \(([^)]+)\); all \d+ task\(s\) replaced in ([^;]+);",
        re.M,
    )
    match = pattern.search(report.read_text())
    if not match:
        return {}
    return {"alarm": f"≤ {match.group(1)} ({match.group(2)})", "original_primary": f"replacement {match.group(3)}"}


def with_fault(task_definition: dict[str, Any], error_rate: float) -> dict[str, Any]:
    request = {k: task_definition[k] for k in REGISTER_KEYS if k in task_definition}
    containers = []
    for container in task_definition["containerDefinitions"]:
        container = dict(container)
        if container["name"] == FAULT_CONTAINER:
            environment = [e for e in container.get("environment", []) if e["name"] != "FAULT_ERROR_RATE"]
            container["environment"] = [*environment, {"name": "FAULT_ERROR_RATE", "value": str(error_rate)}]
        containers.append(container)
    if not any(c["name"] == FAULT_CONTAINER for c in containers):
        raise DrillError(f"no container named {FAULT_CONTAINER!r} in {task_definition['taskDefinitionArn']}")
    request["containerDefinitions"] = containers
    return request


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (the environment's own https URL)
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, TimeoutError):
        return 599


class Drill:
    def __init__(
        self,
        *,
        ecs: Any,
        cloudwatch: Any,
        cloudformation: Any,
        environment: str,
        stack_name: str,
        alarm_names: Sequence[str],
        error_rate: float = 0.5,
        timeout: dt.timedelta = dt.timedelta(minutes=20),
        poll_seconds: float = 10,
        requests_per_poll: int = 10,
        http: Callable[[str], int] = http_status,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
    ) -> None:
        self.ecs, self.cloudwatch, self.cloudformation = ecs, cloudwatch, cloudformation
        self.environment, self.stack_name, self.alarm_names = environment, stack_name, list(alarm_names)
        self.error_rate, self.timeout, self.poll_seconds = error_rate, timeout, poll_seconds
        self.requests_per_poll, self.http, self.now, self.sleep, self.say = requests_per_poll, http, now, sleep, say

    def run(self) -> Timeline:
        (stack,) = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.url, self.cluster, self.service = outputs["ServiceUrl"], outputs["ClusterName"], outputs["ServiceName"]
        original = self._primary()["taskDefinition"]
        timeline = Timeline(self.environment, original)
        try:
            described = self.ecs.describe_task_definition(taskDefinition=original)["taskDefinition"]
            timeline.faulty = self.ecs.register_task_definition(**with_fault(described, self.error_rate))["taskDefinition"]["taskDefinitionArn"]
            self.ecs.update_service(cluster=self.cluster, service=self.service, taskDefinition=timeline.faulty)
            timeline.mark("fault_deployed", self.now())
            self.say(f"drill: {timeline.faulty} deployed with FAULT_ERROR_RATE={self.error_rate}; watching {self.url}")
            self._watch(timeline)
        except KeyboardInterrupt:
            timeline.outcome = "interrupted"
            raise
        except DrillError as error:
            timeline.outcome = str(error)
        finally:
            self._restore(timeline)
        return timeline

    def _primary(self) -> dict[str, Any]:
        (service,) = self.ecs.describe_services(cluster=self.cluster, services=[self.service])["services"]
        return next(d for d in service["deployments"] if d["status"] == "PRIMARY")

    def _watch(self, timeline: Timeline) -> None:
        deadline = timeline.at["fault_deployed"] + self.timeout
        while True:
            self._traffic(timeline)
            self._alarms(timeline)
            status = self._service_deployment(timeline)
            if status == "SUCCESSFUL":
                raise DrillError("rollback never happened: ECS completed the faulty deployment (alarms did not fire)")
            if status == "ROLLBACK_FAILED":
                raise DrillError("ECS could not roll back")
            if "rollback_complete" in timeline.at:
                primary = self._primary()
                if primary["taskDefinition"] == timeline.original and primary.get("rolloutState") == "COMPLETED":
                    timeline.mark("original_primary", self.now())
                    timeline.restored = True
                    timeline.outcome = "rolled back"
                    return
            if self.now() >= deadline:
                raise DrillError(f"timed out after {self.timeout} waiting for the rollback")
            self.sleep(self.poll_seconds)

    def _traffic(self, timeline: Timeline) -> None:
        if "first_failure" in timeline.at:
            return
        for path in ("/", "/api/notes"):
            for _ in range(self.requests_per_poll // 2):
                if self.http(self.url.rstrip("/") + path) >= 500:
                    timeline.mark("first_failure", self.now())
                    return

    def _alarms(self, timeline: Timeline) -> None:
        if "alarm" in timeline.at:
            return
        alarms = self.cloudwatch.describe_alarms(AlarmNames=self.alarm_names, AlarmTypes=["MetricAlarm"])["MetricAlarms"]
        firing = [a for a in alarms if a["StateValue"] == "ALARM"]
        if firing:
            timeline.alarm_name = firing[0]["AlarmName"]
            timeline.mark("alarm", firing[0].get("StateUpdatedTimestamp") or self.now())

    def _service_deployment(self, timeline: Timeline) -> str | None:
        deployments = self.ecs.list_service_deployments(
            cluster=self.cluster, service=self.service, createdAt={"after": timeline.at["fault_deployed"] - dt.timedelta(minutes=1)}
        )["serviceDeployments"]
        if not deployments:
            return None
        # Ours is the first one after UpdateService; ECS rolls back inside that same service deployment.
        ours = min(deployments, key=lambda d: d["createdAt"])
        status = ours["status"]
        if status in ROLLBACK_STARTED | {"ROLLBACK_SUCCESSFUL"}:
            timeline.mark("rollback_started", self.now())
        if status == "ROLLBACK_SUCCESSFUL":
            timeline.mark("rollback_complete", ours.get("finishedAt") or self.now())
        return status

    def _restore(self, timeline: Timeline) -> None:
        if not timeline.restored:
            self.ecs.update_service(cluster=self.cluster, service=self.service, taskDefinition=timeline.original)
            self.say(f"drill: restored {self.service} to {timeline.original} (ECS replaces the tasks now)")
            timeline.restored = True
        if timeline.faulty:
            self.ecs.deregister_task_definition(taskDefinition=timeline.faulty)


def render(timeline: Timeline, model: Mapping[str, str]) -> str:
    start = timeline.at.get("fault_deployed")
    lines = [
        f"# Rollback drill: {timeline.environment}",
        "",
        f"Outcome: {timeline.outcome}. Original task definition: `{timeline.original}`; faulty copy: `{timeline.faulty}`.",
        "",
        "| event | at (UTC) | after fault deployed | modelled (docs/report.md) |",
        "|---|---|---|---|",
    ]
    for key, label in EVENTS:
        when = timeline.at.get(key)
        after = "" if when is None or start is None else _mmss(when - start)
        name = f" ({timeline.alarm_name})" if key == "alarm" and timeline.alarm_name else ""
        lines.append(f"| {label}{name} | {when:%H:%M:%S} | {after} | {model.get(key, '')} |" if when else f"| {label} | – | – | {model.get(key, '')} |")
    return "\n".join(lines) + "\n"


def _mmss(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"+{seconds // 60:d}:{seconds % 60:02d}"


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    clients: Callable[[str, str], Any] | None = None,
    **drill_options: Any,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.drill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("environment", help="environment name from the configuration, e.g. dev")
    parser.add_argument("--error-rate", type=float, default=0.5, help="share of requests that answer 500 (default 0.5)")
    parser.add_argument("--timeout-minutes", type=float, default=20, help="give up (and restore) after this long")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "drill", help="directory for the timeline file")
    parser.add_argument("--i-mean-prod", action="store_true", help="allow the drill in the last environment")
    args = parser.parse_args(argv)

    from botocore.exceptions import ClientError

    from config import ConfigError, load_config, read_context
    from stages.naming import DEPLOYMENT_ALARMS, alarm_name
    from tools.preflight.results import CREDENTIAL_ERRORS, CredentialsUnusable

    try:
        config = load_config(read_context(ROOT / "cdk.json"), os.environ if environ is None else environ)
    except ConfigError as error:
        print(f"drill: {error}", file=sys.stderr)
        return EXIT_CONFIG
    env = next((e for e in config.environments if e.name == args.environment), None)
    if env is None:
        print(f"drill: no environment {args.environment!r}; known: {[e.name for e in config.environments]}", file=sys.stderr)
        return EXIT_CONFIG
    if env.name == config.environments[-1].name and not args.i_mean_prod:
        print(f"drill: refusing {env.name} (users would see the errors); pass --i-mean-prod if you mean it", file=sys.stderr)
        return EXIT_CONFIG
    if not 0 < args.error_rate <= 1:
        print("drill: --error-rate must be in (0, 1]", file=sys.stderr)
        return EXIT_CONFIG
    if clients is None:
        import boto3

        session = boto3.Session()
        clients = lambda service, region: session.client(service, region_name=region)  # noqa: E731
    drill = Drill(
        ecs=clients("ecs", env.region),
        cloudwatch=clients("cloudwatch", env.region),
        cloudformation=clients("cloudformation", env.region),
        environment=env.name,
        stack_name=f"{config.project}-{config.service_name}-{env.name}-stateless",
        alarm_names=[alarm_name(config, env, kind) for kind in DEPLOYMENT_ALARMS],
        error_rate=args.error_rate,
        timeout=dt.timedelta(minutes=args.timeout_minutes),
        **drill_options,
    )
    code = 0
    timeline: Timeline | None = None
    try:
        timeline = drill.run()
    except (CredentialsUnusable, *CREDENTIAL_ERRORS) as error:
        print(f"drill: no usable AWS credentials for {env.name}'s account {env.account} ({error}): set AWS_PROFILE "
              "to that account's profile (or run `aws sso login`) and try again", file=sys.stderr)
        return EXIT_NO_CREDENTIALS
    except KeyboardInterrupt:
        print("drill: interrupted; the service was restored to its original task definition", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClientError as error:
        print(f"drill: {error} (the service was put back on its original task definition if it had been changed)", file=sys.stderr)
        return EXIT_FAILED
    if timeline.outcome != "rolled back":
        code = EXIT_FAILED
    text = render(timeline, modelled(ROOT / "docs" / "report.md", env.name))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"drill-{env.name}-{timeline.at.get('fault_deployed', dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text)
    print(text)
    print(f"Written: {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
