"""Process settings: read once from the environment and validated before anything starts."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Used only when ENVIRONMENT=local; every other environment must inject APP_SECRET.
LOCAL_APP_SECRET = "local-development-signing-key-never-used-on-aws"
MIN_APP_SECRET_LENGTH = 32
# ECS allows at most 120 s between SIGTERM and SIGKILL; keep room for closing the pool.
MAX_SHUTDOWN_TIMEOUT_SECONDS = 110
# Longer than the ALB's default idle timeout (60 s), so the load balancer never reuses a connection we are closing.
DEFAULT_KEEP_ALIVE_SECONDS = 75
# The drill's added delay stays below the ALB's idle timeout (60 s), so a delayed request is still answered.
MAX_FAULT_LATENCY_MS = 59_000

_ENVIRONMENT_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})|[a-zA-Z]{3,20}")
_VERSION_RE = re.compile(r"[\x21-\x7e]{1,128}")
_NAMESPACE_RE = re.compile(r"[0-9A-Za-z.\-_/#][0-9A-Za-z.\-_/#:]{0,254}")
_SECRET_ARN_RE = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+")
_DB_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")
_HOST_RE = re.compile(r"[^\s]{1,255}")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class DatabaseEndpoint:
    """Connection fields given directly (locally), instead of through DB_SECRET_ARN."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Settings:
    environment: str
    app_version: str = "unknown"
    env_color: str = "#6b7280"
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    shutdown_timeout: int = 20
    db_name: str
    db_secret_arn: str | None = None
    db_endpoint: DatabaseEndpoint | None = None
    app_secret: str = field(repr=False)
    metrics_namespace: str = "DeliverySystem/Service"
    ecs_metadata_uri: str | None = None
    db_timeout_ms: int = 3000
    request_header_timeout: int = 10
    request_body_timeout: int = 30
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_SECONDS
    idempotency_key_ttl: int = 24 * 60 * 60
    # Drill-only fault switch (make drill): share of requests to / and /api/* answered with a 500, and added delay.
    fault_error_rate: float = 0.0
    fault_latency_ms: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        environment = reader.required(
            "ENVIRONMENT",
            _matching(_ENVIRONMENT_RE, "a lowercase name of letters, digits and '-' starting with a letter (max 32)"),
        )
        db_secret_arn = reader.optional("DB_SECRET_ARN", _matching(_SECRET_ARN_RE, "a Secrets Manager secret ARN"))
        db_host = reader.optional("DB_HOST", _matching(_HOST_RE, "a host name, address or socket directory"))
        if db_secret_arn and db_host:
            raise ConfigError(
                "DB_SECRET_ARN and DB_HOST are both set: use DB_SECRET_ARN on AWS or DB_HOST locally, not both"
            )
        if not db_secret_arn and not db_host:
            raise ConfigError("DB_SECRET_ARN (on AWS) or DB_HOST (locally) is required")
        db_endpoint = None
        if db_host:
            db_endpoint = DatabaseEndpoint(
                host=db_host,
                port=reader.optional("DB_PORT", _integer(1, 65535)) or 5432,
                user=reader.required("DB_USER", _matching(_HOST_RE, "a database user name")),
                password=env.get("DB_PASSWORD", ""),
            )
        app_secret = env.get("APP_SECRET", "")
        if not app_secret and environment == "local":
            app_secret = LOCAL_APP_SECRET
        elif not app_secret:
            raise ConfigError(
                "APP_SECRET is required unless ENVIRONMENT=local:"
                f" a signing key of at least {MIN_APP_SECRET_LENGTH} characters"
            )
        elif len(app_secret) < MIN_APP_SECRET_LENGTH:
            # Never echo a secret value, only its length.
            raise ConfigError(f"APP_SECRET must be at least {MIN_APP_SECRET_LENGTH} characters, got {len(app_secret)}")
        return cls(
            environment=environment,
            app_version=reader.optional(
                "APP_VERSION", _matching(_VERSION_RE, "1-128 printable characters without spaces")
            )
            or cls.app_version,
            env_color=reader.optional("ENV_COLOR", _matching(_COLOR_RE, "a CSS colour: #rgb, #rrggbb or a colour name"))
            or cls.env_color,
            host=reader.optional("HOST", _matching(_HOST_RE, "a listen address")) or cls.host,
            port=reader.optional("PORT", _integer(1, 65535)) or cls.port,
            workers=reader.optional("WORKERS", _integer(1, 64)) or cls.workers,
            shutdown_timeout=reader.optional("SHUTDOWN_TIMEOUT_SECONDS", _integer(1, MAX_SHUTDOWN_TIMEOUT_SECONDS))
            or cls.shutdown_timeout,
            db_name=reader.required(
                "DB_NAME", _matching(_DB_NAME_RE, "a PostgreSQL database name (max 63 characters)")
            ),
            db_secret_arn=db_secret_arn,
            db_endpoint=db_endpoint,
            app_secret=app_secret,
            metrics_namespace=reader.optional(
                "METRICS_NAMESPACE", _matching(_NAMESPACE_RE, "a CloudWatch namespace (letters, digits, . - _ / # :)")
            )
            or cls.metrics_namespace,
            ecs_metadata_uri=reader.optional("ECS_CONTAINER_METADATA_URI_V4", _http_url),
            db_timeout_ms=reader.optional("DB_TIMEOUT_MS", _integer(200, 120_000)) or cls.db_timeout_ms,
            request_header_timeout=reader.optional("REQUEST_HEADER_TIMEOUT_SECONDS", _integer(1, 300))
            or cls.request_header_timeout,
            request_body_timeout=reader.optional("REQUEST_BODY_TIMEOUT_SECONDS", _integer(1, 300))
            or cls.request_body_timeout,
            keep_alive_timeout=reader.optional("KEEP_ALIVE_TIMEOUT_SECONDS", _integer(1, 4000))
            or cls.keep_alive_timeout,
            idempotency_key_ttl=reader.optional("IDEMPOTENCY_KEY_TTL_SECONDS", _integer(1, 7 * 24 * 60 * 60))
            or cls.idempotency_key_ttl,
            fault_error_rate=reader.optional("FAULT_ERROR_RATE", _share) or cls.fault_error_rate,
            fault_latency_ms=reader.optional("FAULT_LATENCY_MS", _integer(0, MAX_FAULT_LATENCY_MS))
            or cls.fault_latency_ms,
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str, parse: Callable[[str, str], T]) -> T | None:
        raw = self._env.get(name, "")
        # An empty variable means "use the default": task definitions and compose files often set them empty.
        if raw == "":
            return None
        return parse(name, raw)

    def required(self, name: str, parse: Callable[[str, str], T]) -> T:
        value = self.optional(name, parse)
        if value is None:
            raise ConfigError(f"{name} is required")
        return value


def _matching(pattern: re.Pattern[str], allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if not pattern.fullmatch(raw):
            raise ConfigError(f"{name} must be {allowed}, got {raw!r}")
        return raw

    return parse


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,6}", raw.strip()) or not low <= int(raw) <= high:
            raise ConfigError(f"{name} must be an integer {low}-{high}, got {raw!r}")
        return int(raw)

    return parse


def _share(name: str, raw: str) -> float:
    # Plain decimals only: "nan", "inf" and exponents are no share of requests anyone means to type.
    if not re.fullmatch(r"[0-9]{1,3}(?:\.[0-9]{1,9})?|\.[0-9]{1,9}", raw.strip()) or not 0 <= float(raw) <= 1:
        raise ConfigError(f"{name} must be a number 0-1 (the share of requests to fail, e.g. 0.25), got {raw!r}")
    return float(raw)


def _http_url(name: str, raw: str) -> str:
    if not re.fullmatch(r"https?://[^\s]+", raw):
        raise ConfigError(f"{name} must be an http:// URL, got {raw!r}")
    return raw.rstrip("/")
