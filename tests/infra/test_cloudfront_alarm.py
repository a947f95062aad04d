"""The CloudFront 5xx-rate alarm: in us-east-1 (CloudFront's metrics are only there), on the environment's own
distribution through CDK's cross-region reference, guarded against low traffic, paging the environment's
escalation endpoints from a us-east-1 topic; inside the composite when the environment itself is in us-east-1."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

import app as app_module
from config import AppConfig, ConfigError, EnvironmentConfig, load_config
from stages.naming import alarm_name, cloudfront_paging_topic_name
from stages.regions import separate_cloudfront_alarm
from stages.service_stage import ServiceStage
from tests.infra.cfn_model import Assembly
from tests.infra.configured import environment_names, environments_with, stage_id
from tests.infra.conftest import resources_of
from tests.infra.metric_math import evaluate, metric_stats

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()
# The environments whose CloudFront alarm lives in its own us-east-1 stack (prod in the example).
ALARMED = environments_with("a CloudFront 5xx alarm outside us-east-1", separate_cloudfront_alarm)
# CloudFront Developer Guide, "Monitoring CloudFront metrics": AWS/CloudFront in us-east-1, Region=Global.
CLOUDFRONT_REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
PAGER = "https://pager.example.com/hook"


def forwarder(env: EnvironmentConfig, region: str | None = None) -> str:
    """A chat-forwarder Lambda function of the environment's account (config wants it in the environment's region)."""
    return f"arn:aws:lambda:{region or env.region}:{env.account}:function:chat-forwarder"


@pytest.fixture(scope="module")
def assembly(assembly_dir: Path) -> Assembly:
    return Assembly.load(assembly_dir)


def stack_name(config: AppConfig, env: str, kind: str) -> str:
    return f"{config.project}-{config.service_name}-{env}-{kind}"


def only(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (item,) = resources.items()
    return item


def test_the_examples_prod_pages_on_cloudfront_5xx_and_dev_and_staging_do_not(example_config):
    # The example: only prod sets alarms.cloudfront_5xx_rate_percent; prod is in eu-west-1, so its alarm is separate.
    assert [e.name for e in example_config.environments if separate_cloudfront_alarm(e)] == ["prod"]


@pytest.mark.parametrize("env", ENVS)
def test_the_alarm_stack_is_in_us_east_1_of_the_environments_account(assembly, config, env):
    cfg = config.environment(env)
    stack = assembly.stacks.get(stack_name(config, env, "cloudfront-alarm"))
    if not separate_cloudfront_alarm(cfg):
        assert stack is None
        return
    assert (stack.account, stack.region) == (cfg.account, CLOUDFRONT_REGION)
    # The Stateless stack in the environment's region carries no CloudFront alarm: it could not evaluate it there.
    stateless = assembly.stacks[stack_name(config, env, "stateless")]
    names = [a["Properties"].get("AlarmName") for a in resources_of(stateless.template, "AWS::CloudWatch::Alarm").values()]
    assert alarm_name(config, cfg, "cloudfront-5xx-rate") not in names


def edge_alarm(assembly, config, env: str) -> tuple[Any, dict[str, Any]]:
    stack = assembly.stacks[stack_name(config, env, "cloudfront-alarm")]
    _, alarm = only(resources_of(stack.template, "AWS::CloudWatch::Alarm"))
    return stack, alarm["Properties"]


@pytest.mark.parametrize("env", ALARMED)
def test_the_alarm_watches_the_environments_own_distribution_through_the_cross_region_reference(assembly, config, env):
    stack, props = edge_alarm(assembly, config, env)
    stats = metric_stats(props["Metrics"])
    assert {s["name"] for s in stats.values()} == {"5xxErrorRate", "Requests"}
    dimensions = [s["dimensions"] for s in stats.values()]
    assert all(d["Region"] == "Global" for d in dimensions)
    (distribution_id,) = {json.dumps(d["DistributionId"]) for d in dimensions}
    # Consumer: the reader custom resource's attribute, named after the SSM parameter it reads in us-east-1.
    reader_id, parameter = json.loads(distribution_id)["Fn::GetAtt"]
    reader = stack.resources[reader_id]
    assert reader["Type"] == "Custom::CrossRegionExportReader"
    assert reader["Properties"]["ReaderProps"]["region"] == CLOUDFRONT_REGION
    assert reader["Properties"]["ReaderProps"]["imports"][parameter] == f"{{{{resolve:ssm:{parameter}}}}}"
    assert parameter.startswith(f"/cdk/exports/{stack.name}/")
    # Producer: the writer custom resource in the Stateless stack puts the distribution's Ref into that parameter.
    stateless = assembly.stacks[stack_name(config, env, "stateless")]
    _, writer = only(resources_of(stateless.template, "Custom::CrossRegionExportWriter"))
    assert writer["Properties"]["WriterProps"]["region"] == CLOUDFRONT_REGION
    distribution, _ = only(resources_of(stateless.template, "AWS::CloudFront::Distribution"))
    assert writer["Properties"]["WriterProps"]["exports"][parameter] == {"Ref": distribution}


@pytest.mark.parametrize("env", ALARMED)
def test_one_failed_request_of_two_does_not_page_but_a_real_error_rate_does(assembly, config, env):
    # 5xxErrorRate is a percentage of requests (CloudFront Developer Guide): tiny traffic makes huge percentages.
    _, props = edge_alarm(assembly, config, env)
    cfg = config.environment(env)
    threshold = cfg.alarms.cloudfront_5xx_rate_percent
    minimum = cfg.alarms.cloudfront_min_requests
    assert props["Threshold"] == threshold and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    ids = {s["name"]: i for i, s in metric_stats(props["Metrics"]).items()}
    rate, requests = ids["5xxErrorRate"], ids["Requests"]
    assert evaluate(props["Metrics"], {rate: 50.0, requests: 2.0}) == 0.0
    assert evaluate(props["Metrics"], {rate: 50.0, requests: float(minimum - 1)}) == 0.0
    assert evaluate(props["Metrics"], {rate: 5.0, requests: float(minimum * 10)}) == 5.0 >= threshold
    assert evaluate(props["Metrics"], {rate: threshold / 2, requests: float(minimum * 10)}) < threshold
    # No traffic at all publishes nothing: reads 0, and missing data does not breach either.
    assert evaluate(props["Metrics"], {rate: None, requests: None}) == 0.0
    assert props["TreatMissingData"] == "notBreaching"
    # One-minute CloudFront metrics, two bad minutes: the same decision time as the ALB's own 5xx rate.
    assert {q["MetricStat"]["Period"] for q in props["Metrics"] if "MetricStat" in q} == {60}
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (2, 2)
    assert props["AlarmName"] == alarm_name(config, cfg, "cloudfront-5xx-rate")


@pytest.mark.parametrize("env", ALARMED)
def test_it_pages_through_an_encrypted_tls_only_topic_in_us_east_1(assembly, config, env):
    stack, props = edge_alarm(assembly, config, env)
    topic_id, topic = only(resources_of(stack.template, "AWS::SNS::Topic"))
    assert props["AlarmActions"] == props["OKActions"] == [{"Ref": topic_id}]
    assert topic["Properties"]["TopicName"] == cloudfront_paging_topic_name(config, config.environment(env))
    key_id, key = only(resources_of(stack.template, "AWS::KMS::Key"))
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    # KMS Developer Guide, SNS encryption: CloudWatch must be allowed to use the key to publish an alarm.
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} and "kms:GenerateDataKey*" in s["Action"]
               for s in statements)
    (policy,) = resources_of(stack.template, "AWS::SNS::TopicPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("env", ALARMED)
def test_the_cross_region_reference_functions_touch_only_their_parameters(assembly, config, env):
    # What cross_region_references adds, so a new CDK version widening it shows up here.
    writer_stack = assembly.stacks[stack_name(config, env, "stateless")]
    reader_stack = assembly.stacks[stack_name(config, env, "cloudfront-alarm")]
    for stack, kind, actions, resource in (
        (writer_stack, "Writer", {"ssm:DeleteParameters", "ssm:ListTagsForResource", "ssm:GetParameters", "ssm:PutParameter"},
         f"arn:aws:ssm:{CLOUDFRONT_REGION}:{writer_stack.account}:parameter/cdk/exports/*"),
        (reader_stack, "Reader", {"ssm:AddTagsToResource", "ssm:RemoveTagsFromResource", "ssm:GetParameters"},
         f"arn:aws:ssm:{CLOUDFRONT_REGION}:{reader_stack.account}:parameter/cdk/exports/{reader_stack.name}/*"),
    ):
        roles = {k: r for k, r in resources_of(stack.template, "AWS::IAM::Role").items() if f"CrossRegionExport{kind}" in k}
        (role,) = roles.values()
        (inline,) = role["Properties"]["Policies"]
        (statement,) = inline["PolicyDocument"]["Statement"]
        assert set(statement["Action"]) == actions
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert [assembly.resolve(stack, r) for r in resources] == [resource]
        managed = [assembly.resolve(stack, m) for m in role["Properties"]["ManagedPolicyArns"]]
        assert managed == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_the_pipeline_deploys_the_distribution_before_its_alarm_in_us_east_1(pipeline_template, config):
    # CodePipeline: actions of one stage run by RunOrder; a cross-region action names its Region.
    (pipeline,) = resources_of(pipeline_template, "AWS::CodePipeline::Pipeline").values()
    for env in config.environments:
        stage = next(s for s in pipeline["Properties"]["Stages"] if s["Name"] == env.name.capitalize())
        by_name = {a["Name"].removesuffix(".Deploy"): a for a in stage["Actions"]}
        alarm = by_name.get(stack_name(config, env.name, "cloudfront-alarm"))
        assert (alarm is not None) == separate_cloudfront_alarm(env)
        if alarm is None:
            continue
        assert alarm["Region"] == CLOUDFRONT_REGION
        assert alarm["RunOrder"] > by_name[stack_name(config, env.name, "stateless")]["RunOrder"]
    # One artifact store per region the pipeline deploys to (a single-region pipeline has just ArtifactStore).
    regions = {config.pipeline.region, *(e.region for e in config.environments)}
    regions |= {CLOUDFRONT_REGION} if any(separate_cloudfront_alarm(e) for e in config.environments) else set()
    stores = pipeline["Properties"].get("ArtifactStores")
    assert ({s["Region"] for s in stores} if stores else {config.pipeline.region}) == regions
    assert (stores is None) == (len(regions) == 1)


# --- Variants synthesized here: a us-east-1 environment, escalation endpoints, cdk-nag on both ---------------------
# Both change one configured environment: one with a CloudFront alarm in its own stack (prod in the example), else
# the last one outside us-east-1, else the last.


def varied(config: AppConfig) -> EnvironmentConfig:
    elsewhere = [e for e in config.environments if e.region != CLOUDFRONT_REGION]
    return next((e for e in config.environments if separate_cloudfront_alarm(e)), (elsewhere or config.environments)[-1])


def variant(context: dict[str, Any], env: str, **overrides: Any) -> dict[str, Any]:
    """The environment with each override (`-c delivery.environments.<env>.<path>=<value>`), CloudFront in front of
    it and the alarm's threshold set."""
    found = copy.deepcopy(context)
    (raw,) = [e for e in found["delivery"]["environments"] if e["name"] == env]
    if raw.get("tls", {}).get("terminate") == "alb":
        del raw["tls"]
    raw.setdefault("alarms", {}).setdefault("cloudfront_5xx_rate_percent", 1)
    for path, value in overrides.items():
        found[f"delivery.environments.{env}.{path}"] = value if isinstance(value, str) else json.dumps(value)
    return found


