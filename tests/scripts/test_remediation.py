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
ALARM = "prod-web-running-tasks-below-minimum"
DEPLOYMENT_ALARMS = ("notes-web-prod-target-5xx-rate", "notes-web-prod-p99-latency")
TABLE = "remediation-claims"
SETTINGS = remediation.Settings(
    cluster=CLUSTER,
    service_name=SERVICE,
    topic_arn=TOPIC,
    alarm_name=ALARM,
    deployment_alarm_names=DEPLOYMENT_ALARMS,
    claims_table=TABLE,
    min_interval_seconds=900,
)
DESCRIBE = {"cluster": CLUSTER, "services": [SERVICE]}
DESCRIBE_ALARMS = {"AlarmNames": [ALARM, *DEPLOYMENT_ALARMS], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}


def alarm_event(state="ALARM", event_id="5f3c1a2e-0000-4000-8000-000000000001"):
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-27T09:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{ALARM}"],
        "detail": {
            "alarmName": ALARM,
            "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [1.0] < 2.0", "timestamp": "x"},
            "previousState": {"value": "OK", "reason": "", "timestamp": "x"},
        },
    }


def scheduled_event(event_id="8d9b6a2c-0000-4000-8000-000000000002"):
    # EventBridge scheduled rule: "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-11-27T09:05:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/prod-Stateless-RemediationRecheck"],
        "detail": {},
    }


def deployment(*, status="PRIMARY", rollout="COMPLETED", created=NOW - timedelta(hours=1), dep_id="ecs-svc/111"):
    return {
        "id": dep_id,
        "status": status,
        "taskDefinition": TD,
        "desiredCount": 2,
        "runningCount": 1,
        "pendingCount": 0,
        "createdAt": created,
        "rolloutState": rollout,
    }


def services_response(*deployments, running=1, pending=0, desired=2):
    return {
        "services": [
            {
                "serviceName": SERVICE,
                "status": "ACTIVE",
                "runningCount": running,
                "pendingCount": pending,
                "desiredCount": desired,
                "deployments": list(deployments),
            }
        ],
        "failures": [],
    }


def alarms_response(state="ALARM", *, firing=()):
    def alarm(name, value):
        return {"AlarmName": name, "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
                "StateValue": value, "StateReason": "Threshold Crossed", "StateUpdatedTimestamp": NOW}

    alarms = [alarm(ALARM, state)] + [alarm(n, "ALARM" if n in firing else "OK") for n in DEPLOYMENT_ALARMS]
    return {"MetricAlarms": alarms, "CompositeAlarms": []}


def claim_params(dep_id="ecs-svc/111", event_id="5f3c1a2e-0000-4000-8000-000000000001"):
    stamp = int(NOW.timestamp())
    return {
        "TableName": TABLE,
        "Item": {
            "claim": {"S": f"{CLUSTER}/{SERVICE}/{dep_id}"},
            "claimedAt": {"N": str(stamp)},
            "expiresAt": {"N": str(stamp + remediation.CLAIM_TTL_SECONDS)},
            "eventId": {"S": event_id},
        },
        "ConditionExpression": "attribute_not_exists(#claim) OR #claimedAt < :lapsed",
        "ExpressionAttributeNames": {"#claim": "claim", "#claimedAt": "claimedAt"},
        "ExpressionAttributeValues": {":lapsed": {"N": str(stamp - 900)}},
    }


class Recording:
    """Forwards to a stubbed client and keeps the publish arguments for assertions."""

    def __init__(self, client):
        self._client = client
        self.published = []

    def publish(self, **kwargs):
        self.published.append(kwargs)
        return self._client.publish(**kwargs)


