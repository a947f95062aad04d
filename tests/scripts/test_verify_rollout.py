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
# service revision ids and ECS deployment ids ("ecs-svc/<id>") as ECS writes them: 19 digits
OLD_REV = "4980306466373577095"
NEW_REV = "1234567890123456789"
OTHER_REV = "9313423515462893900"
SINCE = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
ARGS = ["--cluster", CLUSTER, "--service", SERVICE, "--task-definition", NEW_TD, "--since", SINCE.isoformat(),
        "--timeout", "900", "--interval", "15"]
DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}
LIST = {"cluster": CLUSTER, "service": SERVICE, "createdAt": {"after": SINCE - vr.SINCE_SKEW},
        "maxResults": vr.PAGE_SIZE}


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def deployment(td, revision, *, status="PRIMARY", rollout="COMPLETED", reason=None, running=2, desired=2,
               created=SINCE + timedelta(minutes=1)):
    d = {
        "id": f"ecs-svc/{revision}",
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


def services_response(*deployments, strategy=None, current=None):
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
    if current:
        service["currentServiceDeployment"] = sd_arn(current)
    return {"services": [service], "failures": []}


def revision_arn(revision):
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/{CLUSTER}/{SERVICE}/{revision}"


def sd_arn(revision):
    # service deployment ids are not the revision's: ECS writes them like "NCWGC2ZR-taawPAYrIaU5"
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{CLUSTER}/{SERVICE}/sd{revision[-6:]}XyZ"


def brief(revision, status, *, created=SINCE + timedelta(minutes=1), reason=None):
    b = {
        "serviceDeploymentArn": sd_arn(revision),
        "serviceArn": SERVICE_ARN,
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
        "targetServiceRevisionArn": revision_arn(revision),
        "status": status,
        "createdAt": created,
        "startedAt": created,
    }
    if reason:
        b["statusReason"] = reason
    return b


def listed(*briefs, next_token=None):
    page = {"serviceDeployments": list(briefs)}
    if next_token:
        page["nextToken"] = next_token
    return page


def revisions_response(*pairs):
    return {
        "serviceRevisions": [
            {"serviceRevisionArn": revision_arn(rev), "serviceArn": SERVICE_ARN, "taskDefinition": td}
            for rev, td in pairs
        ],
        "failures": [],
    }


def detail(revision, status, *, stage=None, rollback_to=None, rollback_reason=None, triggered=None,
           created=SINCE + timedelta(minutes=1)):
    d = {"serviceDeploymentArn": sd_arn(revision), "serviceArn": SERVICE_ARN, "status": status,
         "createdAt": created, "targetServiceRevision": {"arn": revision_arn(revision)}}
    if stage:
        d["lifecycleStage"] = stage
    if rollback_to:
        d["rollback"] = {"reason": rollback_reason or "rolled back", "startedAt": created + timedelta(minutes=3),
                         "serviceRevisionArn": revision_arn(rollback_to)}
    if triggered:
        d["alarms"] = {"status": "TRIGGERED", "alarmNames": triggered, "triggeredAlarmNames": triggered}
    return d


def details_response(*items):
    return {"serviceDeployments": list(items), "failures": []}


@pytest.fixture
def ecs():
    client = boto3.client("ecs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_poll(stubber, services, page, *, revisions=None, details=None, pages=()):
    """One poll: DescribeServices, every ListServiceDeployments page, then the descriptions not cached yet."""
    stubber.add_response("describe_services", services, DESCRIBE)
    stubber.add_response("list_service_deployments", page, LIST)
    for token, more in pages:
        stubber.add_response("list_service_deployments", more, {**LIST, "nextToken": token})
    if revisions:
        stubber.add_response("describe_service_revisions", revisions_response(*revisions),
                             {"serviceRevisionArns": sorted(revision_arn(rev) for rev, _ in revisions)})
    if details:
        stubber.add_response("describe_service_deployments", details_response(*details),
                             {"serviceDeploymentArns": sorted(d["serviceDeploymentArn"] for d in details)})


def run(client, capsys, argv=ARGS, cloudformation=None):
    clock = FakeClock()
    code = vr.main(argv, ecs=client, cloudformation=cloudformation, sleep=clock.sleep, clock=clock.monotonic)
    out = capsys.readouterr()
    return code, out.out + out.err, clock


def test_passes_when_the_newest_deployment_since_the_stage_succeeded_and_primary_is_its_revision(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV)),
        listed(brief(NEW_REV, "SUCCESSFUL")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "SUCCESSFUL")],
    )
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK, out
    assert "PASS: service web runs web:7" in out and "SUCCESSFUL of web:7" in out and "running 2/2" in out
    assert clock.sleeps == []


