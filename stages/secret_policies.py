from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import CfnResource
from constructs import Construct

# CloudFormation's execution role resolves {{resolve:secretsmanager:...}} for the database's master password.
CFN_EXECUTION_ROLE = "cdk-*-cfn-exec-role-*"
# CloudFormation names a generated role "<stack name, first 25 characters>-<logical id, first 25>-<random>" when the
# whole would pass 64 characters; the rotation application's role is SAM's "<function logical id>Role".
GENERATED_NAME_PART = 25
ROTATION_ROLE_LOGICAL_ID = "SecretsManagerRDSPostgreSQLRotationSingleUserRole"


def rotation_role_pattern(*, stack_name: str, application: CfnResource) -> str:
    """The role name pattern of the hosted rotation function, a role of the nested stack
    "<stack name>-<application logical id>-<random>" that the Serverless Application becomes."""
    stack = Stack.of(application)
    nested_stack_name = f"{stack_name}-{stack.resolve(stack.get_logical_id(application))}"
    return f"{nested_stack_name[:GENERATED_NAME_PART]}-{ROTATION_ROLE_LOGICAL_ID[:GENERATED_NAME_PART]}-*"


class SecretPolicies(Construct):
    """Deny reading the environment's secrets to every principal but the roles that need them.

    The statements join the one resource policy each secret has (a secret holds a single policy; CDK already keeps
    one on the database secret), so they live in the stateful stack. Readers are named, not referenced: the task
    roles have fixed names (stages/naming.py), so this stack does not depend on the stateless one.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        database_secret: secretsmanager.ISecret,
        signing_key: secretsmanager.ISecret,
        task_role_name: str,
        execution_role_name: str,
        rotation_role_name_pattern: str,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        role = f"arn:{stack.partition}:iam::{stack.account}:role/"
        self._restrict(database_secret, [role + task_role_name, role + CFN_EXECUTION_ROLE, role + rotation_role_name_pattern])
        self._restrict(signing_key, [role + execution_role_name])

    @staticmethod
    def _restrict(secret: secretsmanager.ISecret, readers: list[str]) -> None:
        account = Stack.of(secret).account
        secret.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyOtherAccounts",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["secretsmanager:*"],
                resources=["*"],
                conditions={"StringNotEquals": {"aws:PrincipalAccount": account}},
            )
        )
        secret.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenyReadersOutsideTheExpectedRoles",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["secretsmanager:GetSecretValue"],
                resources=["*"],
                conditions={"ArnNotLike": {"aws:PrincipalArn": readers}},
            )
        )
        policy = secret.node.try_find_child("Policy")
        assert isinstance(policy, secretsmanager.ResourcePolicy), "the secret's resource policy was not created"
        resource = policy.node.default_child
        assert isinstance(resource, secretsmanager.CfnResourcePolicy)
        resource.block_public_policy = True
