"""What the infrastructure tests run against: cdk.json's configuration, which a fork replaces with its own (its
pipeline's Build runs these tests), and the example configuration this repository ships, frozen here.

Tests take environments, counts and features from the loaded configuration; only tests of the example's documented
values and of the loader's messages read the frozen example."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from config import AppConfig, EnvironmentConfig, load_config

# cdk.json's context.delivery as this repository ships it; a test fails while the two differ here (test_config.py).
EXAMPLE_CONTEXT = Path(__file__).with_name("example_context.json")


@cache
def configured() -> AppConfig:
    """cdk.json's configuration, loaded at collection time so that tests can be parametrized by its environments."""
    return load_config(app_module.default_context(), {})


def environment_names(where: Callable[[EnvironmentConfig], bool] = lambda env: True) -> list[str]:
    """The configured environments, in pipeline order, that satisfy `where`."""
    return [env.name for env in configured().environments if where(env)]


def example_context() -> dict[str, Any]:
    """cdk.json's context (feature flags included) with the example's delivery configuration in place of its own."""
    return {**app_module.default_context(), **copy.deepcopy(json.loads(EXAMPLE_CONTEXT.read_text()))}


def is_example(context: dict[str, Any]) -> bool:
    return context["delivery"] == json.loads(EXAMPLE_CONTEXT.read_text())["delivery"]


def shifts_traffic(env: EnvironmentConfig) -> bool:
    """CANARY, LINEAR and BLUE_GREEN shift traffic between two target groups with a test listener and a hook."""
    return env.deployment.strategy != "ROLLING"


def stage_id(env: EnvironmentConfig | str) -> str:
    """The environment's Stage id in the pipeline (and its pipeline stage name): pipeline/pipeline_stack.py."""
    return (env if isinstance(env, str) else env.name).capitalize()


def stack_path(config: AppConfig, env: EnvironmentConfig | str, kind: str) -> str:
    """A stack's display name in the assembly, e.g. 'delivery-notes-pipeline/Prod/Stateless'."""
    return f"{config.project}-{config.service_name}-pipeline/{stage_id(env)}/{kind}"


def environments_with(feature: str, where: Callable[[EnvironmentConfig], bool]) -> list[Any]:
    """Parameters for a test of a feature's details: the environments that have it, or, where none has it, one
    skipped parameter saying so (a test over every environment asserts the feature's presence and absence)."""
    names = environment_names(where)
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=f"no environment in cdk.json has {feature}"))]
