from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stage
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.nag import acknowledge
from stages.tagging import apply_standard_tags
from stages.cloudfront_alarm_stack import CloudFrontAlarmStack, grant_paging_endpoints
from stages.cross_region_tags import tag_cross_region_providers
from stages.regions import CLOUDFRONT_METRICS_REGION, separate_cloudfront_alarm
from stages.stateful_stack import StatefulStack
from stages.stateless_stack import StatelessStack


class ServiceStage(Stage):
    """One environment: its stateful and stateless stacks, tagged from config."""

    def __init__(
        self, scope: Construct, id_: str, *, app_config: AppConfig, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, id_, env=Environment(account=config.account, region=config.region), **kwargs)
        prefix = f"{app_config.project}-{app_config.service_name}-{config.name}"
        self.stateful = StatefulStack(
            self,
            "Stateful",
            stack_name=f"{prefix}-stateful",
            app_config=app_config,
            config=config,
            termination_protection=config.retain_data,
            description=f"{prefix}: network, key, database, secrets",
        )
        # CloudFront's alarm lives in us-east-1; in another region it needs its own stack there (README: "CloudFront
        # 5xx rate, paging on its own from us-east-1").
        separate = separate_cloudfront_alarm(config)
        self.stateless = StatelessStack(
            self,
            "Stateless",
            stack_name=f"{prefix}-stateless",
            app_config=app_config,
            config=config,
            stateful=self.stateful,
            description=f"{prefix}: load balancer, service, alarms, dashboard",
            cross_region_references=separate,
        )
        self.cloudfront_alarm = self._cloudfront_alarm(app_config, config, prefix) if separate else None
        acknowledge(
            self,
            {
                "NIST.800.53.R5-IAMNoInlinePolicy": (
                    "CDK grants write one inline policy per role, scoped to exactly the resources that role uses; "
                    "inline policies live and die with their role, so no shared policy can drift"
                ),
            },
        )
        apply_standard_tags(self, app_config.standard_tags(config))

    def _cloudfront_alarm(self, app_config: AppConfig, config: EnvironmentConfig, prefix: str) -> CloudFrontAlarmStack | None:
        if self.stateless.edge is None:
            return None
        # The distribution id crosses regions through CDK's cross-region references (SSM parameters written by a
        # custom resource in Stateless); CDK Pipelines deploys Stateless first, as for any stack dependency.
        stack = CloudFrontAlarmStack(
            self,
            "CloudFrontAlarm",
            stack_name=f"{prefix}-cloudfront-alarm",
            env=Environment(account=config.account, region=CLOUDFRONT_METRICS_REGION),
            cross_region_references=True,
            app_config=app_config,
            config=config,
            distribution=self.stateless.edge.distribution,
            description=f"{prefix}: CloudFront 5xx-rate alarm and its paging topic (us-east-1, CloudFront's metrics)",
        )
        grant_paging_endpoints(self.stateless, app_config=app_config, config=config)
        for each in (self.stateless, stack):
            tag_cross_region_providers(each, app_config.standard_tags(config))
        return stack