def moved(env: EnvironmentConfig, region: str) -> dict[str, Any]:
    """Overrides that put the environment in another region, with as many of its availability zones as it has."""
    zones = [f"{region}{letter}" for letter in "abc"[: len(env.network.availability_zones)]]
    return {"region": region, "network.availability_zones": zones,
            "network.nat_gateways": str(min(env.network.nat_gateways, len(zones))),
            "notifications.critical_endpoints": [e for e in env.notifications.critical_endpoints if not e.startswith("arn:")]}


@dataclass(frozen=True)
class Variant:
    stage: ServiceStage
    env: EnvironmentConfig


def synthesize_stage(context: dict[str, Any], env: str, outdir: Path) -> Variant:
    """The environment's Stage alone, with both cdk-nag packs: app.synth() raises on any unacknowledged finding."""
    config = load_config(context, {})
    app = cdk.App(context=context, outdir=str(outdir))
    app_module.register_compliance(app)
    stage = ServiceStage(app, stage_id(env), app_config=config, config=config.environment(env))
    app.synth()
    return Variant(stage, config.environment(env))


def cfn_lint(outdir: Path) -> list[str]:
    templates = sorted(str(p) for p in outdir.glob("**/*.template.json"))
    assert templates
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", *templates],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    return [line for line in result.stdout.splitlines() if line.strip()] + ([result.stderr[-2000:]] if result.returncode else [])


