"""CloudFront in front of an internal ALB: HTTPS for viewers, nothing public on the load balancer."""

from __future__ import annotations

import json

import pytest

from stages.regions import has_cloudfront
from tests.infra.configured import environment_names, environments_with, shifts_traffic, stack_path
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()
# Every environment but one whose tls.terminate is "alb" (a public load balancer, tests/infra/test_security.py).
FRONTED = environments_with("CloudFront in front (tls.terminate cloudfront or no tls)", has_cloudfront)
# AWS managed policy ids, from the CloudFront Developer Guide ("Use managed cache policies", "Use managed origin
# request policies"): CachingDisabled, and AllViewerExceptHostHeader (every viewer header, query string and cookie).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
# Methods CloudFront never caches (CloudFront Developer Guide, "Allowed HTTP methods": only GET and HEAD responses
# are cached, OPTIONS optionally).
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def stateless(templates, config, env):
    return templates[stack_path(config, env, "Stateless")]


def distribution_config(template):
    (distribution,) = resources_of(template, "AWS::CloudFront::Distribution").values()
    return distribution["Properties"]["DistributionConfig"]


def behaviours(template):
    config = distribution_config(template)
    return [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]


@pytest.mark.parametrize("env", ENVS)
def test_the_load_balancer_is_internal_in_private_subnets(templates, config, env):
    # ELBv2 LoadBalancer resource schema: Scheme "internal" gets only private addresses.
    template = stateless(templates, config, env)
    (alb,) = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    subnets = json.dumps(alb["Properties"]["Subnets"])
    if not has_cloudfront(config.environment(env)):
        # tls.terminate "alb": the load balancer itself faces viewers.
        assert alb["Properties"]["Scheme"] == "internet-facing"
        assert "PublicSubnet" in subnets and "PrivateSubnet" not in subnets
        return
    assert alb["Properties"]["Scheme"] == "internal"
    assert "PrivateSubnet" in subnets and "PublicSubnet" not in subnets


@pytest.mark.parametrize("env", FRONTED)
def test_nothing_on_the_internet_reaches_the_load_balancer(templates, config, env):
    # EC2 security group rules: a CidrIp of 0.0.0.0/0 (or ::/0) admits the internet; only the VPC range may appear.
    template = stateless(templates, config, env)
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    alb_group = next(g["Properties"] for n, g in groups.items() if n.startswith("LoadBalancerSecurityGroup"))
    rules = alb_group.get("SecurityGroupIngress", [])
    stateful = templates[stack_path(config, env, "Stateful")]
    private = {
        s["Properties"]["CidrBlock"] for s in resources_of(stateful, "AWS::EC2::Subnet").values()
        if {"Key": "aws-cdk:subnet-name", "Value": "Private"} in s["Properties"]["Tags"]
    }
    # Only the private subnets, where the VPC origin's interfaces live beside the ALB: not the VPC's whole range.
    assert sorted((r["CidrIp"], r["FromPort"], r["ToPort"]) for r in rules) == sorted((c, 80, 80) for c in private)
    assert len(private) == len(config.environment(env).network.availability_zones)
    standalone = [
        r["Properties"] for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if "LoadBalancerSecurityGroup" in json.dumps(r["Properties"]["GroupId"])
    ]
    assert all("SourceSecurityGroupId" in r for r in standalone), standalone


@pytest.mark.parametrize("env", ENVS)
def test_the_origin_is_reachable_only_through_the_vpc_origin(templates, config, env):
    # CloudFront VpcOrigin schema: VpcOriginEndpointConfig.Arn names the load balancer; an origin using it carries
    # VpcOriginConfig instead of CustomOriginConfig (which would need a public DNS name).
    template = stateless(templates, config, env)
    if not has_cloudfront(config.environment(env)):
        assert not resources_of(template, "AWS::CloudFront::VpcOrigin")
        assert not resources_of(template, "AWS::CloudFront::Distribution")
        return
    (vpc_origin,) = resources_of(template, "AWS::CloudFront::VpcOrigin").values()
    (alb_id,) = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert vpc_origin["Properties"]["VpcOriginEndpointConfig"]["Arn"] == {"Ref": alb_id}
    (origin,) = distribution_config(template)["Origins"]
    assert "VpcOriginConfig" in origin and "CustomOriginConfig" not in origin


@pytest.mark.parametrize("env", FRONTED)
def test_every_behaviour_is_https_only_for_viewers(templates, config, env):
    # CloudFront ViewerProtocolPolicy: redirect-to-https answers plain HTTP with a 301 to HTTPS, never content.
    for behaviour in behaviours(stateless(templates, config, env)):
        assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"


