"""What the pipeline's runtime scripts share: settings from flags or environment, and clients in another account."""

from __future__ import annotations

import os
from typing import Any


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def assumed_client(service: str, *, region: str | None, role_arn: str | None, session_name: str) -> Any:
    """A boto3 client, through `role_arn` when given (a role in the environment's account); retries built in."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 8})
    session = boto3.Session(region_name=region)
    if role_arn:
        credentials = session.client("sts", config=config).assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=3600
        )["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
    return session.client(service, config=config)