def test_cfn_lint_finds_nothing_in_either_variant(us_east_1_prod, paged_prod):
    # The default assembly is linted in tests/infra/test_compliance.py; these two synthesize other code paths.
    assert cfn_lint(Path(us_east_1_prod.stage.outdir)) == []
    assert cfn_lint(Path(paged_prod.stage.outdir)) == []


@pytest.fixture(scope="module")
def us_east_1_prod(context, config, tmp_path_factory) -> Variant:
    env = varied(config)
    return synthesize_stage(
        variant(context, env.name, **moved(env, CLOUDFRONT_REGION)), env.name, tmp_path_factory.mktemp("use1")
    )


def test_in_us_east_1_the_alarm_joins_the_composite_and_no_extra_stack_exists(us_east_1_prod, config):
    stage = us_east_1_prod.stage
    assert stage.cloudfront_alarm is None
    template = Template.from_stack(stage.stateless).to_json()
    assert not resources_of(template, "Custom::CrossRegionExportWriter")
    name = alarm_name(config, us_east_1_prod.env, "cloudfront-5xx-rate")
    (alarm_id,) = [k for k, a in resources_of(template, "AWS::CloudWatch::Alarm").items()
                   if a["Properties"]["AlarmName"] == name]
    alarm = template["Resources"][alarm_id]["Properties"]
    (composite,) = resources_of(template, "AWS::CloudWatch::CompositeAlarm").values()
    assert {"Fn::GetAtt": [alarm_id, "Arn"]} in json.loads(json.dumps(composite["Properties"]["AlarmRule"]))["Fn::Join"][1]
    # A part of the composite: it warns, the composite pages (tests/infra/test_alarm_semantics.py).
    warning = next(k for k in resources_of(template, "AWS::SNS::Topic") if k.startswith("AlertingWarning"))
    assert alarm["AlarmActions"] == [{"Ref": warning}]
    (distribution_id,) = resources_of(template, "AWS::CloudFront::Distribution")
    dimensions = [s["dimensions"] for s in metric_stats(alarm["Metrics"]).values()]
    assert all(d["DistributionId"] == {"Ref": distribution_id} for d in dimensions)


