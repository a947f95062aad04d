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


def read_assembly(path: Path) -> Assembly:
    try:
        manifest = _load(path / "manifest.json")
        pipelines = [(name, find_pipeline(t), t) for name, t in _stacks(path, manifest).values()]
        pipelines = [(name, p, t) for name, p, t in pipelines if p is not None]
        if not pipelines:
            raise AssemblyError(path)
        stages: dict[str, dict[str, dict]] = {}
        asset_ids: dict[str, set[str]] = {"docker": set(), "file": set()}
        for artifact in manifest.get("artifacts", {}).values():
            if artifact.get("type") != "cdk:cloud-assembly":
                continue
            props = artifact["properties"]
            directory = path / props["directoryName"]
            nested = _load(directory / "manifest.json")
            stage_name = props.get("displayName", props["directoryName"]).rsplit("/", 1)[-1]
            stages[stage_name] = dict(_stacks(directory, nested).values())
            for nested_artifact in nested.get("artifacts", {}).values():
                if nested_artifact.get("type") != "cdk:asset-manifest":
                    continue
                assets = _load(directory / nested_artifact["properties"]["file"])
                asset_ids["docker"].update(assets.get("dockerImages", {}))
                asset_ids["file"].update(assets.get("files", {}))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise AssemblyError(path) from error
    name, pipeline, template = pipelines[0]
    return Assembly(pipeline_stack=name, pipeline=pipeline, pipeline_template=template, stages=stages,
                    asset_ids={k: sorted(v) for k, v in asset_ids.items()})
