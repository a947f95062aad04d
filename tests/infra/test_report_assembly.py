"""The report reads the real assembly: which stacks a service change touches, and what the asset actions publish."""

from __future__ import annotations

import json

import pytest

from report.assembly import read_assembly
from report.render import build_report
from report import model
from tests.infra.configured import is_example

pytestmark = pytest.mark.xdist_group("infra")


def test_only_the_stacks_that_hold_the_image_change_with_the_service(assembly_dir, config):
    assembly = read_assembly(assembly_dir)
    names = {e.name: e for e in config.environments}
    assert assembly.image_stacks == {f"{config.project}-{config.service_name}-{n}-stateless" for n in names}
    stateful = {f"{config.project}-{config.service_name}-{n}-stateful" for n in names}
    assert stateful <= assembly.stacks_without_image and not assembly.stacks_without_image & assembly.image_stacks
    # One push per distinct environment account and region (CDK publishes each image once per destination).
    assert assembly.docker_destinations == len({(e.account, e.region) for e in config.environments})
    assert assembly.file_publishes >= 1


def test_the_modelled_release_fits_issue_12s_budget_and_the_revert_is_faster(assembly_dir, context):
    # Issue 12: commit → prod work (bakes apart) at most 20 minutes for the example (a fork's environments and bakes
    # set its own; the three-account test below holds the example to it on every fork); the revert (image in ECR)
    # faster still.
    report = build_report(read_assembly(assembly_dir))
    release, revert = report.lead, model.lead_time(report.revert)
    if is_example(context):
        assert release.work_s <= 20 * 60, release
    assert revert.work_s < release.work_s
    assert revert.bakes_and_gates_s == release.bakes_and_gates_s


def test_a_fork_with_three_accounts_stays_within_the_budget(example_context, tmp_path_factory):
    # A fork's usual set-up: the pipeline and each environment in their own account. The Docker action then pushes
    # to three registries, and the pipeline gets cross-account keys; the budget still holds. The example's
    # environments, whatever cdk.json holds.
    import copy

    import aws_cdk as cdk

    import app as app_module
    from config import load_config

    forked = copy.deepcopy(example_context)
    delivery = forked["delivery"]
    delivery["pipeline"]["account"] = "111111111111"
    delivery["source"]["connection_arn"] = delivery["source"]["connection_arn"].replace("000000000000", "111111111111")
    for env, account in zip(delivery["environments"], ("222222222222", "333333333333", "444444444444")):
        env["account"] = account
    config = load_config(forked, {}, require_real_accounts=True)
    outdir = tmp_path_factory.mktemp("fork")
    app = cdk.App(outdir=str(outdir), context=forked)
    app_module.build(app, config, compliance=False)
    app.synth()
    assembly = read_assembly(outdir)
    assert assembly.docker_destinations == 3
    report = build_report(assembly)
    assert report.lead.work_s <= 20 * 60, report.lead
    assert model.lead_time(report.revert).work_s < report.lead.work_s


def test_the_report_knows_the_service_tests_action_by_the_name_the_pipeline_gives_it(pipeline_template):
    # report/model.py stays free of CDK imports, so it repeats the name; a rename must change both.
    from pipeline.tests_action import ACTION_NAME

    assert model.SERVICE_TESTS_ACTION == ACTION_NAME
    assert ACTION_NAME in json.dumps(pipeline_template)
