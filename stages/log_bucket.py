from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stages.nag import acknowledge


def log_bucket(
    scope: Construct,
    id_: str,
    *,
    writer: str,
    expiration: Duration,
    noncurrent_expiration: Duration,
    removal: RemovalPolicy,
    server_access_logs: s3.IBucket | None = None,
    server_access_logs_prefix: str | None = None,
    object_writer: bool = False,
) -> s3.Bucket:
    """A private, versioned, SSE-S3 bucket that an AWS service writes logs into (ALB, CloudFront, S3 access logs).

    `object_writer`: CloudFront standard logging writes with an ACL grant, so its bucket keeps ACLs enabled.
    """
    bucket = s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.OBJECT_WRITER if object_writer else None,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=server_access_logs,
        server_access_logs_prefix=server_access_logs_prefix,
        lifecycle_rules=[s3.LifecycleRule(expiration=expiration, noncurrent_version_expiration=noncurrent_expiration)],
        removal_policy=removal,
    )
    acknowledge(
        bucket,
        {
            "NIST.800.53.R5-S3BucketReplicationEnabled": f"{writer} logs are not replicated cross-region: cost choice, losing them loses no customer data",
            "NIST.800.53.R5-S3DefaultEncryptionKMS": f"SSE-S3: {writer} log delivery supports only S3-managed keys",
        },
    )
    return bucket
