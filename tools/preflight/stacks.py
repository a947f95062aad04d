"""Deployed stacks, looked up by the names the app gives them (stages/naming.py, app.py)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tools.preflight.results import error_code, error_message


def _missing(error: ClientError) -> bool:
    return error_code(error) == "ValidationError" and "does not exist" in error_message(error)


def stack_resources(cloudformation: Any, *, stack_name: str) -> list[dict[str, Any]] | None:
    """The stack's resources, or None when it is not deployed."""
    try:
        return [
            resource
            for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
            for resource in page["StackResourceSummaries"]
        ]
    except ClientError as error:
        if _missing(error):
            return None
        raise


def stack_exists(cloudformation: Any, *, stack_name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if _missing(error):
            return False
        raise
    # a stack whose first creation rolled back holds no resources
    return any(s["StackStatus"] not in {"ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"} for s in stacks)


def physical_ids(resources: list[dict[str, Any]], resource_type: str) -> list[str]:
    return [
        r["PhysicalResourceId"] for r in resources if r["ResourceType"] == resource_type and r.get("PhysicalResourceId")
    ]
