"""Prints what `make synth` produced: every stack in pipeline order (CloudFormation name, account, region,
resources), then the pipeline's stages with their approvals."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLACEHOLDER_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class Stack:
    stack_name: str
    construct_path: str
    account: str
    region: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.get("Resources", {})


def read_stacks(outdir: Path) -> list[Stack]:
    """Every stack of the assembly and its nested stage assemblies, in manifest order."""
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        raise SystemExit(f"{manifest_path} not found: run `make synth` first")
    stacks = []
    for assembly_dir in [outdir, *sorted(p for p in outdir.glob("assembly-*") if p.is_dir())]:
        manifest = json.loads((assembly_dir / "manifest.json").read_text())
        for name, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            properties = artifact.get("properties", {})
            account, region = artifact.get("environment", "aws://unknown/unknown").removeprefix("aws://").split("/")
            stacks.append(
                Stack(
                    stack_name=properties.get("stackName", name),
                    construct_path=artifact.get("displayName", name),
                    account=account,
                    region=region,
                    template=json.loads((assembly_dir / properties["templateFile"]).read_text()),
                )
            )
    return stacks


def _pipeline(stacks: list[Stack]) -> tuple[Stack, dict[str, Any]] | None:
    for stack in stacks:
        for resource in stack.resources.values():
            if resource["Type"] == "AWS::CodePipeline::Pipeline":
                return stack, resource["Properties"]
    return None


def pipeline_order(stacks: list[Stack]) -> list[tuple[str, Stack]]:
    """(pipeline stage, stack): the pipeline's own stack first, then each deployed stack in the order the
    pipeline's CloudFormation actions deploy it; stacks no action deploys come last."""
    by_name = {s.stack_name: s for s in stacks}
    found = _pipeline(stacks)
    ordered: list[tuple[str, Stack]] = []
    if found:
        pipeline_stack, props = found
        ordered.append(("(pipeline)", pipeline_stack))
        for stage in props["Stages"]:
            actions = sorted(stage["Actions"], key=lambda a: a.get("RunOrder", 1))
            for action in actions:
                name = action.get("Configuration", {}).get("StackName")
                if action["ActionTypeId"]["Provider"] == "CloudFormation" and name in by_name:
                    if all(s.stack_name != name for _, s in ordered):
                        ordered.append((stage["Name"], by_name[name]))
    seen = {s.stack_name for _, s in ordered}
    ordered += [("(not deployed)", s) for s in stacks if s.stack_name not in seen]
    return ordered


def summarize(outdir: Path) -> str:
    stacks = read_stacks(outdir)
    ordered = pipeline_order(stacks)
    lines = ["", "Stacks in pipeline order", "========================"]
    header = f"  {'stage':12} {'CloudFormation stack':34} {'account':14} {'region':14} resources"
    lines.append(header)
    for stage, stack in ordered:
        kinds = Counter(r["Type"] for r in stack.resources.values())
        top = ", ".join(f"{k.split('::', 1)[1]}×{n}" for k, n in kinds.most_common(3))
        account = stack.account + ("*" if stack.account == PLACEHOLDER_ACCOUNT else "")
        lines.append(
            f"  {stage:12} {stack.stack_name:34} {account:14} {stack.region:14} {len(stack.resources):4}  ({top})"
        )
    if any(s.account == PLACEHOLDER_ACCOUNT for s in stacks):
        lines.append("  * placeholder account: set pipeline.account and environments[].account before deploying")
    found = _pipeline(stacks)
    if found:
        props = found[1]
        mode = props.get("ExecutionMode", "SUPERSEDED")
        lines += ["", f"Pipeline stages (type {props.get('PipelineType', 'V1')}, execution mode {mode}):"]
        for stage in props["Stages"]:
            actions = sorted(stage["Actions"], key=lambda a: a.get("RunOrder", 1))
            described = []
            for action in actions:
                kind = action["ActionTypeId"]["Provider"]
                described.append(f"{action['Name']} [{'APPROVAL' if kind == 'Manual' else kind}]")
            lines.append(f"  {stage['Name']:14} → " + ", ".join(described))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
