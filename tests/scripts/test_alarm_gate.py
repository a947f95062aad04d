"""The promotion gate function (pipeline/functions/alarm_gate) against CloudWatch, STS and CodePipeline's models."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("alarm_gate_under_test", ROOT / "pipeline" / "functions" / "alarm_gate" / "index.py")
assert _spec and _spec.loader
alarm_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(alarm_gate)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _composite(state: str) -> dict[str, Any]:
    return {"CompositeAlarms": [{"AlarmName": "gate", "StateValue": state, "StateReason": "5xx rate above threshold"}]}


def _watch(states: list[str], bake_seconds: int) -> tuple[str | None, Clock]:
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    clock = Clock()
    with Stubber(cloudwatch) as stub:
        for state in states:
            stub.add_response(
                "describe_alarms", _composite(state), {"AlarmNames": ["gate"], "AlarmTypes": ["CompositeAlarm"]}
            )
        result = alarm_gate.watch(cloudwatch, "gate", bake_seconds, clock=clock, sleep=clock.sleep)
        stub.assert_no_pending_responses()
    return result, clock


def test_the_gate_watches_for_the_whole_bake_not_once():
    # CloudWatch DescribeAlarms (botocore cloudwatch model): one call every 30 s until the bake ends.
    result, clock = _watch(["OK"] * 11, bake_seconds=300)
    assert result is None and clock.now == 300


def test_an_alarm_late_in_the_bake_fails_the_gate():
    result, _ = _watch(["OK"] * 7 + ["ALARM"], bake_seconds=300)
    assert result is not None and "ALARM" in result


def test_insufficient_data_is_not_an_alarm_but_a_missing_alarm_fails():
    assert _watch(["INSUFFICIENT_DATA", "OK"], bake_seconds=30)[0] is None
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cloudwatch) as stub:
        stub.add_response("describe_alarms", {"CompositeAlarms": []}, {"AlarmNames": ["gate"], "AlarmTypes": ["CompositeAlarm"]})
        assert "not found" in alarm_gate.watch(cloudwatch, "gate", 60, clock=Clock(), sleep=lambda s: None)


def test_the_handler_reports_a_job_result_and_fails_the_invocation_on_alarm(monkeypatch):
    # CodePipeline PutJobFailureResult (botocore codepipeline model) when the event carries a job id.
    monkeypatch.setenv("ROLE_ARN", "arn:aws:iam::111111111111:role/x-deploy-verifier")
    monkeypatch.setenv("ALARM_NAME", "gate")
    monkeypatch.setenv("ALARM_REGION", "eu-west-1")
    monkeypatch.setenv("BAKE_SECONDS", "60")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    codepipeline = boto3.client("codepipeline", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    sts = boto3.client("sts", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    clients = {"codepipeline": codepipeline, "sts": sts}
    monkeypatch.setattr(alarm_gate.boto3, "client", lambda name, **kwargs: cloudwatch if name == "cloudwatch" else clients[name])
    expires = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with Stubber(sts) as s, Stubber(cloudwatch) as c, Stubber(codepipeline) as p:
        s.add_response(
            "assume_role",
            {"Credentials": {"AccessKeyId": "AKIAEXAMPLEEXAMPLE12", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expires}},
            {"RoleArn": "arn:aws:iam::111111111111:role/x-deploy-verifier", "RoleSessionName": ANY},
        )
        c.add_response("describe_alarms", _composite("ALARM"), {"AlarmNames": ["gate"], "AlarmTypes": ["CompositeAlarm"]})
        p.add_response("put_job_failure_result", {}, {"jobId": "11111111-2222-3333-4444-555555555555", "failureDetails": ANY})
        with pytest.raises(RuntimeError, match="ALARM"):
            alarm_gate.handler({"CodePipeline.job": {"id": "11111111-2222-3333-4444-555555555555"}}, None)
        p.assert_no_pending_responses()
