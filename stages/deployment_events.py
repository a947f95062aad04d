from __future__ import annotations

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct


class DeploymentEvents(Construct):
    """Tells people when ECS fails or rolls back a deployment of this service (circuit breaker or alarm)."""

    def __init__(self, scope: Construct, id_: str, *, service: ecs.FargateService, topic: sns.ITopic) -> None:
        super().__init__(scope, id_)
        self.rule = events.Rule(
            self,
            "FailedOrRolledBack",
            description="ECS deployment failed or rolled back",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Deployment State Change"],
                resources=[service.service_arn],
                detail={"eventName": ["SERVICE_DEPLOYMENT_FAILED", "SERVICE_DEPLOYMENT_ROLLBACK_STARTED", "SERVICE_DEPLOYMENT_ROLLBACK_COMPLETED"]},
            ),
            targets=[targets.SnsTopic(topic)],
        )
