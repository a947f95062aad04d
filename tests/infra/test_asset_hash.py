"""Rollback by revert relies on this: the image's asset hash depends only on what goes into the image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr_assets as ecr_assets

from stages.stateless_stack import REPOSITORY_ROOT
from tests.infra.configured import stage_id

pytestmark = pytest.mark.xdist_group("infra")


def image_hash(directory: Path) -> str:
    # Same asset definition as StatelessStack: repository root, Dockerfile, .dockerignore honoured.
    app = cdk.App()
    stack = cdk.Stack(app, "Probe")
    asset = ecr_assets.DockerImageAsset(
        stack, "Image", directory=str(directory), file="Dockerfile", ignore_mode=cdk.IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64,
    )
    return asset.asset_hash


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("Dockerfile", ".dockerignore", "README.md", "app.py", "cdk.json"):
        shutil.copy(REPOSITORY_ROOT / name, root / name)
    for folder in ("service", "stages", "tests/infra"):
        shutil.copytree(REPOSITORY_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_same_inputs_give_the_same_hash(checkout):
    assert image_hash(checkout) == image_hash(checkout)


@pytest.mark.parametrize("outside", ["README.md", "app.py", "stages/web_service.py", "tests/infra/test_asset_hash.py"])
def test_changing_a_file_outside_the_image_keeps_the_hash(checkout, outside):
    before = image_hash(checkout)
    with (checkout / outside).open("a") as handle:
        handle.write("\n# changed\n")
    assert image_hash(checkout) == before


def test_changing_a_service_file_changes_the_hash_and_reverting_restores_it(checkout):
    target = checkout / "service" / "app.py"
    original = target.read_bytes()
    before = image_hash(checkout)
    target.write_bytes(original + b"\n# a new release\n")
    changed = image_hash(checkout)
    assert changed != before
    target.write_bytes(original)  # what `git revert` does
    assert image_hash(checkout) == before


def test_the_synthesized_image_context_holds_only_the_image_inputs(assembly_dir, config):
    # The last environment's nested assembly (every environment builds the same image).
    stage = assembly_dir / f"assembly-{config.project}-{config.service_name}-pipeline-{stage_id(config.environments[-1])}"
    manifest = json.loads((stage / "manifest.json").read_text())
    asset_manifests = [a for a in manifest["artifacts"].values() if a["type"] == "cdk:asset-manifest"]
    images = {}
    for artifact in asset_manifests:
        path = stage / artifact["properties"]["file"]
        images.update(json.loads(path.read_text()).get("dockerImages", {}))
    (image,) = images.values()
    context = stage / image["source"]["directory"]
    if not context.exists():
        context = assembly_dir / image["source"]["directory"]
    top = sorted(p.name for p in context.iterdir() if p.name != ".dockerignore")
    assert top == ["Dockerfile", "service"]
    assert not list(context.rglob("test_*.py")) and not list(context.rglob("__pycache__"))
