from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.alerting import function_region, paging_topic
from stages.cloudfront_alarm import cloudfront_error_rate_alarm
from stages.naming import cloudfront_paging_topic_name
from stages.regions import CLOUDFRONT_METRICS_REGION


class CloudFrontAlarmStack(Stack):
    """The environment's CloudFront 5xx-rate alarm, in its account but in us-east-1 where CloudFront's metrics are.

    It pages on its own: a composite alarm, and an alarm's SNS actions, must be in the alarm's region, so it cannot
    join the ServiceUnhealthy composite in the environment's region (README "Alarms")."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        app_config: AppConfig,
        config: EnvironmentConfig,
        distribution: cloudfront.IDistribution,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        # KMS keys are regional: the environment key cannot encrypt a topic here. It guards only messages in transit.
        key = kms.Key(
            self,
            "TopicKey",
            description=f"{config.name}: the us-east-1 paging topic of the CloudFront alarm",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmPublisher",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        self.topic = paging_topic(
            self,
            "Critical",
            config=config,
            key=key,
            display_name=f"{config.name} critical (CloudFront, us-east-1)",
            topic_name=cloudfront_paging_topic_name(app_config, config),
        )
        self.alarm = cloudfront_error_rate_alarm(
            self, "CloudFront5xxRate", app_config=app_config, config=config, distribution=distribution
        )
        action = actions.SnsAction(self.topic)
        self.alarm.add_alarm_action(action)
        self.alarm.add_ok_action(action)


def grant_paging_endpoints(scope: Construct, *, app_config: AppConfig, config: EnvironmentConfig) -> None:
    """Lets the us-east-1 paging topic invoke the Lambda endpoints in scope's region (the environment's): Lambda
    accepts a permission only in the function's own region, so it cannot come from the us-east-1 stack."""
    stack = Stack.of(scope)
    topic_arn = stack.format_arn(
        service="sns",
        region=CLOUDFRONT_METRICS_REGION,
        resource=cloudfront_paging_topic_name(app_config, config),
    )
    for index, endpoint in enumerate(config.notifications.critical_endpoints):
        if endpoint.startswith("arn:") and function_region(endpoint) == stack.region:
            lambda_.CfnPermission(
                scope,
                f"CloudFrontPagingEndpoint{index}",
                action="lambda:InvokeFunction",
                function_name=endpoint,
                principal="sns.amazonaws.com",
                source_arn=topic_arn,
            )