@pytest.fixture(scope="module")
def paged_prod(context, config, tmp_path_factory) -> Variant:
    env = varied(config)
    # Outside us-east-1, so that the alarm has its own stack there.
    overrides = moved(env, "eu-west-1") if env.region == CLOUDFRONT_REGION else {}
    region = overrides.get("region", env.region)
    notifications = {"emails": ["oncall@example.com"], "critical_endpoints": [PAGER, forwarder(env, region)]}
    return synthesize_stage(
        variant(context, env.name, **overrides, notifications=notifications), env.name, tmp_path_factory.mktemp("paged")
    )


def subscriptions(template: dict[str, Any], topic_id: str) -> set[tuple[str, str]]:
    return {
        (s["Properties"]["Protocol"], s["Properties"]["Endpoint"])
        for s in resources_of(template, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": topic_id}
    }


def test_the_us_east_1_topic_reaches_every_escalation_endpoint_of_the_environment(paged_prod):
    stateless = Template.from_stack(paged_prod.stage.stateless).to_json()
    edge = Template.from_stack(paged_prod.stage.cloudfront_alarm).to_json()
    critical = next(k for k in resources_of(stateless, "AWS::SNS::Topic") if k.startswith("AlertingCritical"))
    (edge_topic,) = resources_of(edge, "AWS::SNS::Topic")
    expected = {("email", "oncall@example.com"), ("https", PAGER), ("lambda", forwarder(paged_prod.env))}
    assert subscriptions(stateless, critical) == subscriptions(edge, edge_topic) == expected


def test_the_lambda_endpoint_is_granted_to_the_us_east_1_topic_in_the_functions_region(paged_prod, config):
    # Lambda AddPermission acts on functions of its own region only: the grant sits in the eu-west-1 Stateless stack,
    # naming the us-east-1 topic by its fixed name (a reference back would make the two stacks circular).
    prod = paged_prod.env
    topic_arn = f"arn:aws:sns:us-east-1:{prod.account}:{cloudfront_paging_topic_name(config, prod)}"
    stack = paged_prod.stage.stateless
    template = Template.from_stack(stack).to_json()
    granted = [
        p["Properties"] for p in resources_of(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "sns.amazonaws.com"
    ]
    sources = {json.dumps(stack.resolve(p["SourceArn"])): p["FunctionName"] for p in granted}
    edge_grant = json.dumps({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, topic_arn.removeprefix("arn:aws")]]})
    assert sources.get(edge_grant) == forwarder(prod)
    assert not resources_of(Template.from_stack(paged_prod.stage.cloudfront_alarm).to_json(), "AWS::Lambda::Permission")


def test_a_lambda_endpoint_outside_the_environments_region_is_refused(context, config):
    env = varied(config)
    elsewhere = forwarder(env, "eu-west-1" if env.region == CLOUDFRONT_REGION else CLOUDFRONT_REGION)
    with pytest.raises(ConfigError, match=f"environments.{env.name}: .*not in this environment's region {env.region}"):
        load_config(variant(context, env.name, notifications={"critical_endpoints": [elsewhere]}), {})
