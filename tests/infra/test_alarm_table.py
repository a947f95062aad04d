from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config import AppConfig
from stages.naming import DEPLOYMENT_ALARMS, alarm_name
from stages.regions import separate_cloudfront_alarm
from tests.infra.configured import stack_path
from tests.infra.conftest import resources_of
from tools.alarm_table import AlarmRow, collect, main, render

pytestmark = pytest.mark.xdist_group("infra")

REPO = Path(__file__).resolve().parents[2]

WARNING = {"Ref": "AlertsWarningTopic1A2B"}
CRITICAL = {"Ref": "AlertsCriticalTopic3C4D"}

HAND_MADE: dict[str, Any] = {
    "Resources": {
        "AlertsWarningTopic1A2B": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "test warning"}},
        "AlertsCriticalTopic3C4D": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": "test critical"}},
        "PagerTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Service": {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "DeploymentConfiguration": {
                    "Alarms": {"AlarmNames": ["app-errors", "app-5xx-rate"], "Enable": True, "Rollback": True}
                }
            },
        },
        "Errors": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": "app-errors",
                "Namespace": "App",
                "MetricName": "ServerErrors",
                "Dimensions": [{"Name": "Environment", "Value": "test"}],
                "Statistic": "Sum",
                "Period": 10,
                "EvaluationPeriods": 3,
                "DatapointsToAlarm": 2,
                "Threshold": 5,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [WARNING],
                "OKActions": [WARNING],
            },
        },
        "Rate": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": "app-5xx-rate",
                "Metrics": [
                    {"Id": "expr_1", "Expression": "100 * e / r", "Label": "5xx %", "ReturnData": True},
                    {
                        "Id": "e",
                        "MetricStat": {
                            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count"},
                            "Period": 60,
                            "Stat": "Sum",
                        },
                        "ReturnData": False,
                    },
                    {
                        "Id": "r",
                        "MetricStat": {
                            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"},
                            "Period": 60,
                            "Stat": "Sum",
                        },
                        "ReturnData": False,
                    },
                ],
                "EvaluationPeriods": 2,
                "Threshold": 2.5,
                "ComparisonOperator": "GreaterThanThreshold",
                "AlarmActions": [CRITICAL],
                "OKActions": [CRITICAL],
            },
        },
        "Latency": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Namespace": "AWS/ApplicationELB",
                "MetricName": "TargetResponseTime",
                "ExtendedStatistic": "p99",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": 1.0,
                "ComparisonOperator": "LessThanOrEqualToThreshold",
                "AlarmActions": [{"Ref": "PagerTopic"}, "arn:aws:automate:eu-west-1:ec2:reboot"],
            },
        },
        "Volume": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "Metrics": [
                    {"Id": "band", "Expression": "ANOMALY_DETECTION_BAND(m0, 2)", "ReturnData": True},
                    {
                        "Id": "m0",
                        "MetricStat": {
                            "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"},
                            "Period": 300,
                            "Stat": "Sum",
                        },
                        "ReturnData": True,
                    },
                ],
                "ThresholdMetricId": "band",
                "EvaluationPeriods": 3,
                "ComparisonOperator": "LessThanLowerThreshold",
                "TreatMissingData": "ignore",
                "AlarmActions": [WARNING],
            },
        },
        "Users": {
            "Type": "AWS::CloudWatch::CompositeAlarm",
            "Properties": {
                "AlarmName": "users-affected",
                "AlarmRule": {
                    "Fn::Join": [
                        "",
                        [
                            'ALARM("',
                            {"Fn::GetAtt": ["Rate", "Arn"]},
                            '") OR (ALARM("',
                            {"Fn::GetAtt": ["Errors", "Arn"]},
                            '") AND ALARM("',
                            {"Fn::GetAtt": ["Latency", "Arn"]},
                            '"))',
                        ],
                    ]
                },
                "AlarmActions": [CRITICAL],
                "OKActions": [CRITICAL],
            },
        },
    }
}


