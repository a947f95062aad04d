from __future__ import annotations

from typing import Any

from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.environment_stack import EnvironmentStack
from stages.app_secrets import AppSecrets
from stages.database import Database
from stages.environment_key import EnvironmentKey
from stages.naming import role_name
from stages.network import Network
from stages.secret_policies import SecretPolicies, rotation_role_pattern


class StatefulStack(EnvironmentStack):
    """What must survive a redeploy: network, key, database and secrets. Changes here are rare and reviewed."""

    def __init__(
        self, scope: Construct, id_: str, *, app_config: AppConfig, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, id_, config=config, **kwargs)
        self.key = EnvironmentKey(self, "EnvironmentKey", config=config).key
        self.network = Network(self, "Network", config=config, key=self.key)
        self.database = Database(
            self,
            "Database",
            config=config,
            vpc=self.network.vpc,
            key=self.key,
            instance_identifier=f"{app_config.project}-{app_config.service_name}-{config.name}",
            secrets_manager_endpoint=self.network.secrets_manager_endpoint,
        )
        self.secrets = AppSecrets(self, "Secrets", config=config, key=self.key, shared=app_config.shared_secrets)
        assert self.database.secret is not None
        SecretPolicies(
            self,
            "SecretPolicies",
            database_secret=self.database.secret,
            signing_key=self.secrets.signing_key,
            task_role_name=role_name(app_config, config, "task"),
            execution_role_name=role_name(app_config, config, "task-execution"),
            rotation_role_name_pattern=rotation_role_pattern(
                stack_name=self.stack_name, application=self.database.rotation_application
            ),
        )
