"""`make synth`'s summary and `make compliance` on small hand-written cloud assemblies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tools.compliance_summary import summarize as compliance_summary
from tools.summary import summarize as synth_summary


def write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def stack_artifact(display: str, stack_name: str, template: str, account: str, region: str) -> dict[str, Any]:
    return {
        "type": "aws:cloudformation:stack",
        "environment": f"aws://{account}/{region}",
        "displayName": display,
        "properties": {"templateFile": template, "stackName": stack_name},
    }


def deploy(stack_name: str, run_order: int) -> dict[str, Any]:
    return {
        "Name": f"{stack_name}.Deploy",
        "RunOrder": run_order,
        "ActionTypeId": {"Provider": "CloudFormation"},
        "Configuration": {"StackName": stack_name},
    }


def assembly(tmp_path: Path) -> Path:
    stages = [
        {"Name": "Source", "Actions": [{"Name": "Checkout", "ActionTypeId": {"Provider": "CodeStarSourceConnection"}}]},
        # Manifests list Prod before Staging and Stateless before Stateful: the pipeline's order must win.
        {"Name": "Dev", "Actions": [deploy("app-dev-stateless", 2), deploy("app-dev-stateful", 1)]},
        {
            "Name": "Prod",
            "Actions": [
                {"Name": "Promote", "RunOrder": 1, "ActionTypeId": {"Provider": "Manual"}},
                deploy("app-prod-stateful", 2),
            ],
        },
    ]
    pipeline = {"Resources": {"P": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"PipelineType": "V2", "Stages": stages}}}}
    write(tmp_path / "pipe.template.json", pipeline)
    write(
        tmp_path / "manifest.json",
        {"artifacts": {"pipe": stack_artifact("app-pipeline", "app-pipeline", "pipe.template.json", "111111111111", "eu-west-1")}},
    )
    bucket = {"Resources": {"B": {"Type": "AWS::S3::Bucket"}, "Q": {"Type": "AWS::SQS::Queue"}}}
    for stage, account in (("Prod", "333333333333"), ("Dev", "000000000000")):
        nested = tmp_path / f"assembly-app-{stage}"
        artifacts = {}
        for part in ("stateless", "stateful"):
            name = f"app-{stage.lower()}-{part}"
            write(nested / f"{name}.template.json", bucket)
            artifacts[name] = stack_artifact(f"app-pipeline/{stage}/{part}", name, f"{name}.template.json", account, "eu-central-1")
        write(nested / "manifest.json", {"artifacts": artifacts})
    return tmp_path


def test_synth_summary_lists_stacks_in_pipeline_order_with_name_account_and_region(tmp_path):
    text = synth_summary(assembly(tmp_path))
    rows = [line[2:].split("  (")[0].split() for line in text.splitlines() if "  (" in line and "app-" in line]
    assert rows == [
        ["(pipeline)", "app-pipeline", "111111111111", "eu-west-1", "1"],
        ["Dev", "app-dev-stateful", "000000000000*", "eu-central-1", "2"],
        ["Dev", "app-dev-stateless", "000000000000*", "eu-central-1", "2"],
        ["Prod", "app-prod-stateful", "333333333333", "eu-central-1", "2"],
        ["(not", "deployed)", "app-prod-stateless", "333333333333", "eu-central-1", "2"],
    ]
    assert "* placeholder account: set pipeline.account and environments[].account before deploying" in text
    assert "  Prod           → Promote [APPROVAL], app-prod-stateful.Deploy [CloudFormation]" in text


def acknowledged(rules: dict[str, str]) -> list[dict[str, Any]]:
    return [{"type": "aws:cdk:acknowledged-rules", "data": rules}]


def test_compliance_summary_refuses_an_assembly_synthesized_without_validation(tmp_path):
    write(tmp_path / "manifest.json", {"artifacts": {}})
    with pytest.raises(SystemExit, match=r"synthesized without validation.*DELIVERY_VALIDATE=1 make synth"):
        compliance_summary(tmp_path)


def test_compliance_summary_shows_each_distinct_reason_of_a_grouped_rule(tmp_path):
    write(tmp_path / "manifest.json", {"artifacts": {}})
    write(tmp_path / "validation-report.json", {"pluginReports": []})
    write(
        tmp_path / "a.metadata.json",
        {
            "/a/Role": acknowledged({"AwsSolutions::AwsSolutions-IAM5[Resource::*]": "X-Ray has no resource-level permissions"}),
            "/a/Other": acknowledged({"AwsSolutions::AwsSolutions-IAM5[Action::s3:*]": "Objects of the | artifact bucket"}),
        },
    )
    write(
        tmp_path / "assembly-x" / "b.metadata.json",
        {"/b/Role": acknowledged({"AwsSolutions::AwsSolutions-IAM5[Resource::*]": "X-Ray has no resource-level permissions"})},
    )
    text = compliance_summary(tmp_path)
    assert "## AwsSolutions: 3 acknowledgments, 1 rules" in text
    assert "| AwsSolutions-IAM5 | 2 | X-Ray has no resource-level permissions |" in text
    assert "|  | 1 | Objects of the \\| artifact bucket |" in text
