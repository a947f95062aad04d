"""Check 8: the registry scans the CDK asset repository (where the pipeline publishes the image) on push."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tools.preflight.accounts import asset_repository
from tools.preflight.results import Result, failed, passed

ASSET_FILTER = "cdk-*-container-assets-*"


def filter_matches(filter_: str, repository: str) -> bool:
    # ECR: a filter without '*' matches every repository name containing it; '*' stands for zero or more characters
    if "*" not in filter_:
        return filter_ in repository
    return re.fullmatch(".*".join(re.escape(part) for part in filter_.split("*")), repository) is not None


def _on_push(scan_type: str) -> frozenset[str]:
    # enhanced continuous scanning scans each pushed image too; basic scanning offers SCAN_ON_PUSH and MANUAL only
    return frozenset({"SCAN_ON_PUSH", "CONTINUOUS_SCAN"} if scan_type == "ENHANCED" else {"SCAN_ON_PUSH"})


def fix_command(*, region: str, scan_type: str, rules: list[Mapping[str, Any]]) -> str:
    """Keeps the existing rules: put-registry-scanning-configuration replaces them all."""
    merged = [
        {"scanFrequency": r["scanFrequency"], "repositoryFilters": [dict(f) for f in r.get("repositoryFilters", [])]}
        for r in rules
    ]
    asset_filter = {"filter": ASSET_FILTER, "filterType": "WILDCARD"}
    on_push = next((r for r in merged if r["scanFrequency"] == "SCAN_ON_PUSH"), None)
    if on_push is None:
        merged.append({"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [asset_filter]})
    else:
        on_push["repositoryFilters"].append(asset_filter)
    rules_json = json.dumps(merged, separators=(",", ":"))
    return (
        f"aws ecr put-registry-scanning-configuration --region {region} --scan-type {scan_type} "
        f"--rules '{rules_json}'"
    )


def check_image_scanning(ecr: Any, *, account: str, region: str) -> Result:
    repository = asset_repository(account=account, region=region)
    configuration = ecr.get_registry_scanning_configuration().get("scanningConfiguration") or {}
    scan_type = configuration.get("scanType", "BASIC")
    rules = list(configuration.get("rules") or [])
    for rule in rules:
        if rule.get("scanFrequency") not in _on_push(scan_type):
            continue
        for repository_filter in rule.get("repositoryFilters") or []:
            if filter_matches(repository_filter["filter"], repository):
                return passed(
                    f"ECR {scan_type} scanning: rule {repository_filter['filter']!r} ({rule['scanFrequency']}) "
                    f"scans {repository} on push"
                )
    return failed(
        f"ECR {scan_type} scanning in {account}/{region}: no rule scans {repository} on push",
        fix_command(region=region, scan_type=scan_type, rules=rules),
    )
