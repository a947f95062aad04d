"""Stage rollback, the staging alarm gate and prod's deployment window on the synthesized pipeline (pipeline/gates.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import botocore
import pytest

from config import load_config
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ROOT = Path(__file__).resolve().parents[2]
BOTOCORE_DATA = Path(botocore.__file__).parent / "data"


def _codepipeline_shapes() -> dict[str, Any]:
    (model,) = (BOTOCORE_DATA / "codepipeline").glob("*/service-2.json*")
    opener = gzip.open if model.suffix == ".gz" else open
    with opener(model, "rt") as handle:
        return json.load(handle)["shapes"]


@pytest.fixture(scope="module")
def pipeline(pipeline_template):
    (resource,) = resources_of(pipeline_template, "AWS::CodePipeline::Pipeline").values()
    return resource["Properties"]


@pytest.fixture(scope="module")
def stages(pipeline):
    return {s["Name"]: s for s in pipeline["Stages"]}


def _deploy_stage_names(config):
    return [e.name.capitalize() for e in config.environments]


def _gated(config):
    """The environment whose health gates promotion into the last one (staging in the example); with a single
    environment there is none."""
    return config.environments[-2] if len(config.environments) > 1 else None


def _gate_functions(pipeline_template):
    return {k: v for k, v in resources_of(pipeline_template, "AWS::Lambda::Function").items() if k.startswith("PromotionGate")}


def _invoke_statements(pipeline_template, pipeline):
    role_id = pipeline["RoleArn"]["Fn::GetAtt"][0]
    return [
        s
        for p in resources_of(pipeline_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]


def test_every_environment_rolls_back_on_failure_and_nothing_else_does(stages, config):
    # botocore codepipeline FailureConditions.result: Result enum (ROLLBACK | FAIL | RETRY | SKIP).
    assert "ROLLBACK" in _codepipeline_shapes()["Result"]["enum"]
    deploys = set(_deploy_stage_names(config))
    for name, stage in stages.items():
        if name in deploys:
            assert stage["OnFailure"] == {"Result": "ROLLBACK"}, name
        else:
            assert "OnFailure" not in stage, name


def test_stage_rollback_is_allowed_by_the_execution_mode(pipeline):
    # CodePipeline user guide "Stage rollback": not available for pipelines in PARALLEL mode.
    assert pipeline["ExecutionMode"] in {"SUPERSEDED", "QUEUED"}


def test_every_rollback_target_still_has_its_approvals_in_front_of_it(pipeline, config):
    # botocore codepipeline ActionCategory "Approval": a rollback re-runs one stage, so an approval inside a rolled-back
    # stage would be replayed or skipped; each must sit in its own stage right before the deploy it guards.
    names = [s["Name"] for s in pipeline["Stages"]]
    by_name = {s["Name"]: s for s in pipeline["Stages"]}
    for env in config.environments:
        deploy = env.name.capitalize()
        categories = {a["ActionTypeId"]["Category"] for a in by_name[deploy]["Actions"]}
        assert "Approval" not in categories, deploy
        if not env.requires_approval:
            continue
        before = by_name[names[names.index(deploy) - 1]]
        assert "OnFailure" not in before
        assert {a["ActionTypeId"]["Category"] for a in before["Actions"]} >= {"Approval"}
        assert any(a["Name"] == f"Promote-to-{env.name}" for a in before["Actions"])


def _rule(condition_block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (condition,) = condition_block["Conditions"]
    (rule,) = condition["Rules"]
    return condition["Result"], rule


def test_staging_is_gated_by_its_composite_alarm_for_the_bake_time(stages, pipeline_template, config):
    # botocore codepipeline SuccessConditions/Condition/RuleDeclaration: name and ruleTypeId are required.
    required = set(_codepipeline_shapes()["RuleDeclaration"]["required"])
    gated = _gated(config)
    if gated is None:
        assert not [n for n, stage in stages.items() if "OnSuccess" in stage] and not _gate_functions(pipeline_template)
        return
    result, rule = _rule(stages[gated.name.capitalize()]["OnSuccess"])
    assert result == "ROLLBACK"
    assert {k[0].lower() + k[1:] for k in rule} >= required
    assert rule["RuleTypeId"] == {"Category": "Rule", "Owner": "AWS", "Provider": "LambdaInvoke", "Version": "1"}
    function_id = rule["Configuration"]["FunctionName"]["Ref"]
    function = pipeline_template["Resources"][function_id]["Properties"]
    variables = function["Environment"]["Variables"]
    prefix = f"{config.project}-{config.service_name}-{gated.name}"
    assert variables["ALARM_NAME"] == f"{prefix}-service-unhealthy"
    assert variables["ROLE_ARN"]["Fn::Join"][1][-1].endswith(f":iam::{gated.account}:role/{prefix}-deploy-verifier")
    assert variables["ALARM_REGION"] == gated.region
    assert variables["BAKE_SECONDS"] == str(60 * config.pipeline.promotion_bake_minutes)
    # Lambda's hard limit is 900 s; the watch must end inside it.
    assert int(variables["BAKE_SECONDS"]) < function["Timeout"] <= 900
    for name, stage in stages.items():
        if name != gated.name.capitalize():
            assert "OnSuccess" not in stage, name


def test_the_pipeline_role_may_invoke_exactly_the_gate_function(pipeline_template, pipeline, stages, config):
    # Service Authorization Reference, AWS Lambda: InvokeFunction on the function ARN; rules grant nothing by themselves.
    statements = _invoke_statements(pipeline_template, pipeline)
    if _gated(config) is None:
        assert statements == []
        return
    _, rule = _rule(stages[_gated(config).name.capitalize()]["OnSuccess"])
    function_id = rule["Configuration"]["FunctionName"]["Ref"]
    assert statements == [{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": [function_id, "Arn"]}}]


def test_the_gate_function_may_assume_only_the_gated_environments_verifier_role(pipeline_template, config):
    gated = _gated(config)
    if gated is None:
        assert not _gate_functions(pipeline_template)
        return
    (function_id, function), = _gate_functions(pipeline_template).items()
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assumed = [
        s["Resource"]
        for p in resources_of(pipeline_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sts:AssumeRole"
    ]
    (resource,) = assumed
    assert resource["Fn::Join"][1][-1].endswith(f"{config.project}-{config.service_name}-{gated.name}-deploy-verifier")


def test_prod_is_entered_only_inside_the_deployment_window(stages, config):
    # CodePipeline rule reference "DeploymentWindow": Cron (6 fields + optional year, seconds '*') and TimeZone;
    # botocore BeforeEntryConditions allow FAIL or SKIP.
    last = config.environments[-1].name.capitalize()
    if config.pipeline.deployment_window is None:  # config disables the window
        assert [n for n, s in stages.items() if "BeforeEntry" in s] == []
        return
    result, rule = _rule(stages[last]["BeforeEntry"])
    assert result == "FAIL"
    assert rule["RuleTypeId"]["Provider"] == "DeploymentWindow"
    assert rule["Configuration"] == {"Cron": config.pipeline.deployment_window, "TimeZone": config.pipeline.time_zone}
    fields = rule["Configuration"]["Cron"].split()
    assert len(fields) in (6, 7) and fields[0] == "*"
    assert [n for n, s in stages.items() if "BeforeEntry" in s] == [last]


def test_the_default_window_is_monday_to_thursday_nine_to_four_and_can_be_disabled(example_context):
    # The example sets neither: these are the defaults.
    default = load_config(example_context, {})
    assert default.pipeline.deployment_window == "* * 9-15 ? * MON-THU *"
    assert default.pipeline.promotion_bake_minutes == 10
    disabled = json.loads(json.dumps(example_context))
    disabled["delivery"]["pipeline"]["deployment_window"] = None
    assert load_config(disabled, {}).pipeline.deployment_window is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("deployment_window", "0 9-15 ? * MON-THU"), ("time_zone", "Mars/Olympus"), ("promotion_bake_minutes", 14)],
)
def test_invalid_gate_settings_are_rejected_naming_the_field(context, field, value):
    broken = json.loads(json.dumps(context))
    broken["delivery"]["pipeline"][field] = value
    with pytest.raises(Exception, match=field):
        load_config(broken, {})


# --- the gate function, against botocore's STS and CloudWatch models -------------------------------------------------
