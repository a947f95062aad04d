"""How long each deployment alarm needs to decide, as data: ServiceAlarms builds the alarms from these numbers and
the canary/linear step bake is derived from them, so the two cannot drift.

Plain integers (seconds) and no CDK import at module level: `report/` reads the same facts from a synthesized
assembly without loading the CDK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stages.naming import DEPLOYMENT_ALARMS

if TYPE_CHECKING:
    from aws_cdk import Duration

    from config import EnvironmentConfig

# ELB "measures and sends its metrics in 60-second intervals": a minute's datapoint can reach CloudWatch up to one
# interval after the minute it describes. The service's EMF metrics go through CloudWatch Logs, assumed no faster.
PUBLISHING_DELAY_S = 60
# CloudWatch evaluates an alarm every 10 s when its period is 10 or 30 s, otherwise every minute.
HIGH_RESOLUTION_EVALUATION_S = 10
STANDARD_EVALUATION_S = 60


@dataclass(frozen=True, kw_only=True)
class AlarmTiming:
    period_s: int
    evaluation_periods: int
    datapoints: int | None = None  # M of N; None: every evaluated period must breach

    @property
    def datapoints_to_alarm(self) -> int:
        return self.datapoints or self.evaluation_periods

    @property
    def decision_s(self) -> int:
        return decision_bound_s(self.period_s, self.evaluation_periods)


def evaluation_interval_s(period_s: int) -> int:
    return HIGH_RESOLUTION_EVALUATION_S if period_s < 60 else STANDARD_EVALUATION_S


def delay_s(period_s: int) -> int:
    """Beyond the evaluated periods: a traffic shift lands anywhere inside a period (the first full bad period starts
    up to one period later), then the last period's datapoint is published and the next evaluation runs."""
    return period_s + PUBLISHING_DELAY_S + evaluation_interval_s(period_s)


def decision_bound_s(period_s: int, evaluation_periods: int) -> int:
    """Upper bound from the moment traffic reaches a bad revision until the alarm is in ALARM (condition held)."""
    return period_s * evaluation_periods + delay_s(period_s)


# ALB metrics come once a minute: a rate needs two bad minutes, p99 three (one slow minute is common under load).
ERROR_RATE = AlarmTiming(period_s=60, evaluation_periods=2)
# The service's own 10-second metric sees a bad deploy long before ALB's one-minute metrics do.
APP_SERVER_ERRORS = AlarmTiming(period_s=10, evaluation_periods=3, datapoints=2)
P99_LATENCY = AlarmTiming(period_s=60, evaluation_periods=3)
UNHEALTHY_TARGETS = AlarmTiming(period_s=60, evaluation_periods=2)


def deployment_alarm_timings(config: EnvironmentConfig | None = None) -> dict[str, AlarmTiming]:
    """Timing of every alarm ECS rolls a deployment back on, by kind (the names in naming.DEPLOYMENT_ALARMS)."""
    timings = {
        "5xx-rate": ERROR_RATE,
        "tg-5xx-rate": ERROR_RATE,
        "app-server-errors": APP_SERVER_ERRORS,
        "p99-latency": P99_LATENCY,
        "unhealthy-targets": UNHEALTHY_TARGETS,
    }
    if set(timings) != set(DEPLOYMENT_ALARMS):
        where = f"{config.name}: " if config else ""
        raise ValueError(f"{where}deployment alarm timings {sorted(timings)} != {sorted(DEPLOYMENT_ALARMS)}")
    return timings


def minimum_bake_minutes(config: EnvironmentConfig | None = None) -> int:
    """The slowest deployment alarm's decision bound, rounded up to whole minutes (ECS bakes in minutes). A bake
    shorter than this ends before that alarm could roll the deployment back."""
    slowest = max(t.decision_s for t in deployment_alarm_timings(config).values())
    return math.ceil(slowest / 60)


def minimum_step_bake(config: EnvironmentConfig) -> Duration:
    from aws_cdk import Duration  # here, not at module level: report/ imports this module without the CDK

    return Duration.minutes(minimum_bake_minutes(config))
