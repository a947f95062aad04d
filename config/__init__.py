from config.loader import ConfigError, load_config, read_context
from config.model import (
    PLACEHOLDER_ACCOUNT,
    AlarmConfig,
    AppConfig,
    DatabaseConfig,
    DeploymentConfig,
    EnvironmentConfig,
    NetworkConfig,
    ServiceConfig,
)

__all__ = [
    "PLACEHOLDER_ACCOUNT",
    "AlarmConfig",
    "AppConfig",
    "ConfigError",
    "DatabaseConfig",
    "DeploymentConfig",
    "EnvironmentConfig",
    "NetworkConfig",
    "ServiceConfig",
    "load_config",
    "read_context",
]
