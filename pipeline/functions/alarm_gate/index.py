"""Watches one environment's composite alarm for the bake time; any ALARM fails the stage condition (→ rollback).

Runs in the pipeline account and reads the alarm through the environment's deploy-verifier role. It polls for the
whole bake itself instead of trusting a single evaluation, and answers both ways CodePipeline may expect: a job
result when the event carries a job id, and an exception (failed invocation) otherwise.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3

POLL_SECONDS = 30


def _cloudwatch(role_arn: str, region: str) -> Any:
    credentials = boto3.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="promotion-alarm-gate")["Credentials"]
    return boto3.client(
        "cloudwatch",
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def watch(cloudwatch: Any, alarm_name: str, bake_seconds: int, *, clock=time.monotonic, sleep=time.sleep) -> str | None:
    """None if the alarm stayed out of ALARM for the whole bake, else the reason it fired."""
    deadline = clock() + bake_seconds
    while True:
        alarms = cloudwatch.describe_alarms(AlarmNames=[alarm_name], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
        if not alarms:
            # A missing alarm must not read as healthy.
            return f"composite alarm {alarm_name} not found"
        if alarms[0]["StateValue"] == "ALARM":
            return f"{alarm_name} in ALARM: {alarms[0].get('StateReason', '')}"
        if clock() >= deadline:
            return None
        sleep(min(POLL_SECONDS, max(0.0, deadline - clock())))


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    job_id = (event.get("CodePipeline.job") or {}).get("id")
    codepipeline = boto3.client("codepipeline")
    try:
        cloudwatch = _cloudwatch(os.environ["ROLE_ARN"], os.environ["ALARM_REGION"])
        failure = watch(cloudwatch, os.environ["ALARM_NAME"], int(os.environ["BAKE_SECONDS"]))
    except Exception as error:  # any doubt about health fails the gate
        failure = f"could not read the alarm: {error}"
    if job_id:
        if failure:
            codepipeline.put_job_failure_result(jobId=job_id, failureDetails={"type": "JobFailed", "message": failure[:5000]})
        else:
            codepipeline.put_job_success_result(jobId=job_id)
    if failure:
        raise RuntimeError(failure)
    return {"status": "healthy", "alarm": os.environ["ALARM_NAME"]}
