from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stages.retention import retention
from config import EnvironmentConfig
from stages.nag import acknowledge


class Network(Construct):
    """VPC over the configured AZs: public (ALB, NAT), private with egress (tasks), isolated (database)."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        net = config.network
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(net.cidr),
            availability_zones=list(net.availability_zones),
            nat_gateways=net.nat_gateways,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        acknowledge(
            self.vpc,
            {"CloudFormation-Validate::W3010": "AZ names come from config on purpose: synth never looks them up"},
        )
        self.nat_public_ips = [
            eip.ref for subnet in self.vpc.public_subnets if (eip := subnet.node.try_find_child("EIP")) is not None
        ]
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention(config.log_retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        self.endpoint_security_group = ec2.SecurityGroup(
            self, "EndpointSecurityGroup", vpc=self.vpc, description="Interface endpoints: HTTPS from the VPC only",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(self.vpc.vpc_cidr_block), ec2.Port.tcp(443), "HTTPS from inside the VPC"
        )
        acknowledge(
            self.endpoint_security_group,
            {
                "AwsSolutions-EC23": "Ingress is HTTPS from the VPC's own CIDR (a token the rule cannot resolve), not from the internet",
                "NIST.800.53.R5-EC2RestrictedCommonPorts": "HTTPS from the VPC CIDR only, to AWS service endpoints",
                "NIST.800.53.R5-EC2RestrictedSSH": "No SSH: the only rule is HTTPS from the VPC CIDR (unresolved token)",
            },
        )
        for subnet in self.vpc.public_subnets:
            acknowledge(
                subnet,
                {
                    "NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW": "Public tier by design: holds only the internet-facing ALB and NAT gateways",
                    "NIST.800.53.R5-VPCSubnetAutoAssignPublicIpDisabled": "Public tier: only the ALB and NAT gateways live here; tasks and database use private and isolated subnets",
                },
            )
        self.secrets_manager_endpoint: ec2.InterfaceVpcEndpoint | None = None
        if net.interface_endpoints:
            for name, service in (
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
                ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            ):
                endpoint = self.vpc.add_interface_endpoint(
                    name,
                    service=service,
                    private_dns_enabled=True,
                    security_groups=[self.endpoint_security_group],
                    subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                    open=False,
                )
                if name == "SecretsManager":
                    self.secrets_manager_endpoint = endpoint
