from __future__ import annotations

import math

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from config import EnvironmentConfig
from stages.alarm_timing import minimum_step_bake
from stages.service_stage import ServiceStage

# Same boto3 as the service image's lock; the step installs only this.
BOTO3 = "boto3==1.44.8"


# Beyond the ECS rollout itself: task start, health checks, the lifecycle hook and the API's eventual consistency.
ROLLOUT_MARGIN_SECONDS = 900
# The scan gate's own wait (image_scan_gate.py default) and the smoke test.
SCAN_SECONDS = 600
SMOKE_SECONDS = 300


def rollout_timeout_seconds(env: EnvironmentConfig) -> int:
    """How long Verify waits for the rollout: every traffic-shift step's bake, the final bake, and a margin."""
    deployment = env.deployment
    steps = {"CANARY": 1, "LINEAR": math.ceil(100 / deployment.linear_step_percent) - 1}.get(deployment.strategy, 0)
    step_bake = max(deployment.step_bake_minutes, int(minimum_step_bake(env).to_minutes()))
    return ROLLOUT_MARGIN_SECONDS + 60 * (steps * step_bake + deployment.bake_minutes)


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
            "VERIFY_TIMEOUT_SECONDS": str(rollout_timeout_seconds(env)),
            "AWS_REGION": env.region,
            "VERIFIER_ROLE_ARN": role_arn,
            "IMAGE_REPOSITORY": stateless.image_repository_name,
            "IMAGE_TAG": stateless.image_tag,
        },
        install_commands=[f"pip install --quiet {BOTO3}"],
        commands=[
            *scan,
            'python3 pipeline/scripts/verify_rollout.py --cluster "$CLUSTER_NAME" --service "$SERVICE_NAME" '
            '--task-definition "$TASK_DEFINITION_ARN" --region "$AWS_REGION" --role-arn "$VERIFIER_ROLE_ARN"',
            'python3 smoke/smoke_test.py --base-url "$SERVICE_URL" --expect-environment "$EXPECTED_ENVIRONMENT"',
        ],
        role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
        timeout=Duration.seconds(SCAN_SECONDS + rollout_timeout_seconds(env) + SMOKE_SECONDS),
    )
