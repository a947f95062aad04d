#!/usr/bin/env python3
"""The CDK app. The only place that reads context and environment variables; everything below takes typed config."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from config import AppConfig, ConfigError, load_config, read_context
from pipeline.pipeline_stack import PipelineStack
from stages.nag import acknowledgments_recorded
from stages.tagging import apply_standard_tags

ROOT = Path(__file__).resolve().parent
# Where aws-cdk-lib writes the validation plugins' report in the cloud assembly.
VALIDATION_REPORT = "validation-report.json"


def cli_version(package: str = "aws-cdk") -> str:
    """The version package.json pins (and package-lock.json locks) for a CDK CLI tool."""
    return json.loads((ROOT / "package.json").read_text())["devDependencies"][package]


def default_context() -> dict[str, Any]:
    # `python app.py` (and tests) do not get cdk.json's context from the CLI; read it the same way.
    return read_context(ROOT / "cdk.json")


def register_compliance(app: cdk.App) -> None:
    """cdk-nag 3 runs as validation plugins: an unacknowledged finding makes app.synth() fail."""
    # Imported here: loading cdk-nag's jsii assembly costs about half a second that a synth without it need not pay.
    from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))


def validating(environ: Mapping[str, str]) -> bool:
    """DELIVERY_VALIDATE=0 (`make synth`) skips cdk-nag and aws-cdk-lib's template validation; unset means validate,
    so `cdk deploy` and `cdk synth` without make check everything."""
    value = environ.get("DELIVERY_VALIDATE", "1")
    if value not in ("0", "1"):
        raise ConfigError(f"DELIVERY_VALIDATE must be 0 or 1, not {value!r}")
    return value == "1"


def build(app: cdk.App, config: AppConfig, *, compliance: bool = True) -> PipelineStack:
    """compliance=False: a synth without validation (cdk-nag, and the caller turns aws-cdk-lib's validator off), so no
    acknowledgment is recorded either."""
    if compliance:
        register_compliance(app)
    with acknowledgments_recorded(compliance):
        stack = PipelineStack(
            app,
            f"{config.project}-{config.service_name}-pipeline",
            app_config=config,
            cli_version=cli_version(),
            cdk_assets_version=cli_version("cdk-assets"),
            env=cdk.Environment(account=config.pipeline.account, region=config.pipeline.region),
            description=f"{config.project}/{config.service_name}: self-mutating delivery pipeline",
        )
    apply_standard_tags(stack, config.standard_tags(None))
    return stack


def forget_earlier_validation(outdir: Path) -> None:
    """A synth without validation overwrites the assembly but not an earlier validated synth's report, which would
    then vouch for templates cdk-nag never saw (`make compliance` and DELIVERY_TEST_ASSEMBLY trust that report)."""
    (outdir / VALIDATION_REPORT).unlink(missing_ok=True)


def main() -> None:
    try:
        validate = validating(os.environ)
    except ConfigError as error:
        print(f"ConfigError: {error}", file=sys.stderr)
        sys.exit(2)
    app = cdk.App(context=default_context(), builtin_cloud_formation_validation=validate)
    context = app.node.get_all_context()
    try:
        config = load_config(
            context, os.environ, require_real_accounts=os.environ.get("DELIVERY_REQUIRE_REAL_ACCOUNTS") == "1"
        )
    except ConfigError as error:
        print(f"ConfigError: {error}", file=sys.stderr)
        sys.exit(2)
    if config.uses_placeholder_accounts:
        print(
            "WARNING: placeholder account ids (000000000000) in use: fine for synth and tests; "
            "set real accounts before deploying (README: Configuration).",
            file=sys.stderr,
        )
    build(app, config, compliance=validate)
    if not validate:
        forget_earlier_validation(Path(app.outdir))
    app.synth()
    if not validate:
        print(
            "NOTE: DELIVERY_VALIDATE=0: no cdk-nag, no template validation in this synth; `make check` runs cdk-nag "
            "and cfn-lint, `make deploy` and the pipeline's build run both validations.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
