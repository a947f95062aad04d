"""The credential model, and the names `cdk bootstrap` gives its roles, parameter and asset repository.

The current credentials (AWS_PROFILE, SSO, environment variables...) are the pipeline account's. Every other account is
read through its CDK bootstrap lookup role, which `cdk bootstrap --trust <pipeline account>` lets the pipeline account
assume and which carries AWS's ReadOnlyAccess; an environment in the pipeline account uses the current credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import ClientError

from tools.preflight.results import error_code, error_message, raise_if_credentials

QUALIFIER = "hnb659fds"  # cdk bootstrap's default qualifier, which the stacks' synthesizer expects
BOOTSTRAP_VERSION_PARAMETER = f"/cdk-bootstrap/{QUALIFIER}/version"
SESSION_NAME = "delivery-preflight"
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=30)


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def bootstrap_role(kind: str, *, account: str, region: str) -> str:
    """kind: deploy, file-publishing, image-publishing, lookup or cfn-exec."""
    return f"cdk-{QUALIFIER}-{kind}-role-{account}-{region}"


def role_arn(name: str, *, account: str, region: str) -> str:
    return f"arn:{partition(region)}:iam::{account}:role/{name}"


def policy_arn(name: str, *, account: str, region: str) -> str:
    return f"arn:{partition(region)}:iam::{account}:policy/{name}"


def asset_repository(*, account: str, region: str) -> str:
    return f"cdk-{QUALIFIER}-container-assets-{account}-{region}"


class ClientFactory(Protocol):
    def client(self, service: str, *, account: str, region: str) -> Any: ...

    def via(self, account: str) -> str: ...


class AccountUnreachable(Exception):
    """The lookup role of a target account could not be assumed (not bootstrapped, or not trusting the pipeline)."""


class Sessions:
    """boto3 clients per account: the current credentials for the pipeline account, the lookup role for the others."""

    def __init__(
        self,
        *,
        pipeline_account: str,
        pipeline_region: str,
        lookup_regions: Mapping[str, str],
        session_factory: Callable[..., Any] | None = None,
    ) -> None:
        if session_factory is None:
            import boto3

            session_factory = boto3.Session
        self._new_session = session_factory
        self._pipeline_account = pipeline_account
        self._pipeline_region = pipeline_region
        self._lookup_regions = dict(lookup_regions)  # account → the region whose bootstrap created its lookup role
        self._sessions: dict[str, Any] = {pipeline_account: session_factory()}

    def via(self, account: str) -> str:
        if account == self._pipeline_account or account not in self._lookup_regions:
            return "current credentials"
        return bootstrap_role("lookup", account=account, region=self._lookup_regions[account])

    def client(self, service: str, *, account: str, region: str) -> Any:
        return self._session(account).client(service, region_name=region, config=CLIENT_CONFIG)

    def _session(self, account: str) -> Any:
        if account in self._sessions:
            return self._sessions[account]
        if account not in self._lookup_regions:
            # an account the configuration does not name (e.g. a shared secret's owner): try the current credentials
            return self._sessions[self._pipeline_account]
        region = self._lookup_regions[account]
        arn = role_arn(bootstrap_role("lookup", account=account, region=region), account=account, region=region)
        sts = self._sessions[self._pipeline_account].client(
            "sts", region_name=self._pipeline_region, config=CLIENT_CONFIG
        )
        try:
            credentials = sts.assume_role(RoleArn=arn, RoleSessionName=SESSION_NAME)["Credentials"]
        except ClientError as error:
            raise_if_credentials(error)
            raise AccountUnreachable(f"cannot assume {arn}: {error_code(error)}: {error_message(error)}") from None
        session = self._new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        self._sessions[account] = session
        return session
