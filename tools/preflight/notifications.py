"""Check 7: every e-mail subscription on the pipeline's and the environments' topics is confirmed."""

from __future__ import annotations

from typing import Any

from tools.preflight.results import Result, failed, neutral, passed
from tools.preflight.stacks import physical_ids, stack_resources

EMAIL_PROTOCOLS = frozenset({"email", "email-json"})
PENDING = "PendingConfirmation"


def check_email_subscriptions(cloudformation: Any, sns: Any, *, stack_name: str) -> list[Result]:
    resources = stack_resources(cloudformation, stack_name=stack_name)
    if resources is None:
        return [neutral(f"e-mail subscriptions: {stack_name} is not deployed yet (checked once it is)")]
    topics = physical_ids(resources, "AWS::SNS::Topic")
    confirmed = 0
    results: list[Result] = []
    for topic in topics:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
            for subscription in page["Subscriptions"]:
                if subscription.get("Protocol") not in EMAIL_PROTOCOLS:
                    continue
                if subscription.get("SubscriptionArn") == PENDING:
                    endpoint = subscription.get("Endpoint", "?")
                    results.append(
                        failed(
                            f"e-mail subscription of {endpoint} to {topic.rsplit(':', 1)[-1]} is pending",
                            f'confirm the e-mail sent to {endpoint} (subject "AWS Notification - Subscription '
                            'Confirmation")',
                        )
                    )
                else:
                    confirmed += 1
    if not results:
        results.append(
            passed(f"{confirmed} e-mail subscription(s) on {len(topics)} topic(s) of {stack_name} confirmed")
        )
    return results
