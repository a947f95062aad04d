"""Stubbed AWS for the preflight tests: real boto3 clients whose every request and response botocore's Stubber
validates against the service model. Uniquely named so test folders can be collected in any order."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from config import PLACEHOLDER_ACCOUNT, AppConfig, load_config
from tools.preflight.accounts import AccountUnreachable

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
PIPELINE = "111111111111"
DEV = "222222222222"
STAGING = "333333333333"
PROD = "444444444444"
SECRET_OWNER = "555555555555"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
CONNECTION_ARN = f"arn:aws:codeconnections:{REGION}:{PIPELINE}:connection/5d3e2c1b-0a9f-4e8d-b7c6-a5f4e3d2c1b0"
PARTNER_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{SECRET_OWNER}:secret:shared/partner-token-AbCdEf"


# A fixed configuration (not the repository's cdk.json, which a fork fills with its own accounts and sizes).
DELIVERY: dict[str, Any] = {
    "project": "delivery",
    "service_name": "notes",
    "owner": "platform-team",
    "cost_center": "cc-0000",
    "source": {"owner": "example-org", "repo": "delivery-system", "branch": "main", "connection_arn": CONNECTION_ARN},
    "pipeline": {"account": PIPELINE, "region": REGION},
    "shared_secrets": [{"env_var": "THIRD_PARTY_API_KEY", "secret": "shared/third-party-api-key"}],
    "environments": [
        {
            "name": name,
            "account": account,
            "region": REGION,
            "requires_approval": name != "dev",
            "log_retention_days": 14,
            "network": {"cidr": cidr, "availability_zones": zones, "nat_gateways": nat},
            "service": {"cpu": 256, "memory_mib": 512, "min_tasks": 1, "max_tasks": 2},
            "database": {"instance_class": instance_class, "multi_az": multi_az},
        }
        for name, account, cidr, zones, nat, instance_class, multi_az in (
            ("dev", DEV, "10.10.0.0/16", [f"{REGION}a", f"{REGION}b"], 1, "t4g.micro", False),
            ("staging", STAGING, "10.20.0.0/16", [f"{REGION}a", f"{REGION}b"], 1, "t4g.small", False),
            ("prod", PROD, "10.30.0.0/16", [f"{REGION}a", f"{REGION}b", f"{REGION}c"], 3, "r7g.large", True),
        )
    ],
}


def context(
    *, placeholders: bool = False, environments: tuple[str, ...] | None = None, **delivery: Any
) -> dict[str, Any]:
    """The fixed configuration as context, optionally with placeholder accounts, fewer environments or new fields."""
    settings = copy.deepcopy(DELIVERY)
    if placeholders:
        settings["pipeline"]["account"] = PLACEHOLDER_ACCOUNT
        for env in settings["environments"]:
            env["account"] = PLACEHOLDER_ACCOUNT
    if environments is not None:
        settings["environments"] = [e for e in settings["environments"] if e["name"] in environments]
    settings.update(delivery)
    return {"delivery": settings}


def app_config(**kwargs: Any) -> AppConfig:
    return load_config(context(**kwargs), {}, require_real_accounts=True)


def client(service: str, region: str = REGION) -> tuple[Any, Stubber]:
    made = boto3.client(service, region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(made)
    stubber.activate()
    return made, stubber


class World:
    """A ClientFactory over stubbed clients, one per (service, account, region), recording what was stubbed."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, str], tuple[Any, Stubber]] = {}
        self.operations: set[tuple[str, str]] = set()
        self.unreachable: set[str] = set()

    def _get(self, service: str, account: str, region: str) -> tuple[Any, Stubber]:
        key = (service, account, region)
        if key not in self._clients:
            self._clients[key] = client(service, region)
        return self._clients[key]

    def client(self, service: str, *, account: str, region: str) -> Any:
        if account in self.unreachable:
            raise AccountUnreachable(f"cannot assume the lookup role of {account}: AccessDenied: not authorized")
        return self._get(service, account, region)[0]

    def via(self, account: str) -> str:
        return "current credentials" if account == PIPELINE else f"lookup role of {account}"

    def expect(
        self,
        service: str,
        account: str,
        method: str,
        response: dict[str, Any],
        params: Any = None,
        region: str = REGION,
    ) -> None:
        self._get(service, account, region)[1].add_response(method, response, params)
        self.operations.add((service, method))

    def refuse(
        self,
        service: str,
        account: str,
        method: str,
        code: str,
        message: str = "",
        params: Any = None,
        region: str = REGION,
        status: int = 400,
    ) -> None:
        self._get(service, account, region)[1].add_client_error(
            method, service_error_code=code, service_message=message, http_status_code=status, expected_params=params
        )
        self.operations.add((service, method))

    def verify(self) -> None:
        for _, stubber in self._clients.values():
            stubber.assert_no_pending_responses()
