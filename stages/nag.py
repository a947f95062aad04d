"""Compliance acknowledgments, kept next to the resource they concern (each with a reviewer-grade reason)."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

IAM5 = "AwsSolutions-IAM5"
PACKS = ("AwsSolutions", "NIST.800.53.R5")


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    short = [rule for rule, reason in reasons.items() if len(reason.strip()) < 30]
    if short:
        raise ValueError(f"acknowledgments need the reason a security reviewer would accept: {short}")
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
    acknowledged = []
    for node in scope.node.find_all():
        if not isinstance(node, iam.CfnPolicy):
            continue
        statements = Stack.of(node).resolve(node.policy_document)["Statement"]
        for finding in sorted(_wildcard_findings(statements)):
            reason = next((r for p, r in patterns if p.search(finding)), None)
            if reason:
                acknowledge(node, {f"{IAM5}[{finding}]": reason})
                acknowledged.append(finding)
    return acknowledged


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
