"""Checks 1 and 2: whose credentials these are, and whether each account/region is bootstrapped the way we deploy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from tools.preflight.accounts import BOOTSTRAP_VERSION_PARAMETER, bootstrap_role, partition, policy_arn, role_arn
from tools.preflight.policy import Decision, Request, evaluate
from tools.preflight.results import Result, error_code, failed, passed, unchecked

ADMINISTRATOR_ACCESS = "AdministratorAccess"
# The roles a cross-account CDK Pipelines deploy assumes from the pipeline account.
TRUSTED_ROLE_KINDS = ("deploy", "file-publishing", "image-publishing")
SCOPED_POLICY_FIRST = "create the scoped policy first (python -m tools.bootstrap_policy says how; README: Deploying)"


def bootstrap_command(*, account: str, region: str, trust: str | None, policies: Sequence[str]) -> str:
    trusted = f" --trust {trust}" if trust else ""
    arns = ",".join(policy_arn(name, account=account, region=region) for name in policies)
    return f"npx cdk bootstrap aws://{account}/{region}{trusted} --cloudformation-execution-policies {arns}"


def check_identity(sts: Any, *, pipeline_account: str) -> Result:
    identity = sts.get_caller_identity()
    if identity["Account"] != pipeline_account:
        return failed(
            f"credentials belong to account {identity['Account']} ({identity['Arn']}), not the pipeline account "
            f"{pipeline_account}",
            "use the pipeline account's credentials (AWS_PROFILE=<its profile>) or fix pipeline.account in cdk.json",
        )
    return passed(f"credentials are the pipeline account's ({identity['Arn']})")


def check_bootstrap_version(ssm: Any, *, account: str, region: str, minimum: int, source: str, fix: str) -> Result:
    where = f"{account}/{region}"
    try:
        value = ssm.get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)["Parameter"]["Value"]
    except ClientError as error:
        if error_code(error) != "ParameterNotFound":
            raise
        return failed(f"CDK bootstrap in {where}", f"not bootstrapped ({BOOTSTRAP_VERSION_PARAMETER} missing): {fix}")
    if not value.isdigit():
        return failed(f"CDK bootstrap in {where}", f"{BOOTSTRAP_VERSION_PARAMETER} holds {value!r}: {fix}")
    if int(value) < minimum:
        return failed(
            f"CDK bootstrap version {value} in {where} is older than {minimum} ({source})", f"upgrade it: {fix}"
        )
    return passed(f"CDK bootstrap version {value} in {where} (needs {minimum}, {source})")


def check_execution_policies(iam: Any, *, account: str, region: str, required: Sequence[str], fix: str) -> Result:
    role = bootstrap_role("cfn-exec", account=account, region=region)
    try:
        attached = [
            policy
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role)
            for policy in page["AttachedPolicies"]
        ]
    except ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        return failed(f"CloudFormation execution role {role}", f"missing (not bootstrapped): {fix}")
    names = sorted(p["PolicyName"] for p in attached)
    administrator = f"arn:{partition(region)}:iam::aws:policy/{ADMINISTRATOR_ACCESS}"
    if any(p["PolicyArn"] == administrator for p in attached):
        return failed(f"{role} has {ADMINISTRATOR_ACCESS} attached", f"{SCOPED_POLICY_FIRST}, then {fix}")
    missing = [name for name in required if name not in names]
    if missing:
        return failed(
            f"{role} lacks {', '.join(missing)} (attached: {', '.join(names) or 'none'})",
            f"{SCOPED_POLICY_FIRST}, then {fix}",
        )
    return passed(f"{role} carries {', '.join(required)}, not {ADMINISTRATOR_ACCESS}")


def check_trust(iam: Any, *, account: str, region: str, pipeline_account: str, fix: str) -> Result:
    pipeline_root = f"arn:{partition(region)}:iam::{pipeline_account}:root"
    refused: list[str] = []
    unclear: list[str] = []
    for kind in TRUSTED_ROLE_KINDS:
        name = bootstrap_role(kind, account=account, region=region)
        try:
            document = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            refused.append(f"{name} is missing")
            continue
        verdict = evaluate(
            document,
            Request(
                principal_arn=pipeline_root,
                account=pipeline_account,
                action="sts:AssumeRole",
                resource=role_arn(name, account=account, region=region),
                context={"aws:PrincipalAccount": pipeline_account},
            ),
        )
        if verdict.decision is Decision.NOT_ALLOWED:
            refused.append(f"{kind} ({verdict.reason})")
        elif verdict.decision is Decision.UNKNOWN:
            unclear.append(f"{kind} ({verdict.reason})")
    kinds = ", ".join(TRUSTED_ROLE_KINDS)
    if refused:
        return failed(
            f"bootstrap roles in {account}/{region} do not trust {pipeline_account}: {'; '.join(refused)}", fix
        )
    if unclear:
        return unchecked(
            f"trust of {pipeline_account} by the bootstrap roles in {account}/{region}",
            f"{'; '.join(unclear)}; check that their trust policies let {pipeline_root} call sts:AssumeRole",
        )
    return passed(f"{kinds} roles in {account}/{region} trust the pipeline account {pipeline_account}")