class Clients:
    def __init__(self):
        kw = dict(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.ecs, self.cloudwatch, self.dynamodb = (boto3.client(n, **kw) for n in ("ecs", "cloudwatch", "dynamodb"))
        sns = boto3.client("sns", **kw)
        self.sns = Recording(sns)
        self.stubs = {name: Stubber(client) for name, client in
                      (("ecs", self.ecs), ("sns", sns), ("cloudwatch", self.cloudwatch), ("dynamodb", self.dynamodb))}

    def __getattr__(self, name):
        return self.stubs[name.removesuffix("_stub")]


@pytest.fixture
def clients():
    made = Clients()
    for stub in made.stubs.values():
        stub.activate()
    yield made
    for stub in made.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def expect_publish(clients, subject):
    clients.sns_stub.add_response("publish", {"MessageId": "m-1"},
                                  {"TopicArn": TOPIC, "Subject": subject, "Message": ANY})


def expect_alarms(clients, state="ALARM", firing=()):
    clients.cloudwatch_stub.add_response("describe_alarms", alarms_response(state, firing=firing), DESCRIBE_ALARMS)


def expect_forced(clients, dep_id="ecs-svc/222"):
    clients.ecs_stub.add_response(
        "update_service",
        {"service": {"serviceName": SERVICE, "deployments": [deployment(created=NOW, dep_id=dep_id,
                                                                       rollout="IN_PROGRESS")]}},
        {"cluster": CLUSTER, "service": SERVICE, "forceNewDeployment": True},
    )


def invoke(clients, event=None, *, now=NOW):
    return remediation.remediate(
        event or alarm_event(),
        ecs=clients.ecs,
        sns=clients.sns,
        cloudwatch=clients.cloudwatch,
        dynamodb=clients.dynamodb,
        settings=SETTINGS,
        now=now,
    )


def test_acts_when_below_minimum_and_nothing_in_progress(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    clients.dynamodb_stub.add_response("put_item", {}, claim_params())
    expect_forced(clients)
    expect_publish(clients, "Remediation web: forced a new deployment")
    result = invoke(clients)
    assert result["acted"] is True
    assert result["decision"]["reason"] == "below_minimum"
    assert result["deploymentId"] == "ecs-svc/222"
    message = clients.sns.published[0]["Message"]
    assert "running 1 (+0 pending) < desired 2" in message
    assert "New deployment: ecs-svc/222" in message
    assert ALARM in message


@pytest.mark.parametrize(
    "deployments",
    [
        [deployment(), deployment(status="ACTIVE", dep_id="ecs-svc/000")],
        [deployment(rollout="IN_PROGRESS")],
    ],
    ids=["two-deployments", "primary-in-progress"],
)
def test_skips_while_a_deployment_is_in_progress_and_says_it_will_look_again(clients, deployments):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(*deployments), DESCRIBE)
    expect_publish(clients, "Remediation web: skipped (deployment_in_progress)")
    result = invoke(clients)
    assert result["acted"] is False
    message = clients.sns.published[0]["Message"]
    assert "ECS is already replacing tasks" in message
    assert "Re-checked every 5 minutes while the alarm stays in ALARM." in message


def test_skips_when_recovered(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment(), running=2), DESCRIBE)
    expect_publish(clients, "Remediation web: skipped (recovered)")
    result = invoke(clients)
    assert result["decision"]["reason"] == "recovered"
    assert "running 2 >= desired 2" in clients.sns.published[0]["Message"]


def test_skips_while_ecs_is_already_starting_replacement_tasks(clients):
    expect_alarms(clients)
    # Service.pendingCount: "The number of tasks in the cluster that are in the PENDING state"; the service
    # scheduler starts a replacement for a stopped task by itself
    clients.ecs_stub.add_response("describe_services", services_response(deployment(), running=1, pending=1),
                                  DESCRIBE)
    expect_publish(clients, "Remediation web: skipped (tasks_starting)")
    result = invoke(clients)
    assert result["decision"]["reason"] == "tasks_starting"
    assert "ECS is starting 1 task(s)" in clients.sns.published[0]["Message"]


