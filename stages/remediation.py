from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from config import EnvironmentConfig
from stages.function import VpcFunction

CODE = Path(__file__).parent / "functions" / "remediation"
MIN_INTERVAL_SECONDS = 900


class Remediation(Construct):
    """When tasks stay below the minimum outside a deployment, force one new deployment and tell the critical topic."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        service: ecs.FargateService,
        alarm: cw.IAlarm,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id_)
        self.handler = VpcFunction(
            self,
            "ForceDeployment",
            config=config,
            vpc=vpc,
            key=key,
            code_path=str(CODE),
            handler="index.handler",
            description=f"{config.name}: force a new deployment when tasks stay below the minimum",
            environment={
                "CLUSTER_NAME": service.cluster.cluster_name,
                "SERVICE_NAME": service.service_name,
                "TOPIC_ARN": topic.topic_arn,
                "MIN_INTERVAL_SECONDS": str(MIN_INTERVAL_SECONDS),
            },
            timeout=Duration.seconds(30),
            # One at a time: the rate limit reads the newest deployment, so concurrent runs must not race.
            reserved_concurrency=1,
        )
        function = self.handler.function
        self.handler.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to ECS and SNS APIs")
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:DescribeServices", "ecs:UpdateService"], resources=[service.service_arn])
        )
        topic.grant_publish(function)
        events.Rule(
            self,
            "OnAlarm",
            description="Tasks below minimum entered ALARM",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[targets.LambdaFunction(function, retry_attempts=2)],
        )
