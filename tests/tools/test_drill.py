"""`make drill`: control flow and timings against Stubber sequences (botocore validates every request and response
against the ECS, CloudWatch and CloudFormation models). The service must end on its original task definition always."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

import preflight_world
from tools import drill

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
CLUSTER, SERVICE = "delivery-notes-dev-cluster", "delivery-notes-dev-web"
URL = "https://d111111abcdef8.cloudfront.net"
ORIGINAL = "arn:aws:ecs:eu-west-1:000000000000:task-definition/delivery-notes-dev-web:7"
FAULTY = "arn:aws:ecs:eu-west-1:000000000000:task-definition/delivery-notes-dev-web:8"
ALARMS = [f"delivery-notes-dev-{k}" for k in ("5xx-rate", "tg-5xx-rate", "app-server-errors", "p99-latency", "unhealthy-targets")]
POLL = 30


@pytest.fixture(autouse=True)
def example_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    # The histories here are the example's (delivery-notes-dev-…), not those of whatever a fork's cdk.json holds.
    root = tmp_path_factory.mktemp("root")
    (root / "cdk.json").write_text(json.dumps({"context": preflight_world.context(placeholders=True)}))
    (root / "docs").symlink_to(drill.ROOT / "docs")
    monkeypatch.setattr(drill, "ROOT", root)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def _web(environment: list[dict[str, str]]) -> dict[str, Any]:
    return {"name": "web", "image": "000000000000.dkr.ecr.eu-west-1.amazonaws.com/app:abc", "essential": True,
            "portMappings": [{"containerPort": 8000, "protocol": "tcp"}], "environment": environment}


DESCRIBED = {
    "taskDefinitionArn": ORIGINAL, "family": "delivery-notes-dev-web", "revision": 7, "status": "ACTIVE",
    "taskRoleArn": "arn:aws:iam::000000000000:role/delivery-notes-dev-task",
    "executionRoleArn": "arn:aws:iam::000000000000:role/delivery-notes-dev-task-execution",
    "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "containerDefinitions": [_web([{"name": "APP_ENV", "value": "dev"}]), {"name": "log-router", "image": "fluent-bit", "essential": True}],
    "registeredAt": T0 - dt.timedelta(days=1),
}
# What RegisterTaskDefinition must receive: the same task, FAULT_ERROR_RATE added to `web` only, read-only fields dropped.
REGISTERED = {
    "family": "delivery-notes-dev-web", "taskRoleArn": DESCRIBED["taskRoleArn"], "executionRoleArn": DESCRIBED["executionRoleArn"],
    "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
    "runtimePlatform": DESCRIBED["runtimePlatform"],
    "containerDefinitions": [_web([{"name": "APP_ENV", "value": "dev"}, {"name": "FAULT_ERROR_RATE", "value": "0.5"}]),
                             {"name": "log-router", "image": "fluent-bit", "essential": True}],
}


def _clients():
    kw = {"region_name": "eu-west-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    clients = {n: boto3.client(n, **kw) for n in ("ecs", "cloudwatch", "cloudformation")}
    return clients, {n: Stubber(c) for n, c in clients.items()}


def _service(task_definition: str, rollout: str) -> dict[str, Any]:
    return {"services": [{"serviceName": SERVICE, "deployments": [
        {"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": task_definition, "rolloutState": rollout}]}]}


def _start(stubs) -> None:
    stubs["cloudformation"].add_response("describe_stacks", {"Stacks": [{
        "StackName": "delivery-notes-dev-stateless", "CreationTime": T0, "StackStatus": "UPDATE_COMPLETE",
        "Outputs": [{"OutputKey": "ServiceUrl", "OutputValue": URL}, {"OutputKey": "ClusterName", "OutputValue": CLUSTER},
                    {"OutputKey": "ServiceName", "OutputValue": SERVICE}]}]}, {"StackName": "delivery-notes-dev-stateless"})
    ecs = stubs["ecs"]
    ecs.add_response("describe_services", _service(ORIGINAL, "COMPLETED"), {"cluster": CLUSTER, "services": [SERVICE]})
    ecs.add_response("describe_task_definition", {"taskDefinition": DESCRIBED}, {"taskDefinition": ORIGINAL})
    ecs.add_response("register_task_definition", {"taskDefinition": {"taskDefinitionArn": FAULTY}}, REGISTERED)
    ecs.add_response("update_service", {"service": {"serviceName": SERVICE}}, {"cluster": CLUSTER, "service": SERVICE, "taskDefinition": FAULTY})


def _poll(stubs, *, alarm: str | None, deployment: str | None, at: dt.datetime, primary: tuple[str, str] | None = None) -> None:
    """One loop iteration: the alarms (until one fired), the service deployment, the primary once rolled back."""
    if alarm is not None:
        states = [{"AlarmName": n, "StateValue": alarm if n == ALARMS[2] else "OK", "StateUpdatedTimestamp": at} for n in ALARMS]
        stubs["cloudwatch"].add_response("describe_alarms", {"MetricAlarms": states}, {"AlarmNames": ALARMS, "AlarmTypes": ["MetricAlarm"]})
    found = [] if deployment is None else [{
        "serviceDeploymentArn": "arn:aws:ecs:eu-west-1:000000000000:service-deployment/c/s/9", "status": deployment,
        "createdAt": T0, **({"finishedAt": at} if deployment == "ROLLBACK_SUCCESSFUL" else {})}]
    stubs["ecs"].add_response("list_service_deployments", {"serviceDeployments": found},
                              {"cluster": CLUSTER, "service": SERVICE, "createdAt": {"after": T0 - dt.timedelta(minutes=1)}})
    if primary:
        stubs["ecs"].add_response("describe_services", _service(*primary), {"cluster": CLUSTER, "services": [SERVICE]})


def _restore(stubs, *, update: bool) -> None:
    if update:
        stubs["ecs"].add_response("update_service", {"service": {"serviceName": SERVICE}},
                                  {"cluster": CLUSTER, "service": SERVICE, "taskDefinition": ORIGINAL})
    stubs["ecs"].add_response("deregister_task_definition", {"taskDefinition": {"taskDefinitionArn": FAULTY}}, {"taskDefinition": FAULTY})


def _run(tmp_path: Path, clients, stubs, clock: Clock, http, *extra: str) -> tuple[int, str]:
    for s in stubs.values():
        s.activate()
    lines: list[str] = []
    code = drill.main(["dev", "--out", str(tmp_path), *extra], {}, clients=lambda service, region: clients[service],
                      http=http, now=clock, sleep=clock.sleep, poll_seconds=POLL, say=lines.append)
    for s in stubs.values():
        s.assert_no_pending_responses()
    written = sorted(tmp_path.glob("drill-dev-*.md"))
    return code, written[0].read_text() if written else ""


def failing_after(clock: Clock, seconds: int):
    return lambda url: 500 if clock.now >= T0 + dt.timedelta(seconds=seconds) else 200


def test_a_rollback_is_timed_event_by_event_and_needs_no_restore(tmp_path):
    clients, stubs = _clients()
    clock = Clock()
    _start(stubs)
    t = lambda s: T0 + dt.timedelta(seconds=s)  # noqa: E731
    _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=t(0))
    _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=t(30))       # first 500 at +0:30
    _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=t(60))
    _poll(stubs, alarm="ALARM", deployment="IN_PROGRESS", at=t(90))    # app-server-errors fires at +1:30
    _poll(stubs, alarm=None, deployment="ROLLBACK_IN_PROGRESS", at=t(120))
    _poll(stubs, alarm=None, deployment="ROLLBACK_SUCCESSFUL", at=t(150), primary=(ORIGINAL, "IN_PROGRESS"))
    _poll(stubs, alarm=None, deployment="ROLLBACK_SUCCESSFUL", at=t(150), primary=(ORIGINAL, "COMPLETED"))
    _restore(stubs, update=False)
    code, text = _run(tmp_path, clients, stubs, clock, failing_after(clock, 30))
    assert code == 0
    assert "Outcome: rolled back." in text
    assert "| first failed request | 10:00:30 | +0:30 |" in text
    assert "| deployment alarm in ALARM (delivery-notes-dev-app-server-errors) | 10:01:30 | +1:30 |" in text
    assert "| ECS starts the rollback | 10:02:00 | +2:00 |" in text
    assert "| rollback complete | 10:02:30 | +2:30 |" in text
    assert "| original task definition primary again | 10:03:00 | +3:00 |" in text


def test_the_modelled_values_come_from_the_report(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("- Dev: rollback decision ≤ 1 min 50 s (delivery-notes-dev-app-server-errors); all 1 task(s) replaced in 1 min 40 s; ~USD 1/month.\n")
    assert drill.modelled(report, "dev") == {
        "alarm": "≤ 1 min 50 s (delivery-notes-dev-app-server-errors)", "original_primary": "replacement 1 min 40 s"}


def test_when_ecs_completes_the_faulty_deployment_the_drill_fails_and_restores(tmp_path):
    clients, stubs = _clients()
    clock = Clock()
    _start(stubs)
    _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=T0)
    _poll(stubs, alarm="OK", deployment="SUCCESSFUL", at=T0 + dt.timedelta(seconds=30))
    _restore(stubs, update=True)
    code, text = _run(tmp_path, clients, stubs, clock, lambda url: 200)
    assert code == drill.EXIT_FAILED
    assert "Outcome: rollback never happened" in text
    assert "| ECS starts the rollback | – | – |" in text


def test_a_timeout_restores_the_original_task_definition(tmp_path):
    clients, stubs = _clients()
    clock = Clock()
    _start(stubs)
    # --timeout-minutes 1.5 with a 30 s poll: checks at +0:00, +0:30, +1:00, +1:30, then gives up.
    for seconds in (0, 30, 60, 90):
        _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=T0 + dt.timedelta(seconds=seconds))
    _restore(stubs, update=True)
    code, text = _run(tmp_path, clients, stubs, clock, failing_after(clock, 30), "--timeout-minutes", "1.5")
    assert code == drill.EXIT_FAILED
    assert "Outcome: timed out" in text
    assert "| first failed request | 10:00:30 | +0:30 |" in text


def test_ctrl_c_restores_before_exiting(tmp_path):
    clients, stubs = _clients()
    clock = Clock()
    _start(stubs)
    _poll(stubs, alarm="OK", deployment="IN_PROGRESS", at=T0)
    _restore(stubs, update=True)

    def interrupt_on_second_poll(url: str) -> int:
        if clock.now > T0:
            raise KeyboardInterrupt
        return 200

    code, text = _run(tmp_path, clients, stubs, clock, interrupt_on_second_poll)
    assert code == drill.EXIT_INTERRUPTED
    assert text == ""


def test_prod_is_refused_without_the_flag(tmp_path, capsys):
    assert drill.main(["prod", "--out", str(tmp_path)], {}, clients=lambda s, r: pytest.fail("no AWS call")) == drill.EXIT_CONFIG
    assert "--i-mean-prod" in capsys.readouterr().err


def test_without_credentials_one_line_and_a_non_zero_exit(tmp_path, capsys):
    class NoCredentials:
        def describe_stacks(self, **kwargs):
            raise NoCredentialsError()

    assert drill.main(["dev", "--out", str(tmp_path)], {}, clients=lambda s, r: NoCredentials()) == drill.EXIT_NO_CREDENTIALS
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no usable AWS credentials" in err