def write_assembly(root: Path, environments: dict[str, dict[str, Any]]) -> Path:
    """A cloud assembly shaped like `cdk synth`'s: one nested assembly per pipeline stage."""
    artifacts: dict[str, Any] = {}
    for env, template in environments.items():
        directory = f"assembly-app-{env}"
        (root / directory).mkdir(parents=True)
        stack = f"app{env}Stateless"
        (root / directory / f"{stack}.template.json").write_text(json.dumps(template))
        nested = {
            "artifacts": {
                stack: {
                    "type": "aws:cloudformation:stack",
                    "displayName": f"app/{env}/Stateless",
                    "properties": {"templateFile": f"{stack}.template.json"},
                }
            }
        }
        (root / directory / "manifest.json").write_text(json.dumps(nested))
        artifacts[directory] = {"type": "cdk:cloud-assembly", "properties": {"directoryName": directory}}
    (root / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return root


def rows_by_name(rows: list[AlarmRow]) -> dict[str, AlarmRow]:
    return {row.name: row for row in rows}


def test_hand_made_template_every_kind_of_alarm(tmp_path: Path) -> None:
    (env,) = collect(write_assembly(tmp_path, {"Test": HAND_MADE}))
    assert env.environment == "test" and env.stacks == ("app/Test/Stateless",)
    rows = rows_by_name(env.rows)
    assert list(rows) == ["app-errors", "app-5xx-rate", "Latency", "Volume", "users-affected"]

    errors = rows["app-errors"]
    assert (errors.kind, errors.metric, errors.statistic) == ("metric", "App/ServerErrors [Environment]", "Sum")
    assert (errors.threshold, errors.period, errors.datapoints, errors.missing_data) == (">= 5", "10 s", "2/3", "notBreaching")
    assert errors.alarm_actions == errors.ok_actions == ("warning (AlertsWarningTopic1A2B)",)
    assert errors.deployment_alarm

    rate = rows["app-5xx-rate"]
    assert rate.kind == "math"
    assert rate.metric == (
        "100 * e / r where e = AWS/ApplicationELB/HTTPCode_Target_5XX_Count (Sum, 1 min), "
        "r = AWS/ApplicationELB/RequestCount (Sum, 1 min)"
    )
    assert (rate.statistic, rate.threshold, rate.period, rate.datapoints) == ("Sum", "> 2.5", "1 min", "2/2")
    assert rate.missing_data == "missing"  # CloudWatch's default when TreatMissingData is absent
    assert rate.alarm_actions == ("critical (AlertsCriticalTopic3C4D)",) and rate.deployment_alarm

    latency = rows["Latency"]  # unnamed: the logical id stands in
    assert (latency.statistic, latency.threshold, latency.period, latency.datapoints) == ("p99", "<= 1", "5 min", "1/1")
    assert latency.alarm_actions == ("PagerTopic", "arn:aws:automate:eu-west-1:ec2:reboot")
    assert latency.ok_actions == () and not latency.deployment_alarm

    volume = rows["Volume"]
    assert volume.kind == "anomaly"
    assert volume.metric == "AWS/ApplicationELB/RequestCount (Sum, 5 min)"  # watched directly: no inputs
    assert volume.threshold == "below band ANOMALY_DETECTION_BAND(m0, 2)"
    assert (volume.datapoints, volume.missing_data) == ("3/3", "ignore")

    users = rows["users-affected"]
    assert users.kind == "composite"
    assert users.metric == 'rule: ALARM("app-5xx-rate") OR (ALARM("app-errors") AND ALARM("Latency"))'
    assert users.alarm_actions == users.ok_actions == ("critical (AlertsCriticalTopic3C4D)",)

    text = render([env])
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| alarm |")]
    assert len(table) == 5
    assert all(line.count(" | ") == 10 for line in table)  # eleven columns; no stray pipes from cell text
    assert "2 roll an ECS deployment back; 2 notify the critical topic (page): app-5xx-rate, users-affected." in text


def test_pipes_in_cells_are_escaped(tmp_path: Path) -> None:
    template = json.loads(json.dumps(HAND_MADE))
    template["Resources"]["Rate"]["Properties"]["Metrics"][0]["Expression"] = "IF(e > 0 || r > 0, e, 0)"
    text = render(collect(write_assembly(tmp_path, {"Test": template})))
    row = next(line for line in text.splitlines() if line.startswith("| app-5xx-rate |"))
    assert "IF(e > 0 \\|\\| r > 0, e, 0)" in row and row.count(" | ") == 10


def test_anomaly_band_over_an_expression_names_its_inputs(tmp_path: Path) -> None:
    template = json.loads(json.dumps(HAND_MADE))
    metrics = template["Resources"]["Volume"]["Properties"]["Metrics"]
    metrics[1] = {"Id": "m0", "Expression": "FILL(requests, 0)", "ReturnData": True}
    metrics.append({"Id": "requests", "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount"}, "Period": 300, "Stat": "Sum"}})
    (env,) = collect(write_assembly(tmp_path, {"Test": template}))
    volume = rows_by_name(env.rows)["Volume"]
    assert volume.metric == "FILL(requests, 0) where requests = AWS/ApplicationELB/RequestCount (Sum, 5 min)"
    assert (volume.kind, volume.period) == ("anomaly", "5 min")


def test_environments_in_pipeline_order(tmp_path: Path) -> None:
    envs = collect(write_assembly(tmp_path, {"Dev": HAND_MADE, "Staging": HAND_MADE, "Prod": HAND_MADE}))
    assert [env.environment for env in envs] == ["dev", "staging", "prod"]


