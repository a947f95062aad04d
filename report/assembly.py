"""Thin reader of a synthesized cloud assembly (cdk.out): manifest, pipeline template, nested stage assemblies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from report.model import find_pipeline


class AssemblyError(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(f"report: no cloud assembly at {path}: run `make synth` first")


@dataclass(frozen=True, kw_only=True)
class Assembly:
    pipeline_stack: str
    pipeline: dict
    pipeline_template: dict  # the whole pipeline stack: CodeBuild projects, gate functions
    stages: dict[str, dict[str, dict]]  # stage name → {CloudFormation stack name → template}
    asset_ids: dict[str, list[str]]  # "docker"/"file" → unique asset ids across the stages
    image_stacks: frozenset[str] = frozenset()  # stack names that publish a Docker image asset
    docker_destinations: int = 0  # (image, destination) pairs the Docker publishing action pushes
    file_publishes: int = 0  # `cdk-assets publish` commands of the file publishing action

    @property
    def stacks_without_image(self) -> frozenset[str]:
        """Stacks a commit that changes only the service image leaves unchanged."""
        return frozenset(name for stacks in self.stages.values() for name in stacks) - self.image_stacks


def _load(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _stacks(directory: Path, manifest: dict) -> dict[str, tuple[str, dict]]:
    """artifact id → (stack name, template) for every CloudFormation stack in one assembly directory."""
    out = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        props = artifact.get("properties", {})
        template = _load(directory / props["templateFile"])
        out[artifact_id] = (props.get("stackName", artifact_id), template)
    return out


def _publish_commands(path: Path, template: dict, kind: str) -> int:
    """How many assets an asset action publishes: CDK Pipelines writes its buildspec as a file in the assembly."""
    count = 0
    for resource in template.get("Resources", {}).values():
        spec = resource.get("Properties", {}).get("Source", {}).get("BuildSpec")
        if resource.get("Type") == "AWS::CodeBuild::Project" and isinstance(spec, str) and spec.endswith(f"-{kind}.yaml"):
            count += sum(1 for line in (path / spec).read_text().splitlines() if "cdk-assets " in line and " publish " in line)
    return count


def read_assembly(path: Path) -> Assembly:
    try:
        manifest = _load(path / "manifest.json")
        pipelines = [(name, find_pipeline(t), t) for name, t in _stacks(path, manifest).values()]
        pipelines = [(name, p, t) for name, p, t in pipelines if p is not None]
        if not pipelines:
            raise AssemblyError(path)
        stages: dict[str, dict[str, dict]] = {}
        asset_ids: dict[str, set[str]] = {"docker": set(), "file": set()}
        image_stacks: set[str] = set()
        destinations: set[tuple[str, str]] = set()
        for artifact in manifest.get("artifacts", {}).values():
            if artifact.get("type") != "cdk:cloud-assembly":
                continue
            props = artifact["properties"]
            directory = path / props["directoryName"]
            nested = _load(directory / "manifest.json")
            stage_name = props.get("displayName", props["directoryName"]).rsplit("/", 1)[-1]
            stacks = _stacks(directory, nested)
            stages[stage_name] = dict(stacks.values())
            for artifact_id, nested_artifact in nested.get("artifacts", {}).items():
                if nested_artifact.get("type") != "cdk:asset-manifest":
                    continue
                assets = _load(directory / nested_artifact["properties"]["file"])
                asset_ids["docker"].update(assets.get("dockerImages", {}))
                destinations.update((image, destination) for image, spec in assets.get("dockerImages", {}).items()
                                    for destination in spec.get("destinations", {}))
                asset_ids["file"].update(assets.get("files", {}))
                owner = artifact_id.removesuffix(".assets")
                if assets.get("dockerImages") and owner in stacks:
                    image_stacks.add(stacks[owner][0])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise AssemblyError(path) from error
    name, pipeline, template = pipelines[0]
    file_publishes = _publish_commands(path, template, "FileAsset")
    return Assembly(pipeline_stack=name, pipeline=pipeline, pipeline_template=template, stages=stages,
                    asset_ids={k: sorted(v) for k, v in asset_ids.items()}, image_stacks=frozenset(image_stacks), docker_destinations=len(destinations), file_publishes=file_publishes)