@pytest.mark.parametrize("env", FRONTED)
def test_api_responses_are_not_cached_and_writes_pass_through(templates, config, env):
    # CloudFront managed policies (Developer Guide): CachingDisabled has TTL 0, so nothing under /api/* is stored.
    template = stateless(templates, config, env)
    api = next(b for b in distribution_config(template)["CacheBehaviors"] if b["PathPattern"] == "/api/*")
    assert api["CachePolicyId"] == CACHING_DISABLED
    assert WRITES <= set(api["AllowedMethods"])
    assert api["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER


@pytest.mark.parametrize("env", FRONTED)
def test_the_html_page_gets_the_viewers_accept_header_uncached(templates, config, env):
    # GET / picks HTML or JSON by Accept: the default behaviour must forward it and must not cache one for the other.
    default = distribution_config(stateless(templates, config, env))["DefaultCacheBehavior"]
    assert default["CachePolicyId"] == CACHING_DISABLED
    assert default["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER


@pytest.mark.parametrize("env", FRONTED)
def test_the_service_url_and_smoke_test_point_at_the_distribution(templates, config, env):
    # AWS::CloudFront::Distribution return values: DomainName is the *.cloudfront.net name its default certificate covers.
    template = stateless(templates, config, env)
    (distribution_id,) = resources_of(template, "AWS::CloudFront::Distribution")
    url = template["Outputs"]["ServiceUrl"]["Value"]
    assert url == {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]}


@pytest.mark.parametrize("env", FRONTED)
def test_cloudfront_writes_standard_logs(templates, config, env):
    # CloudFront standard logging (legacy) writes with an ACL grant: the bucket must not enforce bucket-owner ownership.
    template = stateless(templates, config, env)
    logging = distribution_config(template)["Logging"]
    bucket_id = logging["Bucket"]["Fn::GetAtt"][0]
    bucket = template["Resources"][bucket_id]["Properties"]
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "ObjectWriter"}]
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True


@pytest.mark.parametrize("env", ENVS)
def test_the_test_listener_is_internal_and_admits_only_the_hook(templates, config, env):
    # ECS blue/green: the test listener rule is reached by the lifecycle hook from inside the VPC, no NAT addresses.
    cfg = config.environment(env)
    template = stateless(templates, config, env)
    groups = resources_of(template, "AWS::EC2::SecurityGroup")
    alb_group = next(g["Properties"] for n, g in groups.items() if n.startswith("LoadBalancerSecurityGroup"))
    from_nat = [r for r in alb_group.get("SecurityGroupIngress", []) if r["FromPort"] == 9000]
    rules = [
        r["Properties"] for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] == 9000
    ]
    if not shifts_traffic(cfg):
        # A rolling deployment has no test listener and no hook.
        assert from_nat == [] and rules == [] and not any(n.startswith("DeploymentHook") for n in groups)
        return
    hook_group = next(g["Properties"] for n, g in groups.items() if n.startswith("DeploymentHookSmokeTestSecurityGroup"))
    if not has_cloudfront(cfg):
        # tls.terminate "alb": the hook reaches the public ALB through the NAT gateways, whose addresses alone
        # (one /32 each) are admitted; its own egress to port 9000 is all it may send.
        assert rules == [] and len(from_nat) == cfg.network.nat_gateways
        assert all(r["CidrIp"]["Fn::Join"][1][-1] == "/32" for r in from_nat)
        assert {r["FromPort"] for r in hook_group.get("SecurityGroupEgress", [])} == {9000}
        return
    assert from_nat == []
    (rule,) = rules
    assert rule["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("DeploymentHookSmokeTestSecurityGroup")
    assert all(r.get("CidrIp") != "0.0.0.0/0" for r in hook_group.get("SecurityGroupEgress", []))


@pytest.mark.parametrize("env", ENVS)
def test_waf_keeps_its_managed_rule_groups_on_the_alb_where_configured(templates, config, env):
    # WAFv2 REGIONAL web ACLs associate with ALBs in the same region (CLOUDFRONT scope would need us-east-1).
    template = stateless(templates, config, env)
    if not config.environment(env).waf:
        assert not resources_of(template, "AWS::WAFv2::WebACL")
        assert not resources_of(template, "AWS::WAFv2::WebACLAssociation")
        return
    (acl,) = resources_of(template, "AWS::WAFv2::WebACL").values()
    assert acl["Properties"]["Scope"] == "REGIONAL"
    assert {r["Statement"]["ManagedRuleGroupStatement"]["Name"] for r in acl["Properties"]["Rules"]} == {
        "AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesAmazonIpReputationList",
    }
    (association,) = resources_of(template, "AWS::WAFv2::WebACLAssociation").values()
    (alb_id,) = resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["Properties"]["ResourceArn"] == {"Ref": alb_id}