def test_rollback_with_an_unchanged_task_definition_is_a_false_green(ecs, capsys):
    client, stubber = ecs
    # A network change, task definition unchanged: the alarm rolled it back, so PRIMARY is the previous
    # deployment again, runs the "expected" task definition and is COMPLETED. ECS: "Amazon ECS doesn't create a
    # new service revision for a rollback operation. Amazon ECS uses the last successful service revision."
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, OLD_REV, created=SINCE - timedelta(days=2))),
        listed(brief(NEW_REV, "ROLLBACK_SUCCESSFUL", reason="alarm p99-latency in ALARM")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "ROLLBACK_SUCCESSFUL", rollback_to=OLD_REV, rollback_reason="alarm triggered",
                        triggered=["notes-web-dev-p99-latency"])],
    )
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ROLLED BACK (false green)" in out
    assert "ROLLBACK_SUCCESSFUL of web:7 (alarm p99-latency in ALARM)" in out
    assert "alarms triggered: notes-web-dev-p99-latency" in out and "rollback: alarm triggered" in out
    assert clock.sleeps == []


def test_a_rollback_is_found_on_a_later_page(ecs, capsys):
    client, stubber = ecs
    # ListServiceDeployments: "If you provided maxResults, it's possible the number of results is fewer than
    # maxResults" - only a missing nextToken ends the list
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV)),
        listed(brief(OTHER_REV, "SUCCESSFUL", created=SINCE + timedelta(minutes=3)), next_token="page-2"),
        pages=[("page-2", listed(brief(NEW_REV, "ROLLBACK_SUCCESSFUL", created=SINCE + timedelta(minutes=1))))],
        revisions=[(NEW_REV, NEW_TD), (OTHER_REV, NEW_TD)],
        details=[detail(OTHER_REV, "SUCCESSFUL"), detail(NEW_REV, "ROLLBACK_SUCCESSFUL", rollback_to=OLD_REV)],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert f"sd{NEW_REV[-6:]}XyZ ROLLBACK_SUCCESSFUL" in out


def test_primary_is_matched_to_its_service_deployment_by_id_not_by_time(ecs, capsys):
    client, stubber = ecs
    # the ECS deployment was created 20 minutes before the listed service deployment: no time rule may drop it
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV, created=SINCE + timedelta(minutes=1)), strategy="CANARY"),
        listed(brief(NEW_REV, "SUCCESSFUL", created=SINCE + timedelta(minutes=21))),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "SUCCESSFUL")],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_OK, out


def test_primary_that_is_not_the_newest_revision_waits_until_it_is(ecs, capsys):
    client, stubber = ecs
    # DescribeServices and ListServiceDeployments are read one after the other; PRIMARY can lag behind
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, OLD_REV, created=SINCE - timedelta(days=1))),
        listed(brief(NEW_REV, "SUCCESSFUL")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "SUCCESSFUL")],
    )
    # second poll: the revision and the finished service deployment are cached, not described again
    stubber.add_response("describe_services", services_response(deployment(NEW_TD, NEW_REV)), DESCRIBE)
    stubber.add_response("list_service_deployments", listed(brief(NEW_REV, "SUCCESSFUL")), LIST)
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert f"waiting: PRIMARY deployment ecs-svc/{OLD_REV} is not the target revision {NEW_REV}" in out
    assert clock.sleeps == [15.0]


def test_the_service_naming_the_newest_as_its_current_deployment_also_matches():
    observation = vr.Observation(
        services=services_response(deployment(NEW_TD, "ecs-svc-id-of-another-form"), current=NEW_REV),
        since=SINCE,
        service_deployments=[brief(NEW_REV, "SUCCESSFUL")],
        revisions={revision_arn(NEW_REV): revisions_response((NEW_REV, NEW_TD))["serviceRevisions"][0]},
        details={sd_arn(NEW_REV): detail(NEW_REV, "SUCCESSFUL")},
    )
    assert vr.decide(NEW_TD, observation).state == vr.PASSED


