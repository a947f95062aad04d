from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

# CloudFormation's deploy role resolves {{resolve:secretsmanager:...}} for the database's master password.
CFN_EXECUTION_ROLE = "role/cdk-*-cfn-exec-role-*"


class SecretPolicies(Construct):
    """Resource policies that deny reading the environment's secrets to everyone but the roles that need them.

    They live in the stateless stack because the reader roles do: a policy in the stateful stack naming them
    would make the stateful stack depend on the stateless one.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        database_secret_arn: str,
        signing_key_arn: str,
        task_role: iam.IRole,
        execution_role: iam.IRole,
        rotation_role_prefix: str,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        account_role = f"arn:{stack.partition}:iam::{stack.account}:"
        deployer = account_role + CFN_EXECUTION_ROLE
        # Roles of the rotation application (a nested stack of the stateful stack) carry its stack name as prefix.
        rotation = f"{account_role}role/{rotation_role_prefix}*"
        self.database_secret_policy = self._policy(
            "DatabaseSecret", database_secret_arn, [task_role.role_arn, deployer, rotation]
        )
        self.signing_key_policy = self._policy("SigningKey", signing_key_arn, [execution_role.role_arn, deployer])

    def _policy(self, id_: str, secret_arn: str, readers: list[str]) -> secretsmanager.CfnResourcePolicy:
        stack = Stack.of(self)
        document = iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="DenyOtherAccounts",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["secretsmanager:*"],
                    resources=["*"],
                    conditions={"StringNotEquals": {"aws:PrincipalAccount": stack.account}},
                ),
                iam.PolicyStatement(
                    sid="DenyReadersOutsideTheExpectedRoles",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["secretsmanager:GetSecretValue"],
                    resources=["*"],
                    conditions={"ArnNotLike": {"aws:PrincipalArn": readers}},
                ),
            ]
        )
        return secretsmanager.CfnResourcePolicy(
            self, id_, secret_id=secret_arn, resource_policy=document.to_json(), block_public_policy=True
        )
