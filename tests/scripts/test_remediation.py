import importlib.util
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "remediation_under_test", ROOT / "stages" / "functions" / "remediation" / "index.py"
)
remediation = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = remediation
_spec.loader.exec_module(remediation)

REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "prod-cluster"
SERVICE = "web"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:critical"
TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}


def alarm_event(state="ALARM", event_id="5f3c1a2e-0000-4000-8000-000000000001"):
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-27T09:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:prod-web-running-tasks-below-minimum"],
        "detail": {
            "alarmName": "prod-web-running-tasks-below-minimum",
            "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [1.0] < 2.0", "timestamp": "x"},
            "previousState": {"value": "OK", "reason": "", "timestamp": "x"},
        },
    }


def deployment(*, status="PRIMARY", rollout="COMPLETED", created=NOW - timedelta(hours=1), dep_id="ecs-svc/111"):
    return {
        "id": dep_id,
        "status": status,
        "taskDefinition": TD,
        "desiredCount": 2,
        "runningCount": 1,
        "createdAt": created,
        "rolloutState": rollout,
    }


def services_response(*deployments, running=1, desired=2):
    return {
        "services": [
            {
                "serviceName": SERVICE,
                "status": "ACTIVE",
                "runningCount": running,
                "desiredCount": desired,
                "deployments": list(deployments),
            }
        ],
        "failures": [],
    }


class Recording:
    """Forwards to a stubbed client and keeps the publish arguments for assertions."""

    def __init__(self, client):
        self._client = client
        self.published = []

    def publish(self, **kwargs):
        self.published.append(kwargs)
        return self._client.publish(**kwargs)


