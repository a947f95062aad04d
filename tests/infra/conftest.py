"""One synthesis of the whole app per test session (with cdk-nag), shared by every infrastructure test: either
the fixture's own, or with DELIVERY_TEST_ASSEMBLY=<dir> the assembly a validated `make synth` wrote there (the
pipeline's build: buildspec.yml)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

import app as app_module
from config import AppConfig, load_config
from stages.nag import PACKS
from tests.infra import configured


@pytest.fixture(scope="session")
def context() -> dict[str, Any]:
    return app_module.default_context()


@pytest.fixture(scope="session")
def config(context: dict[str, Any]) -> AppConfig:
    return load_config(context, {})


@pytest.fixture(scope="session")
def example_context() -> dict[str, Any]:
    """The example configuration this repository ships (tests/infra/example_context.json), whatever cdk.json holds."""
    return configured.example_context()


@pytest.fixture(scope="session")
def example_config(example_context: dict[str, Any]) -> AppConfig:
    return load_config(example_context, {})


def _synthesize(outdir: Path, context: dict[str, Any], config: AppConfig) -> None:
    app = cdk.App(outdir=str(outdir), context=context)
    app_module.build(app, config)
    # Raises ValidationFailed on any unacknowledged cdk-nag finding (AwsSolutions and NIST 800-53 R5).
    app.synth()


def _validated(directory: Path) -> Path:
    """The assembly of a validated synth: every cdk-nag pack ran on it and concluded success."""
    report = directory / "validation-report.json"
    if not (directory / "manifest.json").exists() or not report.exists():
        pytest.fail(
            f"DELIVERY_TEST_ASSEMBLY={directory}: no validated cloud assembly there "
            "(run `DELIVERY_VALIDATE=1 make synth` first, or unset DELIVERY_TEST_ASSEMBLY)",
            pytrace=False,
        )
    conclusions = {r["pluginName"]: r.get("conclusion") for r in json.loads(report.read_text())["pluginReports"]}
    missing = [pack for pack in PACKS if conclusions.get(pack) != "success"]
    if missing:
        pytest.fail(
            f"DELIVERY_TEST_ASSEMBLY={directory}: cdk-nag {', '.join(missing)} did not pass on it: {conclusions}",
            pytrace=False,
        )
    return directory


def synthesized_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, context: dict[str, Any], config: AppConfig
) -> Path:
    """The app synthesized (with cdk-nag) into a directory once per test run, whichever workers ask for it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        outdir = tmp_path_factory.mktemp(name)
        _synthesize(outdir, context, config)
        return outdir
    # Under xdist every worker is a session: the first one synthesizes, the others wait and share the result.
    shared = tmp_path_factory.getbasetemp().parent / f"{name}-{run}"
    with (shared.parent / f"{shared.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (shared / "manifest.json").exists():
                _synthesize(shared, context, config)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return shared


@pytest.fixture(scope="session")
def assembly_dir(tmp_path_factory: pytest.TempPathFactory, context: dict[str, Any], config: AppConfig) -> Path:
    given = os.environ.get("DELIVERY_TEST_ASSEMBLY")
    if given:
        # Synthesizing again would run cdk-nag a second time in the same build.
        return _validated(Path(given).resolve())
    return synthesized_once(tmp_path_factory, "cdk.out", context, config)


def templates_in(assembly_dir: Path) -> dict[str, dict[str, Any]]:
    """Every stack template by display name, e.g. 'delivery-notes-pipeline/Prod/Stateless'."""
    found: dict[str, dict[str, Any]] = {}
    for directory in [assembly_dir, *sorted(assembly_dir.glob("assembly-*"))]:
        manifest = json.loads((directory / "manifest.json").read_text())
        for name, artifact in manifest["artifacts"].items():
            if artifact["type"] == "aws:cloudformation:stack":
                found[artifact.get("displayName", name)] = json.loads(
                    (directory / artifact["properties"]["templateFile"]).read_text()
                )
    return found


@pytest.fixture(scope="session")
def templates(assembly_dir: Path) -> dict[str, dict[str, Any]]:
    return templates_in(assembly_dir)


def templates_by_stack(templates: dict[str, dict[str, Any]], config: AppConfig) -> Callable[[str, str], Template]:
    def get(env: str, kind: str) -> Template:
        return Template.from_json(templates[configured.stack_path(config, env, kind)])

    return get


@pytest.fixture(scope="session")
def template_of(templates: dict[str, dict[str, Any]], config: AppConfig) -> Callable[[str, str], Template]:
    return templates_by_stack(templates, config)


@pytest.fixture(scope="session")
def pipeline_template(templates: dict[str, dict[str, Any]], config: AppConfig) -> dict[str, Any]:
    return templates[f"{config.project}-{config.service_name}-pipeline"]


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v["Type"] == kind}
