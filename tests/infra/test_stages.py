from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from stages.naming import DEPLOYMENT_ALARMS, alarm_name
from stages.regions import has_cloudfront
from tests.infra.configured import environment_names, shifts_traffic, stack_path
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()


def stateful(templates, config, env):
    return templates[stack_path(config, env, "Stateful")]


def stateless(templates, config, env):
    return templates[stack_path(config, env, "Stateless")]


@pytest.mark.parametrize("env", ENVS)
def test_network_spans_the_configured_azs_with_three_tiers(templates, config, env):
    cfg = config.environment(env)
    template = stateful(templates, config, env)
    subnets = resources_of(template, "AWS::EC2::Subnet").values()
    azs = {s["Properties"]["AvailabilityZone"] for s in subnets}
    assert azs == set(cfg.network.availability_zones)
    tiers = {
        next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-name") for s in subnets
    }
    assert tiers == {"Public", "Private", "Isolated"}
    assert len(resources_of(template, "AWS::EC2::NatGateway")) == cfg.network.nat_gateways
    assert len(resources_of(template, "AWS::EC2::FlowLog")) == 1
    endpoints = [e["Properties"] for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()]
    # S3 gateway, and with interface endpoints ECR API, ECR Docker, Logs, Secrets Manager
    assert len(endpoints) == 1 + 4 * cfg.network.interface_endpoints


@pytest.mark.parametrize("env", ENVS)
def test_database_is_postgres_18_private_encrypted_and_sized_from_config(templates, config, env, template_of):
    cfg = config.environment(env).database
    template = template_of(env, "Stateful")
    template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "EngineVersion": cfg.engine_version,
            "DBInstanceClass": f"db.{cfg.instance_class}",
            "MultiAZ": cfg.multi_az,
            "DeletionProtection": cfg.deletion_protection,
            "StorageEncrypted": True,
            "KmsKeyId": Match.any_value(),
            "PubliclyAccessible": False,
            "EnableIAMDatabaseAuthentication": True,
            "BackupRetentionPeriod": cfg.backup_retention_days,
            "MaxAllocatedStorage": cfg.max_allocated_storage_gib,
            "EnableCloudwatchLogsExports": ["postgresql", "upgrade"],
        },
    )
    template.has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Parameters": Match.object_like({"rds.force_ssl": "1"})}
    )
    (instance,) = resources_of(stateful(templates, config, env), "AWS::RDS::DBInstance").values()
    expected_policy = "Snapshot" if config.environment(env).retain_data else "Delete"
    assert instance["DeletionPolicy"] == expected_policy
    template.has_resource_properties(
        "AWS::SecretsManager::RotationSchedule",
        {"RotationRules": {"ScheduleExpression": f"rate({cfg.rotation_days} days)"}},
    )
    # Host and port land in the secret through the attachment, not by copying.
    template.resource_count_is("AWS::SecretsManager::SecretTargetAttachment", 1)


def test_the_examples_prod_is_multi_az_with_deletion_protection_and_dev_is_not(example_config):
    # The example's values (a fork chooses its own; the database test above holds any config to its template).
    prod = example_config.environment("prod")
    assert prod.database.multi_az and prod.database.deletion_protection and prod.retain_data
    assert not example_config.environment("dev").database.multi_az


