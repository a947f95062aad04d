"""Which regions an environment deploys to, from config alone: the stacks, `make preflight` and the bootstrap-policy
tool agree through this module. No CDK import: tools read it without loading the CDK."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import EnvironmentConfig

# CloudFront publishes its metrics only in us-east-1 (Developer Guide, "Monitoring CloudFront metrics"), and an alarm
# must live in its metric's region, as must every composite alarm using it and every SNS topic it notifies.
CLOUDFRONT_METRICS_REGION = "us-east-1"


def has_cloudfront(env: EnvironmentConfig) -> bool:
    # tls.terminate "alb" keeps a public ALB without CloudFront (stages/load_balancer.py).
    return not (env.tls and env.tls.terminate == "alb")


def cloudfront_alarm_region(env: EnvironmentConfig) -> str | None:
    """Where the environment's CloudFront 5xx-rate alarm lives; None when it has none (no threshold, or no CloudFront)."""
    if env.alarms.cloudfront_5xx_rate_percent is None or not has_cloudfront(env):
        return None
    return CLOUDFRONT_METRICS_REGION


def separate_cloudfront_alarm(env: EnvironmentConfig) -> bool:
    """The alarm needs its own stack in us-east-1 (and so cannot join the composite in the environment's region)."""
    region = cloudfront_alarm_region(env)
    return region is not None and region != env.region


def deploy_regions(env: EnvironmentConfig) -> tuple[str, ...]:
    """Every region the environment's account must be bootstrapped in: its own, then us-east-1 for the alarm stack."""
    return (env.region, CLOUDFRONT_METRICS_REGION) if separate_cloudfront_alarm(env) else (env.region,)
