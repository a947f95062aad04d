"""Where each CodeBuild action runs: standard (EC2) compute, or Lambda compute for light steps.

Standard compute spends about a minute and a half provisioning before its first command; Lambda compute starts in
seconds (https://docs.aws.amazon.com/codebuild/latest/userguide/lambda.html). Lambda compute has limits that decide
which steps may use it: no Docker or privileged mode, at most 15 minutes per build, no project `timeout` or `cache`,
no `runtime-versions` in the buildspec (the image names its one runtime), and files written only under /tmp. So:

- Build (tests + synth) and the asset publishing (Docker) stay on standard compute, with runtimes chosen by
  `runtime-versions`.
- Self-mutation, the permissions-broadening check and Verify run on Lambda compute; the image picks the runtime
  (Node 22 or Python 3.12), and every tool they install goes under /tmp.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import pipelines

# Supported LTS lines on CodeBuild's standard:7.0 image ("Available runtimes"); the Build step runs the same Python as
# the lock file was resolved with.
RUNTIME_VERSIONS = (("nodejs", "22"), ("python", "3.11"))
STANDARD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
# CodeBuild's own limit for a build on Lambda compute.
LAMBDA_BUILD_LIMIT_SECONDS = 15 * 60
LAMBDA_NODE_IMAGE = codebuild.LinuxLambdaBuildImage.AMAZON_LINUX_2023_NODE_22
LAMBDA_PYTHON_IMAGE = codebuild.LinuxLambdaBuildImage.AMAZON_LINUX_2023_PYTHON_3_12
LAMBDA_COMPUTE = codebuild.ComputeType.LAMBDA_2GB
# Where a step on Lambda compute installs its tools (nothing outside /tmp is writable there).
TOOLS_PREFIX = "/tmp/delivery-tools"
STANDARD_TIMEOUT = Duration.minutes(60)


def runtime_buildspec() -> codebuild.BuildSpec:
    """The partial buildspec every standard-compute project carries: the image's default Node is end of life."""
    return codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": dict(RUNTIME_VERSIONS)}}})


def standard_options() -> pipelines.CodeBuildOptions:
    """Options of a step on standard compute (the project defaults pick the image and size)."""
    return pipelines.CodeBuildOptions(partial_build_spec=runtime_buildspec(), timeout=STANDARD_TIMEOUT)


def lambda_environment(image: codebuild.IBuildImage) -> codebuild.BuildEnvironment:
    return codebuild.BuildEnvironment(build_image=image, compute_type=LAMBDA_COMPUTE)


def lambda_options(image: codebuild.IBuildImage) -> pipelines.CodeBuildOptions:
    return pipelines.CodeBuildOptions(build_environment=lambda_environment(image))


def cdk_cli_install(cli_version: str) -> str:
    """Install the pinned aws-cdk CLI where Lambda compute may write (and standard compute too)."""
    return f"npm install --no-audit --no-fund --prefix {TOOLS_PREFIX} aws-cdk@{cli_version}"


CDK_CLI = f"{TOOLS_PREFIX}/node_modules/.bin/cdk"
