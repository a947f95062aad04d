"""A synth without validation (`make synth`, DELIVERY_VALIDATE=0) records no acknowledgments, and that changes no
template: acknowledgments are metadata that only the validation plugins read."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

import app as app_module
from stages.nag import acknowledge, acknowledge_wildcards, acknowledgments_recorded, recording_acknowledgments

REASON = "A reason long enough for a security reviewer to read and accept"


def _synthesize(outdir: Path, *, recorded: bool) -> tuple[dict[str, Any], list[str]]:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Probe")
    bucket = s3.Bucket(stack, "Bucket")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    bucket.grant_read(role)
    with acknowledgments_recorded(recorded):
        acknowledge(bucket, {"AwsSolutions-S1": REASON})
        found = acknowledge_wildcards(stack, [(r"^Action::s3:", REASON), (r"^Resource::", REASON)])
    app.synth()
    template = json.loads((outdir / "Probe.template.json").read_text())
    metadata = json.loads((outdir / "Probe.metadata.json").read_text()) if (outdir / "Probe.metadata.json").exists() else {}
    rules = [
        rule
        for entries in metadata.values()
        for entry in entries
        if entry.get("type") == "aws:cdk:acknowledged-rules"
        for rule in entry["data"]
    ]
    return template, [*found, *rules]


def test_acknowledgments_are_recorded_only_when_asked_and_the_template_is_the_same(tmp_path):
    recorded_template, recorded = _synthesize(tmp_path / "recorded", recorded=True)
    skipped_template, skipped = _synthesize(tmp_path / "skipped", recorded=False)
    assert "AwsSolutions::AwsSolutions-S1" in recorded
    assert any(rule.startswith("AwsSolutions::AwsSolutions-IAM5[Action::s3:") for rule in recorded), recorded
    assert skipped == []
    assert skipped_template == recorded_template


def test_a_reason_is_checked_even_when_nothing_is_recorded():
    app = cdk.App()
    stack = cdk.Stack(app, "Probe")
    with acknowledgments_recorded(False), pytest.raises(ValueError, match="reason a security reviewer would accept"):
        acknowledge(stack, {"AwsSolutions-S1": "too short"})


def test_build_records_acknowledgments_exactly_when_it_validates(monkeypatch, config):
    seen: list[bool] = []

    class Probe(cdk.Stack):
        def __init__(self, scope: cdk.App, id_: str, **_: Any) -> None:
            super().__init__(scope, id_)
            seen.append(recording_acknowledgments())

    monkeypatch.setattr(app_module, "PipelineStack", Probe)
    monkeypatch.setattr(app_module, "register_compliance", lambda app: None)
    for compliance in (True, False):
        app_module.build(cdk.App(), config, compliance=compliance)
    assert seen == [True, False]
    assert recording_acknowledgments()  # and back to the default afterwards


@pytest.mark.parametrize(("validate", "kept"), [("0", False), ("1", True)])
def test_a_synth_without_validation_leaves_no_earlier_validation_report_behind(monkeypatch, tmp_path, validate, kept):
    # Otherwise `make compliance` and DELIVERY_TEST_ASSEMBLY would trust a report about templates cdk-nag never saw.
    stale = tmp_path / app_module.VALIDATION_REPORT
    stale.write_text(json.dumps({"pluginReports": [{"pluginName": "AwsSolutions", "conclusion": "success"}]}))
    # jsii's node process read CDK_OUTDIR when it started, so the outdir is given to the App instead.
    monkeypatch.setattr(app_module.cdk, "App", functools.partial(cdk.App, outdir=str(tmp_path)))
    monkeypatch.setenv("DELIVERY_VALIDATE", validate)
    monkeypatch.setattr(app_module, "build", lambda app, config, compliance: cdk.Stack(app, "Probe"))
    app_module.main()
    assert (tmp_path / "manifest.json").exists()
    assert stale.exists() is kept
