"""The build context, and so the image and its CDK asset hash, depends only on Dockerfile and service/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

pytestmark = pytest.mark.xdist_group("docker")

ROOT = Path(__file__).resolve().parents[2]


def _patterns(root: Path) -> list[str]:
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _context_files(root: Path) -> set[str]:
    included = exclude_paths(str(root), _patterns(root), dockerfile="Dockerfile")
    return {path for path in included if (root / path).is_file()}


def test_context_holds_only_the_dockerfile_and_the_service_runtime_files() -> None:
    files = _context_files(ROOT)
    assert {"Dockerfile", "service/requirements.txt"} <= files
    assert any(path.endswith(".py") for path in files), "no service module in the build context"
    unexpected = {
        path
        for path in files
        if path not in ("Dockerfile", ".dockerignore")
        and (
            not path.startswith("service/")
            or "__pycache__" in path
            or path.endswith((".pyc", ".md", ".in"))
            or "/tests/" in path
            or Path(path).name.startswith("test_")
            or Path(path).name in ("conftest.py", "devserver.py")
        )
    }
    assert not unexpected, f"files in the build context that are not part of the image: {sorted(unexpected)}"


def _asset_hash(directory: Path) -> str:
    import aws_cdk as cdk
    from aws_cdk import aws_ecr_assets as ecr_assets

    stack = cdk.Stack(cdk.App(), "ContextHash")
    return ecr_assets.DockerImageAsset(stack, "Image", directory=str(directory)).asset_hash


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cdk_asset_hash_ignores_everything_but_the_image_inputs(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy2(ROOT / "Dockerfile", repo / "Dockerfile")
    shutil.copy2(ROOT / ".dockerignore", repo / ".dockerignore")
    shutil.copytree(ROOT / "service", repo / "service", ignore=shutil.ignore_patterns("__pycache__"))
    outside_the_image = [
        "README.md",
        "app.py",
        "stages/service.py",
        "tests/service/test_app.py",
        "tests/container/test_x.py",
        "buildspec.yml",
        "service/__pycache__/settings.cpython-311.pyc",
        "service/tests/test_inner.py",
        "service/README.md",
        "service/requirements.in",
        "service/devserver.py",
    ]
    for name in outside_the_image:
        _write(repo / name, "first\n")
    before = _asset_hash(repo)

    for name in outside_the_image:
        _write(repo / name, "changed\n")
    assert _asset_hash(repo) == before, "a file that is not part of the image changed the asset hash"

    with (repo / "service" / "requirements.txt").open("a") as requirements:
        requirements.write("# a dependency change\n")
    after_service_change = _asset_hash(repo)
    assert after_service_change != before, "a change to service/ did not change the asset hash"

    with (repo / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("# a build change\n")
    assert _asset_hash(repo) != after_service_change, "a change to the Dockerfile did not change the asset hash"
