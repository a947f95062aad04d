from __future__ import annotations

from aws_cdk import Stack
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
        self.critical = paging_topic(self, "Critical", config=config, key=key, display_name=f"{config.name} critical")
        for email in config.notifications.emails:
            self.warning.add_subscription(subscriptions.EmailSubscription(email))


def paging_topic(
    scope: Construct,
    id_: str,
    *,
    config: EnvironmentConfig,
    key: kms.IKey,
    display_name: str,
    topic_name: str | None = None,
) -> sns.Topic:
    """A KMS-encrypted, TLS-only topic subscribed to every escalation endpoint of the environment: the e-mails and the
    paging/chat endpoints. The environment's critical topic and the CloudFront alarm's topic in us-east-1 are both this
    (one per scope: the endpoint constructs keep the ids they always had)."""
    topic = sns.Topic(
        scope, id_, display_name=display_name, topic_name=topic_name, master_key=key, enforce_ssl=True
    )
    for email in config.notifications.emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    here = Stack.of(scope).region
    for index, endpoint in enumerate(config.notifications.critical_endpoints):
        if endpoint.startswith("https://"):
            topic.add_subscription(subscriptions.UrlSubscription(endpoint))
        elif function_region(endpoint) == here:
            function = lambda_.Function.from_function_arn(scope, f"Endpoint{index}", endpoint)
            topic.add_subscription(subscriptions.LambdaSubscription(function))
        else:
            # The us-east-1 topic and a function in the environment's region (config keeps functions there): Lambda
            # takes a permission only in the function's region, so the Stateless stack grants it
            # (cloudfront_alarm_stack.grant_paging_endpoints); SNS delivers to a function in another region.
            sns.Subscription(
                scope, f"Endpoint{index}Subscription", topic=topic, endpoint=endpoint,
                protocol=sns.SubscriptionProtocol.LAMBDA,
            )
    return topic


def function_region(arn: str) -> str:
    return arn.split(":")[3]
