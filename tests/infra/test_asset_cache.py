"""The Docker asset project keeps CodeBuild's local Docker layer cache, as CodeBuild's own API model allows it."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")


def _codebuild_shapes() -> tuple[list[str], list[str]]:
    model = botocore.session.get_session().get_service_model("codebuild")
    return model.shape_for("CacheType").enum, model.shape_for("CacheMode").enum


def test_the_docker_asset_project_caches_docker_layers_and_nothing_else_does(pipeline_template: dict[str, Any]) -> None:
    projects = resources_of(pipeline_template, "AWS::CodeBuild::Project")
    caching = {k: p["Properties"]["Cache"] for k, p in projects.items() if p["Properties"]["Cache"]["Type"] != "NO_CACHE"}
    assert list(caching) == [k for k in projects if k.startswith("PipelineAssetsDockerAsset")], caching
    (cache,) = caching.values()
    assert cache == {"Type": "LOCAL", "Modes": ["LOCAL_DOCKER_LAYER_CACHE"]}


def test_every_cache_is_one_codebuild_accepts_on_that_environment(pipeline_template: dict[str, Any]) -> None:
    types, modes = _codebuild_shapes()
    for key, project in resources_of(pipeline_template, "AWS::CodeBuild::Project").items():
        cache, environment = project["Properties"]["Cache"], project["Properties"]["Environment"]
        assert cache["Type"] in types, key
        assert set(cache.get("Modes", [])) <= set(modes), key
        if cache["Type"] != "NO_CACHE":
            # Lambda compute rejects a cache; the Docker layer mode needs a privileged Linux container (API docs).
            assert environment["Type"] == "LINUX_CONTAINER", key
        if "LOCAL_DOCKER_LAYER_CACHE" in cache.get("Modes", []):
            assert environment["PrivilegedMode"] is True, key
