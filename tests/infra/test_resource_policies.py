"""Resource policies as AWS will hold them: one policy per resource, and explicit denies that spare every principal
the templates themselves say must read a secret, named as CloudFormation will name them."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.infra.cfn_model import Assembly, Ref, Stack, generated_name, nested_stack_name, statement_applies, walk

pytestmark = pytest.mark.xdist_group("infra")

# Policy resources that replace the target's whole policy: a second one on the same target overwrites the first
# (Secrets Manager PutResourcePolicy, S3 PutBucketPolicy, SNS/SQS SetAttributes "Policy" all set, never merge).
POLICY_TARGETS = {
    "AWS::SecretsManager::ResourcePolicy": "SecretId",
    "AWS::S3::BucketPolicy": "Bucket",
    "AWS::SNS::TopicPolicy": "Topics",
    "AWS::SQS::QueuePolicy": "Queues",
    "AWS::SNS::TopicInlinePolicy": "TopicArn",
    "AWS::SQS::QueueInlinePolicy": "Queue",
}
READ = "secretsmanager:GetSecretValue"


@pytest.fixture(scope="module")
def assembly(assembly_dir) -> Assembly:
    return Assembly.load(assembly_dir)


def test_every_secret_bucket_topic_and_queue_has_at_most_one_policy_resource(assembly):
    policies: dict[Ref | str, list[str]] = defaultdict(list)
    for kind, prop in POLICY_TARGETS.items():
        for stack, logical_id, resource in assembly.resources(kind):
            targets = resource["Properties"][prop]
            for target in targets if isinstance(targets, list) else [targets]:
                policies[assembly.target(stack, target)].append(f"{stack.name}/{logical_id}")
    assert policies, "the assembly has resource policies; the test must see them"
    shared = {str(target): owners for target, owners in policies.items() if len(owners) > 1}
    assert not shared, f"several policy resources overwrite each other on one target: {shared}"


def _secret_policies(assembly: Assembly) -> dict[Ref, list[dict]]:
    statements: dict[Ref, list[dict]] = defaultdict(list)
    for stack, _, resource in assembly.resources("AWS::SecretsManager::ResourcePolicy"):
        target = assembly.target(stack, resource["Properties"]["SecretId"])
        statements[target].extend(assembly.resolve(stack, resource["Properties"]["ResourcePolicy"]["Statement"]))
    return statements


def _rotation_role(assembly: Assembly, stack: Stack, schedule: dict) -> str | None:
    # RotationLambdaARN is an output of the Serverless Application (a nested stack); SAM names the role it creates
    # for a function "<function logical id>Role" (AWS SAM, AWS::Serverless::Function "Role": generated if omitted).
    lambda_arn = schedule["Properties"].get("RotationLambdaARN")
    if not (isinstance(lambda_arn, dict) and "Fn::GetAtt" in lambda_arn):
        return None
    application_id = lambda_arn["Fn::GetAtt"][0]
    application = stack.resources[application_id]
    assert application["Type"] == "AWS::Serverless::Application"
    location = application["Properties"]["Location"]["ApplicationId"]
    mapping, _, key = location["Fn::FindInMap"]
    arn = stack.template["Mappings"][mapping]["aws"][key]
    function_logical_id = arn.rsplit("/", 1)[-1]
    name = generated_name(nested_stack_name(stack.name, application_id), f"{function_logical_id}Role")
    return f"arn:aws:iam::{stack.account}:role/{name}"


def _readers(assembly: Assembly) -> dict[Ref, dict[str, str]]:
    """Every principal that must be able to read each secret, derived from what the templates make AWS do."""
    readers: dict[Ref, dict[str, str]] = defaultdict(dict)
    for stack, _, schedule in assembly.resources("AWS::SecretsManager::RotationSchedule"):
        role = _rotation_role(assembly, stack, schedule)
        if role:
            readers[assembly.target(stack, schedule["Properties"]["SecretId"])][role] = "hosted rotation function"
    for stack in assembly.stacks.values():
        for logical_id, resource in stack.resources.items():
            for node in walk(resource.get("Properties", {})):
                # {{resolve:secretsmanager:...}} is resolved with the stack's execution role
                if isinstance(node, dict) and "Fn::Join" in node:
                    parts = node["Fn::Join"][1]
                    if parts and parts[0] == "{{resolve:secretsmanager:":
                        readers[assembly.target(stack, parts[1])][stack.execution_role_arn] = (
                            f"dynamic reference in {stack.name}/{logical_id}"
                        )
    for stack, logical_id, task in assembly.resources("AWS::ECS::TaskDefinition"):
        # ECS reads container secrets with the task execution role at task start
        execution_role = assembly.resolve(stack, task["Properties"].get("ExecutionRoleArn"))
        for container in task["Properties"]["ContainerDefinitions"]:
            for secret in container.get("Secrets", []):
                target = assembly.target(stack, secret["ValueFrom"])
                readers[target][execution_role] = f"ECS secret {secret['Name']} of {stack.name}/{logical_id}"
    for stack, logical_id, policy in assembly.resources("AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] != "Allow" or READ not in actions:
                continue
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for roles in policy["Properties"].get("Roles", []):
                role_arn = f"arn:aws:iam::{stack.account}:role/{assembly.resolve(stack, roles)}"
                for resource in resources:
                    target = assembly.target(stack, resource)
                    readers[target][role_arn] = f"identity policy {stack.name}/{logical_id}"
    return readers


def _denied(statements: list[dict], principal_arn: str, account: str) -> list[str]:
    return [
        s.get("Sid", "(no sid)")
        for s in statements
        if s["Effect"] == "Deny" and statement_applies(s, action=READ, principal_arn=principal_arn, account=account)
    ]


def test_no_deny_on_a_secret_locks_out_a_principal_that_must_read_it(assembly):
    policies = _secret_policies(assembly)
    readers = _readers(assembly)
    secrets = {Ref(stack.name, logical_id) for stack, logical_id, _ in assembly.resources("AWS::SecretsManager::Secret")}
    assert secrets and set(policies) == secrets, "every secret of ours carries a resource policy"
    rotated = [secret for secret in secrets if any("rotation" in why for why in readers[secret].values())]
    assert rotated, "the database secrets are rotated: their rotation roles must be among the readers"
    locked_out = {
        f"{secret.stack}/{secret.logical_id}: {principal} ({why}) denied by {denied}"
        for secret in secrets
        for principal, why in readers[secret].items()
        if (denied := _denied(policies[secret], principal, assembly.stacks[secret.stack].account))
    }
    assert not locked_out, "\n".join(sorted(locked_out))


def test_the_denies_still_shut_out_everyone_else_in_the_account(assembly):
    policies = _secret_policies(assembly)
    readers = _readers(assembly)
    for secret, statements in policies.items():
        stack = assembly.stacks[secret.stack]
        allowed = set(readers[secret])
        # Every other role the templates create (names as CloudFormation generates them: the stateless stack's share
        # the first 25 characters with the stateful stack's), a person's role, and another account.
        others = {
            f"arn:aws:iam::{other.account}:role/{assembly.role_name(other, logical_id)}"
            for other, logical_id, _ in assembly.resources("AWS::IAM::Role")
            if other.account == stack.account
        } - allowed
        others |= {f"arn:aws:iam::{stack.account}:role/Administrator", "arn:aws:iam::999999999999:role/Reader"}
        let_through = [arn for arn in others if not _denied(statements, arn, arn.split(":")[4])]
        assert not let_through, f"{secret}: readers outside the expected roles are not denied: {let_through}"
