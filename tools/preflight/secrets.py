"""Check 4: each shared secret exists and, across accounts, its policies admit the task execution role.

ECS reads the secret with the environment's task execution role (stages/naming.py names it). A secret in another
account needs two grants there: the secret's resource policy (secretsmanager:GetSecretValue) and its KMS key's policy
(kms:Decrypt, used through Secrets Manager). The AWS-managed key aws/secretsmanager cannot grant another account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from config import AppConfig, EnvironmentConfig
from config.model import SharedSecretConfig
from stages.naming import role_name
from tools.preflight.accounts import role_arn
from tools.preflight.policy import Decision, Request, Verdict, evaluate
from tools.preflight.results import Result, error_code, failed, is_access_denied, passed, unchecked

AWS_MANAGED_KEY = "alias/aws/secretsmanager"


@dataclass(frozen=True)
class SharedSecret:
    env_var: str
    secret_id: str  # a name in the environment's account and region, or a full ARN
    account: str  # where the secret lives
    region: str
    reader_account: str
    reader_role_arn: str  # the environment's task execution role
    key_arn: str | None = None  # the key cdk.json names (shared_secrets[].kms_key_arn): the one the role may use

    @property
    def cross_account(self) -> bool:
        return self.account != self.reader_account

    @property
    def label(self) -> str:
        return f"shared secret {self.env_var} ({self.secret_id.split(':secret:')[-1]})"


def shared_secret(item: SharedSecretConfig, *, app: AppConfig, env: EnvironmentConfig) -> SharedSecret:
    if item.secret.startswith("arn:"):
        _, _, _, region, account, *_ = item.secret.split(":")
    else:
        region, account = env.region, env.account
    reader = role_arn(role_name(app, env, "task-execution"), account=env.account, region=env.region)
    return SharedSecret(item.env_var, item.secret, account, region, env.account, reader, item.kms_key_arn)


def check_shared_secret(secretsmanager: Any, kms: Any, *, secret: SharedSecret) -> list[Result]:
    where = f"{secret.account}/{secret.region}"
    try:
        described = secretsmanager.describe_secret(SecretId=secret.secret_id)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return [
            failed(
                f"{secret.label} not found in {where}",
                f"create it in account {secret.account}: aws secretsmanager create-secret --region {secret.region} "
                f"--name {secret.secret_id.split(':secret:')[-1]} --secret-string file://<value file> "
                "(or correct shared_secrets in cdk.json)",
            )
        ]
    arn = described["ARN"]
    if described.get("DeletedDate"):
        return [
            failed(
                f"{secret.label} is scheduled for deletion",
                f"aws secretsmanager restore-secret --region {secret.region} --secret-id {arn}",
            )
        ]
    results = [passed(f"{secret.label} exists in {where}")]
    if secret.cross_account:
        results.append(_resource_policy(secretsmanager, secret=secret, arn=arn))
        results.append(_key_policy(kms, secret=secret, arn=arn, key_id=described.get("KmsKeyId")))
    return results


def _outcome(verdict: Verdict, *, what: str, fix: str, by_hand: str) -> Result:
    if verdict.decision is Decision.ALLOWED:
        return passed(f"{what} ({verdict.reason})")
    if verdict.decision is Decision.UNKNOWN:
        return unchecked(what, f"{verdict.reason}; {by_hand}")
    return failed(f"{what}: no ({verdict.reason})", fix)


def _resource_policy(secretsmanager: Any, *, secret: SharedSecret, arn: str) -> Result:
    what = f"{secret.label}: resource policy admits {secret.reader_role_arn} for secretsmanager:GetSecretValue"
    by_hand = f"check in account {secret.account} that it does"
    fix = (
        f"add a statement allowing secretsmanager:GetSecretValue to {secret.reader_role_arn}, keeping the others: "
        f"aws secretsmanager put-resource-policy --region {secret.region} --secret-id {arn} "
        "--resource-policy file://<policy.json> (README: Deploying, step 4)"
    )
    try:
        policy = secretsmanager.get_resource_policy(SecretId=arn).get("ResourcePolicy")
    except ClientError as error:
        if not is_access_denied(error):
            raise
        return unchecked(what, f"GetResourcePolicy was denied ({error_code(error)}); {by_hand}")
    if not policy:
        return failed(f"{secret.label} has no resource policy", fix)
    request = Request(
        principal_arn=secret.reader_role_arn,
        account=secret.reader_account,
        action="secretsmanager:GetSecretValue",
        resource=arn,
        context={"aws:PrincipalArn": secret.reader_role_arn, "aws:PrincipalAccount": secret.reader_account},
    )
    return _outcome(evaluate(policy, request), what=what, fix=fix, by_hand=by_hand)


def _key_policy(kms: Any, *, secret: SharedSecret, arn: str, key_id: str | None) -> Result:
    managed = failed(
        f"{secret.label} is encrypted with the AWS-managed key {AWS_MANAGED_KEY}, which no other account can use",
        f"create a customer-managed key whose policy allows kms:Decrypt to {secret.reader_role_arn}, then "
        f"aws secretsmanager update-secret --region {secret.region} --secret-id {arn} --kms-key-id <key ARN>",
    )
    if not key_id or key_id.endswith(AWS_MANAGED_KEY):
        return managed
    what = f"{secret.label}: key policy of {key_id} admits {secret.reader_role_arn} for kms:Decrypt"
    by_hand = f"check in account {secret.account} that it does (through secretsmanager.{secret.region}.amazonaws.com)"
    try:
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        if metadata.get("KeyManager") == "AWS":
            return managed
        if secret.key_arn and metadata["Arn"] != secret.key_arn:
            return failed(
                f"{secret.label} is encrypted with {metadata['Arn']}, but cdk.json names {secret.key_arn}: the task "
                "execution role may decrypt only with the key it names",
                f"set shared_secrets[].kms_key_arn to {metadata['Arn']} in cdk.json",
            )
        policy = kms.get_key_policy(KeyId=metadata["Arn"])["Policy"]
    except ClientError as error:
        if not is_access_denied(error):
            raise
        return unchecked(what, f"{error.operation_name} was denied ({error_code(error)}); {by_hand}")
    request = Request(
        principal_arn=secret.reader_role_arn,
        account=secret.reader_account,
        action="kms:Decrypt",
        resource=metadata["Arn"],
        context={
            "aws:PrincipalArn": secret.reader_role_arn,
            "aws:PrincipalAccount": secret.reader_account,
            "kms:CallerAccount": secret.reader_account,
            "kms:ViaService": f"secretsmanager.{secret.region}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": arn,
        },
    )
    fix = (
        f"add a key policy statement allowing kms:Decrypt to {secret.reader_role_arn} "
        f"(condition kms:ViaService = secretsmanager.{secret.region}.amazonaws.com): "
        f"aws kms put-key-policy --region {secret.region} --key-id {metadata['Arn']} --policy file://<policy.json>"
    )
    return _outcome(evaluate(policy, request), what=what, fix=fix, by_hand=by_hand)