def test_canary_baking_keeps_polling_then_passes(ecs, capsys):
    client, stubber = ecs
    svc = services_response(deployment(NEW_TD, NEW_REV, rollout="IN_PROGRESS"), strategy="CANARY")
    expect_poll(stubber, svc, listed(brief(NEW_REV, "IN_PROGRESS")), revisions=[(NEW_REV, NEW_TD)],
                details=[detail(NEW_REV, "IN_PROGRESS", stage="BAKE_TIME")])
    expect_poll(stubber, svc, listed(brief(NEW_REV, "IN_PROGRESS")),
                details=[detail(NEW_REV, "IN_PROGRESS", stage="BAKE_TIME")])
    done = services_response(deployment(NEW_TD, NEW_REV), strategy="CANARY")
    expect_poll(stubber, done, listed(brief(NEW_REV, "SUCCESSFUL")), details=[detail(NEW_REV, "SUCCESSFUL")])
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert clock.sleeps == [15.0, 15.0]
    # an unchanged state is logged once, not on every poll
    assert out.count(f"waiting: service deployment sd{NEW_REV[-6:]}XyZ IN_PROGRESS of web:7 at BAKE_TIME") == 1


def test_rollback_in_progress_fails_fast_while_primary_is_still_in_progress(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV, rollout="IN_PROGRESS"), strategy="BLUE_GREEN"),
        listed(brief(NEW_REV, "ROLLBACK_IN_PROGRESS")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "ROLLBACK_IN_PROGRESS", stage="PRODUCTION_TRAFFIC_SHIFT",
                        rollback_to=OLD_REV, rollback_reason="alarm triggered", triggered=["dev-web-5xx"])],
    )
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ROLLBACK_IN_PROGRESS of web:7 at PRODUCTION_TRAFFIC_SHIFT" in out
    assert "alarms triggered: dev-web-5xx" in out and "rollback: alarm triggered" in out
    assert clock.sleeps == []


def test_primary_on_the_old_task_definition_is_a_false_green_naming_the_rolled_back_deployment(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(OLD_TD, OLD_REV, created=SINCE - timedelta(days=1)), strategy="LINEAR"),
        listed(brief(NEW_REV, "ROLLBACK_SUCCESSFUL", reason="lifecycle hook returned FAILED")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "ROLLBACK_SUCCESSFUL", rollback_to=OLD_REV)],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ROLLED BACK (false green): service web runs web:6, not the deployed web:7" in out
    assert "ROLLBACK_SUCCESSFUL of web:7 (lifecycle hook returned FAILED)" in out


def test_circuit_breaker_rollback_in_progress_names_the_failed_deployment(ecs, capsys):
    client, stubber = ecs
    # circuit breaker: "When the rollback starts, the deployment changes from a COMPLETED to IN_PROGRESS"
    expect_poll(
        stubber,
        services_response(
            deployment(OLD_TD, OLD_REV, rollout="IN_PROGRESS", running=1, created=SINCE - timedelta(days=1)),
            deployment(NEW_TD, NEW_REV, status="ACTIVE", rollout="FAILED", running=0,
                       reason="ECS deployment circuit breaker: tasks failed to start."),
        ),
        listed(brief(NEW_REV, "ROLLBACK_IN_PROGRESS")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "ROLLBACK_IN_PROGRESS", rollback_to=OLD_REV)],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "ACTIVE/FAILED (ECS deployment circuit breaker: tasks failed to start.)" in out


def test_newest_successful_deployment_of_another_task_definition_fails(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV)),
        listed(brief(NEW_REV, "SUCCESSFUL")),
        revisions=[(NEW_REV, OLD_TD)],
        details=[detail(NEW_REV, "SUCCESSFUL")],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "deployed web:6, not web:7" in out


def test_a_stopped_newest_deployment_fails(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, OLD_REV, created=SINCE - timedelta(days=1))),
        listed(brief(NEW_REV, "STOPPED", reason="stopped by a user")),
        revisions=[(NEW_REV, NEW_TD)],
        details=[detail(NEW_REV, "STOPPED")],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "was stopped" in out and "stopped by a user" in out


