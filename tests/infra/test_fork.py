"""A fork's own configuration passes the tests its pipeline's Build runs: the example with other names, accounts and
repository, two environments instead of three, the production one in another region. Synthesized with cdk-nag on,
then held to the same config-derived checks as cdk.json's assembly (each is a test of another module, called with
this assembly's fixtures)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from config import AppConfig, EnvironmentConfig, load_config
from stages.regions import has_cloudfront, separate_cloudfront_alarm
from tests.infra import (
    test_account_quotas,
    test_alarm_semantics,
    test_alarm_table,
    test_asset_hash,
    test_cloudfront_alarm,
    test_compliance,
    test_edge,
    test_observability,
    test_pipeline,
    test_pipeline_gates,
    test_report_assembly,
    test_rollout_safety,
    test_security,
    test_stages,
)
from tests.infra.cfn_model import Assembly
from tests.infra.configured import example_context, shifts_traffic
from tests.infra.conftest import resources_of, synthesized_once, templates_by_stack, templates_in

pytestmark = pytest.mark.xdist_group("infra")


def fork_of(example: dict[str, Any]) -> dict[str, Any]:
    """What README's "Deploying" asks a fork to set, and more: its names, accounts and repository; "qa" (the example's
    dev) and "production" (its prod, in eu-central-1) instead of dev, staging and prod."""
    context = copy.deepcopy(example)
    delivery = context["delivery"]
    delivery.update(project="acme", service_name="orders", owner="orders-team", cost_center="cc-4711")
    delivery["source"] = {
        "owner": "acme-platform", "repo": "orders-delivery", "branch": "main",
        "connection_arn": "arn:aws:codeconnections:eu-west-1:111111111111:connection/12345678-1234-1234-1234-123456789012",
    }
    delivery["pipeline"]["account"] = "111111111111"
    dev, _, prod = delivery["environments"]
    dev.update(name="qa", account="222222222222")
    prod.update(name="production", account="444444444444", region="eu-central-1")
    prod["network"].update(cidr="10.40.0.0/16", availability_zones=[f"eu-central-1{z}" for z in "abc"])
    delivery["environments"] = [dev, prod]
    return context


FORK = load_config(fork_of(example_context()), {}, require_real_accounts=True)
Where = Callable[[EnvironmentConfig], bool]


def every(_env: EnvironmentConfig) -> bool:
    return True


# (module, test, environments it runs for: None for a test of the whole assembly)
CHECKS: list[tuple[ModuleType, str, Where | None]] = [
    (test_stages, "test_network_spans_the_configured_azs_with_three_tiers", every),
    (test_stages, "test_database_is_postgres_18_private_encrypted_and_sized_from_config", every),
    (test_stages, "test_service_rolls_back_on_circuit_breaker_and_on_alarms_that_exist_here", every),
    (test_stages, "test_a_shifting_strategy_shifts_traffic_with_bake_time_and_a_smoke_test_hook_and_rolling_does_not", every),
    (test_stages, "test_fast_rolling_settings_come_from_config", every),
    (test_stages, "test_scaling_tracks_cpu_and_requests_within_configured_bounds", every),
    (test_stages, "test_every_log_group_has_retention_and_the_environment_key", every),
    (test_stages, "test_security_groups_chain_cloudfront_alb_service_database", every),
    (test_stages, "test_waf_and_alb_deletion_protection_only_where_configured", None),
    (test_stages, "test_deployment_failures_and_rollbacks_are_notified", every),
    (test_observability, "test_every_alarm_notifies_one_severity_on_alarm_and_on_recovery", every),
    (test_observability, "test_a_persistent_latency_warning_escalates_to_the_page", every),
    (test_observability, "test_metric_filters_feed_alarms", every),
    (test_observability, "test_dashboard_shows_what_on_call_needs", every),
    (test_observability, "test_dashboard_shows_cloudfront_errors_from_us_east_1", every),
    (test_observability, "test_every_alarm_has_a_name_from_config", every),
    (test_alarm_semantics, "test_load_balancer_5xx_count_in_the_deployment_error_rate", every),
    (test_alarm_semantics, "test_a_bad_canary_is_judged_at_its_own_rate", lambda e: e.deployment.strategy == "CANARY"),
    (test_alarm_semantics, "test_every_target_group_is_judged_alone_and_an_idle_one_reads_zero", every),
    (test_alarm_semantics, "test_traffic_shift_bakes_until_every_deployment_alarm_can_decide", shifts_traffic),
    (test_alarm_semantics, "test_alarm_timing_is_what_the_deployment_alarms_carry", every),
    (test_alarm_semantics, "test_the_composite_pages_and_its_parts_only_warn", every),
    (test_edge, "test_the_load_balancer_is_internal_in_private_subnets", every),
    (test_edge, "test_nothing_on_the_internet_reaches_the_load_balancer", has_cloudfront),
    (test_edge, "test_the_origin_is_reachable_only_through_the_vpc_origin", every),
    (test_edge, "test_the_service_url_and_smoke_test_point_at_the_distribution", has_cloudfront),
    (test_edge, "test_the_test_listener_is_internal_and_admits_only_the_hook", every),
    (test_edge, "test_waf_keeps_its_managed_rule_groups_on_the_alb_where_configured", every),
    (test_security, "test_secrets_deny_other_accounts_and_readers_outside_the_expected_roles", every),
    (test_security, "test_by_default_no_listener_serves_plain_http_to_the_internet", every),
    (test_rollout_safety, "test_one_request_policy_sums_every_target_group_so_the_idle_one_cannot_block_scale_in", every),
    (test_rollout_safety, "test_the_production_listener_rule_holds_nothing_a_release_changes", every),
    (test_cloudfront_alarm, "test_the_alarm_stack_is_in_us_east_1_of_the_environments_account", every),
    (test_cloudfront_alarm, "test_one_failed_request_of_two_does_not_page_but_a_real_error_rate_does", separate_cloudfront_alarm),
    (test_cloudfront_alarm, "test_the_alarm_watches_the_environments_own_distribution_through_the_cross_region_reference", separate_cloudfront_alarm),
    (test_cloudfront_alarm, "test_the_pipeline_deploys_the_distribution_before_its_alarm_in_us_east_1", None),
    (test_pipeline, "test_pipeline_is_v2_superseded_and_stages_follow_config_order", None),
    (test_pipeline, "test_source_is_the_configured_connection_and_branch_and_triggers_on_push", None),
    (test_pipeline, "test_approvals_before_staging_and_prod_name_the_commit_and_link_to_it", None),
    (test_pipeline, "test_each_environment_deploys_stateful_then_stateless_then_verifies", None),
    (test_pipeline, "test_verification_runs_the_rollout_check_and_the_smoke_test", None),
    (test_pipeline, "test_the_image_scan_gates_promotion_in_the_first_environment_only", None),
    (test_pipeline, "test_the_broadening_check_runs_after_the_approval_so_its_auto_approval_finds_confirm", None),
    (test_pipeline, "test_lambda_compute_projects_respect_its_limits", None),
    (test_pipeline, "test_verify_fits_in_a_lambda_build_and_bounds_every_wait", None),
    (test_pipeline, "test_every_codebuild_action_picks_a_supported_runtime_and_pins_what_it_installs", None),
    (test_pipeline_gates, "test_every_environment_rolls_back_on_failure_and_nothing_else_does", None),
    (test_pipeline_gates, "test_every_rollback_target_still_has_its_approvals_in_front_of_it", None),
    (test_pipeline_gates, "test_staging_is_gated_by_its_composite_alarm_for_the_bake_time", None),
    (test_pipeline_gates, "test_the_pipeline_role_may_invoke_exactly_the_gate_function", None),
    (test_pipeline_gates, "test_the_gate_function_may_assume_only_the_gated_environments_verifier_role", None),
    (test_pipeline_gates, "test_prod_is_entered_only_inside_the_deployment_window", None),
    (test_compliance, "test_the_assembly_holds_the_stacks_config_asks_for", None),
    (test_compliance, "test_every_taggable_resource_carries_the_standard_tags", None),
    (test_compliance, "test_environment_tags_name_the_environment", None),
    (test_alarm_table, "test_real_assembly_every_alarm_of_every_environment", None),
    (test_alarm_table, "test_real_assembly_marks_exactly_the_deployment_alarms", None),
    (test_report_assembly, "test_only_the_stacks_that_hold_the_image_change_with_the_service", None),
    (test_account_quotas, "test_no_function_reserves_concurrency", None),
    (test_asset_hash, "test_the_synthesized_image_context_holds_only_the_image_inputs", None),
]


def parameters() -> list[Any]:
    found = []
    for module, name, where in CHECKS:
        check = getattr(module, name)
        short = f"{module.__name__.rsplit('.', 1)[1]}::{name}"
        if where is None:
            found.append(pytest.param(check, None, id=short))
            continue
        envs = [e.name for e in FORK.environments if where(e)]
        assert envs, f"the fork has no environment that {short} applies to: change fork_of"
        found += [pytest.param(check, env, id=f"{short}[{env}]") for env in envs]
    return found


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fixtures the checks take, for the fork's assembly."""
    context = fork_of(example_context())
    config = load_config(context, {})
    assembly_dir: Path = synthesized_once(tmp_path_factory, "fork.out", context, config)
    templates = templates_in(assembly_dir)
    pipeline_template = templates[f"{config.project}-{config.service_name}-pipeline"]
    (pipeline,) = resources_of(pipeline_template, "AWS::CodePipeline::Pipeline").values()
    return {
        "context": context, "config": config, "assembly_dir": assembly_dir, "templates": templates,
        "template_of": templates_by_stack(templates, config), "assembly": Assembly.load(assembly_dir),
        "pipeline_template": pipeline_template, "pipeline": pipeline["Properties"],
        "stages": {s["Name"]: s for s in pipeline["Properties"]["Stages"]},
    }


def test_the_fork_renames_drops_and_moves_environments_and_synthesizes_with_cdk_nag(fork: dict[str, Any]) -> None:
    config: AppConfig = fork["config"]
    assert [e.name for e in config.environments] == ["qa", "production"]
    assert [e.region for e in config.environments] == ["eu-west-1", "eu-central-1"]
    assert not config.uses_placeholder_accounts and config.project == "acme"
    # Synthesized with both cdk-nag packs (conftest._synthesize): an unacknowledged finding would have failed it.
    assert (fork["assembly_dir"] / "manifest.json").exists()


@pytest.mark.parametrize(("check", "env"), parameters())
def test_the_fork_passes_the_config_derived_checks(check: Callable[..., None], env: str | None, fork: dict[str, Any]) -> None:
    available = {**fork, "env": env}
    check(**{name: available[name] for name in inspect.signature(check).parameters})