def test_missing_assembly_exits_2_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "cdk.out"
    assert main([str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"alarm_table: no cloud assembly at {missing}: run `make synth` first"


def stateless(templates: dict[str, dict[str, Any]], config: AppConfig, env: str) -> dict[str, Any]:
    return templates[stack_path(config, env, "Stateless")]


def test_real_assembly_every_alarm_of_every_environment(
    assembly_dir: Path, templates: dict[str, dict[str, Any]], config: AppConfig
) -> None:
    envs = {env.environment: env for env in collect(assembly_dir)}
    assert list(envs) == [e.name for e in config.environments]
    for name in envs:
        template = stateless(templates, config, name)
        alarms = resources_of(template, "AWS::CloudWatch::Alarm")
        composites = resources_of(template, "AWS::CloudWatch::CompositeAlarm")
        # The CloudFront alarm of an environment outside us-east-1 lives in its own stack there, and pages alone.
        edge = templates.get(stack_path(config, name, "CloudFrontAlarm"))
        edge_alarms = resources_of(edge, "AWS::CloudWatch::Alarm") if edge else {}
        assert bool(edge_alarms) == separate_cloudfront_alarm(config.environment(name)), name
        rows = envs[name].rows
        assert len(rows) == len(alarms) + len(composites) + len(edge_alarms)
        assert {row.logical_id for row in rows} == set(alarms) | set(composites) | set(edge_alarms)
        assert ("(us-east-1)" in " ".join(envs[name].stacks)) == bool(edge_alarms)
        kinds = [row.kind for row in rows]
        assert kinds.count("composite") == len(composites) >= 1
        assert kinds.count("anomaly") >= 1 and kinds.count("math") >= 1
        # One page per incident: the composite and database storage notify the critical topic, nothing else
        # in the environment's region; in us-east-1 the CloudFront alarm notifies its own paging topic.
        paging = {row.logical_id for row in rows if row.alarm_actions[0].startswith("critical (")}
        assert paging == {k for k in set(alarms) | set(composites)
                          if k.startswith(("AlarmsServiceUnhealthy", "AlarmsDatabaseFreeStorage"))} | set(edge_alarms)
        assert len(paging) == 2 + len(edge_alarms)
        # Every alarm notifies one of the environment's two topics, on ALARM and on OK alike.
        for row in rows:
            assert len(row.alarm_actions) == 1 and row.alarm_actions[0].split(" ")[0] in ("critical", "warning"), row
            assert row.ok_actions == row.alarm_actions, row


def test_real_assembly_marks_exactly_the_deployment_alarms(
    assembly_dir: Path, templates: dict[str, dict[str, Any]], config: AppConfig
) -> None:
    for env in collect(assembly_dir):
        cfg = config.environment(env.environment)
        expected = {alarm_name(config, cfg, kind) for kind in DEPLOYMENT_ALARMS}
        service = next(iter(resources_of(stateless(templates, config, env.environment), "AWS::ECS::Service").values()))
        assert set(service["Properties"]["DeploymentConfiguration"]["Alarms"]["AlarmNames"]) == expected
        marked = {row.name: row for row in env.rows if row.deployment_alarm}
        assert set(marked) == expected
        for row in marked.values():
            assert row.alarm_actions[0].startswith(("critical (", "warning (")), row
        for kind in ("5xx-rate", "tg-5xx-rate"):
            error_rate = marked[alarm_name(config, cfg, kind)]
            assert error_rate.alarm_actions[0].startswith("warning (") and error_rate.kind == "math"
            assert error_rate.threshold == f">= {cfg.alarms.error_rate_percent:g}"
        assert "HTTPCode_ELB_5XX_Count" in marked[alarm_name(config, cfg, "5xx-rate")].metric


def test_cli_writes_the_tables_for_the_real_assembly(
    assembly_dir: Path, templates: dict[str, dict[str, Any]], config: AppConfig, tmp_path: Path
) -> None:
    out = tmp_path / "alarms.md"
    result = subprocess.run(
        [sys.executable, "-m", "tools.alarm_table", str(assembly_dir), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    names = [env.name for env in config.environments]
    assert [line for line in text.splitlines() if line.startswith("## ")] == [f"## {env}" for env in names]
    first = text.split(f"## {names[0]}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in first.splitlines() if line.startswith("| ") and not line.startswith("| alarm |")]
    template = stateless(templates, config, names[0])
    declared = resources_of(template, "AWS::CloudWatch::Alarm") | resources_of(template, "AWS::CloudWatch::CompositeAlarm")
    assert len(rows) == len(declared) and sum(line.endswith("| yes |") for line in rows) == len(DEPLOYMENT_ALARMS)
