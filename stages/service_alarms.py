from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.alarm_timing import AlarmTiming, deployment_alarm_timings
from stages.alerting import Alerting
from stages.cloudfront_alarm import cloudfront_error_rate_alarm
from stages.naming import alarm_name, metrics_namespace
from stages.regions import cloudfront_alarm_region
from stages.web_service import WebService

GIB = 1024**3
HTTP_TARGET_5XX = elbv2.HttpCodeTarget.TARGET_5XX_COUNT
HTTP_ELB_5XX = elbv2.HttpCodeElb.ELB_5XX_COUNT


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
    """Every alarm of the environment, paging once per incident: the ServiceUnhealthy composite and database storage
    notify the critical topic, everything else (the composite's parts too) the warning topic. The deployment alarms
    carry the fixed names ECS refers to (naming.DEPLOYMENT_ALARMS) and their timings from stages.alarm_timing."""

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
        distribution: cloudfront.IDistribution | None = None,
    ) -> None:
        super().__init__(scope, id_)
        self._warning = actions.SnsAction(alerting.warning)
        self._critical = actions.SnsAction(alerting.critical)
        self._name = lambda kind: alarm_name(app_config, config, kind)  # noqa: E731
        namespace = metrics_namespace(app_config)
        self._error_rates(config, web, alb)
        self._deployment_signals(config, web, alb, namespace)
        self._capacity_alarms(config, web)
        self._database_alarms(config, database)
        self._log_alarms(config, web, namespace)
        self._traffic_alarms(config, alb)
        self._edge_alarm(app_config, config, distribution)
        self._page()

    def _edge_alarm(
        self, app_config: AppConfig, config: EnvironmentConfig, distribution: cloudfront.IDistribution | None
    ) -> None:
        # Only where CloudFront's metrics are (us-east-1) can its alarm join the composite; elsewhere it is in its
        # own stack in us-east-1 and pages from there (stages/cloudfront_alarm_stack.py).
        self.cloudfront_error_rate: cw.Alarm | None = None
        if distribution is not None and cloudfront_alarm_region(config) == config.region:
            self.cloudfront_error_rate = cloudfront_error_rate_alarm(
                self, "CloudFront5xxRate", app_config=app_config, config=config, distribution=distribution
            )
            self._notify(self.cloudfront_error_rate, critical=False)

    def _error_rates(self, config: EnvironmentConfig, web: WebService, alb: elbv2.ApplicationLoadBalancer) -> None:
        thresholds = config.alarms
        timing = deployment_alarm_timings(config)
        rate = timing["5xx-rate"]
        period = Duration.seconds(rate.period_s)
        # Crashing or hanging tasks answer nothing: the load balancer's own 502/503/504 are the errors users see.
        self.error_rate = self._alarm(
            "ErrorRate",
            self._name("5xx-rate"),
            _percent(
                "",
                errors={
                    "target5xx": alb.metrics.http_code_target(HTTP_TARGET_5XX, period=period, statistic="Sum"),
                    "elb5xx": alb.metrics.http_code_elb(HTTP_ELB_5XX, period=period, statistic="Sum"),
                },
                requests=alb.metrics.request_count(period=period, statistic="Sum"),
                period=period,
                label="5xx % (targets and load balancer)",
            ),
            threshold=thresholds.error_rate_percent,
            timing=rate,
            description=(
                "5xx from targets or from the load balancer (502/503/504: tasks crashing, hanging or missing) for "
                f"at least {thresholds.error_rate_percent:g}% of requests. First look: the service log group for "
                "ERROR lines, stopped tasks' reasons, then the deployments tab (a deploy in progress rolls back "
                "automatically)."
            ),
        )
        # At load-balancer level a 10 % canary dilutes its error rate tenfold: each target group is judged alone.
        group_rate = timing["tg-5xx-rate"]
        group_period = Duration.seconds(group_rate.period_s)
        rates = {
            f"rate{index}": _percent(
                str(index),
                errors={
                    f"target5xx{index}": group.metrics.http_code_target(
                        HTTP_TARGET_5XX, period=group_period, statistic="Sum"
                    ),
                    # A refused or timed-out connection is the load balancer's 502/504 for this group's target.
                    f"connect{index}": group.metrics.target_connection_error_count(
                        period=group_period, statistic="Sum"
                    ),
                },
                requests=group.metrics.request_count(period=group_period, statistic="Sum"),
                period=group_period,
                label=f"{group.node.id} 5xx %",
            )
            for index, group in enumerate(web.target_groups)
        }
        self.target_group_error_rate = self._alarm(
            "TargetGroupErrorRate",
            self._name("tg-5xx-rate"),
            cw.MathExpression(
                expression=_maximum(list(rates)), using_metrics=rates, period=group_period,
                label="Worst target group 5xx %",
            )
            if len(rates) > 1
            else next(iter(rates.values())),
            threshold=thresholds.error_rate_percent,
            timing=group_rate,
            description=(
                f"One target group answers 5xx (or refuses connections) for at least "
                f"{thresholds.error_rate_percent:g}% of its own requests: during a canary this is the new revision "
                "at its own rate, and ECS rolls it back. First look: the deployments tab, then ERROR lines."
            ),
        )

    def _deployment_signals(
        self, config: EnvironmentConfig, web: WebService, alb: elbv2.ApplicationLoadBalancer, namespace: str
    ) -> None:
        thresholds = config.alarms
        timing = deployment_alarm_timings(config)
        app = timing["app-server-errors"]
        self.app_errors = self._alarm(
            "AppServerErrors",
            self._name("app-server-errors"),
            cw.Metric(
                namespace=namespace, metric_name="ServerErrors", dimensions_map={"Environment": config.name},
                statistic="Sum", period=Duration.seconds(app.period_s),
            ),
            threshold=thresholds.app_errors_per_10s,
            timing=app,
            description=(
                f"The service returned >= {thresholds.app_errors_per_10s} 5xx in {app.period_s} s, "
                f"{app.datapoints_to_alarm} times within {app.period_s * app.evaluation_periods} s. First look: ERROR "
                "lines in the service log group; during a deploy ECS rolls back by itself."
            ),
        )
        latency = timing["p99-latency"]
        self.latency = self._alarm(
            "P99Latency",
            self._name("p99-latency"),
            alb.metrics.target_response_time(period=Duration.seconds(latency.period_s), statistic="p99"),
            threshold=thresholds.p99_latency_ms / 1000,
            timing=latency,
            description=(
                f"p99 target response time above {thresholds.p99_latency_ms} ms for "
                f"{latency.evaluation_periods} minutes. First look: SlowRequests and database CPU on the dashboard."
            ),
        )
        unhealthy_timing = timing["unhealthy-targets"]
        unhealthy = {
            f"u{index}": group.metrics.unhealthy_host_count(
                period=Duration.seconds(unhealthy_timing.period_s), statistic="Maximum"
            )
            for index, group in enumerate(web.target_groups)
        }
        self.unhealthy = self._alarm(
            "UnhealthyTargets",
            self._name("unhealthy-targets"),
            cw.MathExpression(
                expression=" + ".join(f"FILL({key}, 0)" for key in unhealthy),
                using_metrics=unhealthy,
                period=Duration.seconds(unhealthy_timing.period_s),
                label="Unhealthy targets",
            ),
            threshold=thresholds.unhealthy_hosts,
            timing=unhealthy_timing,
            description=(
                "Targets fail the /healthz check. First look: stopped tasks' reasons in the ECS console, then "
                "the service log group around the time tasks started."
            ),
        )

    def _capacity_alarms(self, config: EnvironmentConfig, web: WebService) -> None:
        thresholds = config.alarms
        running = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": web.cluster.cluster_name, "ServiceName": web.service.service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )
        # No data is a Container Insights gap or a stack still being created, not a lost task: keep the last state.
        # Zero tasks behind live traffic still pages, through the load balancer's 503s in ErrorRate.
        self.tasks_below_minimum = self._alarm(
            "TasksBelowMinimum",
            self._name("tasks-below-minimum"),
            running,
            threshold=config.service.min_tasks,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            periods=3,
            missing=cw.TreatMissingData.IGNORE,
            description=(
                f"Fewer than {config.service.min_tasks} tasks running for 3 minutes outside what ECS repairs by "
                "itself. The remediation function forces a new deployment once (it reports to the critical topic); "
                "first look: stopped tasks' reasons."
            ),
        )
        self._alarm(
            "Cpu", self._name("cpu"), web.service.metric_cpu_utilization(period=Duration.minutes(1)),
            threshold=thresholds.cpu_percent, periods=5,
            description="Service CPU high for 5 minutes although auto scaling should add tasks: check max_tasks.",
        )
        self._alarm(
            "Memory", self._name("memory"), web.service.metric_memory_utilization(period=Duration.minutes(1)),
            threshold=thresholds.memory_percent, periods=5,
            description="Service memory high for 5 minutes: look for a leak (memory per task on the dashboard).",
        )

    def _database_alarms(self, config: EnvironmentConfig, database: rds.DatabaseInstance) -> None:
        thresholds = config.alarms
        self._alarm(
            "DatabaseCpu", self._name("db-cpu"), database.metric_cpu_utilization(period=Duration.minutes(5)),
            threshold=thresholds.db_cpu_percent, periods=3,
            description="Database CPU high for 15 minutes: check slow statements in the postgresql log group.",
        )
        # Its own incident, hours before users notice: the one page besides ServiceUnhealthy.
        self.db_storage = self._alarm(
            "DatabaseFreeStorage", self._name("db-free-storage"), database.metric_free_storage_space(period=Duration.minutes(5)),
            threshold=thresholds.db_free_storage_gib * GIB, comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            periods=1, critical=True,
            description=(
                f"Less than {thresholds.db_free_storage_gib} GiB free although storage autoscaling is on: the "
                "max_allocated_storage ceiling is reached; raise it in config."
            ),
        )
        self._alarm(
            "DatabaseConnections", self._name("db-connections"), database.metric_database_connections(period=Duration.minutes(5)),
            threshold=thresholds.db_connections, periods=2,
            description="Many database connections: check task count × pool size, and for leaked connections.",
        )

    def _log_alarms(self, config: EnvironmentConfig, web: WebService, namespace: str) -> None:
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
                    f"{item.metric_name}Alarm", self._name(_kebab(item.metric_name)),
                    metric_filter.metric(statistic="Sum", period=Duration.minutes(5)),
                    threshold=1 if item.metric_name != "SlowRequests" else 10, periods=1,
                    description=f"Log lines matched: {item.description}.",
                )
            )

    def _traffic_alarms(self, config: EnvironmentConfig, alb: elbv2.ApplicationLoadBalancer) -> None:
        five_minutes = Duration.minutes(5)
        # ALB publishes no RequestCount without requests: filled with 0, a drop to zero falls below the band.
        requests = cw.MathExpression(
            expression="FILL(requests, 0)",
            using_metrics={"requests": alb.metrics.request_count(period=five_minutes, statistic="Sum")},
            period=five_minutes,
            label="Requests (none = 0)",
        )
        self.request_anomaly = cw.AnomalyDetectionAlarm(
            self,
            "RequestAnomaly",
            alarm_name=self._name("request-anomaly"),
            metric=requests,
            std_devs=3,
            evaluation_periods=3,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            # Still no datapoint after FILL means not one request in the whole window: the drop this alarm is for.
            treat_missing_data=cw.TreatMissingData.BREACHING,
            alarm_description=(
                "Request volume left its learned band for 15 minutes: a drop (down to zero) often means clients "
                "cannot reach us (DNS, WAF blocks, listener rules); a spike, check WAF and scaling."
            ),
        )
        self._notify(self.request_anomaly, critical=False)
        thresholds = config.alarms
        self.latency_escalated = self._alarm(
            "P99LatencyPersistent", self._name("p99-latency-persistent"),
            alb.metrics.target_response_time(period=Duration.minutes(1), statistic="p99"),
            threshold=thresholds.p99_latency_ms / 1000, periods=thresholds.escalate_after_minutes,
            description=(
                f"p99 latency above {thresholds.p99_latency_ms} ms for {thresholds.escalate_after_minutes} minutes: "
                "a latency warning that persists escalates to the ServiceUnhealthy page."
            ),
        )

    def _page(self) -> None:
        # One incident, one page: the parts notify the warning topic, only this composite the critical one.
        edge = [cw.AlarmRule.from_alarm(self.cloudfront_error_rate, cw.AlarmState.ALARM)] if self.cloudfront_error_rate else []
        self.service_unhealthy = cw.CompositeAlarm(
            self,
            "ServiceUnhealthy",
            composite_alarm_name=self._name("service-unhealthy"),
            alarm_description=(
                "Users are affected: high 5xx rate"
                + (" (at the load balancer or at CloudFront)" if self.cloudfront_error_rate else "")
                + ", or too few tasks, or unhealthy targets while the service reports 5xx, or p99 latency high for "
                "long. This is the page; its parts only warn. First look: the dashboard's alarm panel, then recent "
                "deployments."
            ),
            alarm_rule=cw.AlarmRule.any_of(
                cw.AlarmRule.from_alarm(self.error_rate, cw.AlarmState.ALARM),
                cw.AlarmRule.from_alarm(self.tasks_below_minimum, cw.AlarmState.ALARM),
                cw.AlarmRule.all_of(
                    cw.AlarmRule.from_alarm(self.unhealthy, cw.AlarmState.ALARM),
                    cw.AlarmRule.from_alarm(self.app_errors, cw.AlarmState.ALARM),
                ),
                cw.AlarmRule.from_alarm(self.latency_escalated, cw.AlarmState.ALARM),
                *edge,
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
        description: str,
        timing: AlarmTiming | None = None,
        periods: int | None = None,
        critical: bool = False,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        evaluation = timing.evaluation_periods if timing else periods
        assert evaluation is not None, id_
        alarm = cw.Alarm(
            self,
            id_,
            alarm_name=alarm_name_,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation,
            datapoints_to_alarm=timing.datapoints_to_alarm if timing else evaluation,
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


def _percent(
    suffix: str, *, errors: dict[str, cw.IMetric], requests: cw.IMetric, period: Duration, label: str
) -> cw.MathExpression:
    """100 × errors / requests per period; no traffic reads 0 %, never missing."""
    errors_id, requests_id = f"errors{suffix}", f"requests{suffix}"
    return cw.MathExpression(
        # Load-balancer 5xx for requests no target was chosen for are not in RequestCount: capped at 100 %.
        expression=(
            f"100 * {errors_id} / IF({requests_id} > {errors_id}, {requests_id}, IF({errors_id} > 0, {errors_id}, 1))"
        ),
        using_metrics={
            errors_id: cw.MathExpression(
                expression=" + ".join(f"FILL({key}, 0)" for key in errors), using_metrics=errors, period=period
            ),
            requests_id: cw.MathExpression(
                expression=f"FILL(r{suffix}, 0)", using_metrics={f"r{suffix}": requests}, period=period
            ),
        },
        period=period,
        label=label,
    )


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _maximum(ids: list[str]) -> str:
    expression = ids[0]
    for other in ids[1:]:
        expression = f"IF({expression} > {other}, {expression}, {other})"
    return expression
