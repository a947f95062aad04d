from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, DefaultStackSynthesizer, IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.environment_stack import EnvironmentStack
from stages.alerting import Alerting
from stages.dashboard import Dashboard
from stages.deployment_events import DeploymentEvents
from stages.deployment_hook import DeploymentHook
from stages.nag import acknowledge_wildcards
from stages.naming import DEPLOYMENT_ALARMS, alarm_name, role_name
from stages.edge import Edge
from stages.load_balancer import ORIGIN_PORT, TEST_LISTENER_PORT, LoadBalancer
from stages.remediation import Remediation
from stages.service_alarms import ServiceAlarms
from stages.stateful_stack import StatefulStack
from stages.web_service import WebService

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


class StatelessStack(EnvironmentStack):
    """What a deploy replaces freely: load balancer, service, alarms, dashboard, remediation."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        app_config: AppConfig,
        config: EnvironmentConfig,
        stateful: StatefulStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, config=config, **kwargs)
        vpc = stateful.network.vpc
        key = stateful.key
        # .dockerignore is an allow-list: the image (and its hash) depends only on Dockerfile and service/.
        self.image_asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPOSITORY_ROOT),
            file="Dockerfile",
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.load_balancer = LoadBalancer(
            self, "LoadBalancer", config=config, vpc=vpc, nat_public_ips=stateful.network.nat_public_ips
        )
        self.edge: Edge | None = None
        if not self.load_balancer.internet_facing:
            self.edge = Edge(
                self,
                "Edge",
                config=config,
                alb=self.load_balancer.alb,
                origin_port=ORIGIN_PORT,
                server_access_logs=self.load_balancer.server_access_logs,
            )
        service_url = self.edge.url if self.edge else self.load_balancer.url
        assert service_url is not None
        self.web = WebService(
            self,
            "Web",
            app_config=app_config,
            config=config,
            vpc=vpc,
            key=key,
            load_balancer=self.load_balancer,
            database=stateful.database,
            secrets=stateful.secrets,
            image=ecs.ContainerImage.from_docker_image_asset(self.image_asset),
            app_version=self.image_asset.asset_hash[:12],
        )
        alb = self.load_balancer.alb
        self.alerting = Alerting(self, "Alerting", config=config, key=key)
        self.alarms = ServiceAlarms(
            self,
            "Alarms",
            app_config=app_config,
            config=config,
            web=self.web,
            alb=alb,
            database=stateful.database.instance,
            alerting=self.alerting,
            distribution=self.edge.distribution if self.edge else None,
        )
        Dashboard(
            self,
            "Dashboard",
            app_config=app_config,
            config=config,
            web=self.web,
            alb=alb,
            database=stateful.database.instance,
            alarms=self.alarms,
            distribution=self.edge.distribution if self.edge else None,
        )
        Remediation(
            self,
            "Remediation",
            config=config,
            vpc=vpc,
            key=key,
            service=self.web.service,
            alarm=self.alarms.tasks_below_minimum,
            topic=self.alerting.critical,
            deployment_alarm_names=[alarm_name(app_config, config, kind) for kind in DEPLOYMENT_ALARMS],
        )
        # The composite alarm pages when users are hurt; a rollback itself is worth a warning.
        DeploymentEvents(self, "DeploymentEvents", service=self.web.service, topic=self.alerting.warning)
        if self.load_balancer.test_listener is not None:
            hook = DeploymentHook(
                self,
                "DeploymentHook",
                config=config,
                vpc=vpc,
                key=key,
                test_url=f"http://{alb.load_balancer_dns_name}:{TEST_LISTENER_PORT}",
                expected_version=self.image_asset.asset_hash[:12],
                # Internal ALB: admit the hook by security group; a public ALB sees it through the NAT gateways.
                load_balancer=None if self.load_balancer.internet_facing else self.load_balancer.security_group,
            )
            self.web.add_lifecycle_hook(hook.function)

        # Assumed by the pipeline's verification step (another account): fixed name so the pipeline can grant it.
        self.verifier_role_name = role_name(app_config, config, "deploy-verifier")
        verifier = iam.Role(
            self,
            "DeployVerifier",
            role_name=self.verifier_role_name,
            assumed_by=iam.AccountPrincipal(app_config.pipeline.account),
            description="Lets the pipeline confirm the ECS rollout completed on the new task definition and read image scans",
        )
        service = self.web.service
        # CDK publishes the image into the bootstrap repository of this account/region, tagged with the asset hash.
        self.image_repository_name = (
            DefaultStackSynthesizer.DEFAULT_IMAGE_ASSETS_REPOSITORY_NAME.replace(
                "${Qualifier}", DefaultStackSynthesizer.DEFAULT_QUALIFIER
            )
            .replace("${AWS::AccountId}", config.account)
            .replace("${AWS::Region}", config.region)
        )
        self.image_tag = self.image_asset.image_tag
        verifier.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:DescribeImages", "ecr:DescribeImageScanFindings", "ecr:StartImageScan"],
                resources=[
                    self.format_arn(service="ecr", resource="repository", resource_name=self.image_repository_name)
                ],
            )
        )
        # Which scanning the registry uses, and enhanced scanning's findings (Amazon Inspector answers
        # DescribeImageScanFindings only with these too); none of the three has a resource type.
        verifier.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:GetRegistryScanningConfiguration",
                    "inspector2:ListFindings",
                    "inspector2:ListCoverage",
                    # The pipeline's promotion gate reads the composite alarm; DescribeAlarms returns composite
                    # alarms only when allowed on "*" (CloudWatch API reference, DescribeAlarms).
                    "cloudwatch:DescribeAlarms",
                ],
                resources=["*"],
            )
        )
        verifier.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:DescribeServices", "ecs:ListServiceDeployments"], resources=[service.service_arn]
            )
        )
        # When this deploy started: the stack's last update.
        verifier.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudformation:DescribeStacks"],
                resources=[self.format_arn(service="cloudformation", resource="stack", resource_name=f"{self.stack_name}/*")],
            )
        )
        verifier.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:DescribeServiceDeployments", "ecs:DescribeServiceRevisions"],
                resources=[
                    self.format_arn(
                        service="ecs",
                        resource=kind,
                        resource_name=f"{self.web.cluster.cluster_name}/{service.service_name}/*",
                    )
                    for kind in ("service-deployment", "service-revision")
                ],
            )
        )
        acknowledge_wildcards(
            verifier,
            [
                (r"^Resource::\*$",
                 "ecr:GetRegistryScanningConfiguration and inspector2:ListFindings/ListCoverage have no resource types, and "
                 "DescribeAlarms returns composite alarms only on *; the role only reads"),
                (r"^Resource::arn:<AWS::Partition>:cloudformation:[a-z0-9-]+:\d{12}:stack/[a-z0-9-]+-stateless/\*$",
                 "This environment's stateless stack; the suffix is the stack id CloudFormation assigns"),
            ],
        )
        acknowledge_wildcards(
            self,
            [
                (r"^Resource::arn:<AWS::Partition>:ecs:[a-z0-9-]+:\d{12}:service-(deployment|revision)/<[A-Za-z0-9]+>/<[A-Za-z0-9]+\.Name>/\*$",
                 "Deployments and revisions of this one service; their ids are created by ECS at deploy time"),
                (r"^Action::kms:(GenerateDataKey|ReEncrypt)\*$",
                 "Publishing to the KMS-encrypted critical topic needs data keys of the environment key only"),
            ],
        )
        self.web.acknowledge_generated()
        self.url_output = CfnOutput(self, "ServiceUrl", value=service_url, description="Service URL (HTTPS)")
        if self.edge is not None:
            # Where a custom domain's CNAME or alias record points.
            CfnOutput(self, "DistributionDomainName", value=self.edge.distribution.distribution_domain_name)
        self.cluster_output = CfnOutput(self, "ClusterName", value=self.web.cluster.cluster_name)
        self.service_output = CfnOutput(self, "ServiceName", value=self.web.service.service_name)
        self.task_definition_output = CfnOutput(
            self, "TaskDefinitionArn", value=self.web.task_definition.task_definition_arn
        )
