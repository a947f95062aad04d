"""Auto scaling and the blue/green listener rule as AWS will run them across releases."""

from __future__ import annotations

import re

import pytest

from tests.infra.cfn_model import walk
from tests.infra.configured import environment_names, shifts_traffic, stack_path
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ENVS = environment_names()
FILL = re.compile(r"^FILL\((\w+), 0\)$")


def _evaluate(expression: str, datapoints: dict[str, float | None]) -> float | None:
    """The sum-of-FILL expressions the scaling policy uses (CloudWatch metric math: FILL(m, 0) gives 0 where m has
    no datapoint; an expression over metrics that all lack data has no datapoint either)."""
    terms = [FILL.match(term.strip()) for term in expression.split("+")]
    assert all(terms), f"the policy model knows only sums of FILL(m, 0): {expression}"
    ids = [term.group(1) for term in terms if term]
    if all(datapoints.get(i) is None for i in ids):
        return None
    return sum(datapoints.get(i) or 0.0 for i in ids)


@pytest.mark.parametrize("env", ENVS)
def test_one_request_policy_sums_every_target_group_so_the_idle_one_cannot_block_scale_in(templates, config, env):
    template = templates[stack_path(config, env, "Stateless")]
    groups = set(resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    policies = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in resources_of(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    request_policies = [p for p in policies if "CustomizedMetricSpecification" in p]
    # Application Auto Scaling scales in only when every target tracking policy indicates scale-in
    assert len(request_policies) == 1
    assert not any(p.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == "ALBRequestCountPerTarget" for p in policies)
    (policy,) = request_policies
    assert policy["TargetValue"] == config.environment(env).service.requests_per_target
    queries = policy["CustomizedMetricSpecification"]["Metrics"]
    (result,) = [q for q in queries if q.get("ReturnData", True)]
    metrics = {q["Id"]: q["MetricStat"] for q in queries if "MetricStat" in q}
    counted = {
        node["Fn::GetAtt"][0]
        for stat in metrics.values()
        for node in walk(stat)
        if isinstance(node, dict) and "Fn::GetAtt" in node and node["Fn::GetAtt"][1] == "TargetGroupFullName"
    }
    assert counted == groups
    assert all(s["Metric"]["MetricName"] == "RequestCountPerTarget" and s["Stat"] == "Sum" for s in metrics.values())
    ids = sorted(metrics)
    # After a swap only one group has tasks and traffic; the others publish nothing.
    for active in ids:
        quiet = _evaluate(result["Expression"], {i: 50.0 if i == active else None for i in ids})
        busy = _evaluate(result["Expression"], {i: 900.0 if i == active else None for i in ids})
        assert quiet is not None and busy is not None and quiet < policy["TargetValue"] < busy
    assert _evaluate(result["Expression"], {i: None for i in ids}) is None


@pytest.mark.parametrize("env", ENVS)
def test_the_production_listener_rule_holds_nothing_a_release_changes(templates, config, env):
    # ECS sets the weights during a blue/green rollout; a CloudFormation update of the rule resets them to the
    # template's (aws-cdk issue 36649), so the rule must only change when the listener or target groups do.
    template = templates[stack_path(config, env, "Stateless")]
    resources = template["Resources"]
    rules = resources_of(template, "AWS::ElasticLoadBalancingV2::ListenerRule")
    listeners = set(resources_of(template, "AWS::ElasticLoadBalancingV2::Listener"))
    groups = set(resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup"))
    assert rules
    for logical_id, rule in rules.items():
        referenced = {
            node["Ref"] if "Ref" in node else node["Fn::GetAtt"][0]
            for node in walk(rule["Properties"])
            if isinstance(node, dict) and ("Ref" in node or "Fn::GetAtt" in node)
        }
        kinds = {resources[r]["Type"] for r in referenced if r in resources}
        assert referenced <= listeners | groups, f"{logical_id} refers to {kinds}: a release would update it"
        forward = rule["Properties"]["Actions"][0]["ForwardConfig"]["TargetGroups"]
        # Both groups where traffic shifts between them; a rolling deployment keeps one.
        assert sorted(g["Weight"] for g in forward) == ([0, 100] if shifts_traffic(config.environment(env)) else [100])
