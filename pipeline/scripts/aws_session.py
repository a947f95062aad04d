"""What the pipeline's runtime scripts share: settings from flags or environment, and clients in another account."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or default


def assumed_session(*, region: str | None, role_arn: str | None, session_name: str, sts: Any = None) -> Any:
    """A boto3 session, through `role_arn` when given (a role in the environment's account).

    The role's credentials renew themselves before they expire: a chained role lasts at most an hour, and a
    prod rollout (canary, bake, hook) can be waited on for longer.
    """
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    if not role_arn:
        return boto3.Session(region_name=region)
    sts = sts or boto3.Session(region_name=region).client("sts", config=client_config())

    def fetch() -> dict[str, str]:
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=3600)[
            "Credentials"
        ]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    core._credentials = RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    return boto3.Session(botocore_session=core, region_name=region)


def client_config() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "max_attempts": 8})


def assumed_client(service: str, *, region: str | None, role_arn: str | None, session_name: str) -> Any:
    """A boto3 client, through `role_arn` when given; retries built in."""
    session = assumed_session(region=region, role_arn=role_arn, session_name=session_name)
    return session.client(service, config=client_config())


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_AWS_ERROR = 4


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    message: str


def add_polling_arguments(
    parser: argparse.ArgumentParser,
    *,
    role_env: str,
    role_help: str,
    what: str,
    timeout_env: str,
    timeout_default: int,
    interval_env: str,
    interval_default: int,
) -> None:
    """The options every pipeline check has: where to look (region, role) and how long to wait."""
    parser.add_argument("--region", default=env("AWS_REGION", env("AWS_DEFAULT_REGION")), help="[env AWS_REGION]")
    parser.add_argument("--role-arn", default=env(role_env), help=f"role to assume first, {role_help} [env {role_env}]")
    parser.add_argument(
        "--timeout",
        type=float,
        default=env(timeout_env, str(timeout_default)),
        help=f"seconds to wait for {what} (default {timeout_default}) [env {timeout_env}]",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=env(interval_env, str(interval_default)),
        help=f"seconds between polls (default {interval_default}) [env {interval_env}]",
    )


def check_polling_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.timeout <= 0 or args.interval <= 0:
        parser.error("--timeout and --interval must be positive")


def run_check(name: str, check: Callable[[], Outcome]) -> int:
    """Runs a check, turns AWS failures into exit code 4, and prints one closing line (stderr unless it passed)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        outcome = check()
    except ClientError as err:
        error = err.response.get("Error", {})
        outcome = Outcome(
            EXIT_AWS_ERROR, f"ERROR: {err.operation_name} failed: {error.get('Code', '?')}: {error.get('Message', '')}"
        )
    except BotoCoreError as err:
        outcome = Outcome(EXIT_AWS_ERROR, f"ERROR: AWS call failed: {err}")
    stream = sys.stdout if outcome.exit_code == EXIT_OK else sys.stderr
    print(f"{name}: {outcome.message}", file=stream, flush=True)
    return outcome.exit_code
