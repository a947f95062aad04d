from __future__ import annotations

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

# What ECS sends (detail-type "ECS Deployment State Change"): IN_PROGRESS, COMPLETED and FAILED. A rollback is an
# IN_PROGRESS deployment whose reason names the deployment it rolls back to ("...: rolling back to deploymentId ...").
FAILED = "SERVICE_DEPLOYMENT_FAILED"
IN_PROGRESS = "SERVICE_DEPLOYMENT_IN_PROGRESS"
# The circuit breaker's wording is documented; an alarm-triggered rollback may word it differently (case-sensitive).
ROLLBACK_REASONS = ("*rolling back*", "*rollback*", "*Rollback*")


class DeploymentEvents(Construct):
    """Tells people when ECS fails a deployment of this service or starts rolling it back (circuit breaker or alarm)."""

    def __init__(self, scope: Construct, id_: str, *, service: ecs.FargateService, topic: sns.ITopic) -> None:
        super().__init__(scope, id_)
        self.rule = events.Rule(
            self,
            "FailedOrRolledBack",
            description="ECS deployment failed or rolling back",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Deployment State Change"],
                resources=[service.service_arn],
                detail={
                    "$or": [
                        {"eventName": [FAILED]},
                        {"eventName": [IN_PROGRESS], "reason": [{"wildcard": reason} for reason in ROLLBACK_REASONS]},
                    ]
                },
            ),
            targets=[targets.SnsTopic(topic)],
        )
