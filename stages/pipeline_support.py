"""The pipeline's us-east-1 support stack, which exists because an environment deploys a stack there.

CodePipeline needs an artifact bucket in every region it deploys to, so CDK Pipelines adds a stack
"<pipeline>-support-us-east-1" (a replication bucket, and with cross-account keys its KMS key) in the pipeline's
account, outside every Stage and outside the pipeline stack. It therefore gets neither the pipeline's acknowledgments
nor its tags; this aspect gives it both, with the same reasons as the pipeline's own artifact bucket.
"""

from __future__ import annotations

import re

import jsii
from aws_cdk import Aspects, IAspect, Stack, TagManager
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from stages.nag import acknowledge, acknowledge_wildcards

# aws-codepipeline's CrossRegionSupportStack: "cross-region-stack-<pipeline account>:<region>" at the app's root.
SUPPORT_STACK_PREFIX = "cross-region-stack-"
BUCKET_REASONS = {
    "AwsSolutions-S1": (
        "CodePipeline's us-east-1 replication bucket holds transient copies of pipeline artifacts for the us-east-1 "
        "deploy action, readable only by the pipeline and the CDK deploy role (CDK Pipelines' bucket policy, TLS "
        "only); object access is audited with CloudTrail data events, as for the pipeline's own artifact bucket"
    ),
    "NIST.800.53.R5-S3BucketLoggingEnabled": "Same as AwsSolutions-S1: transient pipeline artifacts replicated to us-east-1",
    "NIST.800.53.R5-S3BucketReplicationEnabled": (
        "It is itself CodePipeline's replica of transient build artifacts, reproducible from git"
    ),
    "NIST.800.53.R5-S3BucketVersioningEnabled": "Artifacts are immutable per pipeline execution id; versioning adds nothing",
}


@jsii.implements(IAspect)
class PipelineSupportStacks:
    def __init__(self, tags: dict[str, str]) -> None:
        self._tags = tags

    def visit(self, node: IConstruct) -> None:
        if not (isinstance(node, Stack) and node.node.id.startswith(SUPPORT_STACK_PREFIX)):
            return
        buckets = [c for c in node.node.find_all() if isinstance(c, s3.CfnBucket)]
        for bucket in buckets:
            acknowledge(bucket, BUCKET_REASONS)
            name = re.escape(str(node.resolve(bucket.bucket_name)))
            # The pipeline role's grant on the replication bucket: object keys are execution ids.
            acknowledge_wildcards(
                node.node.root,
                [(rf"^Resource::arn:<AWS::Partition>:s3:::{name}/\*$",
                  "Objects of the pipeline's own us-east-1 replication bucket; object keys are execution ids not known in advance")],
            )
        for child in node.node.find_all():
            if TagManager.is_taggable(child):
                for key, value in self._tags.items():
                    child.tags.set_tag(key, value)  # type: ignore[attr-defined]


def cover_pipeline_support_stacks(scope: IConstruct, tags: dict[str, str]) -> None:
    """Once per app: acknowledgments and tags for the support stacks CodePipeline adds for other regions."""
    root = scope.node.root
    if not any(isinstance(aspect, PipelineSupportStacks) for aspect in Aspects.of(root).all):
        Aspects.of(root).add(PipelineSupportStacks(tags))
