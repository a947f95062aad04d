"""What the synthesized cloud assembly (cdk.out) asks of the accounts: bootstrap versions and reserved concurrency."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What aws-cdk-lib 2.275 writes into every stack and asset manifest (requiresBootstrapStackVersion) and into each
# stack's lookupRole entry (the lookup role gained ReadOnlyAccess in bootstrap version 8); used without a cdk.out.
DEFAULT_DEPLOY_VERSION = 6
DEFAULT_LOOKUP_VERSION = 8
DEFAULT_SOURCE = "aws-cdk-lib 2.275 default; run `make synth` for the assembly's own"
LAMBDA_FUNCTION = "AWS::Lambda::Function"


class AssemblyError(Exception):
    """cdk.out exists but is not a readable cloud assembly."""


@dataclass(frozen=True)
class AssemblyFacts:
    source: str
    deploy_version: int  # minimum bootstrap version to deploy the stacks and publish their assets
    lookup_version: int  # minimum bootstrap version for the lookup role preflight reads target accounts through
    # stack name → ReservedConcurrentExecutions per function logical id; None without an assembly
    reserved_concurrency: Mapping[str, Mapping[str, int]] | None = field(default=None)

    def reserved_for(self, stack_prefix: str) -> dict[str, Mapping[str, int]] | None:
        if self.reserved_concurrency is None:
            return None
        return {
            stack: functions for stack, functions in self.reserved_concurrency.items() if stack.startswith(stack_prefix)
        }


def default_facts() -> AssemblyFacts:
    return AssemblyFacts(DEFAULT_SOURCE, DEFAULT_DEPLOY_VERSION, DEFAULT_LOOKUP_VERSION)


def read_assembly(directory: Path) -> AssemblyFacts:
    if not (directory / "manifest.json").is_file():
        return default_facts()
    deploy: list[int] = []
    lookup: list[int] = []
    reserved: dict[str, dict[str, int]] = {}
    try:
        for base, artifact_id, artifact in _artifacts(directory):
            properties = artifact.get("properties") or {}
            if "requiresBootstrapStackVersion" in properties:
                deploy.append(int(properties["requiresBootstrapStackVersion"]))
            if "requiresBootstrapStackVersion" in (properties.get("lookupRole") or {}):
                lookup.append(int(properties["lookupRole"]["requiresBootstrapStackVersion"]))
            if artifact.get("type") == "aws:cloudformation:stack":
                template = json.loads((base / properties["templateFile"]).read_text())
                functions = _reservations(template)
                if functions:
                    reserved[properties.get("stackName") or artifact_id] = functions
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise AssemblyError(f"{directory} is not a readable cloud assembly ({error}); run `make synth`") from None
    return AssemblyFacts(
        f"from {directory.name}",
        max(deploy, default=DEFAULT_DEPLOY_VERSION),
        max(lookup, default=DEFAULT_LOOKUP_VERSION),
        reserved,
    )


def _artifacts(directory: Path) -> Iterator[tuple[Path, str, Mapping[str, Any]]]:
    manifest = json.loads((directory / "manifest.json").read_text())
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        if artifact.get("type") == "cdk:cloud-assembly":
            # a Stage's nested assembly (one per environment)
            yield from _artifacts(directory / artifact["properties"]["directoryName"])
        else:
            yield directory, artifact_id, artifact


def _reservations(template: Mapping[str, Any]) -> dict[str, int]:
    found = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        value = (resource.get("Properties") or {}).get("ReservedConcurrentExecutions")
        if resource.get("Type") == LAMBDA_FUNCTION and isinstance(value, int):
            found[logical_id] = value
    return found
