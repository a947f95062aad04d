from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from config import EnvironmentConfig
from pipeline.compute import LAMBDA_PYTHON_IMAGE, TOOLS_PREFIX, lambda_environment
from stages.service_stage import ServiceStage

# Same boto3 as the service image's lock; the step installs only this.
BOTO3 = "boto3==1.44.8"


# Verify runs on Lambda compute (pipeline/compute.py): it starts in seconds, but CodeBuild stops a Lambda build after
# 15 minutes, so its waits are bounded to fit. They can be short because CloudFormation completes the stack update
# only once the ECS deployment finished, traffic steps and bake included (CloudFormation even rejects canary
# configurations whose BakeTimeInMinutes + CanaryBakeTimeInMinutes exceed 33 hours for that reason:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-ecs-service-canaryconfiguration.html).
# Verify confirms an outcome; it waits only for the ECS API to show it, or for a deployment someone else started.
# A wait that runs out fails the step (and rolls the stage back): never a green.
ROLLOUT_CONFIRM_SECONDS = 300
ROLLOUT_POLL_SECONDS = 5
# The registry's scan of the image pushed minutes before (first environment only).
SCAN_SECONDS = 360
SCAN_POLL_SECONDS = 10
# The smoke test's own bounds: a readiness wait (30 s) and a 5 s limit per request (smoke/smoke_test.py).
SMOKE_SECONDS = 120
# pip installing boto3 into /tmp.
INSTALL_SECONDS = 60
TOOLS = f"{TOOLS_PREFIX}/python"


def verify_budget_seconds(*, scan_image: bool) -> int:
    """The longest a Verify build can run; it must end before CodeBuild's limit for Lambda compute."""
    return INSTALL_SECONDS + (SCAN_SECONDS if scan_image else 0) + ROLLOUT_CONFIRM_SECONDS + SMOKE_SECONDS


def verification_step(*, env: EnvironmentConfig, stage: ServiceStage, scan_image: bool) -> pipelines.CodeBuildStep:
    """After each deploy: the image scan is clean (first environment: stops promotion), the rollout really completed
    on the new task definition (no false green), then the smoke test."""
    stateless = stage.stateless
    role_arn = f"arn:aws:iam::{env.account}:role/{stateless.verifier_role_name}"
    scan = (
        [
            'python3 pipeline/scripts/image_scan_gate.py --repository "$IMAGE_REPOSITORY" --tag "$IMAGE_TAG" '
            '--region "$AWS_REGION" --role-arn "$VERIFIER_ROLE_ARN"'
        ]
        if scan_image
        else []
    )
    return pipelines.CodeBuildStep(
        f"Verify-{env.name}",
        env_from_cfn_outputs={
            "SERVICE_URL": stateless.url_output,
            "CLUSTER_NAME": stateless.cluster_output,
            "SERVICE_NAME": stateless.service_output,
            "TASK_DEFINITION_ARN": stateless.task_definition_output,
        },
        env={
            "EXPECTED_ENVIRONMENT": env.name,
            "STACK_NAME": stateless.stack_name,
            "VERIFY_TIMEOUT_SECONDS": str(ROLLOUT_CONFIRM_SECONDS),
            "VERIFY_POLL_SECONDS": str(ROLLOUT_POLL_SECONDS),
            "IMAGE_SCAN_TIMEOUT_SECONDS": str(SCAN_SECONDS),
            "IMAGE_SCAN_POLL_SECONDS": str(SCAN_POLL_SECONDS),
            "PYTHONPATH": TOOLS,
            "AWS_REGION": env.region,
            "VERIFIER_ROLE_ARN": role_arn,
            "IMAGE_REPOSITORY": stateless.image_repository_name,
            "IMAGE_TAG": stateless.image_tag,
        },
        # Lambda compute writes only under /tmp.
        install_commands=[f"python3 -m pip install --quiet --no-cache-dir --target {TOOLS} {BOTO3}"],
        commands=[
            *scan,
            'python3 pipeline/scripts/verify_rollout.py --cluster "$CLUSTER_NAME" --service "$SERVICE_NAME" '
            '--task-definition "$TASK_DEFINITION_ARN" --region "$AWS_REGION" --role-arn "$VERIFIER_ROLE_ARN"',
            'python3 smoke/smoke_test.py --base-url "$SERVICE_URL" --expect-environment "$EXPECTED_ENVIRONMENT"',
        ],
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
        # No project timeout: Lambda compute rejects one; CodeBuild's 15-minute limit applies (verify_budget_seconds).
        build_environment=lambda_environment(LAMBDA_PYTHON_IMAGE),
    )
