"""What CloudFormation and IAM will do with the synthesized assembly, modelled independently of our constructs.

Stacks are read from the cloud assembly's manifests (stack name, account, region, execution role), intrinsics are
resolved the way CloudFormation resolves them, generated physical names follow CloudFormation's naming rule, and
policy statements are evaluated with IAM's condition-operator semantics. Nothing here imports stages/ or pipeline/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RANDOM_SUFFIX = "A1B2C3D4E5F6"  # stands for the 12 random characters CloudFormation appends to a generated name
ROLE_NAME_MAX = 64


def generated_name(stack_name: str, logical_id: str, *, max_length: int = ROLE_NAME_MAX) -> str:
    # CloudFormation's generated physical name "<stack>-<logical id>-<12 random>"; past the type's maximum it keeps
    # 13 characters for "-<random>" and splits the rest around a hyphen, the stack half rounding up (25 + 25 for
    # roles). Undocumented: inferred from names CloudFormation produced, e.g. the 64-character role
    # "ChineseboostAnalyticsStac-RainlyticsSummariesJobFun-UjecjFhpdr1d"; DESIGN.md "Hosted secret rotation".
    name = f"{stack_name}-{logical_id}-{RANDOM_SUFFIX}"
    if len(name) <= max_length:
        return name
    room = max_length - len(RANDOM_SUFFIX) - 2
    stack_part = (room + 1) // 2
    return f"{stack_name[:stack_part]}-{logical_id[: room - stack_part]}-{RANDOM_SUFFIX}"


def nested_stack_name(parent_stack_name: str, logical_id: str) -> str:
    # Nested stacks are named "<parent stack name>-<logical id of the stack resource>-<random>".
    return f"{parent_stack_name}-{logical_id}-{RANDOM_SUFFIX}"


@dataclass(frozen=True)
class Ref:
    """A resource of one stack: what Ref/GetAtt/ImportValue finally point at."""

    stack: str
    logical_id: str


@dataclass
class Stack:
    name: str
    account: str
    region: str
    execution_role_arn: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})


@dataclass
class Assembly:
    stacks: dict[str, Stack] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Assembly:
        assembly = cls()
        for folder in [directory, *sorted(directory.glob("assembly-*"))]:
            manifest = json.loads((folder / "manifest.json").read_text())
            for artifact in manifest["artifacts"].values():
                if artifact["type"] != "aws:cloudformation:stack":
                    continue
                props = artifact["properties"]
                account, region = artifact["environment"].removeprefix("aws://").split("/")
                name = props.get("stackName", artifact.get("displayName"))
                assembly.stacks[name] = Stack(
                    name=name,
                    account=account,
                    region=region,
                    execution_role_arn=props["cloudFormationExecutionRoleArn"].replace("${AWS::Partition}", "aws"),
                    template=json.loads((folder / props["templateFile"]).read_text()),
                )
        return assembly

    def resources(self, kind: str) -> Iterator[tuple[Stack, str, dict[str, Any]]]:
        for stack in self.stacks.values():
            for logical_id, resource in stack.resources.items():
                if resource["Type"] == kind:
                    yield stack, logical_id, resource

    def export(self, name: str) -> tuple[Stack, Any]:
        for stack in self.stacks.values():
            for output in stack.template.get("Outputs", {}).values():
                if output.get("Export", {}).get("Name") == name:
                    return stack, output["Value"]
        raise AssertionError(f"no stack exports {name!r}: the import would fail at deploy time")

    def target(self, stack: Stack, value: Any) -> Ref | str:
        """The resource a property points at (following ImportValue to the exporting stack), or a literal string."""
        if isinstance(value, dict) and "Fn::ImportValue" in value:
            exporter, exported = self.export(value["Fn::ImportValue"])
            return self.target(exporter, exported)
        if isinstance(value, dict) and "Ref" in value:
            return self._follow(Ref(stack.name, value["Ref"]))
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return self._follow(Ref(stack.name, value["Fn::GetAtt"][0]))
        return str(self.resolve(stack, value))

    def _follow(self, ref: Ref) -> Ref:
        # A secret target attachment's Ref is the ARN of the secret it attaches.
        resource = self.stacks[ref.stack].resources.get(ref.logical_id)
        if resource and resource["Type"] == "AWS::SecretsManager::SecretTargetAttachment":
            return self.target(self.stacks[ref.stack], resource["Properties"]["SecretId"])  # type: ignore[return-value]
        return ref

    def role_name(self, stack: Stack, logical_id: str) -> str:
        resource = stack.resources[logical_id]
        assert resource["Type"] == "AWS::IAM::Role", (stack.name, logical_id)
        fixed = resource.get("Properties", {}).get("RoleName")
        return self.resolve(stack, fixed) if fixed is not None else generated_name(stack.name, logical_id)

    def resolve(self, stack: Stack, value: Any) -> Any:
        """Intrinsics resolved as CloudFormation would, with generated names for resources without a fixed one."""
        if isinstance(value, list):
            return [self.resolve(stack, item) for item in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            pseudo = {
                "AWS::Partition": "aws",
                "AWS::AccountId": stack.account,
                "AWS::Region": stack.region,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": stack.name,
            }
            name = value["Ref"]
            if name in pseudo:
                return pseudo[name]
            if stack.resources.get(name, {}).get("Type") == "AWS::IAM::Role":
                return self.role_name(stack, name)
            return f"<{stack.name}.{name}>"
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if stack.resources.get(logical_id, {}).get("Type") == "AWS::IAM::Role" and attribute == "Arn":
                return f"arn:aws:iam::{stack.account}:role/{self.role_name(stack, logical_id)}"
            return f"<{stack.name}.{logical_id}.{attribute}>"
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(self.resolve(stack, part)) for part in parts)
        if "Fn::ImportValue" in value:
            exporter, exported = self.export(value["Fn::ImportValue"])
            return self.resolve(exporter, exported)
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.resolve(stack, {"Ref": m.group(1)})), value["Fn::Sub"])
        return {key: self.resolve(stack, item) for key, item in value.items()}


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def glob_match(pattern: str, text: str, *, ignore_case: bool) -> bool:
    # IAM wildcards: "*" any run of characters, "?" one character; no character classes.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    # ArnLike compares each of the six colon-separated parts with wildcards (IAM User Guide, "ARN condition operators").
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    return len(pattern_parts) == len(arn_parts) == 6 and all(
        glob_match(p, a, ignore_case=False) for p, a in zip(pattern_parts, arn_parts)
    )


OPERATORS = {
    "StringEquals": lambda p, v: p == v,
    "StringLike": lambda p, v: glob_match(p, v, ignore_case=False),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": _arn_like,
}
NEGATED = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


def condition_holds(operator: str, key: str, values: Any, context: dict[str, str]) -> bool:
    """One condition block entry, single-valued key (IAM User Guide, "Condition element" evaluation logic):
    several values are OR-ed; a negated operator holds when the key matches none, and when the key is absent."""
    if operator in NEGATED:
        return not condition_holds(NEGATED[operator], key, values, context) if key in context else True
    if operator not in OPERATORS:
        raise AssertionError(f"the policy model does not know condition operator {operator}: extend it before use")
    if key not in context:
        return False
    return any(OPERATORS[operator](str(value), context[key]) for value in _as_list(values))


def statement_applies(statement: dict[str, Any], *, action: str, principal_arn: str, account: str) -> bool:
    """Whether a resource-policy statement matches a request by this principal for this action (any resource)."""
    if "NotPrincipal" in statement or "NotAction" in statement:
        raise AssertionError("the policy model does not evaluate NotPrincipal/NotAction: extend it before use")
    principals = statement.get("Principal")
    aws = principals if principals == "*" else (principals or {}).get("AWS")
    matches_principal = any(
        p == "*" or p == principal_arn or p in (f"arn:aws:iam::{account}:root", account) for p in _as_list(aws)
    )
    if not matches_principal:
        return False
    if not any(glob_match(a, action, ignore_case=True) for a in _as_list(statement.get("Action", []))):
        return False
    context = {"aws:PrincipalArn": principal_arn, "aws:PrincipalAccount": account}
    return all(
        condition_holds(operator, key, values, context)
        for operator, block in (statement.get("Condition") or {}).items()
        for key, values in block.items()
    )