def test_rate_limited_when_newest_deployment_is_recent(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response(
        "describe_services", services_response(deployment(created=NOW - timedelta(seconds=300))), DESCRIBE
    )
    expect_publish(clients, "Remediation web: skipped (rate_limited)")
    result = invoke(clients)
    assert result["decision"]["reason"] == "rate_limited"
    assert "started 300s ago (minimum interval 900s)" in clients.sns.published[0]["Message"]


def test_a_late_alarm_event_does_not_act_on_an_alarm_that_already_cleared(clients):
    # EventBridge delivers at least once and not always at once: the alarm's state now decides, not the event's
    expect_alarms(clients, state="OK")
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    expect_publish(clients, "Remediation web: skipped (not_in_alarm)")
    result = invoke(clients, alarm_event(state="ALARM"))
    assert result["acted"] is False and result["alarmState"] == "OK"


def test_deployment_alarms_already_in_alarm_are_named_and_the_deployment_still_forced(clients):
    # ECS "set[s] the deployment to failed when it detects that a specified CloudWatch alarm has gone into the
    # ALARM state": an alarm already in ALARM when the forced deployment starts never goes into it
    expect_alarms(clients, firing=("notes-web-prod-p99-latency",))
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    clients.dynamodb_stub.add_response("put_item", {}, claim_params())
    expect_forced(clients)
    expect_publish(clients, "Remediation web: forced a new deployment")
    result = invoke(clients)
    assert result["acted"] is True
    assert result["deploymentAlarmsInAlarm"] == ["notes-web-prod-p99-latency"]
    message = clients.sns.published[0]["Message"]
    assert "Deployment alarms already in ALARM: notes-web-prod-p99-latency" in message
    assert "has no alarm rollback (the circuit breaker still applies)" in message


def test_another_invocation_holding_the_claim_means_no_second_deployment(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    # PutItem with a ConditionExpression: "If the condition evaluates to false, the write fails" with
    # ConditionalCheckFailedException
    clients.dynamodb_stub.add_client_error("put_item", service_error_code="ConditionalCheckFailedException",
                                           service_message="The conditional request failed",
                                           http_status_code=400, expected_params=claim_params())
    expect_publish(clients, "Remediation web: skipped (claimed_elsewhere)")
    result = invoke(clients)
    assert result["acted"] is False
    assert "already claimed the remediation after deployment ecs-svc/111" in clients.sns.published[0]["Message"]


def test_a_scheduled_recheck_while_the_alarm_is_ok_does_nothing_else(clients):
    expect_alarms(clients, state="OK")
    result = invoke(clients, scheduled_event())
    assert result["acted"] is False and result["decision"]["reason"] == "not_in_alarm"
    assert clients.sns.published == []


def test_a_scheduled_recheck_acts_once_the_earlier_reason_to_skip_is_gone(clients):
    # the alarm rule fires only on the change into ALARM: a skipped run is retried by the schedule
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    clients.dynamodb_stub.add_response(
        "put_item", {}, claim_params(event_id="8d9b6a2c-0000-4000-8000-000000000002")
    )
    expect_forced(clients)
    expect_publish(clients, "Remediation web: forced a new deployment")
    result = invoke(clients, scheduled_event())
    assert result["acted"] is True and result["scheduled"] is True
    assert "(scheduled re-check)" in clients.sns.published[0]["Message"]


def test_a_scheduled_recheck_that_must_skip_again_stays_silent(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment(rollout="IN_PROGRESS")),
                                  DESCRIBE)
    result = invoke(clients, scheduled_event())
    assert result["decision"]["reason"] == "deployment_in_progress"
    assert clients.sns.published == []


def test_missing_service_is_a_skip_not_an_error(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response(
        "describe_services", {"services": [], "failures": [{"arn": SERVICE, "reason": "MISSING"}]}, DESCRIBE
    )
    expect_publish(clients, "Remediation web: skipped (service_unavailable)")
    assert invoke(clients)["decision"]["reason"] == "service_unavailable"


def test_failed_update_is_published_then_raised(clients):
    expect_alarms(clients)
    clients.ecs_stub.add_response("describe_services", services_response(deployment()), DESCRIBE)
    clients.dynamodb_stub.add_response("put_item", {}, claim_params())
    clients.ecs_stub.add_client_error("update_service", service_error_code="AccessDeniedException",
                                      service_message="not authorized", http_status_code=400)
    expect_publish(clients, "Remediation web: FAILED to force a new deployment")
    with pytest.raises(RuntimeError, match="AccessDeniedException"):
        invoke(clients)
    assert "Error: AccessDeniedException" in clients.sns.published[0]["Message"]


def test_subject_is_ascii_single_line_and_at_most_100_chars():
    subject = remediation._subject("Remediation " + "a-very-long-service-name-" * 8 + "\n: skipped (rate_limited) ✓")
    assert len(subject) <= 100
    assert subject.isascii() and "\n" not in subject


def set_environment(monkeypatch, **overrides):
    values = {
        "CLUSTER_NAME": CLUSTER, "SERVICE_NAME": SERVICE, "TOPIC_ARN": TOPIC, "ALARM_NAME": ALARM,
        "DEPLOYMENT_ALARM_NAMES": ",".join(DEPLOYMENT_ALARMS), "CLAIMS_TABLE": TABLE, **overrides,
    }
    for name, value in values.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_handler_reads_environment_and_defaults_the_interval(clients, monkeypatch):
    set_environment(monkeypatch, MIN_INTERVAL_SECONDS=None)
    expect_alarms(clients)
    # 899 s old: inside the default 900 s interval
    clients.ecs_stub.add_response(
        "describe_services", services_response(deployment(created=NOW - timedelta(seconds=899))), DESCRIBE
    )
    expect_publish(clients, "Remediation web: skipped (rate_limited)")
    result = remediation.handler(alarm_event(), None, ecs=clients.ecs, sns=clients.sns,
                                 cloudwatch=clients.cloudwatch, dynamodb=clients.dynamodb, now=NOW)
    assert result["decision"]["reason"] == "rate_limited"


def test_handler_rejects_a_malformed_interval(monkeypatch):
    set_environment(monkeypatch, MIN_INTERVAL_SECONDS="15m")
    with pytest.raises(ValueError, match="MIN_INTERVAL_SECONDS"):
        remediation.handler(alarm_event(), None, ecs=object(), sns=object(), cloudwatch=object(),
                            dynamodb=object(), now=NOW)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    with mock_aws():
        yield


@pytest.fixture
def degraded_service(aws, monkeypatch):
    """A service one task short an hour after its last deployment, its alarm in ALARM, a topic with an inbox."""
    from moto.ecs.models import ecs_backends

    ecs, sns, sqs, cloudwatch = (boto3.client(n) for n in ("ecs", "sns", "sqs", "cloudwatch"))
    ecs.create_cluster(clusterName=CLUSTER)
    td = ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "web:1", "memory": 512}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=td, desiredCount=2)
    topic = sns.create_topic(Name="critical")["TopicArn"]
    queue = sqs.create_queue(QueueName="critical-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    boto3.client("dynamodb").create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "claim", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "claim", "KeyType": "HASH"}],
    )
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM, Namespace="ECS/ContainerInsights", MetricName="RunningTaskCount", Statistic="Minimum",
        Period=60, EvaluationPeriods=1, Threshold=2, ComparisonOperator="LessThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed")
    set_environment(monkeypatch, TOPIC_ARN=topic, MIN_INTERVAL_SECONDS="900")
    # the function keeps its clients between invocations; each test starts with none
    monkeypatch.setattr(remediation, "_clients", {})
    # a task died an hour after the last deployment; moto cannot stop tasks, so set the counts directly
    backend_service = ecs_backends[ACCOUNT][REGION].services[f"{CLUSTER}:{SERVICE}"]
    backend_service.running_count = 1
    backend_service.pending_count = 0
    backend_service.deployments[0]["createdAt"] -= timedelta(hours=1)

    def deployment_ids():
        (service,) = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"]
        return [d["id"] for d in service["deployments"]]

    def subjects():
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        return sorted(json.loads(m["Body"])["Subject"] for m in received)

    return ecs, deployment_ids, subjects


