"""The service's tests as a second action of the Build stage, beside CDK Pipelines' Build (synth) action.

CDK Pipelines runs one action in its Build stage: install, validated synth and every test, one after another. The
service's tests need neither the synthesized assembly nor the CDK, so they run in parallel on their own CodeBuild
project; the stage, and so every deploy, waits for both. Nothing is skipped: `make check` is `make check-assembly`
(in the Build action) plus `make check-service` (here).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_logs as logs
from constructs import Construct

from pipeline.buildspec import read_buildspec
from pipeline.compute import RUNTIME_VERSIONS, STANDARD_IMAGE, STANDARD_TIMEOUT

BUILDSPEC = Path(__file__).resolve().parent.parent / "buildspec-service-tests.yml"
ACTION_NAME = "ServiceTests"


def add_service_tests(scope: Construct, pipeline: codepipeline.Pipeline, *, log_group: logs.ILogGroup) -> None:
    """Add the ServiceTests action to the Build stage, on the source artifact, with the Build action's run order."""
    build_stage = next(s for s in pipeline.stages if s.stage_name == "Build")
    source_stage = next(s for s in pipeline.stages if s.stage_name == "Source")
    (source,) = source_stage.actions[0].action_properties.outputs or []
    run_order = build_stage.actions[0].action_properties.run_order or 1
    spec = read_buildspec(BUILDSPEC)
    project = codebuild.PipelineProject(
        scope,
        "ServiceTests",
        description="The service's tests beside the Build action (buildspec-service-tests.yml)",
        environment=codebuild.BuildEnvironment(build_image=STANDARD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM),
        build_spec=codebuild.BuildSpec.from_object(
            {
                "version": "0.2",
                "env": {"variables": spec.env},
                "phases": {
                    "install": {"runtime-versions": dict(RUNTIME_VERSIONS), "commands": spec.install},
                    "build": {"commands": spec.build},
                },
            }
        ),
        encryption_key=pipeline.artifact_bucket.encryption_key,
        logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
        timeout=STANDARD_TIMEOUT,
    )
    build_stage.add_action(
        actions.CodeBuildAction(action_name=ACTION_NAME, project=project, input=source, run_order=run_order)
    )
