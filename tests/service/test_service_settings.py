from __future__ import annotations

import subprocess
import sys

import pytest
from service_support import REPO

from service.settings import LOCAL_APP_SECRET, ConfigError, Settings

pytestmark = pytest.mark.xdist_group("service")

SECRET = "s" * 32
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:service/rds-AbCdEf"
BASE = {"ENVIRONMENT": "dev", "APP_SECRET": SECRET, "DB_NAME": "notes", "DB_SECRET_ARN": ARN}


def load(**changes: str | None) -> Settings:
    env = {**BASE, **changes}
    return Settings.from_env({k: v for k, v in env.items() if v is not None})


def test_defaults_follow_the_contract() -> None:
    settings = load()
    assert (settings.app_version, settings.env_color, settings.host, settings.port) == (
        "unknown",
        "#6b7280",
        "0.0.0.0",
        8080,
    )
    assert (settings.workers, settings.shutdown_timeout, settings.metrics_namespace) == (
        1,
        20,
        "DeliverySystem/Service",
    )
    assert settings.db_secret_arn == ARN and settings.db_endpoint is None
    assert settings.ecs_metadata_uri is None
    assert (settings.db_timeout_ms, settings.request_header_timeout, settings.request_body_timeout) == (3000, 10, 30)
    assert (settings.keep_alive_timeout, settings.idempotency_key_ttl) == (75, 86400)


def test_fault_handling_settings_are_read() -> None:
    settings = load(
        DB_TIMEOUT_MS="1500",
        REQUEST_HEADER_TIMEOUT_SECONDS="5",
        REQUEST_BODY_TIMEOUT_SECONDS="12",
        KEEP_ALIVE_TIMEOUT_SECONDS="65",
        IDEMPOTENCY_KEY_TTL_SECONDS="3600",
    )
    assert (settings.db_timeout_ms, settings.request_header_timeout, settings.request_body_timeout) == (1500, 5, 12)
    assert (settings.keep_alive_timeout, settings.idempotency_key_ttl) == (65, 3600)


def test_local_database_fields_and_local_signing_key() -> None:
    settings = load(
        ENVIRONMENT="local", APP_SECRET=None, DB_SECRET_ARN=None, DB_HOST="/tmp/sock", DB_USER="me", DB_PASSWORD=""
    )
    assert settings.app_secret == LOCAL_APP_SECRET
    assert settings.db_endpoint is not None
    assert (settings.db_endpoint.host, settings.db_endpoint.port, settings.db_endpoint.user) == (
        "/tmp/sock",
        5432,
        "me",
    )


def test_secrets_never_appear_in_repr() -> None:
    settings = load(DB_SECRET_ARN=None, DB_HOST="db", DB_USER="u", DB_PASSWORD="hunter2-password")
    assert SECRET not in repr(settings) and "hunter2-password" not in repr(settings)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"PORT": "abc"}, "PORT must be an integer 1-65535, got 'abc'"),
        ({"PORT": "70000"}, "PORT must be an integer 1-65535, got '70000'"),
        ({"WORKERS": "0"}, "WORKERS must be an integer 1-64, got '0'"),
        ({"SHUTDOWN_TIMEOUT_SECONDS": "300"}, "SHUTDOWN_TIMEOUT_SECONDS must be an integer 1-110, got '300'"),
        ({"ENVIRONMENT": None}, "ENVIRONMENT is required"),
        ({"ENVIRONMENT": "Prod!"}, "ENVIRONMENT must be a lowercase name"),
        ({"DB_NAME": ""}, "DB_NAME is required"),
        ({"APP_SECRET": "short"}, "APP_SECRET must be at least 32 characters, got 5"),
        ({"APP_SECRET": None}, "APP_SECRET is required unless ENVIRONMENT=local"),
        ({"ENV_COLOR": "red;}</style><script>"}, "ENV_COLOR must be a CSS colour"),
        ({"DB_SECRET_ARN": "my-secret"}, "DB_SECRET_ARN must be a Secrets Manager secret ARN, got 'my-secret'"),
        ({"DB_SECRET_ARN": None}, "DB_SECRET_ARN (on AWS) or DB_HOST (locally) is required"),
        ({"DB_HOST": "db"}, "DB_SECRET_ARN and DB_HOST are both set"),
        ({"DB_SECRET_ARN": None, "DB_HOST": "db"}, "DB_USER is required"),
        ({"DB_SECRET_ARN": None, "DB_HOST": "db", "DB_USER": "u", "DB_PORT": "x"}, "DB_PORT must be an integer"),
        ({"METRICS_NAMESPACE": ":bad"}, "METRICS_NAMESPACE must be a CloudWatch namespace"),
        ({"DB_TIMEOUT_MS": "50"}, "DB_TIMEOUT_MS must be an integer 200-120000, got '50'"),
        ({"REQUEST_HEADER_TIMEOUT_SECONDS": "0"}, "REQUEST_HEADER_TIMEOUT_SECONDS must be an integer 1-300"),
        ({"REQUEST_BODY_TIMEOUT_SECONDS": "1.5"}, "REQUEST_BODY_TIMEOUT_SECONDS must be an integer 1-300"),
        ({"KEEP_ALIVE_TIMEOUT_SECONDS": "5000"}, "KEEP_ALIVE_TIMEOUT_SECONDS must be an integer 1-4000"),
        ({"IDEMPOTENCY_KEY_TTL_SECONDS": "999999"}, "IDEMPOTENCY_KEY_TTL_SECONDS must be an integer 1-604800"),
        ({"APP_VERSION": "has space"}, "APP_VERSION must be 1-128 printable characters"),
        (
            {"ECS_CONTAINER_METADATA_URI_V4": "file:///etc/passwd"},
            "ECS_CONTAINER_METADATA_URI_V4 must be an http:// URL",
        ),
    ],
)
def test_invalid_settings_name_the_variable_and_what_is_allowed(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(**changes)
    assert str(error.value).startswith(message)


def test_secret_values_are_never_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as error:
        load(APP_SECRET="tooshort-secret")
    assert "tooshort-secret" not in str(error.value)


def test_entry_point_exits_nonzero_with_one_line_and_no_traceback() -> None:
    env = {"PATH": "/usr/bin:/bin", **BASE, "PORT": "abc"}
    result = subprocess.run(
        [sys.executable, "-m", "service"], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert result.stderr == "ConfigError: PORT must be an integer 1-65535, got 'abc'\n"
    assert result.stdout == ""