def test_duplicate_event_forces_only_one_deployment_and_publishes_twice(degraded_service):
    ecs, deployment_ids, subjects = degraded_service
    before = deployment_ids()
    event = alarm_event()
    now = datetime.now(timezone.utc)
    first = remediation.handler(event, None, now=now)
    after_first = deployment_ids()
    # EventBridge delivers at least once: the same event again, seconds later
    second = remediation.handler(event, None, now=now + timedelta(seconds=5))
    after_second = deployment_ids()

    assert first["acted"] is True and first["deploymentId"] == after_first[0]
    assert after_first != before
    assert second["acted"] is False and second["decision"]["reason"] == "rate_limited"
    assert after_second == after_first

    # once the interval has passed and the service is still short, the schedule's re-check acts again (moto stamps
    # the first deployment with the real clock, which a loaded machine moves seconds past `now`: a minute of margin)
    third = remediation.handler(scheduled_event(), None, now=now + timedelta(seconds=960))
    assert third["acted"] is True and deployment_ids() != after_second

    assert subjects() == [
        "Remediation web: forced a new deployment",
        "Remediation web: forced a new deployment",
        "Remediation web: skipped (rate_limited)",
    ]


class Overlapping:
    """An ECS client whose first DescribeServices lets another invocation run to its end before it answers."""

    def __init__(self, ecs, meanwhile):
        self._ecs = ecs
        self._meanwhile = meanwhile

    def describe_services(self, **kwargs):
        answer = self._ecs.describe_services(**kwargs)
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile:
            meanwhile()
        return answer

    def __getattr__(self, name):
        return getattr(self._ecs, name)


def test_overlapping_invocations_force_only_one_deployment(degraded_service, aws_calls):
    ecs, deployment_ids, subjects = degraded_service
    now = datetime.now(timezone.utc)
    results = {}

    def second_invocation():
        results["second"] = remediation.handler(scheduled_event(), None, now=now)

    # without reserved concurrency, the alarm's run and the schedule's run can read the same state at once
    results["first"] = remediation.handler(alarm_event(), None, ecs=Overlapping(ecs, second_invocation), now=now)
    assert results["second"]["acted"] is True
    assert results["first"]["acted"] is False
    assert results["first"]["decision"]["reason"] == "claimed_elsewhere"
    assert aws_calls.count(("index.py", "ecs:UpdateService")) == 1
    assert subjects() == ["Remediation web: forced a new deployment", "Remediation web: skipped (claimed_elsewhere)"]
