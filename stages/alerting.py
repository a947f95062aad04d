from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from config import EnvironmentConfig


class Alerting(Construct):
    """SNS topics per severity; warning to e-mail, critical also to the paging/chat endpoints from config."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        self.warning = sns.Topic(
            self, "Warning", display_name=f"{config.name} warning", master_key=key, enforce_ssl=True
        )
        self.critical = sns.Topic(
            self, "Critical", display_name=f"{config.name} critical", master_key=key, enforce_ssl=True
        )
        for email in config.notifications.emails:
            self.warning.add_subscription(subscriptions.EmailSubscription(email))
            self.critical.add_subscription(subscriptions.EmailSubscription(email))
        for index, endpoint in enumerate(config.notifications.critical_endpoints):
            if endpoint.startswith("https://"):
                self.critical.add_subscription(subscriptions.UrlSubscription(endpoint))
            else:
                function = lambda_.Function.from_function_arn(self, f"Endpoint{index}", endpoint)
                self.critical.add_subscription(subscriptions.LambdaSubscription(function))
