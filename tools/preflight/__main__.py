"""python -m tools.preflight: read-only checks of the real AWS accounts before `make deploy`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from config import AppConfig, ConfigError, load_config, read_context
from tools.preflight.accounts import Sessions
from tools.preflight.assembly import AssemblyError, read_assembly
from tools.preflight.permissions import permissions_markdown
from tools.preflight.results import CREDENTIAL_ERRORS, CredentialsUnusable
from tools.preflight.runner import run

ROOT = Path(__file__).resolve().parents[2]
EXIT_CONFIG = 2
EXIT_NO_CREDENTIALS = 3

DESCRIPTION = """\
Read-only checks of the AWS accounts in the committed configuration (cdk.json) before deploying:
bootstrap and its trust and execution policies, the CodeConnections connection, shared secrets and their policies,
RDS engine and instance class, quotas, reserved Lambda concurrency, e-mail subscriptions and ECR scanning.

Credentials: the current ones (AWS_PROFILE, SSO, environment variables) must be the pipeline account's. Each target
account is read through its CDK bootstrap lookup role, arn:aws:iam::<account>:role/cdk-hnb659fds-lookup-role-
<account>-<region>, which `cdk bootstrap --trust <pipeline account>` lets the pipeline account assume and which has
ReadOnlyAccess; an environment in the pipeline account is read with the current credentials. Nothing is changed."""

EPILOG = """\
Each check prints one line: "✓ what", "✗ what: the fix", "! what: cannot check from here: ..." (not a failure:
check that by hand), or "– what" (nothing to check yet). Exit codes: 0 every check passed or could not be checked,
1 a check failed, 2 invalid configuration (placeholder accounts included), 3 no usable credentials."""


def sessions_for(config: AppConfig) -> Sessions:
    lookup_regions: dict[str, str] = {}
    for env in config.environments:
        lookup_regions.setdefault(env.account, env.region)
    return Sessions(
        pipeline_account=config.pipeline.account, pipeline_region=config.pipeline.region, lookup_regions=lookup_regions
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.preflight",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cdk-json", type=Path, default=ROOT / "cdk.json", help="configuration to check (cdk.json)")
    parser.add_argument("--assembly", type=Path, default=ROOT / "cdk.out", help="cloud assembly to read (cdk.out)")
    parser.add_argument("--permissions", action="store_true", help="print the IAM actions preflight calls, and exit")
    args = parser.parse_args(argv)
    if args.permissions:
        print(permissions_markdown())
        return 0
    try:
        context = read_context(args.cdk_json)
    except (OSError, ValueError, KeyError) as error:
        print(f"ConfigError: cannot read the configuration in {args.cdk_json}: {error!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(context, os.environ if environ is None else environ, require_real_accounts=True)
        facts = read_assembly(args.assembly)
    except (ConfigError, AssemblyError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return run(config, clients=sessions_for(config), facts=facts, out=sys.stdout)
    except (CredentialsUnusable, *CREDENTIAL_ERRORS) as error:
        print(
            f"preflight: no usable AWS credentials for the pipeline account {config.pipeline.account} ({error}): "
            "set AWS_PROFILE to its profile (or run `aws sso login` / `aws configure`) and try again",
            file=sys.stderr,
        )
        return EXIT_NO_CREDENTIALS


if __name__ == "__main__":
    sys.exit(main())
