"""The few physical names AWS needs fixed: ECS deployment alarms are referenced by name (tokens would be circular)."""

from __future__ import annotations

from config import AppConfig, EnvironmentConfig

DEPLOYMENT_ALARMS = ("target-5xx-rate", "app-server-errors", "p99-latency", "unhealthy-targets")


def alarm_name(app: AppConfig, env: EnvironmentConfig, kind: str) -> str:
    return f"{app.project}-{app.service_name}-{env.name}-{kind}"


def metrics_namespace(app: AppConfig) -> str:
    return f"{app.project}/{app.service_name}"
