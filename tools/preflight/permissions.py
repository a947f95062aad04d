"""Every IAM action preflight calls, where, and why: the README's list for the principal that runs it.

The pipeline account's principal (the current credentials) needs all of them in the pipeline account, plus
sts:AssumeRole on the target accounts' lookup roles. In a target account the lookup role's ReadOnlyAccess is used.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    action: str
    where: str
    why: str


PIPELINE = "pipeline account"
EVERY = "every account"
TARGETS = "target accounts"
SECRET_OWNER = "account holding a shared secret"

PERMISSIONS: tuple[Permission, ...] = (
    Permission("sts:GetCallerIdentity", PIPELINE, "whose credentials these are (needs no grant)"),
    Permission("sts:AssumeRole", PIPELINE, "on arn:aws:iam::*:role/cdk-hnb659fds-lookup-role-*: read target accounts"),
    Permission("ssm:GetParameter", EVERY, "/cdk-bootstrap/hnb659fds/version: bootstrap version"),
    Permission("iam:ListAttachedRolePolicies", EVERY, "cfn-exec role: scoped policy, not AdministratorAccess"),
    Permission("iam:GetRole", TARGETS, "deploy and publishing roles: trust of the pipeline account"),
    Permission("codeconnections:GetConnection", PIPELINE, "source.connection_arn is AVAILABLE"),
    Permission("codestar-connections:GetConnection", PIPELINE, "the same, for a connection with the older ARN"),
    Permission("cloudformation:ListStackResources", EVERY, "topics and functions of deployed stacks"),
    Permission("cloudformation:DescribeStacks", TARGETS, "whether an environment is deployed already"),
    Permission("sns:ListSubscriptionsByTopic", EVERY, "e-mail subscriptions confirmed"),
    Permission("secretsmanager:DescribeSecret", SECRET_OWNER, "shared secret exists; its KMS key"),
    Permission("secretsmanager:GetResourcePolicy", SECRET_OWNER, "cross-account secret admits the execution role"),
    Permission("kms:DescribeKey", SECRET_OWNER, "customer-managed, not aws/secretsmanager"),
    Permission("kms:GetKeyPolicy", SECRET_OWNER, "key admits the execution role for kms:Decrypt"),
    Permission("acm:DescribeCertificate", TARGETS, "tls certificate ISSUED and covering the domain (us-east-1 for CloudFront)"),
    Permission("rds:DescribeDBEngineVersions", TARGETS, "PostgreSQL version offered"),
    Permission("rds:DescribeOrderableDBInstanceOptions", TARGETS, "instance class orderable, Multi-AZ"),
    Permission("ec2:DescribeVpcs", TARGETS, "VPCs in use"),
    Permission("ec2:DescribeAddresses", TARGETS, "Elastic IPs in use"),
    Permission("ec2:DescribeNatGateways", TARGETS, "NAT gateways in use"),
    Permission("ec2:DescribeSubnets", TARGETS, "availability zone of each NAT gateway"),
    Permission("servicequotas:GetServiceQuota", TARGETS, "applied quota values"),
    Permission("servicequotas:GetAWSDefaultServiceQuota", TARGETS, "default value where none is applied"),
    Permission("lambda:GetAccountSettings", TARGETS, "unreserved concurrency"),
    Permission("lambda:GetFunctionConcurrency", TARGETS, "reservations deployed functions already hold"),
    Permission("ecr:GetRegistryScanningConfiguration", TARGETS, "scan on push for the CDK asset repository"),
)


def permissions_markdown() -> str:
    rows = ["| action | where | why |", "|---|---|---|"]
    rows += [f"| `{p.action}` | {p.where} | {p.why} |" for p in PERMISSIONS]
    return "\n".join(rows)
