import importlib.util
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipeline" / "scripts" / "verify_rollout.py"
_spec = importlib.util.spec_from_file_location("verify_rollout_under_test", SCRIPT)
vr = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = vr
_spec.loader.exec_module(vr)

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "dev-cluster"
SERVICE = "web"
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/{SERVICE}"
OLD_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:6"
NEW_TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
ARGS = ["--cluster", CLUSTER, "--service", SERVICE, "--task-definition", NEW_TD, "--timeout", "900", "--interval", "15"]


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def deployment(td, *, status="PRIMARY", rollout="COMPLETED", reason=None, running=2, desired=2, created=T0):
    d = {
        "id": f"ecs-svc/{abs(hash((td, status))) % 10**12}",
        "status": status,
        "taskDefinition": td,
        "desiredCount": desired,
        "runningCount": running,
        "pendingCount": desired - running,
        "createdAt": created,
        "updatedAt": created,
        "rolloutState": rollout,
    }
    if reason:
        d["rolloutStateReason"] = reason
    return d


def services_response(*deployments, strategy=None):
    service = {
        "serviceArn": SERVICE_ARN,
        "serviceName": SERVICE,
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 2,
        "taskDefinition": deployments[0]["taskDefinition"] if deployments else NEW_TD,
        "deploymentController": {"type": "ECS"},
        "deployments": list(deployments),
    }
    if strategy:
        service["deploymentConfiguration"] = {"strategy": strategy, "bakeTimeInMinutes": 5}
    return {"services": [service], "failures": []}


def revision_arn(n):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{CLUSTER}/{SERVICE}/{n}"


def sd_arn(n):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{CLUSTER}/{SERVICE}/{n}"


def brief(n, status, *, created, reason=None):
    b = {
        "serviceDeploymentArn": sd_arn(n),
        "serviceArn": SERVICE_ARN,
        "targetServiceRevisionArn": revision_arn(n),
        "status": status,
        "createdAt": created,
    }
    if reason:
        b["statusReason"] = reason
    return b


def revisions_response(*pairs):
    return {
        "serviceRevisions": [
            {"serviceRevisionArn": revision_arn(n), "serviceArn": SERVICE_ARN, "taskDefinition": td} for n, td in pairs
        ],
        "failures": [],
    }


def sd_detail(n, status, *, stage=None, rollback_reason=None, triggered=None):
    d = {"serviceDeploymentArn": sd_arn(n), "serviceArn": SERVICE_ARN, "status": status,
         "targetServiceRevision": {"arn": revision_arn(n)}}
    if stage:
        d["lifecycleStage"] = stage
    if rollback_reason:
        d["rollback"] = {"reason": rollback_reason, "serviceRevisionArn": revision_arn(1)}
    if triggered:
        d["alarms"] = {"status": "TRIGGERED", "alarmNames": triggered, "triggeredAlarmNames": triggered}
    return {"serviceDeployments": [d], "failures": []}


