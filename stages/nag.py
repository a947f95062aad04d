"""Compliance acknowledgments, kept next to the resource they concern (each with a reviewer-grade reason)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

IAM5 = "AwsSolutions-IAM5"
PACKS = ("AwsSolutions", "NIST.800.53.R5")

# Acknowledgments are read only by validation (the cdk-nag packs and aws-cdk-lib's template validator). A synth that
# runs neither (`make synth`, DELIVERY_VALIDATE=0) need not pay the round trips to node that recording them costs; the
# templates are the same either way (tests/infra/test_acknowledgment_recording.py compares them).
_recording: ContextVar[bool] = ContextVar("delivery_acknowledgments_recorded", default=True)


def recording_acknowledgments() -> bool:
    return _recording.get()


@contextmanager
def acknowledgments_recorded(enabled: bool) -> Iterator[None]:
    """Within this block, acknowledge() and acknowledge_wildcards() record acknowledgments only if enabled; the
    reasons are checked either way."""
    token = _recording.set(enabled)
    try:
        yield
    finally:
        _recording.reset(token)


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    short = [rule for rule, reason in reasons.items() if len(reason.strip()) < 30]
    if short:
        raise ValueError(f"acknowledgments need the reason a security reviewer would accept: {short}")
    if not _recording.get():
        return
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=_qualified(rule), reason=reason) for rule, reason in reasons.items())
    )


def _qualified(rule: str) -> str:
    # Validations wants "<plugin>::<rule>"; an unqualified id would be filed as an annotation rule.
    for pack in PACKS:
        if rule.startswith(f"{pack}-"):
            return f"{pack}::{rule}"
    return rule


def acknowledge_wildcards(scope: IConstruct, allowed: list[tuple[str, str]]) -> list[str]:
    """Acknowledge IAM5 wildcard findings of generated policies under scope, but only those matching an allowed
    pattern, each with the reason given for that pattern. Anything else stays a finding. Returns the ids."""
    patterns = [(re.compile(pattern), reason) for pattern, reason in allowed]
    acknowledged: list[str] = []
    if not _recording.get():
        return acknowledged
    nodes = scope.node.find_all()
    policies = [node for node in nodes if isinstance(node, iam.CfnPolicy)]
    # find_all starts with scope itself; a stack below it means the policies may belong to different stacks.
    one_stack = not any(isinstance(node, Stack) for node in nodes[1:])
    for policy, document in zip(policies, _resolved_documents(scope, policies, one_stack=one_stack), strict=True):
        reasons = {}
        for finding in sorted(_wildcard_findings(document["Statement"])):
            reason = next((r for p, r in patterns if p.search(finding)), None)
            if reason:
                reasons[f"{IAM5}[{finding}]"] = reason
                acknowledged.append(finding)
        if reasons:
            acknowledge(policy, reasons)
    return acknowledged


def _resolved_documents(scope: IConstruct, policies: list[iam.CfnPolicy], *, one_stack: bool) -> list[dict[str, Any]]:
    # Each call into aws-cdk-lib is a round trip to node: resolve every document of one stack in a single call.
    if not policies:
        return []
    if one_stack:
        return Stack.of(scope).resolve([policy.policy_document for policy in policies])
    return [Stack.of(policy).resolve(policy.policy_document) for policy in policies]


def _wildcard_findings(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action")):
            if "*" in action:
                found.add(f"Action::{action}")
        for resource in _as_list(statement.get("Resource")):
            text = _render(resource)
            if "*" in text:
                found.add(f"Resource::{text}")
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _render(value: Any) -> str:
    # The way cdk-nag prints intrinsic functions in finding ids.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        return f"<{logical}.{attribute}>"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    return str(value)