def test_no_deployment_since_the_stage_passes_when_primary_completed_and_nothing_was_rolled_back(ecs, capsys):
    client, stubber = ecs
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, NEW_REV, created=SINCE - timedelta(days=3)), current=NEW_REV),
        listed(),
        details=[detail(NEW_REV, "SUCCESSFUL", created=SINCE - timedelta(days=3))],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_OK
    assert "no service deployment since 2026-11-27T08:00:00+00:00 (the deploy did not change the service)" in out


def test_no_deployment_since_the_stage_fails_when_the_current_one_was_rolled_back(ecs, capsys):
    client, stubber = ecs
    # the previous run's change was rolled back, and this run changed nothing in the service: the service does not
    # run what the stack describes
    expect_poll(
        stubber,
        services_response(deployment(NEW_TD, OLD_REV, created=SINCE - timedelta(days=5)), current=NEW_REV),
        listed(),
        details=[detail(NEW_REV, "ROLLBACK_SUCCESSFUL", rollback_to=OLD_REV, created=SINCE - timedelta(hours=2))],
    )
    code, out, _ = run(client, capsys)
    assert code == vr.EXIT_FAILED
    assert "current deployment, from before this stage, was rolled back" in out


def test_no_deployment_since_the_stage_waits_while_primary_is_in_progress(ecs, capsys):
    client, stubber = ecs
    expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV, rollout="IN_PROGRESS", running=1)), listed())
    expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV)), listed())
    code, out, clock = run(client, capsys)
    assert code == vr.EXIT_OK
    assert "waiting: no service deployment since 2026-11-27T08:00:00+00:00 yet; PRIMARY rolloutState IN_PROGRESS" in out
    assert clock.sleeps == [15.0]


def test_the_timeout_comes_from_the_environment(ecs, capsys, monkeypatch):
    client, stubber = ecs
    # prod: canary, bake and hook take longer than the 900 s default; the pipeline passes rollout + bake + margin
    monkeypatch.setenv("VERIFY_TIMEOUT_SECONDS", "1800")
    argv = [a for a in ARGS if a not in ("--timeout", "900", "--interval", "15")] + ["--interval", "300"]
    baking = services_response(deployment(NEW_TD, NEW_REV, rollout="IN_PROGRESS"), strategy="CANARY")
    expect_poll(stubber, baking, listed(brief(NEW_REV, "IN_PROGRESS")), revisions=[(NEW_REV, NEW_TD)],
                details=[detail(NEW_REV, "IN_PROGRESS", stage="BAKE_TIME")])
    for _ in range(4):
        expect_poll(stubber, baking, listed(brief(NEW_REV, "IN_PROGRESS")),
                    details=[detail(NEW_REV, "IN_PROGRESS", stage="BAKE_TIME")])
    expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV), strategy="CANARY"),
                listed(brief(NEW_REV, "SUCCESSFUL")), details=[detail(NEW_REV, "SUCCESSFUL")])
    code, out, clock = run(client, capsys, argv)
    assert code == vr.EXIT_OK, out
    assert "timeout=1800s" in out and sum(clock.sleeps) == 1500


def test_timeout_reports_the_last_state_seen(ecs, capsys):
    client, stubber = ecs
    argv = ARGS[:-4] + ["--timeout", "60", "--interval", "20"]
    for _ in range(4):
        expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV, rollout="IN_PROGRESS", running=1)),
                    listed())
    code, out, clock = run(client, capsys, argv)
    assert code == vr.EXIT_TIMEOUT
    assert clock.sleeps == [20.0, 20.0, 20.0]
    assert "TIMEOUT after 60s (limit 60s); last state: no service deployment since" in out


