from __future__ import annotations

from typing import Any

from aws_cdk import Environment, Stage
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.nag import acknowledge
from stages.tagging import apply_standard_tags
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
        self.stateless = StatelessStack(
            self,
            "Stateless",
            stack_name=f"{prefix}-stateless",
            app_config=app_config,
            config=config,
            stateful=self.stateful,
            description=f"{prefix}: load balancer, service, alarms, dashboard",
        )
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
