from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.naming import metrics_namespace
from stages.service_alarms import ServiceAlarms
from stages.web_service import WebService


class Dashboard(Construct):
    """One screen per environment, read top to bottom: alarms, traffic, errors, latency, capacity, database."""

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
        alarms: ServiceAlarms,
        distribution: cloudfront.IDistribution | None = None,
    ) -> None:
        super().__init__(scope, id_)
        minute = Duration.minutes(1)
        env_dim = {"Environment": config.name}
        namespace = metrics_namespace(app_config)
        app_metric = lambda name, stat: cw.Metric(  # noqa: E731
            namespace=namespace, metric_name=name, dimensions_map=env_dim, statistic=stat, period=Duration.seconds(10)
        )
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=alarms.all_alarms, width=24, height=4),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Requests",
                left=[alb.metrics.request_count(period=minute), app_metric("Requests", "Sum")],
                width=8,
            ),
            cw.GraphWidget(
                title="Errors",
                left=[
                    alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=minute),
                    alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=minute),
                    app_metric("ServerErrors", "Sum"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Latency (ms, service)",
                left=[app_metric("Latency", stat) for stat in ("p50", "p90", "p99")],
                width=8,
            ),
        )
        if distribution is not None:
            self.dashboard.add_widgets(self._edge(distribution))
        # The deployment alarms' own expressions, with their thresholds: what ECS rolls back on, as ECS sees it.
        self.dashboard.add_widgets(
            cw.AlarmWidget(title="5xx % (targets and load balancer)", alarm=alarms.error_rate, width=12),
            cw.AlarmWidget(title="5xx % of the worst target group (a canary at its own rate)",
                           alarm=alarms.target_group_error_rate, width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Healthy / unhealthy targets",
                left=[g.metrics.healthy_host_count(period=minute) for g in web.target_groups],
                right=[g.metrics.unhealthy_host_count(period=minute) for g in web.target_groups],
                width=8,
            ),
            cw.GraphWidget(
                title="Tasks (running, desired) — deployments show as steps",
                left=[
                    cw.Metric(
                        namespace="ECS/ContainerInsights",
                        metric_name=name,
                        dimensions_map={"ClusterName": web.cluster.cluster_name, "ServiceName": web.service.service_name},
                        statistic="Average",
                        period=minute,
                    )
                    for name in ("RunningTaskCount", "DesiredTaskCount", "PendingTaskCount")
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="CPU / memory %",
                left=[web.service.metric_cpu_utilization(period=minute), web.service.metric_memory_utilization(period=minute)],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Database CPU % / connections",
                left=[database.metric_cpu_utilization(period=minute)],
                right=[database.metric_database_connections(period=minute)],
                width=12,
            ),
            cw.GraphWidget(
                title="Database free storage (bytes)",
                left=[database.metric_free_storage_space(period=Duration.minutes(5))],
                width=12,
            ),
        )

    @staticmethod
    def _edge(distribution: cloudfront.IDistribution) -> cw.GraphWidget:
        # CloudFront publishes its metrics only in us-east-1; a dashboard (unlike an alarm) can read another region.
        edge_metric = lambda name, stat: cw.Metric(  # noqa: E731
            namespace="AWS/CloudFront",
            metric_name=name,
            dimensions_map={"DistributionId": distribution.distribution_id, "Region": "Global"},
            statistic=stat,
            period=Duration.minutes(1),
            region="us-east-1",
        )
        return cw.GraphWidget(
            title="CloudFront: requests / 4xx and 5xx % (what viewers see, origin unreachable included)",
            left=[edge_metric("Requests", "Sum")],
            right=[edge_metric("4xxErrorRate", "Average"), edge_metric("5xxErrorRate", "Average")],
            width=24,
        )
