"""Prints what `make synth` produced: stacks, resource counts, promotion order and where the approvals are."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(outdir: Path) -> str:
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        raise SystemExit(f"{manifest_path} not found: run `make synth` first")
    lines = ["", "Cloud assembly summary", "======================"]
    pipeline_template = None
    for assembly_dir in [outdir, *sorted(p for p in outdir.glob("assembly-*") if p.is_dir())]:
        manifest = json.loads((assembly_dir / "manifest.json").read_text())
        for name, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            template = json.loads((assembly_dir / artifact["properties"]["templateFile"]).read_text())
            resources = template.get("Resources", {})
            kinds = Counter(r["Type"] for r in resources.values())
            top = ", ".join(f"{k.split('::', 1)[1]}×{n}" for k, n in kinds.most_common(4))
            lines.append(f"{artifact.get('displayName', name):45} {len(resources):4} resources  ({top})")
            if any(r["Type"] == "AWS::CodePipeline::Pipeline" for r in resources.values()):
                pipeline_template = template
    if pipeline_template:
        pipeline = next(r for r in pipeline_template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline")
        props = pipeline["Properties"]
        lines += ["", f"Pipeline (type {props.get('PipelineType', 'V1')}, execution mode {props.get('ExecutionMode', 'SUPERSEDED')}):"]
        for stage in props["Stages"]:
            actions = sorted(stage["Actions"], key=lambda a: a.get("RunOrder", 1))
            described = []
            for action in actions:
                kind = action["ActionTypeId"]["Provider"]
                mark = "APPROVAL" if kind == "Manual" else kind
                described.append(f"{action['Name']} [{mark}]")
            lines.append(f"  {stage['Name']:12} → " + ", ".join(described))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