@pytest.fixture
def ecs():
    client = boto3.client("ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}
LIST = {"cluster": CLUSTER, "service": SERVICE, "maxResults": vr.LIST_PAGE_SIZE}


def run(client, capsys, argv=ARGS):
    clock = FakeClock()
    code = vr.main(argv, ecs=client, sleep=clock.sleep, clock=clock.monotonic)
    out = capsys.readouterr()
    return code, out.out + out.err, clock


def test_rolling_success_passes_on_completed_primary_with_expected_task_definition(ecs, capsys):
    client, stubber = ecs
    stubber.add_response("describe_services", services_response(deployment(NEW_TD)), DESCRIBE)
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert "PASS" in out and "web:7" in out and "running 2/2" in out
    assert clock.sleeps == []


def test_false_green_after_circuit_breaker_rollback_fails_fast(ecs, capsys):
    client, stubber = ecs
    # CloudFormation said success, but ECS rolled back: the primary runs the previous task definition
    stubber.add_response(
        "describe_services",
        services_response(deployment(OLD_TD, reason="ECS deployment ecs-svc/1 completed.")),
        DESCRIBE,
    )
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ROLLED BACK (false green)" in out
    assert "runs web:6, not the deployed web:7" in out
    assert clock.sleeps == []


def test_rollback_in_progress_names_the_failed_deployment(ecs, capsys):
    client, stubber = ecs
    stubber.add_response(
        "describe_services",
        services_response(
            deployment(OLD_TD, rollout="IN_PROGRESS", running=1),
            deployment(NEW_TD, status="ACTIVE", rollout="FAILED", running=0,
                       reason="ECS deployment circuit breaker: tasks failed to start."),
        ),
        DESCRIBE,
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ACTIVE/FAILED (ECS deployment circuit breaker: tasks failed to start.)" in out


def test_in_progress_then_completed_keeps_polling_and_passes(ecs, capsys):
    client, stubber = ecs
    stubber.add_response(
        "describe_services",
        services_response(deployment(NEW_TD, rollout="IN_PROGRESS", running=1),
                          deployment(OLD_TD, status="ACTIVE", running=1)),
        DESCRIBE,
    )
    stubber.add_response(
        "describe_services",
        services_response(deployment(NEW_TD, rollout="IN_PROGRESS", running=1),
                          deployment(OLD_TD, status="ACTIVE", running=1)),
        DESCRIBE,
    )
    stubber.add_response("describe_services", services_response(deployment(NEW_TD)), DESCRIBE)
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert clock.sleeps == [15.0, 15.0]
    # an unchanged state is logged once, not on every poll
    assert out.count("waiting: deployment of web:7 in progress: running 1/2") == 1


def test_failed_rollout_state_fails_with_reason(ecs, capsys):
    client, stubber = ecs
    stubber.add_response(
        "describe_services",
        services_response(deployment(NEW_TD, rollout="FAILED", running=0,
                                     reason="ECS deployment circuit breaker: 3 tasks failed.")),
        DESCRIBE,
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "FAILED" in out and "3 tasks failed" in out


def test_timeout_reports_the_last_state_seen(ecs, capsys):
    client, stubber = ecs
    argv = ARGS[:-4] + ["--timeout", "60", "--interval", "20"]
    for _ in range(4):
        stubber.add_response(
            "describe_services", services_response(deployment(NEW_TD, rollout="IN_PROGRESS", running=1)), DESCRIBE
        )
    code, out, clock = run(client, capsys, argv)
    assert code == vr.EXIT_TIMEOUT
    assert clock.sleeps == [20.0, 20.0, 20.0]
    assert "TIMEOUT after 60s (limit 60s); last state: deployment of web:7 in progress: running 1/2" in out


def test_missing_service_fails(ecs, capsys):
    client, stubber = ecs
    stubber.add_response(
        "describe_services",
        {"services": [], "failures": [{"arn": SERVICE_ARN, "reason": "MISSING"}]},
        DESCRIBE,
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "service not found" in out and "MISSING" in out


def test_native_canary_passes_only_when_service_deployment_successful(ecs, capsys):
    client, stubber = ecs
    svc = services_response(deployment(NEW_TD, created=T0), strategy="CANARY")
    listed_baking = {"serviceDeployments": [
        brief(2, "IN_PROGRESS", created=T0),
        brief(1, "SUCCESSFUL", created=T0 - timedelta(days=1)),
    ]}
    listed_done = {"serviceDeployments": [
        brief(2, "SUCCESSFUL", created=T0),
        brief(1, "SUCCESSFUL", created=T0 - timedelta(days=1)),
    ]}
    stubber.add_response("describe_services", svc, DESCRIBE)
    stubber.add_response("list_service_deployments", listed_baking, LIST)
    stubber.add_response(
        "describe_service_revisions",
        revisions_response((1, OLD_TD), (2, NEW_TD)),
        {"serviceRevisionArns": [revision_arn(1), revision_arn(2)]},
    )
    stubber.add_response("describe_service_deployments", sd_detail(2, "IN_PROGRESS", stage="BAKE_TIME"),
                         {"serviceDeploymentArns": [sd_arn(2)]})
    # second poll: revisions are cached, so DescribeServiceRevisions is not called again
    stubber.add_response("describe_services", svc, DESCRIBE)
    stubber.add_response("list_service_deployments", listed_done, LIST)
    stubber.add_response("describe_service_deployments", sd_detail(2, "SUCCESSFUL"),
                         {"serviceDeploymentArns": [sd_arn(2)]})
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert "waiting: deployment of web:7 rolloutState COMPLETED; service deployment IN_PROGRESS at BAKE_TIME" in out
    assert "PASS" in out and "service deployment SUCCESSFUL" in out
    assert clock.sleeps == [15.0]


def test_native_rollback_status_fails_fast_even_while_primary_is_in_progress(ecs, capsys):
    client, stubber = ecs
    stubber.add_response(
        "describe_services",
        services_response(deployment(NEW_TD, rollout="IN_PROGRESS", running=2), strategy="BLUE_GREEN"),
        DESCRIBE,
    )
    stubber.add_response(
        "list_service_deployments", {"serviceDeployments": [brief(2, "ROLLBACK_IN_PROGRESS", created=T0)]}, LIST
    )
    stubber.add_response("describe_service_revisions", revisions_response((2, NEW_TD)),
                         {"serviceRevisionArns": [revision_arn(2)]})
    stubber.add_response(
        "describe_service_deployments",
        sd_detail(2, "ROLLBACK_IN_PROGRESS", stage="PRODUCTION_TRAFFIC_SHIFT",
                  rollback_reason="alarm triggered", triggered=["dev-web-5xx"]),
        {"serviceDeploymentArns": [sd_arn(2)]},
    )
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "service deployment ROLLBACK_IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT" in out
    assert "alarms triggered: dev-web-5xx" in out and "rollback: alarm triggered" in out
    assert clock.sleeps == []


def test_native_false_green_reports_rollback_successful(ecs, capsys):
    client, stubber = ecs
    stubber.add_response("describe_services", services_response(deployment(OLD_TD), strategy="LINEAR"), DESCRIBE)
    stubber.add_response(
        "list_service_deployments",
        {"serviceDeployments": [
            brief(2, "ROLLBACK_SUCCESSFUL", created=T0, reason="lifecycle hook returned FAILED"),
            brief(1, "SUCCESSFUL", created=T0 - timedelta(days=1)),
        ]},
        LIST,
    )
    stubber.add_response("describe_service_revisions", revisions_response((1, OLD_TD), (2, NEW_TD)),
                         {"serviceRevisionArns": [revision_arn(1), revision_arn(2)]})
    stubber.add_response("describe_service_deployments", sd_detail(2, "ROLLBACK_SUCCESSFUL"),
                         {"serviceDeploymentArns": [sd_arn(2)]})
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ROLLED BACK (false green)" in out
    assert "service deployment ROLLBACK_SUCCESSFUL (lifecycle hook returned FAILED)" in out


def test_native_uses_the_newest_service_deployment_of_the_expected_task_definition():
    observation = vr.Observation(
        services=services_response(deployment(NEW_TD, created=T0), strategy="BLUE_GREEN"),
        service_deployments={"serviceDeployments": [
            brief(3, "SUCCESSFUL", created=T0 - timedelta(hours=2)),
            brief(4, "IN_PROGRESS", created=T0),
        ]},
        service_revisions=revisions_response((3, NEW_TD), (4, NEW_TD)),
    )
    assert vr.decide(NEW_TD, observation).state == vr.WAITING


def test_native_ignores_a_service_deployment_older_than_the_ecs_deployment():
    # the same task definition was rolled back yesterday and is being deployed again now
    observation = vr.Observation(
        services=services_response(deployment(NEW_TD, rollout="IN_PROGRESS", created=T0), strategy="CANARY"),
        service_deployments={"serviceDeployments": [brief(2, "ROLLBACK_SUCCESSFUL", created=T0 - timedelta(days=1))]},
        service_revisions=revisions_response((2, NEW_TD)),
    )
    verdict = vr.decide(NEW_TD, observation)
    assert verdict.state == vr.WAITING
    assert "in progress" in verdict.message


def test_native_completed_without_a_listed_service_deployment_waits():
    observation = vr.Observation(
        services=services_response(deployment(NEW_TD), strategy="CANARY"),
        service_deployments={"serviceDeployments": []},
        service_revisions={"serviceRevisions": []},
    )
    verdict = vr.decide(NEW_TD, observation)
    assert verdict.state == vr.WAITING
    assert "no service deployment" in verdict.message


def test_family_revision_form_is_accepted():
    observation = vr.Observation(services=services_response(deployment(NEW_TD)))
    assert vr.decide("web:7", observation).state == vr.PASSED
    assert vr.decide("web:6", observation).state == vr.FAILED


def test_aws_error_exits_4_with_the_api_message(ecs, capsys):
    client, stubber = ecs
    stubber.add_response("describe_services", services_response(deployment(NEW_TD), strategy="CANARY"), DESCRIBE)
    stubber.add_client_error(
        "list_service_deployments",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform: ecs:ListServiceDeployments",
        http_status_code=400,
        expected_params=LIST,
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_AWS_ERROR
    assert "ListServiceDeployments failed: AccessDeniedException" in out


def test_arguments_fall_back_to_environment(ecs, capsys, monkeypatch):
    client, stubber = ecs
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("SERVICE_NAME", SERVICE)
    monkeypatch.setenv("TASK_DEFINITION_ARN", NEW_TD)
    stubber.add_response("describe_services", services_response(deployment(NEW_TD)), DESCRIBE)
    code, out, _ = run(client, capsys, [])
    assert code == vr.EXIT_OK


def test_cli_without_required_arguments_exits_2():
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cluster", CLUSTER], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "missing --service, --task-definition" in result.stderr


def test_cli_assumes_the_verifier_role_and_verifies_through_real_clients(monkeypatch, capsys):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    with mock_aws():
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName=CLUSTER)
        td = ecs.register_task_definition(
            family="web", containerDefinitions=[{"name": "web", "image": "web:1", "memory": 512}]
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=td, desiredCount=2)
        role = f"arn:aws:iam::{ACCOUNT}:role/notes-web-dev-deploy-verifier"
        argv = ["--cluster", CLUSTER, "--service", SERVICE, "--task-definition", td, "--region", REGION,
                "--role-arn", role]
        assert vr.main(argv) == vr.EXIT_OK
        out = capsys.readouterr().out
        assert f"role={role}" in out and "PASS" in out
        # the ECS client signs with the assumed role's temporary credentials, not the step's own
        credentials = vr.ecs_client(REGION, role)._request_signer._credentials.get_frozen_credentials()
        assert credentials.access_key != "testing" and credentials.token