@pytest.fixture
def clients():
    kw = dict(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    ecs, sns = boto3.client("ecs", **kw), boto3.client("sns", **kw)
    with Stubber(ecs) as ecs_stub, Stubber(sns) as sns_stub:
        yield ecs, ecs_stub, Recording(sns), sns_stub
        ecs_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()


def expect_publish(sns_stub, subject):
    sns_stub.add_response("publish", {"MessageId": "m-1"}, {"TopicArn": TOPIC, "Subject": subject, "Message": ANY})


def invoke(ecs, sns, event=None, *, now=NOW, min_interval=900):
    return remediation.remediate(
        event or alarm_event(),
        ecs=ecs,
        sns=sns,
        cluster=CLUSTER,
        service_name=SERVICE,
        topic_arn=TOPIC,
        min_interval_seconds=min_interval,
        now=now,
    )


def test_acts_when_below_minimum_and_nothing_in_progress(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    ecs_stub.add_response(
        "update_service",
        {"service": {"serviceName": SERVICE, "deployments": [deployment(created=NOW, dep_id="ecs-svc/222",
                                                                       rollout="IN_PROGRESS")]}},
        {"cluster": CLUSTER, "service": SERVICE, "forceNewDeployment": True},
    )
    expect_publish(sns_stub, "Remediation web: forced a new deployment")
    result = invoke(ecs, sns)
    assert result["acted"] is True
    assert result["decision"]["reason"] == "below_minimum"
    assert result["deploymentId"] == "ecs-svc/222"
    message = sns.published[0]["Message"]
    assert "running 1 < desired 2" in message
    assert "New deployment: ecs-svc/222" in message
    assert "prod-web-running-tasks-below-minimum" in message


@pytest.mark.parametrize(
    "deployments",
    [
        [deployment(), deployment(status="ACTIVE", dep_id="ecs-svc/000")],
        [deployment(rollout="IN_PROGRESS")],
    ],
    ids=["two-deployments", "primary-in-progress"],
)
def test_skips_while_a_deployment_is_in_progress(clients, deployments):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response("describe_services", services_response(*deployments), DESCRIBE)
    expect_publish(sns_stub, "Remediation web: skipped (deployment_in_progress)")
    result = invoke(ecs, sns)
    assert result["acted"] is False
    assert "ECS is already replacing tasks" in sns.published[0]["Message"]


def test_skips_when_recovered(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response("describe_services", services_response(deployment(), running=2), DESCRIBE)
    expect_publish(sns_stub, "Remediation web: skipped (recovered)")
    result = invoke(ecs, sns)
    assert result["decision"]["reason"] == "recovered"
    assert "running 2 >= desired 2" in sns.published[0]["Message"]


def test_rate_limited_when_newest_deployment_is_recent(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response(
        "describe_services", services_response(deployment(created=NOW - timedelta(seconds=300))), DESCRIBE
    )
    expect_publish(sns_stub, "Remediation web: skipped (rate_limited)")
    result = invoke(ecs, sns)
    assert result["decision"]["reason"] == "rate_limited"
    assert "started 300s ago (minimum interval 900s)" in sns.published[0]["Message"]


def test_skips_an_event_that_is_not_alarm(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    expect_publish(sns_stub, "Remediation web: skipped (not_in_alarm)")
    assert invoke(ecs, sns, alarm_event(state="OK"))["acted"] is False


def test_missing_service_is_a_skip_not_an_error(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response(
        "describe_services", {"services": [], "failures": [{"arn": SERVICE, "reason": "MISSING"}]}, DESCRIBE
    )
    expect_publish(sns_stub, "Remediation web: skipped (service_unavailable)")
    assert invoke(ecs, sns)["decision"]["reason"] == "service_unavailable"


def test_failed_update_is_published_then_raised(clients):
    ecs, ecs_stub, sns, sns_stub = clients
    ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    ecs_stub.add_client_error("update_service", service_error_code="AccessDeniedException",
                              service_message="not authorized", http_status_code=400)
    expect_publish(sns_stub, "Remediation web: FAILED to force a new deployment")
    with pytest.raises(RuntimeError, match="AccessDeniedException"):
        invoke(ecs, sns)
    assert "Error: AccessDeniedException" in sns.published[0]["Message"]


def test_subject_is_ascii_single_line_and_at_most_100_chars():
    subject = remediation._subject("Remediation " + "a-very-long-service-name-" * 8 + "\n: skipped (rate_limited) ✓")
    assert len(subject) <= 100
    assert subject.isascii() and "\n" not in subject


def test_handler_reads_environment_and_defaults_the_interval(clients, monkeypatch):
    ecs, ecs_stub, sns, sns_stub = clients
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("SERVICE_NAME", SERVICE)
    monkeypatch.setenv("TOPIC_ARN", TOPIC)
    monkeypatch.delenv("MIN_INTERVAL_SECONDS", raising=False)
    # 899 s old: inside the default 900 s interval
    ecs_stub.add_response(
        "describe_services", services_response(deployment(created=NOW - timedelta(seconds=899))), DESCRIBE
    )
    expect_publish(sns_stub, "Remediation web: skipped (rate_limited)")
    result = remediation.handler(alarm_event(), None, ecs=ecs, sns=sns, now=NOW)
    assert result["decision"]["reason"] == "rate_limited"


def test_handler_rejects_a_malformed_interval(monkeypatch):
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("SERVICE_NAME", SERVICE)
    monkeypatch.setenv("TOPIC_ARN", TOPIC)
    monkeypatch.setenv("MIN_INTERVAL_SECONDS", "15m")
    with pytest.raises(ValueError, match="MIN_INTERVAL_SECONDS"):
        remediation.handler(alarm_event(), None, ecs=object(), sns=object(), now=NOW)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    with mock_aws():
        yield


def test_duplicate_event_forces_only_one_deployment_and_publishes_twice(aws, monkeypatch):
    from moto.ecs.models import ecs_backends

    ecs, sns, sqs = boto3.client("ecs"), boto3.client("sns"), boto3.client("sqs")
    ecs.create_cluster(clusterName=CLUSTER)
    td = ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "web:1", "memory": 512}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=td, desiredCount=2)
    topic = sns.create_topic(Name="critical")["TopicArn"]
    queue = sqs.create_queue(QueueName="critical-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("CLUSTER_NAME", CLUSTER)
    monkeypatch.setenv("SERVICE_NAME", SERVICE)
    monkeypatch.setenv("TOPIC_ARN", topic)
    monkeypatch.setenv("MIN_INTERVAL_SECONDS", "900")

    # a task died an hour after the last deployment; moto cannot stop tasks, so set the counts directly
    backend_service = ecs_backends[ACCOUNT][REGION].services[f"{CLUSTER}:{SERVICE}"]
    backend_service.running_count = 1
    backend_service.deployments[0]["createdAt"] -= timedelta(hours=1)

    def deployment_ids():
        return [d["id"] for d in ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["deployments"]]

    before = deployment_ids()
    event = alarm_event()
    now = datetime.now(timezone.utc)
    first = remediation.handler(event, None, ecs=ecs, sns=sns, now=now)
    after_first = deployment_ids()
    # EventBridge delivers at least once: the same event again, seconds later
    second = remediation.handler(event, None, ecs=ecs, sns=sns, now=now + timedelta(seconds=5))
    after_second = deployment_ids()

    assert first["acted"] is True and first["deploymentId"] == after_first[0]
    assert after_first != before
    assert second["acted"] is False and second["decision"]["reason"] == "rate_limited"
    assert after_second == after_first

    # once the interval has passed and the service is still short, it acts again
    third = remediation.handler(event, None, ecs=ecs, sns=sns, now=now + timedelta(seconds=901))
    assert third["acted"] is True and deployment_ids() != after_second

    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    subjects = sorted(json.loads(m["Body"])["Subject"] for m in received)
    assert subjects == [
        "Remediation web: forced a new deployment",
        "Remediation web: forced a new deployment",
        "Remediation web: skipped (rate_limited)",
    ]
