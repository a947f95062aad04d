"""The scoped policy `cdk bootstrap --cloudformation-execution-policies` attaches, rendered for one account.

    python -m tools.bootstrap_policy --account-kind environment|pipeline [--account ID] [--out FILE]

The policy documents live in docs/ (bootstrap-execution-policy.json for environment accounts,
bootstrap-pipeline-policy.json for the pipeline account) with {{Placeholders}} this tool fills from the configuration
(cdk.json, with the same DELIVERY_* environment overrides a deploy uses). The JSON goes to --out, or to stdout; the
`aws iam create-policy` and `cdk bootstrap` commands that use it follow (on stderr when the JSON is on stdout).
tests/infra/test_bootstrap_policy.py proves each rendered policy against the synthesized templates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from config import AppConfig, ConfigError, load_config, read_context
from stages.naming import execution_policy_name
from stages.regions import deploy_regions

ROOT = Path(__file__).resolve().parent.parent
AccountKind = Literal["environment", "pipeline"]
DOCUMENTS: dict[str, Path] = {
    "environment": ROOT / "docs" / "bootstrap-execution-policy.json",
    "pipeline": ROOT / "docs" / "bootstrap-pipeline-policy.json",
}
# CDK's DefaultStackSynthesizer.DEFAULT_QUALIFIER, overridable through this context key (as `cdk bootstrap` is).
DEFAULT_QUALIFIER = "hnb659fds"
QUALIFIER_CONTEXT_KEY = "@aws-cdk/core:bootstrapQualifier"
# A role CloudFormation names itself is "<stack name>-<logical id>-<random>"; past 64 characters the stack name is cut
# to its first 25 (DESIGN.md, "Hosted secret rotation"), so only that much of a stack name is sure to lead a role name.
GENERATED_NAME_STACK_PART = 25
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def stack_prefix(config: AppConfig) -> str:
    """What every stack name of the system starts with (stages/service_stage.py, app.py)."""
    return f"{config.project}-{config.service_name}-"


def role_prefix(config: AppConfig) -> str:
    """What every role name CloudFormation gives our roles starts with, fixed names (stages/naming.py) included."""
    return stack_prefix(config)[:GENERATED_NAME_STACK_PART]


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def qualifier(context: Mapping[str, Any]) -> str:
    return str(context.get(QUALIFIER_CONTEXT_KEY) or DEFAULT_QUALIFIER)


def _regions(config: AppConfig, kind: AccountKind, account: str) -> list[str]:
    # An environment with a CloudFront alarm outside us-east-1 also deploys a stack there (stages/regions.py).
    if kind == "pipeline":
        # CDK Pipelines keeps a support stack (artifact bucket and key) in the pipeline account in every other region
        # it deploys to; CloudFormation creates it with that region's execution role.
        deployed = {region for e in config.environments for region in deploy_regions(e)}
        return [config.pipeline.region, *sorted(deployed - {config.pipeline.region})]
    regions = [r for e in config.environments if e.account == account for r in deploy_regions(e)] or [
        r for e in config.environments for r in deploy_regions(e)
    ]
    return sorted(set(regions))


def render(
    config: AppConfig, *, kind: AccountKind, account: str, bootstrap_qualifier: str = DEFAULT_QUALIFIER
) -> dict[str, Any]:
    """The policy document for one account, every placeholder filled."""
    values = {
        "Account": account,
        "Partition": partition(_regions(config, kind, account)[0]),
        "Qualifier": bootstrap_qualifier,
        "StackPrefix": stack_prefix(config),
        "RolePrefix": role_prefix(config),
        "ConnectionArn": config.source.connection_arn,
    }

    def fill(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"{DOCUMENTS[kind].name}: unknown placeholder {match.group(0)}; known: {sorted(values)}")
        return values[match.group(1)]

    return json.loads(PLACEHOLDER.sub(fill, DOCUMENTS[kind].read_text()))


def default_account(config: AppConfig, kind: AccountKind) -> str:
    if kind == "pipeline":
        return config.pipeline.account
    accounts = sorted({e.account for e in config.environments})
    if len(accounts) > 1:
        raise ConfigError(f"the environments use {len(accounts)} accounts ({', '.join(accounts)}): pass --account")
    return accounts[0]


def policy_arn(config: AppConfig, *, account: str, region: str, pipeline_account: bool) -> str:
    name = execution_policy_name(config, pipeline_account=pipeline_account)
    return f"arn:{partition(region)}:iam::{account}:policy/{name}"


def commands(config: AppConfig, *, kind: AccountKind, account: str, policy_file: str) -> list[str]:
    """create-policy for this account's policy, then one `cdk bootstrap` per region the account deploys to.

    An account that holds the pipeline and an environment in one region has one bootstrap stack, so that command
    attaches both policies (CloudFormation's execution role carries them together).
    """
    name = execution_policy_name(config, pipeline_account=kind == "pipeline")
    lines = [f"aws iam create-policy --policy-name {name} --policy-document file://{policy_file}"]
    shared = False
    for region in _regions(config, kind, account):
        pipeline_here = kind == "pipeline" or (
            config.pipeline.account == account and config.pipeline.region == region
        )
        environment_here = kind == "environment" or any(
            e.account == account and region in deploy_regions(e) for e in config.environments
        )
        shared = shared or (pipeline_here and environment_here)
        arns = [policy_arn(config, account=account, region=region, pipeline_account=True)] if pipeline_here else []
        if environment_here:
            arns.append(policy_arn(config, account=account, region=region, pipeline_account=False))
        trust = f" --trust {config.pipeline.account}" if environment_here and account != config.pipeline.account else ""
        lines.append(
            f"npx cdk bootstrap aws://{account}/{region}{trust} --cloudformation-execution-policies {','.join(arns)}"
        )
    if shared:
        other: AccountKind = "environment" if kind == "pipeline" else "pipeline"
        other_name = execution_policy_name(config, pipeline_account=other == "pipeline")
        lines.insert(
            1,
            f"# this account also hosts the {other}: create {other_name} first "
            f"(python -m tools.bootstrap_policy --account-kind {other} --account {account})",
        )
    return lines


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bootstrap_policy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--account-kind", choices=("environment", "pipeline"), required=True)
    parser.add_argument("--account", help="12-digit account id (default: the configured one)")
    parser.add_argument("--out", type=Path, help="write the policy here and print only the commands")
    args = parser.parse_args(argv)
    context = read_context(ROOT / "cdk.json")
    try:
        config = load_config(context, os.environ if environ is None else environ)
        account = args.account or default_account(config, args.account_kind)
    except ConfigError as error:
        print(f"ConfigError: {error}", file=sys.stderr)
        return 2
    if not re.fullmatch(r"\d{12}", account):
        print(f"--account must be a 12-digit AWS account id, got {account!r}", file=sys.stderr)
        return 2
    document = render(config, kind=args.account_kind, account=account, bootstrap_qualifier=qualifier(context))
    text = json.dumps(document, indent=2) + "\n"
    name = execution_policy_name(config, pipeline_account=args.account_kind == "pipeline")
    policy_file = str(args.out) if args.out else f"{name}.json"
    steps = commands(config, kind=args.account_kind, account=account, policy_file=policy_file)
    notes = [f"# with credentials of account {account}:"]
    if account == "000000000000":
        notes.insert(0, "# WARNING: placeholder account 000000000000: pass --account or configure real accounts")
    if args.out:
        args.out.write_text(text)
        print("\n".join([*notes, *steps]))
    else:
        sys.stdout.write(text)
        print("\n".join([f"# save the JSON above as {policy_file}, then", *notes, *steps]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