@pytest.mark.parametrize("env", ENVS)
def test_service_rolls_back_on_circuit_breaker_and_on_alarms_that_exist_here(templates, config, env, template_of):
    cfg = config.environment(env)
    template = stateless(templates, config, env)
    (service,) = resources_of(template, "AWS::ECS::Service").values()
    props = service["Properties"]
    deployment = props["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    names = [alarm_name(config, cfg, kind) for kind in DEPLOYMENT_ALARMS]
    assert deployment["Alarms"] == {"AlarmNames": names, "Enable": True, "Rollback": True}
    declared = {a["Properties"].get("AlarmName") for a in resources_of(template, "AWS::CloudWatch::Alarm").values()}
    assert set(names) <= declared
    assert props["DeploymentController"] == {"Type": "ECS"}
    assert deployment["MinimumHealthyPercent"] == cfg.deployment.min_healthy_percent
    assert props["HealthCheckGracePeriodSeconds"] == cfg.deployment.health_check_grace_seconds
    app_alarm = next(
        a["Properties"] for a in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("AlarmName") == alarm_name(config, cfg, "app-server-errors")
    )
    assert app_alarm["Period"] == 10 and app_alarm["MetricName"] == "ServerErrors"


@pytest.mark.parametrize("env", ENVS)
def test_a_shifting_strategy_shifts_traffic_with_bake_time_and_a_smoke_test_hook_and_rolling_does_not(
    templates, config, env
):
    cfg = config.environment(env).deployment
    template = stateless(templates, config, env)
    (service,) = resources_of(template, "AWS::ECS::Service").values()
    deployment = service["Properties"]["DeploymentConfiguration"]
    listeners = [l["Properties"] for l in resources_of(template, "AWS::ElasticLoadBalancingV2::Listener").values()]
    if cfg.strategy == "ROLLING":
        assert deployment.get("Strategy", "ROLLING") == "ROLLING"
        assert not {"BakeTimeInMinutes", "CanaryConfiguration", "LinearConfiguration", "LifecycleHooks"} & set(deployment)
        assert "AdvancedConfiguration" not in service["Properties"]["LoadBalancers"][0]
        assert all(l["Port"] != 9000 for l in listeners)
        return
    assert deployment["Strategy"] == cfg.strategy
    assert deployment["BakeTimeInMinutes"] == cfg.bake_minutes
    if cfg.strategy == "CANARY":
        assert deployment["CanaryConfiguration"]["CanaryPercent"] == cfg.canary_percent
    if cfg.strategy == "LINEAR":
        assert deployment["LinearConfiguration"]["StepPercent"] == cfg.linear_step_percent
    (hook,) = deployment["LifecycleHooks"]
    assert hook["LifecycleStages"] == ["POST_TEST_TRAFFIC_SHIFT"]
    advanced = service["Properties"]["LoadBalancers"][0]["AdvancedConfiguration"]
    assert {"AlternateTargetGroupArn", "ProductionListenerRule", "TestListenerRule", "RoleArn"} <= set(advanced)
    test_listener = next(l for l in listeners if l["Port"] == 9000)
    assert test_listener["Protocol"] == "HTTP"


def test_the_examples_prod_shifts_by_canary_and_dev_and_staging_roll(example_config):
    # The example's values; the test above holds any config's strategies to their templates.
    assert [e.deployment.strategy for e in example_config.environments] == ["ROLLING", "ROLLING", "CANARY"]
    assert [shifts_traffic(e) for e in example_config.environments] == [False, False, True]


@pytest.mark.parametrize("env", ENVS)
def test_fast_rolling_settings_come_from_config(templates, config, env):
    cfg = config.environment(env).deployment
    template = stateless(templates, config, env)
    for group in resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
        props = group["Properties"]
        assert props["HealthCheckPath"] == "/healthz"
        assert props["HealthCheckIntervalSeconds"] == cfg.health_check_interval_seconds
        assert props["HealthyThresholdCount"] == cfg.healthy_threshold
        assert {"Key": "deregistration_delay.timeout_seconds", "Value": str(cfg.deregistration_delay_seconds)} in props["TargetGroupAttributes"]
    (task,) = resources_of(template, "AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert container["StopTimeout"] == cfg.stop_timeout_seconds
    env_vars = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env_vars["SHUTDOWN_TIMEOUT_SECONDS"] == str(cfg.shutdown_timeout_seconds)
    assert env_vars["ENVIRONMENT"] == env and env_vars["ENV_COLOR"] == config.environment(env).color
    assert container["ReadonlyRootFilesystem"] is True
    assert {s["Name"] for s in container["Secrets"]} == {"APP_SECRET", "THIRD_PARTY_API_KEY"}


@pytest.mark.parametrize("env", ENVS)
def test_scaling_tracks_cpu_and_requests_within_configured_bounds(templates, config, env, template_of):
    cfg = config.environment(env).service
    template = template_of(env, "Stateless")
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": cfg.min_tasks, "MaxCapacity": cfg.max_tasks}
    )
    policies = resources_of(stateless(templates, config, env), "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    kinds = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        .get("PredefinedMetricSpecification", {"PredefinedMetricType": "requests (metric math)"})["PredefinedMetricType"]
        for p in policies
    )
    assert kinds == ["ECSServiceAverageCPUUtilization", "requests (metric math)"]


@pytest.mark.parametrize("env", ENVS)
def test_every_log_group_has_retention_and_the_environment_key(templates, config, env):
    retention = config.environment(env).log_retention_days
    for kind in ("Stateful", "Stateless"):
        template = templates[stack_path(config, env, kind)]
        for name, group in resources_of(template, "AWS::Logs::LogGroup").items():
            assert group["Properties"]["RetentionInDays"] == retention, name
            assert "KmsKeyId" in group["Properties"], name


@pytest.mark.parametrize("env", ENVS)
def test_security_groups_chain_cloudfront_alb_service_database(templates, config, env):
    template = stateless(templates, config, env)
    ingress = list(resources_of(template, "AWS::EC2::SecurityGroupIngress").values())
    database_rules = [r["Properties"] for r in ingress if r["Properties"].get("FromPort") == 5432]
    assert len(database_rules) == 1 and "SourceSecurityGroupId" in database_rules[0]
    container_port = config.environment(env).service.container_port
    service_rules = [r["Properties"] for r in ingress if r["Properties"].get("FromPort") == container_port]
    assert len(service_rules) == 1 and "SourceSecurityGroupId" in service_rules[0]
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    alb_group = next(g["Properties"] for n, g in groups.items() if n.startswith("LoadBalancerSecurityGroup"))
    public = [r for r in alb_group.get("SecurityGroupIngress", []) if r.get("CidrIp") == "0.0.0.0/0"]
    if has_cloudfront(config.environment(env)):
        # The CloudFront VPC origin's interfaces live in the VPC: its range, not the internet, reaches the listener.
        assert public == []
        assert {r["FromPort"] for r in alb_group["SecurityGroupIngress"]} == {80}
    else:
        # tls.terminate "alb": a public load balancer, HTTPS and the redirect on port 80 (tests/infra/test_security.py).
        assert {r["FromPort"] for r in public} == {80, 443}


def test_waf_and_alb_deletion_protection_only_where_configured(templates, config):
    for cfg in config.environments:
        template = stateless(templates, config, cfg.name)
        assert bool(resources_of(template, "AWS::WAFv2::WebACLAssociation")) == cfg.waf
        assert bool(resources_of(template, "AWS::WAFv2::WebACL")) == cfg.waf
        (alb,) = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
        attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
        assert attributes["deletion_protection.enabled"] == str(cfg.alb_deletion_protection).lower()
        assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
        assert attributes["access_logs.s3.enabled"] == "true"


@pytest.mark.parametrize("env", ENVS)
def test_deployment_failures_and_rollbacks_are_notified(templates, config, env):
    template = stateless(templates, config, env)
    rules = [r["Properties"] for r in resources_of(template, "AWS::Events::Rule").values()]
    ecs_rule = next(r for r in rules if r.get("EventPattern", {}).get("source") == ["aws.ecs"])
    assert ecs_rule["Targets"]
    topics = resources_of(template, "AWS::SNS::Topic")
    assert all("KmsMasterKeyId" in t["Properties"] for t in topics.values()) and len(topics) == 2
