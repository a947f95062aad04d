"""The pipeline's support stacks: one in every region other than the pipeline's where an environment deploys a stack
(us-east-1 for prod's CloudFront alarm, or an environment's own region).

CodePipeline needs an artifact bucket in every region it deploys to, so CDK Pipelines adds a stack
"<pipeline>-support-<region>" (a replication bucket, and with cross-account keys its KMS key) in the pipeline's
account, outside every Stage and outside the pipeline stack. It therefore gets neither the pipeline's acknowledgments
nor its tags; cover_pipeline_support_stacks gives it both, with the same reasons as the pipeline's own artifact bucket.
"""

from __future__ import annotations

import re

import jsii
from aws_cdk import Stack, TagManager
from aws_cdk import aws_s3 as s3
from constructs import IValidation

from stages.nag import acknowledge, acknowledge_wildcards, acknowledgments_recorded, recording_acknowledgments

# aws-codepipeline's CrossRegionSupportStack: "cross-region-stack-<pipeline account>:<region>" at the app's root.
SUPPORT_STACK_PREFIX = "cross-region-stack-"
BUCKET_REASONS = {
    "AwsSolutions-S1": (
        "CodePipeline's replication bucket in another region holds transient copies of pipeline artifacts for the "
        "deploy actions in that region, readable only by the pipeline and the CDK deploy role (CDK Pipelines' bucket policy, TLS "
        "only); object access is audited with CloudTrail data events, as for the pipeline's own artifact bucket"
    ),
    "NIST.800.53.R5-S3BucketLoggingEnabled": "Same as AwsSolutions-S1: transient pipeline artifacts replicated to the region of a deploy action",
    "NIST.800.53.R5-S3BucketReplicationEnabled": (
        "It is itself CodePipeline's replica of transient build artifacts, reproducible from git"
    ),
    "NIST.800.53.R5-S3BucketVersioningEnabled": "Artifacts are immutable per pipeline execution id; versioning adds nothing",
}


def cover_pipeline_support_stacks(pipeline_stack: Stack, tags: dict[str, str]) -> None:
    """CodePipeline adds a support stack at the app's root as it binds an action in another region, and grants the
    pipeline's role on its bucket while synthesizing. A construct validation of the pipeline stack runs after that and
    before the templates are written: one call from node, where an aspect on the root is one per construct."""
    pipeline_stack.node.add_validation(_CoverSupportStacks(pipeline_stack, tags))


@jsii.implements(IValidation)
class _CoverSupportStacks:
    def __init__(self, pipeline_stack: Stack, tags: dict[str, str]) -> None:
        self._pipeline_stack = pipeline_stack
        self._tags = tags
        self._record = recording_acknowledgments()

    def validate(self) -> list[str]:
        with acknowledgments_recorded(self._record):
            for node in self._pipeline_stack.node.root.node.children:
                if isinstance(node, Stack) and node.node.id.startswith(SUPPORT_STACK_PREFIX):
                    _cover(node, self._pipeline_stack, self._tags)
        return []


def _cover(node: Stack, pipeline_stack: Stack, tags: dict[str, str]) -> None:
    buckets = [c for c in node.node.find_all() if isinstance(c, s3.CfnBucket)]
    for bucket in buckets:
        acknowledge(bucket, BUCKET_REASONS)
        name = re.escape(str(node.resolve(bucket.bucket_name)))
        # The pipeline role's grant on the replication bucket: object keys are execution ids.
        acknowledge_wildcards(
            pipeline_stack,
            [(rf"^Resource::arn:<AWS::Partition>:s3:::{name}/\*$",
              "Objects of the pipeline's own replication bucket in another region; object keys are execution ids not known in advance")],
        )
    for child in node.node.find_all():
        if TagManager.is_taggable(child):
            for key, value in tags.items():
                child.tags.set_tag(key, value)  # type: ignore[attr-defined]
