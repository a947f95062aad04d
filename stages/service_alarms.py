from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.alerting import Alerting
from stages.naming import alarm_name, metrics_namespace
from stages.web_service import WebService

GIB = 1024**3


@dataclass(frozen=True, kw_only=True)
class LogPattern:
    """A metric filter on the service's JSON log lines (field names: docs/contracts.md)."""

    metric_name: str
    pattern: str
    description: str


def log_patterns(config: EnvironmentConfig) -> tuple[LogPattern, ...]:
    return (
        LogPattern(
            metric_name="ErrorLogLines",
            pattern='{ $.level = "ERROR" }',
            description="application errors (level ERROR): read the stack trace in the same log line",
        ),
        LogPattern(
            metric_name="DatabaseErrorLogLines",
            pattern='{ $.event = "db_error" }',
            description="database errors: check /readyz, RDS events and the credential secret's last rotation",
        ),
        LogPattern(
            metric_name="SlowRequests",
            pattern=f'{{ $.event = "request" && $.duration_ms > {config.alarms.slow_request_ms} }}',
            description=f"requests slower than {config.alarms.slow_request_ms} ms: check DB CPU and p99 latency",
        ),
    )


class ServiceAlarms(Construct):
    """Every alarm of the environment; the four deployment alarms carry fixed names the ECS service refers to."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        app_config: AppConfig,
        config: EnvironmentConfig,
        web: WebService,
        alb: elbv2.ApplicationLoadBalancer,
        database: rds.DatabaseInstance,
        alerting: Alerting,
    ) -> None:
        super().__init__(scope, id_)
        self._warning = actions.SnsAction(alerting.warning)
        self._critical = actions.SnsAction(alerting.critical)
        thresholds = config.alarms
        name = lambda kind: alarm_name(app_config, config, kind)  # noqa: E731
        env_dim = {"Environment": config.name}
        namespace = metrics_namespace(app_config)

        requests = alb.metrics.request_count(period=Duration.minutes(1), statistic="Sum")
        target_5xx = alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=Duration.minutes(1))
        self.error_rate = self._alarm(
            "TargetErrorRate",
            name("target-5xx-rate"),
            cw.MathExpression(
                expression="100 * FILL(errors, 0) / IF(FILL(requests, 0) > 0, requests, 1)",
                using_metrics={"errors": target_5xx, "requests": requests},
                period=Duration.minutes(1),
                label="Target 5xx %",
            ),
            threshold=thresholds.error_rate_percent,
            periods=2,
            critical=True,
            description=(
                "Targets answer 5xx above {t}% of requests. First look: the service log group for ERROR lines, then "
                "the deployments tab (a deploy in progress rolls back automatically)."
            ).format(t=thresholds.error_rate_percent),
        )
        # The service's own 10-second metric sees a bad deploy long before ALB's one-minute metrics do.
        self.app_errors = self._alarm(
            "AppServerErrors",
            name("app-server-errors"),
            cw.Metric(
                namespace=namespace, metric_name="ServerErrors", dimensions_map=env_dim, statistic="Sum",
                period=Duration.seconds(10),
            ),
            threshold=thresholds.app_errors_per_10s,
            periods=3,
            datapoints=2,
            description=(
                f"The service returned >= {thresholds.app_errors_per_10s} 5xx in 10 s, twice within 30 s. "
                "First look: ERROR lines in the service log group; during a deploy ECS rolls back by itself."
            ),
        )
        self.latency = self._alarm(
            "P99Latency",
            name("p99-latency"),
            alb.metrics.target_response_time(period=Duration.minutes(1), statistic="p99"),
            threshold=thresholds.p99_latency_ms / 1000,
            periods=3,
            description=(
                f"p99 target response time above {thresholds.p99_latency_ms} ms for 3 minutes. First look: "
                "SlowRequests and database CPU on the dashboard."
            ),
        )
        unhealthy = {
            f"u{index}": group.metrics.unhealthy_host_count(period=Duration.minutes(1), statistic="Maximum")
            for index, group in enumerate(web.target_groups)
        }
        self.unhealthy = self._alarm(
            "UnhealthyTargets",
            name("unhealthy-targets"),
            cw.MathExpression(
                expression=" + ".join(f"FILL({key}, 0)" for key in unhealthy),
                using_metrics=unhealthy,
                period=Duration.minutes(1),
                label="Unhealthy targets",
            ),
            threshold=thresholds.unhealthy_hosts,
            periods=2,
            description=(
                "Targets fail the /healthz check. First look: stopped tasks' reasons in the ECS console, then "
                "the service log group around the time tasks started."
            ),
        )
        running = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": web.cluster.cluster_name, "ServiceName": web.service.service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )
        self.tasks_below_minimum = self._alarm(
            "TasksBelowMinimum",
            None,
            running,
            threshold=config.service.min_tasks,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            periods=3,
            critical=True,
            missing=cw.TreatMissingData.BREACHING,
            description=(
                f"Fewer than {config.service.min_tasks} tasks running for 3 minutes outside what ECS repairs by "
                "itself. The remediation function forces a new deployment once (it reports to this topic); "
                "first look: stopped tasks' reasons."
            ),
        )
        self._alarm(
            "Cpu", None, web.service.metric_cpu_utilization(period=Duration.minutes(1)),
            threshold=thresholds.cpu_percent, periods=5,
            description="Service CPU high for 5 minutes although auto scaling should add tasks: check max_tasks.",
        )
        self._alarm(
            "Memory", None, web.service.metric_memory_utilization(period=Duration.minutes(1)),
            threshold=thresholds.memory_percent, periods=5,
            description="Service memory high for 5 minutes: look for a leak (memory per task on the dashboard).",
        )
        self._alarm(
            "DatabaseCpu", None, database.metric_cpu_utilization(period=Duration.minutes(5)),
            threshold=thresholds.db_cpu_percent, periods=3,
            description="Database CPU high for 15 minutes: check slow statements in the postgresql log group.",
        )
        self.db_storage = self._alarm(
            "DatabaseFreeStorage", None, database.metric_free_storage_space(period=Duration.minutes(5)),
            threshold=thresholds.db_free_storage_gib * GIB, comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            periods=1, critical=True,
            description=(
                f"Less than {thresholds.db_free_storage_gib} GiB free although storage autoscaling is on: the "
                "max_allocated_storage ceiling is reached; raise it in config."
            ),
        )
        self._alarm(
            "DatabaseConnections", None, database.metric_database_connections(period=Duration.minutes(5)),
            threshold=thresholds.db_connections, periods=2,
            description="Many database connections: check task count × pool size, and for leaked connections.",
        )
        self.log_alarms = []
        for item in log_patterns(config):
            metric_filter = logs.MetricFilter(
                self,
                f"{item.metric_name}Filter",
                log_group=web.log_group,
                filter_pattern=logs.FilterPattern.literal(item.pattern),
                metric_namespace=f"{namespace}/{config.name}",
                metric_name=item.metric_name,
                metric_value="1",
                default_value=0,
            )
            self.log_alarms.append(
                self._alarm(
                    f"{item.metric_name}Alarm", None,
                    metric_filter.metric(statistic="Sum", period=Duration.minutes(5)),
                    threshold=1 if item.metric_name != "SlowRequests" else 10, periods=1,
                    description=f"Log lines matched: {item.description}.",
                )
            )
        self.request_anomaly = cw.AnomalyDetectionAlarm(
            self,
            "RequestAnomaly",
            metric=alb.metrics.request_count(period=Duration.minutes(5), statistic="Sum"),
            std_devs=3,
            evaluation_periods=3,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                "Request volume left its learned band for 15 minutes: a drop often means clients cannot reach us "
                "(DNS, WAF blocks); a spike, check WAF and scaling."
            ),
        )
        self._notify(self.request_anomaly, critical=False)
        # Escalation: a warning that persists becomes critical.
        escalate = Duration.minutes(thresholds.escalate_after_minutes)
        self.latency_escalated = self._alarm(
            "P99LatencyPersistent", None,
            alb.metrics.target_response_time(period=Duration.minutes(1), statistic="p99"),
            threshold=thresholds.p99_latency_ms / 1000, periods=int(escalate.to_minutes()), critical=True,
            description=f"p99 latency alarm persisted {thresholds.escalate_after_minutes} minutes: escalated to critical.",
        )
        self.service_unhealthy = cw.CompositeAlarm(
            self,
            "ServiceUnhealthy",
            alarm_description=(
                "Users are affected: high 5xx rate, or too few tasks, or unhealthy targets while the service reports 5xx. This is the "
                "page. First look: the dashboard's alarm panel, then recent deployments."
            ),
            alarm_rule=cw.AlarmRule.any_of(
                cw.AlarmRule.from_alarm(self.error_rate, cw.AlarmState.ALARM),
                cw.AlarmRule.from_alarm(self.tasks_below_minimum, cw.AlarmState.ALARM),
                cw.AlarmRule.all_of(
                    cw.AlarmRule.from_alarm(self.unhealthy, cw.AlarmState.ALARM),
                    cw.AlarmRule.from_alarm(self.app_errors, cw.AlarmState.ALARM),
                ),
            ),
        )
        self._notify(self.service_unhealthy, critical=True)

    def _alarm(
        self,
        id_: str,
        alarm_name_: str | None,
        metric: cw.IMetric,
        *,
        threshold: float,
        periods: int,
        description: str,
        datapoints: int | None = None,
        critical: bool = False,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            id_,
            alarm_name=alarm_name_,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints or periods,
            comparison_operator=comparison,
            treat_missing_data=missing,
            alarm_description=description,
        )
        self._notify(alarm, critical=critical)
        return alarm

    def _notify(self, alarm: cw.AlarmBase, *, critical: bool) -> None:
        action = self._critical if critical else self._warning
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)

    @property
    def all_alarms(self) -> list[cw.AlarmBase]:
        return [c for c in self.node.children if isinstance(c, cw.AlarmBase)]
