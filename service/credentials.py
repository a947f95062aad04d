"""Database credentials: from the environment locally, from the RDS-attached secret on AWS."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)


class CredentialsError(Exception):
    """The credentials could not be read or are malformed."""


@dataclass(frozen=True, kw_only=True)
class DbCredentials:
    host: str
    port: int
    user: str
    password: str = field(repr=False)

    def connect_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}


class CredentialSource(Protocol):
    async def current(self) -> DbCredentials:
        """The credentials to connect with now (may be cached)."""

    async def after_auth_failure(self, failed: DbCredentials) -> list[DbCredentials]:
        """Fresh candidates to try after `failed` was refused by the server; empty when there are none."""

    def accepted(self, credentials: DbCredentials) -> None:
        """The server accepted these: use them first from now on."""


class StaticCredentials:
    def __init__(self, credentials: DbCredentials) -> None:
        self._credentials = credentials

    async def current(self) -> DbCredentials:
        return self._credentials

    async def after_auth_failure(self, failed: DbCredentials) -> list[DbCredentials]:
        return []

    def accepted(self, credentials: DbCredentials) -> None:
        return None


class SecretsManagerCredentials:
    """Reads the RDS secret by ARN and caches it; re-reads it, bypassing the cache, when a password is refused."""

    def __init__(self, *, secret_arn: str, client: Any | None = None, max_age: float = 300.0) -> None:
        self._secret_arn = secret_arn
        self._client = client
        self._max_age = max_age
        self._cached: DbCredentials | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> DbCredentials:
        if self._cached is not None and time.monotonic() - self._fetched_at < self._max_age:
            return self._cached
        async with self._lock:
            if self._cached is None or time.monotonic() - self._fetched_at >= self._max_age:
                self._store(await self._fetch("AWSCURRENT"))
            assert self._cached is not None
            return self._cached

    async def after_auth_failure(self, failed: DbCredentials) -> list[DbCredentials]:
        async with self._lock:
            # Another connection attempt already refreshed the cache while we waited for the lock.
            if self._cached is not None and self._cached.password != failed.password:
                return [self._cached]
            fresh = await self._fetch("AWSCURRENT")
            self._store(fresh)
            if fresh.password != failed.password:
                logger.info("database password changed in the secret", extra={"event": "credentials_refreshed"})
                return [fresh]
            # Mid-rotation the database may already hold the AWSPENDING password while AWSCURRENT still has the old one.
            pending = await self._fetch_pending()
            return [pending] if pending is not None and pending.password != failed.password else []

    def accepted(self, credentials: DbCredentials) -> None:
        if credentials != self._cached:
            self._store(credentials)

    def _store(self, credentials: DbCredentials) -> None:
        self._cached = credentials
        self._fetched_at = time.monotonic()

    async def _fetch(self, stage: str) -> DbCredentials:
        credentials = await asyncio.to_thread(self._fetch_sync, stage)
        if credentials is None:
            raise CredentialsError(f"the database secret has no {stage} version")
        return credentials

    async def _fetch_pending(self) -> DbCredentials | None:
        return await asyncio.to_thread(self._fetch_sync, "AWSPENDING")

    def _fetch_sync(self, stage: str) -> DbCredentials | None:
        try:
            # AWSCURRENT is the default stage.
            stage_arg = {} if stage == "AWSCURRENT" else {"VersionStage": stage}
            response = self._secrets_client().get_secret_value(SecretId=self._secret_arn, **stage_arg)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise CredentialsError(f"cannot read {stage} of the database secret: {exc}") from exc
        except BotoCoreError as exc:
            raise CredentialsError(f"cannot read {stage} of the database secret: {exc}") from exc
        return parse_secret(response.get("SecretString") or "")

    def _secrets_client(self) -> Any:
        if self._client is None:
            # The secret's own region, so the task needs no AWS_REGION; endpoints come from botocore's usual env vars.
            region = self._secret_arn.split(":")[3]
            self._client = boto3.session.Session().client(
                "secretsmanager",
                region_name=region,
                config=BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._client


def parse_secret(secret_string: str) -> DbCredentials:
    try:
        data = json.loads(secret_string)
    except ValueError as exc:
        raise CredentialsError("the database secret is not JSON") from exc
    if not isinstance(data, dict):
        raise CredentialsError("the database secret is not a JSON object")
    missing = [key for key in ("host", "username", "password") if not data.get(key)]
    if missing:
        raise CredentialsError(f"the database secret lacks {', '.join(missing)}")
    try:
        port = int(data.get("port") or 5432)
    except (TypeError, ValueError) as exc:
        raise CredentialsError("the database secret has a non-numeric port") from exc
    return DbCredentials(host=str(data["host"]), port=port, user=str(data["username"]), password=str(data["password"]))
