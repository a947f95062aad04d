"""The few physical names AWS needs fixed, in one place for the stacks, the pipeline and `make preflight`.

ECS deployment alarms are referenced by name (tokens would be circular); the task roles and the deploy-verifier role
are named so that resource policies in another stack or account can admit them without a cross-stack reference.
"""

from __future__ import annotations

from config import AppConfig, EnvironmentConfig

DEPLOYMENT_ALARMS = ("5xx-rate", "tg-5xx-rate", "app-server-errors", "p99-latency", "unhealthy-targets")
# IAM role names are at most 64 characters; config keeps the environment prefix short enough for every kind below.
ROLE_KINDS = ("task", "task-execution", "deploy-verifier")


def environment_prefix(app: AppConfig, env: EnvironmentConfig) -> str:
    return f"{app.project}-{app.service_name}-{env.name}"


def alarm_name(app: AppConfig, env: EnvironmentConfig, kind: str) -> str:
    return f"{environment_prefix(app, env)}-{kind}"


def cloudfront_paging_topic_name(app: AppConfig, env: EnvironmentConfig) -> str:
    """The us-east-1 topic the CloudFront alarm pages through: named, so the environment's region can grant its
    Lambda endpoints to it without a reference back from us-east-1 (which would make the two stacks circular)."""
    return f"{environment_prefix(app, env)}-cloudfront-paging"


def role_name(app: AppConfig, env: EnvironmentConfig, kind: str) -> str:
    if kind not in ROLE_KINDS:
        raise ValueError(f"unknown role kind {kind!r}; known: {ROLE_KINDS}")
    return f"{environment_prefix(app, env)}-{kind}"


def execution_policy_name(app: AppConfig, *, pipeline_account: bool) -> str:
    """The customer-managed policy `cdk bootstrap --cloudformation-execution-policies` attaches (README: Deploying)."""
    return f"{app.project}-{app.service_name}-cdk-{'pipeline-' if pipeline_account else ''}execution"


def metrics_namespace(app: AppConfig) -> str:
    return f"{app.project}/{app.service_name}"
