from __future__ import annotations

import json

import pytest

from stages.naming import DEPLOYMENT_ALARMS, alarm_name
from stages.regions import has_cloudfront
from tests.infra.configured import environment_names, stack_path
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()


def stateless(templates, config, env):
    return templates[stack_path(config, env, "Stateless")]


def topic_ids(template):
    topics = resources_of(template, "AWS::SNS::Topic")
    warning = next(k for k in topics if k.startswith("AlertingWarning"))
    critical = next(k for k in topics if k.startswith("AlertingCritical"))
    return warning, critical


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_notifies_one_severity_on_alarm_and_on_recovery(templates, config, env):
    template = stateless(templates, config, env)
    warning, critical = topic_ids(template)
    alarms = {**resources_of(template, "AWS::CloudWatch::Alarm"), **resources_of(template, "AWS::CloudWatch::CompositeAlarm")}
    assert len(alarms) >= 16
    for logical_id, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] in ([{"Ref": warning}], [{"Ref": critical}]), logical_id
        assert props["OKActions"] == props["AlarmActions"], logical_id
        assert len(props["AlarmDescription"]) > 40, logical_id
    cfg = config.environment(env)
    by_name = {a["Properties"].get("AlarmName"): a["Properties"] for a in alarms.values()}
    # Deployment alarms roll back and warn; the page is the composite's (tests/infra/test_alarm_semantics.py).
    for kind in DEPLOYMENT_ALARMS:
        assert by_name[alarm_name(config, cfg, kind)]["AlarmActions"] == [{"Ref": warning}], kind


@pytest.mark.parametrize("env", ENVS)
def test_a_persistent_latency_warning_escalates_to_the_page(templates, config, env):
    template = stateless(templates, config, env)
    warning, critical = topic_ids(template)
    cfg = config.environment(env)
    persistent_id, persistent = next(
        (k, a["Properties"]) for k, a in resources_of(template, "AWS::CloudWatch::Alarm").items()
        if k.startswith("AlarmsP99LatencyPersistent")
    )
    assert persistent["EvaluationPeriods"] == cfg.alarms.escalate_after_minutes
    assert persistent["Threshold"] == cfg.alarms.p99_latency_ms / 1000
    assert persistent["AlarmActions"] == [{"Ref": warning}]
    (composite,) = resources_of(template, "AWS::CloudWatch::CompositeAlarm").values()
    assert persistent_id in json.dumps(composite["Properties"]["AlarmRule"])
    assert composite["Properties"]["AlarmActions"] == [{"Ref": critical}]


@pytest.mark.parametrize("env", ENVS)
def test_anomaly_detection_and_the_composite_page(templates, config, env):
    template = stateless(templates, config, env)
    _, critical = topic_ids(template)
    anomaly = next(a["Properties"] for k, a in resources_of(template, "AWS::CloudWatch::Alarm").items() if k.startswith("AlarmsRequestAnomaly"))
    assert anomaly["ComparisonOperator"] == "LessThanLowerOrGreaterThanUpperThreshold"
    assert any("ANOMALY_DETECTION_BAND" in m.get("Expression", "") for m in anomaly["Metrics"])
    (composite,) = resources_of(template, "AWS::CloudWatch::CompositeAlarm").values()
    rule = json.dumps(composite["Properties"]["AlarmRule"])
    assert "AlarmsErrorRate" in rule and "AlarmsTasksBelowMinimum" in rule and "AlarmsUnhealthyTargets" in rule
    assert composite["Properties"]["AlarmActions"] == [{"Ref": critical}]


@pytest.mark.parametrize("env", ENVS)
def test_metric_filters_feed_alarms(templates, config, env):
    template = stateless(templates, config, env)
    filters = resources_of(template, "AWS::Logs::MetricFilter")
    patterns = sorted(f["Properties"]["FilterPattern"] for f in filters.values())
    slow = config.environment(env).alarms.slow_request_ms
    assert patterns == sorted(
        ['{ $.level = "ERROR" }', '{ $.event = "db_error" }', f'{{ $.event = "request" && $.duration_ms > {slow} }}']
    )
    names = {f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters.values()}
    alarmed = {a["Properties"].get("MetricName") for a in resources_of(template, "AWS::CloudWatch::Alarm").values()}
    assert names <= alarmed


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_shows_what_on_call_needs(templates, config, env):
    template = stateless(templates, config, env)
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for title in ("Alarms", "Requests", "Errors", "5xx % (targets and load balancer)", "5xx % of the worst target group",
                  "Latency", "Healthy / unhealthy targets", "Tasks", "CPU / memory", "Database"):
        assert title in body, title
    for metric in ("RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "ServerErrors", "RunningTaskCount", "CPUUtilization", "FreeStorageSpace", "DatabaseConnections"):
        assert metric in body, metric


@pytest.mark.parametrize("env", ENVS)
def test_remediation_runs_on_tasks_below_minimum_and_reports_to_critical(templates, config, env):
    template = stateless(templates, config, env)
    _, critical = topic_ids(template)
    rule = next(
        r["Properties"] for r in resources_of(template, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.cloudwatch"]
    )
    assert "AlarmsTasksBelowMinimum" in json.dumps(rule["EventPattern"]["resources"])
    function = next(
        f["Properties"] for k, f in resources_of(template, "AWS::Lambda::Function").items() if k.startswith("RemediationForceDeployment")
    )
    assert function["Environment"]["Variables"]["TOPIC_ARN"] == {"Ref": critical}
    policy = next(
        p["Properties"]["PolicyDocument"]["Statement"] for k, p in resources_of(template, "AWS::IAM::Policy").items()
        if k.startswith("RemediationForceDeploymentFunctionServiceRoleDefaultPolicy")
    )
    ecs = next(s for s in policy if "ecs:UpdateService" in s["Action"])
    assert ecs["Resource"] != "*"


@pytest.mark.parametrize("env", ENVS)
def test_dashboard_shows_cloudfront_errors_from_us_east_1(templates, config, env):
    # CloudFront Developer Guide, "Monitoring CloudFront metrics": metrics live in us-east-1 with Region=Global.
    template = stateless(templates, config, env)
    (dashboard,) = resources_of(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    if not has_cloudfront(config.environment(env)):
        assert "AWS/CloudFront" not in body  # tls.terminate "alb": no distribution to watch
        return
    assert '\\"AWS/CloudFront\\",\\"5xxErrorRate\\",\\"DistributionId\\"' in body
    assert '\\"region\\":\\"us-east-1\\"' in body


@pytest.mark.parametrize("env", ENVS)
def test_every_alarm_has_a_name_from_config(templates, config, env):
    # CloudWatch PutMetricAlarm/PutCompositeAlarm: AlarmName is what consoles, SNS messages and `make alarms` show.
    prefix = f"{config.project}-{config.service_name}-{env}-"
    template = stateless(templates, config, env)
    alarms = {
        **resources_of(template, "AWS::CloudWatch::Alarm"), **resources_of(template, "AWS::CloudWatch::CompositeAlarm")
    }
    names = [a["Properties"].get("AlarmName") for a in alarms.values()]
    assert all(isinstance(n, str) and n.startswith(prefix) for n in names), names
    assert len(set(names)) == len(names)
    assert f"{prefix}service-unhealthy" in names
