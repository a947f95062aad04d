from __future__ import annotations

from aws_cdk import CfnResource, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stages.retention import retention
from config import AppConfig, EnvironmentConfig
from stages.alarm_timing import minimum_step_bake
from stages.app_secrets import AppSecrets
from stages.database import Database
from stages.load_balancer import LoadBalancer
from stages.naming import DEPLOYMENT_ALARMS, alarm_name, metrics_namespace, role_name
from stages.nag import acknowledge, acknowledge_wildcards

CONTAINER_NAME = "web"


class WebService(Construct):
    """The Fargate service: rolling in dev/staging, canary/linear/blue-green in prod, rolled back by alarms."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        app_config: AppConfig,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        load_balancer: LoadBalancer,
        database: Database,
        secrets: AppSecrets,
        image: ecs.ContainerImage,
        app_version: str,
    ) -> None:
        super().__init__(scope, id_)
        deployment = config.deployment
        sizing = config.service
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENHANCED)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(config.log_retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            task_role=self._task_role("TaskRole", app_config, config, "task"),
            execution_role=self._task_role("ExecutionRole", app_config, config, "task-execution"),
            cpu=sizing.cpu,
            memory_limit_mib=sizing.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        assert database.secret is not None
        # Secrets are referenced by ARN without their key: a Secret object carrying the stateful stack's key would
        # grant through the key policy and make the stateful stack depend on this one. Decrypt is granted below.
        signing_key = secretsmanager.Secret.from_secret_attributes(
            self, "SigningKey", secret_complete_arn=secrets.signing_key.secret_arn
        )
        db_secret = secretsmanager.Secret.from_secret_attributes(
            self, "DatabaseSecret", secret_complete_arn=database.secret.secret_arn
        )
        secret_env = {"APP_SECRET": ecs.Secret.from_secrets_manager(signing_key)}
        secret_env.update({name: ecs.Secret.from_secrets_manager(s) for name, s in secrets.shared.items()})
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            image=image,
            essential=True,
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(deployment.stop_timeout_seconds),
            port_mappings=[ecs.PortMapping(container_port=sizing.container_port, name="http")],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="service",
                log_group=self.log_group,
                # A slow log pipe must never stall request handling.
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
            environment={
                "ENVIRONMENT": config.name,
                "APP_VERSION": app_version,
                "ENV_COLOR": config.color,
                "PORT": str(sizing.container_port),
                "WORKERS": str(sizing.workers),
                "SHUTDOWN_TIMEOUT_SECONDS": str(deployment.shutdown_timeout_seconds),
                "DB_NAME": database.database_name,
                "DB_SECRET_ARN": database.secret.secret_arn,
                "METRICS_NAMESPACE": metrics_namespace(app_config),
                "AWS_EMF_ENVIRONMENT": "Local",
            },
            secrets=secret_env,
        )
        # The service re-reads the rotated database secret at run time, so the task role reads it, not only ECS.
        db_secret.grant_read(self.task_definition.task_role)
        decrypt_via_secrets_manager = iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"}},
        )
        self.task_definition.add_to_task_role_policy(decrypt_via_secrets_manager)
        self.task_definition.add_to_execution_role_policy(decrypt_via_secrets_manager)
        for key_arn, secret_region in secrets.shared_keys:
            self.task_definition.add_to_execution_role_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{secret_region}.amazonaws.com"}},
                )
            )

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Service tasks: container port from the ALB only",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs (ECR layers via the S3 gateway endpoint)"
        )
        # Imported so the ingress rule lives in this stack: the stateful stack must not depend on the stateless one.
        database_sg = ec2.SecurityGroup.from_security_group_id(
            self, "DatabaseSecurityGroup", database.security_group.security_group_id, allow_all_outbound=False
        )
        database_sg.add_ingress_rule(self.security_group, ec2.Port.tcp(5432), "PostgreSQL from the service")
        self.security_group.add_egress_rule(database_sg, ec2.Port.tcp(5432), "PostgreSQL to the database")
        strategy = ecs.DeploymentStrategy[deployment.strategy]
        traffic_shift = (
            ecs.TrafficShiftConfig(
                step_percent=deployment.canary_percent if deployment.strategy == "CANARY" else deployment.linear_step_percent,
                # Traffic stays at each step until the slowest deployment alarm could have decided.
                step_bake_time=Duration.minutes(
                    max(deployment.step_bake_minutes, int(minimum_step_bake(config).to_minutes()))
                ),
            )
            if deployment.strategy in ("CANARY", "LINEAR")
            else None
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            assign_public_ip=False,
            min_healthy_percent=deployment.min_healthy_percent,
            max_healthy_percent=deployment.max_percent,
            health_check_grace_period=Duration.seconds(deployment.health_check_grace_seconds),
            deployment_controller=ecs.DeploymentController(type=ecs.DeploymentControllerType.ECS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            deployment_alarms=ecs.DeploymentAlarmConfig(
                alarm_names=[alarm_name(app_config, config, kind) for kind in DEPLOYMENT_ALARMS],
                behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM,
            ),
            deployment_strategy=strategy,
            bake_time=Duration.minutes(deployment.bake_minutes) if deployment.strategy != "ROLLING" else None,
            canary_configuration=traffic_shift if deployment.strategy == "CANARY" else None,
            linear_configuration=traffic_shift if deployment.strategy == "LINEAR" else None,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
            enable_ecs_managed_tags=True,
            availability_zone_rebalancing=ecs.AvailabilityZoneRebalancing.ENABLED,
        )
        load_balancer.security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(sizing.container_port), "ALB to the service's container port"
        )
        self.security_group.add_ingress_rule(
            load_balancer.security_group, ec2.Port.tcp(sizing.container_port), "Container port from the ALB"
        )
        self.target_groups = [self._target_group("Blue", config, vpc)]
        if deployment.strategy != "ROLLING":
            # ECS shifts traffic by rewriting the weights of a forward action that holds both groups.
            self.target_groups.append(self._target_group("Green", config, vpc))
        production_rule = self._forward_rule("Production", load_balancer.listener)
        if deployment.strategy == "ROLLING":
            self.service.attach_to_application_target_group(self.target_groups[0])
            self.test_listener_rule = None
        else:
            assert load_balancer.test_listener is not None
            self.test_listener_rule = self._forward_rule("Test", load_balancer.test_listener)
            target = self.service.load_balancer_target(
                container_name=CONTAINER_NAME,
                container_port=sizing.container_port,
                alternate_target=ecs.AlternateTarget(
                    "Alternate",
                    alternate_target_group=self.target_groups[1],
                    production_listener=ecs.ListenerRuleConfiguration.application_listener_rule(production_rule),
                    test_listener=ecs.ListenerRuleConfiguration.application_listener_rule(self.test_listener_rule),
                ),
            )
            target.attach_to_application_target_group(self.target_groups[0])
        self._production_rule = production_rule

        scaling = self.service.auto_scale_task_count(min_capacity=sizing.min_tasks, max_capacity=sizing.max_tasks)
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=sizing.cpu_target_percent,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        self._scale_on_requests(scaling, sizing.requests_per_target)
        acknowledge(
            self.task_definition,
            {
                "AwsSolutions-ECS2": (
                    "Environment variables hold only non-secret settings and the secret's ARN; secret values are "
                    "injected from Secrets Manager or read at run time"
                ),
            },
        )

    def _scale_on_requests(self, scaling: ecs.ScalableTaskCount, requests_per_target: int) -> None:
        """One target-tracking policy on requests per target summed over the target groups (metric math).

        With one policy per group, the group without tasks publishes no datapoints after a blue/green swap, and
        target tracking scales in only when every policy agrees, so it never would. FILL makes the idle group 0.
        """
        scaling.scale_to_track_custom_metric(
            "Requests",
            metric=self.target_groups[0].metrics.request_count_per_target(period=Duration.minutes(1), statistic="Sum"),
            target_value=requests_per_target,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        queries: list[dict[str, object]] = []
        for index, group in enumerate(self.target_groups):
            metric = group.metrics.request_count_per_target(period=Duration.minutes(1), statistic="Sum")
            stat = metric.to_metric_config().metric_stat
            assert stat is not None
            queries.append(
                {
                    "Id": f"requests{index}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": stat.namespace,
                            "MetricName": stat.metric_name,
                            "Dimensions": [{"Name": d.name, "Value": d.value} for d in stat.dimensions or []],
                        },
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                }
            )
        queries.append(
            {
                "Id": "requestsPerTarget",
                "Expression": " + ".join(f"FILL({q['Id']}, 0)" for q in queries),
                "Label": "Requests per target, all target groups",
                "ReturnData": True,
            }
        )
        (resource,) = [
            n for n in scaling.node.find_all() if isinstance(n, CfnResource) and n.node.path.endswith("/Requests/Resource")
        ]
        spec = "TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification"
        for key in ("Dimensions", "MetricName", "Namespace", "Statistic", "Unit"):
            resource.add_property_deletion_override(f"{spec}.{key}")
        resource.add_property_override(f"{spec}.Metrics", queries)

    def _task_role(self, id_: str, app_config: AppConfig, config: EnvironmentConfig, kind: str) -> iam.Role:
        # Fixed names: the secrets' resource policies (stateful stack) and shared secrets' owners admit them by ARN.
        # The trust stays as CDK's default: ECS documents no source-ARN condition for the task execution role.
        return iam.Role(
            self,
            id_,
            role_name=role_name(app_config, config, kind),
            description=f"{config.name}: ECS {kind.replace('-', ' ')} role of the web service",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        )

    def acknowledge_generated(self) -> None:
        acknowledge_wildcards(
            self,
            [
                (r"^Resource::\*$", "ecr:GetAuthorizationToken has no resource-level permissions (execution role)"),
            ],
        )
        if len(self.target_groups) > 1:
            acknowledge(
                self.service,
                {
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers]": (
                        "AWS-maintained policy ECS needs to shift listener rules during blue/green; scoped by AWS to load balancer actions"
                    ),
                },
            )

    def _target_group(self, id_: str, config: EnvironmentConfig, vpc: ec2.IVpc) -> elbv2.ApplicationTargetGroup:
        deployment = config.deployment
        return elbv2.ApplicationTargetGroup(
            self,
            id_,
            vpc=vpc,
            port=config.service.container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(deployment.deregistration_delay_seconds),
            health_check=elbv2.HealthCheck(
                path="/healthz",
                interval=Duration.seconds(deployment.health_check_interval_seconds),
                timeout=Duration.seconds(max(2, deployment.health_check_interval_seconds - 1)),
                healthy_threshold_count=deployment.healthy_threshold,
                unhealthy_threshold_count=deployment.unhealthy_threshold,
                healthy_http_codes="200",
            ),
        )

    def _forward_rule(self, id_: str, listener: elbv2.IApplicationListener) -> elbv2.ApplicationListenerRule:
        groups = [elbv2.WeightedTargetGroup(target_group=self.target_groups[0], weight=100)]
        if len(self.target_groups) > 1:
            groups.append(elbv2.WeightedTargetGroup(target_group=self.target_groups[1], weight=0))
        return elbv2.ApplicationListenerRule(
            self,
            f"{id_}Rule",
            listener=listener,
            priority=1,
            conditions=[elbv2.ListenerCondition.path_patterns(["/*"])],
            action=elbv2.ListenerAction.weighted_forward(groups),
        )

    def add_lifecycle_hook(self, function: lambda_.Function) -> None:
        # Our own role (not the one ECS's hook target would create lazily) so it is tagged like everything else.
        role = iam.Role(self, "SmokeTestHookRole", assumed_by=iam.ServicePrincipal("ecs.amazonaws.com"))
        function.grant_invoke(role)
        stack = Stack.of(self)
        logical_id = stack.resolve(stack.get_logical_id(function.node.default_child))
        acknowledge(
            role,
            {f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]": "ECS invokes versions of the smoke-test hook function"},
        )
        self.service.add_lifecycle_hook(
            ecs.DeploymentLifecycleLambdaTarget(
                function,
                "SmokeTestHook",
                lifecycle_stages=[ecs.DeploymentLifecycleStage.POST_TEST_TRAFFIC_SHIFT],
                role=role,
            )
        )
