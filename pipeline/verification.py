from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import pipelines

from config import EnvironmentConfig
from stages.service_stage import ServiceStage

# Same boto3 as the service image's lock; the step installs only this.
BOTO3 = "boto3==1.44.8"


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
    )