@pytest.mark.parametrize(
    ("stack", "started"),
    [
        ({"LastUpdatedTime": SINCE}, SINCE),
        ({}, SINCE - timedelta(hours=1)),
    ],
    ids=["updated-stack", "new-stack"],
)
def test_without_since_the_stage_start_is_the_stack_update_time(ecs, capsys, stack, started):
    client, stubber = ecs
    cloudformation = boto3.client("cloudformation", region_name=REGION, aws_access_key_id="testing",
                                  aws_secret_access_key="testing")
    argv = ARGS[:6] + ["--stack-name", "notes-web-pipeline-Dev-Stateless"]
    # DescribeStacks: LastUpdatedTime "The time the stack was last updated"; absent for a stack never updated
    with Stubber(cloudformation) as cfn:
        cfn.add_response(
            "describe_stacks",
            {"Stacks": [{"StackName": "notes-web-pipeline-Dev-Stateless", "CreationTime": SINCE - timedelta(hours=1),
                         "StackStatus": "UPDATE_COMPLETE" if stack else "CREATE_COMPLETE", **stack}]},
            {"StackName": "notes-web-pipeline-Dev-Stateless"},
        )
        stubber.add_response("describe_services", services_response(deployment(NEW_TD, NEW_REV)), DESCRIBE)
        stubber.add_response("list_service_deployments", listed(brief(NEW_REV, "SUCCESSFUL")),
                             {**LIST, "createdAt": {"after": started - vr.SINCE_SKEW}})
        stubber.add_response("describe_service_revisions", revisions_response((NEW_REV, NEW_TD)),
                             {"serviceRevisionArns": [revision_arn(NEW_REV)]})
        stubber.add_response("describe_service_deployments", details_response(detail(NEW_REV, "SUCCESSFUL")),
                             {"serviceDeploymentArns": [sd_arn(NEW_REV)]})
        code, out, _ = run(client, capsys, argv, cloudformation=cloudformation)
        cfn.assert_no_pending_responses()
    assert code == vr.EXIT_OK, out
    assert f"last updated at {started.isoformat()}" in out


@pytest.mark.parametrize(
    "value", ["2026-11-27T08:00:00Z", "2026-11-27T08:00:00+00:00", "2026-11-27T09:00:00+01:00", "1795766400"]
)
def test_since_takes_iso_8601_or_epoch_seconds(value):
    assert vr.parse_since(value) == SINCE


def test_a_naive_since_is_utc():
    assert vr.parse_since("2026-11-27T08:00:00") == SINCE


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (ARGS[:6], "missing --since or --stack-name"),
        (ARGS[:6] + ["--since", "yesterday"], "not an ISO 8601 time or epoch seconds"),
    ],
)
def test_bad_or_missing_stage_start_exits_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("DEPLOY_STARTED_AT", raising=False)
    monkeypatch.delenv("STACK_NAME", raising=False)
    with pytest.raises(SystemExit) as exited:
        vr.main(argv, ecs=object())
    assert exited.value.code == vr.EXIT_USAGE
    assert message in capsys.readouterr().err


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


def test_family_revision_form_is_accepted():
    observation = vr.Observation(services=services_response(deployment(NEW_TD, NEW_REV)), since=SINCE)
    assert vr.decide("web:7", observation).state == vr.PASSED
    assert vr.decide("web:6", observation).state == vr.FAILED


def test_aws_error_exits_4_with_the_api_message(ecs, capsys):
    client, stubber = ecs
    stubber.add_response("describe_services", services_response(deployment(NEW_TD, NEW_REV)), DESCRIBE)
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
    monkeypatch.setenv("DEPLOY_STARTED_AT", "2026-11-27T08:00:00Z")
    expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV)), listed(brief(NEW_REV, "SUCCESSFUL")),
                revisions=[(NEW_REV, NEW_TD)], details=[detail(NEW_REV, "SUCCESSFUL")])
    code, out, _ = run(client, capsys, [])
    assert code == vr.EXIT_OK


def test_cli_without_required_arguments_exits_2():
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cluster", CLUSTER], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert "missing --service, --task-definition" in result.stderr


def test_the_clients_sign_with_the_assumed_verifier_role(monkeypatch, capsys, aws_calls):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        role = f"arn:aws:iam::{ACCOUNT}:role/notes-web-dev-deploy-verifier"
        ecs_api, cloudformation = vr.clients(REGION, role)
        for client in (ecs_api, cloudformation):
            credentials = client._request_signer._credentials.get_frozen_credentials()
            assert credentials.access_key != "testing" and credentials.token
        # one role session for both clients
        assert aws_calls == [("aws_session.py", "sts:AssumeRole")]
        with Stubber(ecs_api) as stubber:
            expect_poll(stubber, services_response(deployment(NEW_TD, NEW_REV)), listed(brief(NEW_REV, "SUCCESSFUL")),
                        revisions=[(NEW_REV, NEW_TD)], details=[detail(NEW_REV, "SUCCESSFUL")])
            assert vr.main(ARGS + ["--role-arn", role], ecs=ecs_api, cloudformation=cloudformation) == vr.EXIT_OK
        out = capsys.readouterr().out
        assert f"role={role}" in out and "PASS" in out
