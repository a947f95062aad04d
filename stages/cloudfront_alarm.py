from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudfront as cloudfront
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.alarm_timing import ERROR_RATE
from stages.naming import alarm_name
from stages.regions import CLOUDFRONT_METRICS_REGION

KIND = "cloudfront-5xx-rate"
# Viewer-facing 5xx: the origin's own errors plus CloudFront's 502/504 when the VPC origin cannot reach the ALB.
TIMING = ERROR_RATE


def cloudfront_error_rate_alarm(
    scope: Construct,
    id_: str,
    *,
    app_config: AppConfig,
    config: EnvironmentConfig,
    distribution: cloudfront.IDistribution,
) -> cw.Alarm:
    threshold = config.alarms.cloudfront_5xx_rate_percent
    minimum = config.alarms.cloudfront_min_requests
    assert threshold is not None, config.name
    period = Duration.seconds(TIMING.period_s)

    def metric(name: str, statistic: str) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/CloudFront",
            metric_name=name,
            dimensions_map={"DistributionId": distribution.distribution_id, "Region": "Global"},
            statistic=statistic,
            period=period,
            region=CLOUDFRONT_METRICS_REGION,
        )

    # 5xxErrorRate is a percentage: one failed request of two reads 50 %. Below the minimum traffic it reads 0.
    guarded = cw.MathExpression(
        expression=f"IF(FILL(requests, 0) >= {minimum}, FILL(rate, 0), 0)",
        using_metrics={"rate": metric("5xxErrorRate", "Average"), "requests": metric("Requests", "Sum")},
        period=period,
        label=f"CloudFront 5xx % (0 below {minimum} requests/min)",
    )
    return cw.Alarm(
        scope,
        id_,
        alarm_name=alarm_name(app_config, config, KIND),
        metric=guarded,
        threshold=threshold,
        evaluation_periods=TIMING.evaluation_periods,
        datapoints_to_alarm=TIMING.datapoints_to_alarm,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=(
            f"Viewers got 5xx from CloudFront for at least {threshold:g}% of requests (minutes with at least "
            f"{minimum} requests) in {TIMING.datapoints_to_alarm} of {TIMING.evaluation_periods} minutes: the "
            "origin's errors or CloudFront's 502/504 when the VPC origin cannot reach the internal ALB. First look: "
            "the ALB 5xx alarms in the environment's region (both failing: the service; only this one: the VPC "
            "origin, the ALB's security group or CloudFront itself)."
        ),
    )
