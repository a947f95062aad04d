"""The tls block: a domain users type, a certificate where the chosen terminator can use it. On the example
configuration (tests/infra/example_context.json): these test the loader and the stacks, not a fork's values."""

from __future__ import annotations

import copy
import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from config import ConfigError, load_config
from stages.service_stage import ServiceStage
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
US_EAST_1 = "arn:aws:acm:us-east-1:111111111111:certificate/11111111-2222-3333-4444-555555555555"
EU_WEST_1 = "arn:aws:acm:eu-west-1:111111111111:certificate/11111111-2222-3333-4444-555555555555"


def with_tls(context, env, tls):
    return {**copy.deepcopy(context), f"delivery.environments.{env}.tls": json.dumps(tls)}


def test_a_certificate_for_cloudfront_must_be_in_us_east_1(example_context):
    # CloudFront Developer Guide, "Requirements for using SSL/TLS certificates with CloudFront": ACM in us-east-1.
    with pytest.raises(ConfigError, match="environments.prod.tls: .*eu-west-1; a certificate on CloudFront must be in us-east-1"):
        load_config(with_tls(example_context, "prod", {"domain_name": "notes.example.com", "certificate_arn": EU_WEST_1}), {})
    config = load_config(with_tls(example_context, "prod", {"domain_name": "notes.example.com", "certificate_arn": US_EAST_1}), {})
    assert config.environment("prod").tls.terminate == "cloudfront"


def test_a_certificate_on_a_public_alb_must_be_in_the_environments_region(example_context, example_config):
    # Elastic Load Balancing User Guide, "SSL certificates": the certificate must be in ACM in the load balancer's region.
    alb = {"domain_name": "notes.example.com", "terminate": "alb"}
    prod = example_config.environment("prod")
    own = f"arn:aws:acm:{prod.region}:{prod.account}:certificate/11111111-2222-3333-4444-555555555555"
    with pytest.raises(ConfigError, match="environments.prod: .*with terminate: alb it must be an ACM certificate of this environment's account and region"):
        load_config(with_tls(example_context, "prod", {**alb, "certificate_arn": own.replace(prod.region, "us-east-1")}), {})
    config = load_config(with_tls(example_context, "prod", {**alb, "certificate_arn": own}), {})
    assert config.environment("prod").tls.terminate == "alb"


@pytest.mark.parametrize("domain", ["Notes.Example.com", "notes", "-notes.example.com", "notes..example.com", "https://notes.example.com"])
def test_the_domain_is_a_lower_case_host_name(example_context, domain):
    # ACM and CloudFront alternate domain names: DNS host names (RFC 1123 labels), no scheme; we accept lower case only.
    with pytest.raises(ConfigError, match="environments.prod.tls.domain_name"):
        load_config(with_tls(example_context, "prod", {"domain_name": domain, "certificate_arn": US_EAST_1}), {})


def test_a_domain_on_cloudfront_becomes_an_alias_with_our_certificate(example_context):
    # CloudFront DistributionConfig: Aliases plus ViewerCertificate with SNI and a TLS 1.2 minimum.
    config = load_config(with_tls(example_context, "prod", {"domain_name": "notes.example.com", "certificate_arn": US_EAST_1}), {})
    app = cdk.App(context=example_context)
    stage = ServiceStage(app, "Prod", app_config=config, config=config.environment("prod"))
    template = Template.from_stack(stage.stateless)
    template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like({
                "Aliases": ["notes.example.com"],
                "ViewerCertificate": {
                    "AcmCertificateArn": US_EAST_1, "SslSupportMethod": "sni-only", "MinimumProtocolVersion": "TLSv1.2_2021",
                },
            })
        },
    )
    assert template.to_json()["Outputs"]["ServiceUrl"]["Value"] == "https://notes.example.com"
    (alb,) = resources_of(template.to_json(), "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internal"
