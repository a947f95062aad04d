from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from config import EnvironmentConfig
from config.model import SharedSecretConfig
from stages.nag import acknowledge


class AppSecrets(Construct):
    """The environment's generated application secret and references to the shared, centrally owned secrets."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        key: kms.IKey,
        shared: tuple[SharedSecretConfig, ...],
    ) -> None:
        super().__init__(scope, id_)
        self.signing_key = secretsmanager.Secret(
            self,
            "SigningKey",
            description=f"{config.name}: application signing key (pagination cursors)",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True, include_space=False
            ),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.signing_key,
            {
                "AwsSolutions-SMG4": (
                    "The signing key only signs short-lived pagination cursors; it is replaced by a deploy "
                    "(ECS injects it at task start), which invalidates nothing but open cursors"
                ),
                "NIST.800.53.R5-SecretsManagerRotationEnabled": (
                    "Same key as AwsSolutions-SMG4: rotated by replacing the secret and redeploying, not by a function"
                ),
            },
        )
        self.shared: dict[str, secretsmanager.ISecret] = {}
        # (key ARN, the secret's Region) of shared secrets under a customer-managed key: the task execution role
        # needs kms:Decrypt on each, through Secrets Manager (web_service.py); across accounts the key policy alone
        # is not enough.
        self.shared_keys: tuple[tuple[str, str], ...] = tuple(
            (item.kms_key_arn, item.secret.split(":")[3] if item.secret.startswith("arn:") else config.region)
            for item in shared
            if item.kms_key_arn
        )
        for item in shared:
            construct_id = "Shared" + "".join(part.capitalize() for part in item.env_var.split("_"))
            if item.secret.startswith("arn:"):
                secret = secretsmanager.Secret.from_secret_complete_arn(self, construct_id, item.secret)
            else:
                secret = secretsmanager.Secret.from_secret_name_v2(self, construct_id, item.secret)
            self.shared[item.env_var] = secret
