from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from config import EnvironmentConfig
from stages.log_bucket import log_bucket
from stages.nag import acknowledge

TEST_LISTENER_PORT = 9000
ORIGIN_PORT = 80


def _not_found() -> elbv2.ListenerAction:
    return elbv2.ListenerAction.fixed_response(404, content_type="application/json", message_body='{"error": "not found"}')

MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesAmazonIpReputationList")


class LoadBalancer(Construct):
    """ALB: internal behind CloudFront by default (public with HTTPS if config says so), blue/green test listener, WAF, logs."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        nat_public_ips: list[str],
    ) -> None:
        super().__init__(scope, id_)
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.server_access_logs = server_access_logs = log_bucket(
            self,
            "AccessLogsAudit",
            writer="S3 server access",
            expiration=Duration.days(365),
            noncurrent_expiration=Duration.days(30),
            removal=removal,
        )
        self.access_logs = log_bucket(
            self,
            "AccessLogs",
            writer="ALB access",
            expiration=Duration.days(config.log_retention_days),
            noncurrent_expiration=Duration.days(7),
            removal=removal,
            server_access_logs=server_access_logs,
            server_access_logs_prefix="access-logs/",
        )
        # Public only when config keeps HTTPS on the ALB; otherwise CloudFront reaches it through a VPC origin.
        self.internet_facing = bool(config.tls and config.tls.terminate == "alb")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="ALB: listener ports from the internet" if self.internet_facing else "ALB: CloudFront VPC origin only",
            allow_all_outbound=False,
        )
        subnets = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PUBLIC if self.internet_facing else ec2.SubnetType.PRIVATE_WITH_EGRESS
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=self.internet_facing,
            vpc_subnets=subnets,
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            deletion_protection=config.alb_deletion_protection,
            http2_enabled=True,
        )
        self.alb.log_access_logs(self.access_logs, prefix="alb")
        if self.internet_facing:
            self._public_https(config)
        else:
            self._private_origin(vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets)
        self.test_listener: elbv2.ApplicationListener | None = None
        if config.deployment.strategy != "ROLLING":
            self._test_listener(nat_public_ips)
        alb_reasons = {}
        if not config.waf:
            alb_reasons["NIST.800.53.R5-ALBWAFEnabled"] = f"{config.name}: WAF off in config to save cost outside production (prod enables it)"
        if not config.alb_deletion_protection:
            alb_reasons["NIST.800.53.R5-ELBDeletionProtectionEnabled"] = f"{config.name} is disposable by design; prod enables deletion protection"
        if alb_reasons:
            acknowledge(self.alb, alb_reasons)
        if config.waf:
            self._add_waf(config)

    def _public_https(self, config: EnvironmentConfig) -> None:
        assert config.tls is not None
        certificate = acm.Certificate.from_certificate_arn(self, "Certificate", config.tls.certificate_arn)
        self.listener = self.alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=True,
            default_action=_not_found(),
        )
        redirect = self.alb.add_redirect(source_port=80, target_port=443)
        acknowledge(
            redirect,
            {
                "NIST.800.53.R5-ELBv2ACMCertificateRequired": (
                    "Port 80 only answers with a redirect to HTTPS on 443, which carries the ACM certificate from "
                    "config; it serves no content and forwards to no target"
                ),
            },
        )
        self.url = f"https://{config.tls.domain_name}"
        acknowledge(
            self.security_group,
            {
                "AwsSolutions-EC23": "Public ALB chosen in config (tls.terminate: alb): 443 and the 80→443 redirect must be reachable from anywhere; WAF and header checks guard it",
            },
        )

    def _private_origin(self, subnets: list[ec2.ISubnet]) -> None:
        # CloudFront's VPC origin speaks to the ALB from network interfaces in the ALB's (private) subnets; the
        # security group CloudFront creates for them does not exist at synth time, so those subnets' ranges are the peers.
        self.listener = self.alb.add_listener(
            "Origin",
            port=ORIGIN_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_action=_not_found(),
        )
        for subnet in subnets:
            self.security_group.add_ingress_rule(
                ec2.Peer.ipv4(subnet.ipv4_cidr_block),
                ec2.Port.tcp(ORIGIN_PORT),
                f"CloudFront VPC origin: its interfaces in {subnet.availability_zone}",
            )
        self.url: str | None = None  # viewers use the distribution's URL (stages.edge)
        acknowledge(
            self.listener,
            {
                "NIST.800.53.R5-ELBv2ACMCertificateRequired": (
                    "Internal ALB reached only by CloudFront's VPC origin over AWS's private network; viewers get HTTPS "
                    "on the distribution, which needs no certificate of ours"
                ),
            },
        )
        acknowledge(
            self.alb,
            {
                "NIST.800.53.R5-ALBHttpToHttpsRedirection": (
                    "Internal ALB: no viewer reaches it; CloudFront redirects every viewer to HTTPS and forwards to this "
                    "listener through its VPC origin"
                ),
            },
        )

    def _test_listener(self, nat_public_ips: list[str]) -> None:
        # Blue/green test listener for the lifecycle-hook function. Internal ALB: the hook's security group is
        # admitted by the stack (security group to security group). Public ALB: the hook leaves through the NAT
        # gateways, so the ALB sees their public addresses, not the VPC range.
        self.test_listener = self.alb.add_listener(
            "Test",
            port=TEST_LISTENER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_action=_not_found(),
        )
        acknowledge(
            self.test_listener,
            {
                "NIST.800.53.R5-ELBv2ACMCertificateRequired": "Test listener reachable only by the smoke-test hook in this VPC; it carries smoke-test traffic to new tasks, no user data",
                "NIST.800.53.R5-ALBHttpToHttpsRedirection": "Test listener is not a viewer entry point: only the smoke-test hook inside the VPC calls it, over plain HTTP by design",
            },
        )
        if not self.internet_facing:
            return
        acknowledge(
            self.security_group,
            {
                "NIST.800.53.R5-EC2RestrictedSSH": "No SSH: the test listener admits only the NAT gateways' addresses (tokens the rule cannot resolve)",
                "NIST.800.53.R5-EC2RestrictedCommonPorts": "Test listener port from the NAT gateways' addresses only (tokens the rule cannot resolve)",
            },
        )
        for index, ip in enumerate(nat_public_ips):
            self.security_group.add_ingress_rule(
                ec2.Peer.ipv4(Fn.join("", [ip, "/32"])),
                ec2.Port.tcp(TEST_LISTENER_PORT),
                f"Test listener from NAT gateway {index + 1}: the smoke-test hook inside the VPC",
            )

    def _add_waf(self, config: EnvironmentConfig) -> None:
        rules = [
            wafv2.CfnWebACL.RuleProperty(
                name=group,
                priority=index,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(vendor_name="AWS", name=group)
                ),
                visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                    cloud_watch_metrics_enabled=True, metric_name=group, sampled_requests_enabled=True
                ),
            )
            for index, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            scope="REGIONAL",
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=f"{config.name}-web-acl", sampled_requests_enabled=True
            ),
            rules=rules,
        )
        acknowledge(
            acl,
            {
                "NIST.800.53.R5-WAFv2LoggingEnabled": "Sampled requests and per-rule CloudWatch metrics are on; full request logging is a cost choice left to config owners",
            },
        )
        wafv2.CfnWebACLAssociation(self, "WebAclAssociation", resource_arn=self.alb.load_balancer_arn, web_acl_arn=acl.attr_arn)
