"""The hook's and the remediation function's wiring, from a small stack built around the two constructs."""

import fnmatch
import json
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

import app as app_module
from config import load_config
from stages import deployment_hook, remediation

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "smoke") not in sys.path:
    sys.path.insert(0, str(ROOT / "smoke"))
import lifecycle_hook  # noqa: E402
import smoke_test  # noqa: E402

DEPLOYMENT_ALARMS = ["notes-web-prod-target-5xx-rate", "notes-web-prod-p99-latency"]


def build(*, expected_version="abc123def456"):
    config = load_config(app_module.default_context(), {})
    env = config.environments[-1]
    stack = cdk.Stack(cdk.App(), "Wiring", env=cdk.Environment(account=env.account, region=env.region))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    task = ecs.FargateTaskDefinition(stack, "Task")
    task.add_container("web", image=ecs.ContainerImage.from_registry("local/web:1"))
    service = ecs.FargateService(stack, "Service", cluster=ecs.Cluster(stack, "Cluster", vpc=vpc),
                                 task_definition=task)
    alarm = cw.Alarm(stack, "TasksBelowMinimum", metric=cw.Metric(namespace="ECS", metric_name="RunningTaskCount"),
                     threshold=2, evaluation_periods=1, comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD)
    remediation.Remediation(stack, "Remediation", config=env, vpc=vpc, key=key, service=service, alarm=alarm,
                            topic=sns.Topic(stack, "Critical", master_key=key),
                            deployment_alarm_names=DEPLOYMENT_ALARMS)
    deployment_hook.DeploymentHook(stack, "DeploymentHook", config=env, vpc=vpc, key=key,
                                   test_url="http://test.internal:8443", expected_version=expected_version)
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def template():
    return build()


def function(template, prefix):
    (found,) = [r["Properties"] for k, r in template.find_resources("AWS::Lambda::Function").items()
                if k.startswith(prefix)]
    return found


def test_the_hook_function_has_time_for_a_whole_smoke_run(template):
    hook = function(template, "DeploymentHookSmokeTest")
    # "If your function doesn't return a valid hookStatus, or if it fails, Amazon ECS rolls back the deployment":
    # the default readiness wait and the checks must fit in one invocation, with time left to answer
    needed = lifecycle_hook.RESERVED_SECONDS + smoke_test.DEFAULT_READY_WAIT + lifecycle_hook.CHECKS_SECONDS
    assert hook["Timeout"] >= needed
    assert hook["Timeout"] - lifecycle_hook.RESERVED_SECONDS >= lifecycle_hook.MIN_RUN_SECONDS
    variables = hook["Environment"]["Variables"]
    assert variables["EXPECTED_VERSION"] == "abc123def456"
    # a Lambda hook's timeoutConfiguration defaults to 1,440 minutes; the hook gives up long before
    assert 0 < int(variables["HOOK_DEADLINE_SECONDS"]) < 1440 * 60


def test_without_an_expected_version_the_hook_checks_none():
    hook = function(build(expected_version=None), "DeploymentHookSmokeTest")
    assert "EXPECTED_VERSION" not in hook["Environment"]["Variables"]


def test_no_function_reserves_concurrency(template):
    # new accounts have an unreserved concurrency quota of 10: any reservation makes the deploy fail
    for properties in template.find_resources("AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in properties["Properties"]


def test_remediation_runs_on_the_alarm_and_on_a_schedule(template):
    rules = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()]
    on_alarm = [r for r in rules if "EventPattern" in r]
    scheduled = [r for r in rules if "ScheduleExpression" in r]
    assert len(on_alarm) == 1 and on_alarm[0]["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}
    assert [r["ScheduleExpression"] for r in scheduled] == [f"rate({remediation.RECHECK_MINUTES} minutes)"]
    for rule in on_alarm + scheduled:
        assert "RemediationForceDeployment" in json.dumps(rule["Targets"][0]["Arn"])
    variables = function(template, "RemediationForceDeployment")["Environment"]["Variables"]
    assert variables["DEPLOYMENT_ALARM_NAMES"] == ",".join(DEPLOYMENT_ALARMS)
    assert variables["RECHECK_MINUTES"] == str(remediation.RECHECK_MINUTES)


def test_the_claims_table_expires_its_items_and_is_encrypted_with_the_environment_key(template):
    (table,) = [r["Properties"] for r in template.find_resources("AWS::DynamoDB::Table").values()]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "claim", "KeyType": "HASH"}]
    assert table["SSESpecification"]["SSEType"] == "KMS" and "KMSMasterKeyId" in table["SSESpecification"]


def granted_actions(template, prefix):
    actions = set()
    for logical_id, policy in template.find_resources("AWS::IAM::Policy").items():
        if logical_id.startswith(prefix):
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                listed = statement["Action"]
                actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_the_remediation_role_grants_every_call_in_its_table(template):
    # the table beside the function lists each call and the IAM actions it needs
    table = json.loads((ROOT / "stages" / "functions" / "remediation" / "iam_calls.json").read_text())
    granted = granted_actions(template, "RemediationForceDeploymentFunctionServiceRoleDefaultPolicy")
    needed = {action for entries in table.values() for entry in entries for action in entry["actions"]}
    missing = [a for a in sorted(needed) if not any(fnmatch.fnmatchcase(a, g) for g in granted)]
    assert missing == []


def test_describe_alarms_is_limited_to_the_alarms_the_function_reads(template):
    statements = [
        s for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "cloudwatch:DescribeAlarms"
    ]
    (statement,) = statements
    text = json.dumps(statement["Resource"])
    assert all(f"alarm:{name}" in text for name in DEPLOYMENT_ALARMS) and "TasksBelowMinimum" in text
