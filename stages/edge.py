from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from config import EnvironmentConfig
from stages.log_bucket import log_bucket
from stages.nag import acknowledge

# Paths whose responses depend on the database or on the request: never cached, every viewer header but Host forwarded.
UNCACHED_PATHS = ("/api/*",)


class Edge(Construct):
    """CloudFront in front of the internal ALB: HTTPS for viewers, the ALB reached only through a VPC origin."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        alb: elbv2.IApplicationLoadBalancer,
        origin_port: int,
        server_access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id_)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.logs = log_bucket(
            self,
            "Logs",
            writer="CloudFront standard",
            expiration=Duration.days(config.log_retention_days),
            noncurrent_expiration=Duration.days(7),
            removal=removal,
            server_access_logs=server_access_logs,
            server_access_logs_prefix="cloudfront-logs/",
            object_writer=True,
        )
        # HTTP inside AWS's network to the VPC origin: the internal ALB has no certificate (no domain is needed).
        origin = origins.VpcOrigin.with_application_load_balancer(
            alb,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY,
            http_port=origin_port,
            read_timeout=Duration.seconds(30),
        )
        dynamic = cloudfront.BehaviorOptions(
            origin=origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            compress=True,
        )
        tls = config.tls
        certificate = acm.Certificate.from_certificate_arn(self, "Certificate", tls.certificate_arn) if tls else None
        # Every page of this service is live (version, AZ, readiness), so the default behaviour does not cache either.
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{config.name}: HTTPS front door of the service",
            default_behavior=dynamic,
            additional_behaviors={path: dynamic for path in UNCACHED_PATHS},
            certificate=certificate,
            domain_names=[tls.domain_name] if tls else None,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_ipv6=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        self.url = f"https://{tls.domain_name}" if tls else f"https://{self.distribution.distribution_domain_name}"
        reasons = {
            "AwsSolutions-CFR1": "The service has no country restrictions by requirement; geo blocking would be a business decision in config",
            "AwsSolutions-CFR2": (
                "WAF stays on the internal ALB as a regional web ACL (prod): a CLOUDFRONT-scope ACL must live in us-east-1, "
                "outside this environment's region and stacks"
            ),
        }
        if tls is None:
            reasons["AwsSolutions-CFR4"] = (
                "No domain configured: the default *.cloudfront.net certificate cannot enforce a minimum TLS version; "
                "configuring tls attaches our certificate with TLSv1.2_2021"
            )
        acknowledge(self.distribution, reasons)
