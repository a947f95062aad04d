from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

import app as app_module
from config import load_config
from stages.regions import has_cloudfront
from stages.service_stage import ServiceStage
from tests.infra.configured import environment_names, shifts_traffic, stack_path, stage_id
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()
CERTIFICATE_ID = "certificate/11111111-2222-3333-4444-555555555555"


def alb_certificate(config, env: str) -> str:
    # An ALB's certificate is in ACM of the environment's own account and region.
    environment = config.environment(env)
    return f"arn:aws:acm:{environment.region}:{environment.account}:{CERTIFICATE_ID}"


@pytest.mark.parametrize("env", ENVS)
def test_secrets_deny_other_accounts_and_readers_outside_the_expected_roles(templates, config, env):
    template = templates[stack_path(config, env, "Stateful")]
    policies = {k: v["Properties"] for k, v in resources_of(template, "AWS::SecretsManager::ResourcePolicy").items()}
    assert len(policies) == 2
    prefix = f"{config.project}-{config.service_name}-{env}"
    for policy in policies.values():
        assert policy["BlockPublicPolicy"] is True
        statements = {s.get("Sid"): s for s in policy["ResourcePolicy"]["Statement"]}
        assert statements["DenyOtherAccounts"]["Effect"] == "Deny"
        assert statements["DenyOtherAccounts"]["Condition"] == {"StringNotEquals": {"aws:PrincipalAccount": config.environment(env).account}}
        readers = statements["DenyReadersOutsideTheExpectedRoles"]
        assert readers["Effect"] == "Deny" and readers["Action"] == "secretsmanager:GetSecretValue"
    database = next(p for k, p in policies.items() if k.startswith("DatabaseInstanceSecretAttachmentPolicy"))
    allowed = json.dumps(database["ResourcePolicy"])
    assert f"role/{prefix}-task\"" in allowed and "task-execution" not in allowed
    signing = next(p for k, p in policies.items() if k.startswith("SecretsSigningKeyPolicy"))
    allowed = json.dumps(signing["ResourcePolicy"])
    assert f"role/{prefix}-task-execution\"" in allowed and "cfn-exec-role" not in allowed


@pytest.mark.parametrize("env", ENVS)
def test_task_roles_read_exactly_their_secrets_and_keys(template_of, env):
    template = template_of(env, "Stateless")
    policies = template.find_resources("AWS::IAM::Policy")
    task_policy = next(p for k, p in policies.items() if k.startswith("WebTaskRoleDefaultPolicy"))
    statements = task_policy["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        assert statement["Resource"] != "*", statement
    decrypt = next(s for s in statements if s["Action"] == "kms:Decrypt")
    assert "kms:ViaService" in json.dumps(decrypt["Condition"])


def test_a_public_alb_chosen_in_config_gives_https_with_a_modern_policy_and_a_redirect(context, config):
    # ELBv2 Listener schema: HTTPS with an ACM certificate and a TLS 1.3 policy; port 80 only redirects.
    env = config.environments[0].name
    CERTIFICATE = alb_certificate(config, env)
    overrides = {
        **context,
        f"delivery.environments.{env}.tls": json.dumps({"domain_name": f"{env}.example.com", "certificate_arn": CERTIFICATE, "terminate": "alb"}),
    }
    config = load_config(overrides, {})
    app = cdk.App(context=context)
    stage = ServiceStage(app, stage_id(env), app_config=config, config=config.environment(env))
    template = Template.from_stack(stage.stateless)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": CERTIFICATE}],
            "SslPolicy": Match.string_like_regexp("TLS13"),
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [Match.object_like({"Type": "redirect", "RedirectConfig": Match.object_like({"Protocol": "HTTPS", "Port": "443"})})],
        },
    )
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internet-facing"})
    template.resource_count_is("AWS::CloudFront::Distribution", 0)
    outputs = template.find_outputs("ServiceUrl")
    assert next(iter(outputs.values()))["Value"] == f"https://{env}.example.com"


def test_a_public_alb_passes_cdk_nag(context, config, tmp_path):
    env = config.environments[0].name
    tls = {"domain_name": f"{env}.example.com", "certificate_arn": alb_certificate(config, env), "terminate": "alb"}
    config = load_config({**context, f"delivery.environments.{env}.tls": json.dumps(tls)}, {})
    app = cdk.App(context=context, outdir=str(tmp_path))
    app_module.register_compliance(app)
    ServiceStage(app, stage_id(env), app_config=config, config=config.environment(env))
    app.synth()  # raises ValidationFailed on any unacknowledged finding


@pytest.mark.parametrize("env", ENVS)
def test_by_default_no_listener_serves_plain_http_to_the_internet(template_of, config, env):
    # ELBv2 LoadBalancer schema: an internal scheme has no public address; viewers reach it only via CloudFront.
    cfg = config.environment(env)
    template = template_of(env, "Stateless")
    listeners = template.find_resources("AWS::ElasticLoadBalancingV2::Listener")
    # A traffic-shifting deployment adds the internal test listener on 9000 (tests/infra/test_edge.py).
    test_port = {9000} if shifts_traffic(cfg) else set()
    if not has_cloudfront(cfg):
        # tls.terminate "alb": HTTPS, and port 80 only redirecting (the test above).
        template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internet-facing"})
        assert {l["Properties"]["Port"] for l in listeners.values()} == {80, 443} | test_port
        return
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"})
    assert {l["Properties"]["Port"] for l in listeners.values()} == {80} | test_port
