from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config import PLACEHOLDER_ACCOUNT, ConfigError, load_config
from config.model import POSTGRES_VERSION, postgres_versions
from pipeline.buildspec import read_buildspec
from tests.infra.configured import EXAMPLE_CONTEXT

pytestmark = pytest.mark.xdist_group("infra")
ROOT = Path(__file__).resolve().parents[2]
# The loader's messages are tested on the example configuration (example_context), whatever cdk.json holds.


def with_override(context: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**copy.deepcopy(context), f"delivery.{key}": value}


def without_accounts(context: dict[str, Any]) -> dict[str, Any]:
    """The committed configuration with every account left out: a fork commits real ones, and its pipeline runs
    these tests too (make check)."""
    bare = copy.deepcopy(context)
    bare["delivery"]["pipeline"].pop("account", None)
    for env in bare["delivery"]["environments"]:
        env.pop("account", None)
    return bare


def test_the_example_is_what_cdk_json_holds_until_a_fork_names_its_own_repository(context, example_context):
    # The example's values are tested on tests/infra/example_context.json so that a fork's Build passes with its own
    # cdk.json; here, where cdk.json still names the example's repository, the two must be the same.
    # A fork (its own source repository) holds its own configuration: nothing to compare there.
    ours, example = context["delivery"], example_context["delivery"]
    fork = (ours["source"]["owner"], ours["source"]["repo"]) != (example["source"]["owner"], example["source"]["repo"])
    assert fork or ours == example, (
        f"cdk.json's context.delivery differs from {EXAMPLE_CONTEXT.relative_to(ROOT)}: the example is documented and "
        "tested there; change both together (a fork first sets source.owner and source.repo to its own repository)"
    )


def test_defaults_load_in_config_order(example_context):
    config = load_config(example_context, {})
    assert [e.name for e in config.environments] == ["dev", "staging", "prod"]
    assert [e.requires_approval for e in config.environments] == [False, True, True]
    # accounts left out of config fall back to the placeholder, which synth accepts and deploying refuses
    assert load_config(without_accounts(example_context), {}).uses_placeholder_accounts


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("environments.prod.account", "1234567890", "environments.prod.account: must be a 12-digit AWS account id (as a string), got 10 characters"),
        ("environments.prod.service.min_tasks", 20, "environments.prod.service: Value error, min_tasks (20) is greater than max_tasks (12)".replace("Value error, ", "")),
        ("environments.dev.network.availability_zones", ["eu-west-1a"], "environments.dev.network.availability_zones: needs at least two availability zones"),
        ("source.connection_arn", "arn:aws:codestar:eu-west-1:1:conn/x", "source.connection_arn: must be a CodeConnections ARN"),
        ("environments.staging.service.memory_mib", 300, "environments.staging.service: memory_mib 300 is not valid with cpu 512"),
        ("environments.dev.network.nat_gateways", 3, "nat_gateways (3) cannot exceed the number of availability zones (2)"),
        ("environments.prod.deployment.shutdown_timeout_seconds", 40, "must be at least 5 s less than stop_timeout_seconds (30)"),
        ("environments.dev.log_retention_days", 10, "environments.dev.log_retention_days: Input should be 1, 3, 5, 7"),
    ],
)
def test_bad_input_names_the_field_and_what_is_allowed(example_context, key, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(with_override(example_context, key, value), {})
    assert message in str(error.value)


def test_unknown_environment_in_override_lists_known_ones(example_context):
    with pytest.raises(ConfigError, match="unknown environment 'prd' in override 'environments.prd.account'; known: dev, staging, prod"):
        load_config(with_override(example_context, "environments.prd.account", "123456789012"), {})


def test_unknown_field_is_rejected_with_the_nearest_valid_key(example_context):
    with pytest.raises(ConfigError) as error:
        load_config(with_override(example_context, "environments.dev.service.cpus", 512), {})
    assert "environments.dev.service.cpus: is not a configuration key; did you mean cpu? valid keys here: cpu, memory_mib," in str(error.value)
    with pytest.raises(ConfigError, match="pipline: is not a configuration key; did you mean pipeline?"):
        load_config(with_override(example_context, "pipline.account", "123456789012"), {})
    with pytest.raises(ConfigError, match="environments.prod.tls.domain: is not a configuration key; did you mean domain_name?"):
        load_config(with_override(example_context, "environments.prod.tls", {"domain": "x"}), {})


# Each value used to end in a jsii stack trace at synth, or to pass silently; now one line names the field.
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("environments.prod.network.cidr", "300.1.1.1/16", "environments.prod.network.cidr: is not an IPv4 network: Octet 300 (> 255) not permitted in '300.1.1.1' (got '300.1.1.1/16')"),
        ("environments.prod.network.cidr", "10.30.0.1/16", "environments.prod.network.cidr: has host bits set: the network is 10.30.0.0/16 (write that, or pick another range) (got '10.30.0.1/16')"),
        ("environments.prod.network.cidr", "10.30.0.0/12", "environments.prod.network.cidr: prefix /12 is outside the /16 to /24 a VPC here may use"),
        ("environments.prod.network.cidr", "8.8.0.0/16", "environments.prod.network.cidr: must be a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"),
        ("environments.prod.network.cidr", "10.30.0.0", "environments.prod.network.cidr: must be an IPv4 network in CIDR notation like 10.10.0.0/16"),
        ("environments.prod.database.instance_class", "t4g.huge", "environments.prod.database.instance_class: is not an instance class RDS offers for PostgreSQL 18; t4g classes: t4g.2xlarge, t4g.large, t4g.medium, t4g.micro, t4g.small, t4g.xlarge (got 't4g.huge')"),
        ("environments.dev.database.instance_class", "t4.micro", "environments.dev.database.instance_class: is not an instance class RDS offers for PostgreSQL 18; did you mean t4g.micro? (got 't4.micro')"),
        ("source.branch", "  ", "source.branch: must name the branch whose pushes start the pipeline, e.g. main; it is blank (got '  ')"),
        ("source.branch", "", "source.branch: must name the branch whose pushes start the pipeline, e.g. main; it is blank (got '')"),
        ("source.branch", "feature..x", "source.branch: is not a valid git branch name: no spaces, '..', '@{', '//' or any of ~^:?*[\\"),
        ("environments.dev.region", "eu-west-9", "environments.dev.region: is not an AWS region aws-cdk-lib knows; did you mean eu-west-3? (got 'eu-west-9')"),
        ("pipeline.region", "Ireland", "pipeline.region: is not an AWS region aws-cdk-lib knows (write it like eu-west-1; known: af-south-1,"),
        ("environments.dev.color", "blue", "environments.dev.color: must be a hex colour '#' plus six hex digits, e.g. #2563eb (got 'blue')"),
        ("environments.dev.network.availability_zones", "eu-west-1a,eu-west-1b", """environments.dev.network.availability_zones: must be a list of AZ names: in cdk.json ["eu-west-1a", "eu-west-1b"], on the command line -c 'delivery.environments.<name>.network.availability_zones=["eu-west-1a","eu-west-1b"]'"""),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_field(example_context, key, value, message):
    with pytest.raises(ConfigError) as error:
        load_config(with_override(example_context, key, value), {})
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 2


def test_a_traffic_shift_bake_shorter_than_the_slowest_deployment_alarm_is_refused(example_context):
    # A bake that ends before the slowest deployment alarm (p99 latency, 3 one-minute periods) could decide lets a
    # bad revision finish its rollout; the step bakes are raised to that bound, the final bake is the user's choice.
    from stages.alarm_timing import P99_LATENCY, minimum_bake_minutes

    needed = minimum_bake_minutes()
    assert needed == -(-P99_LATENCY.decision_s // 60) == 6
    for strategy in ("CANARY", "LINEAR", "BLUE_GREEN"):
        ctx = {**example_context, "delivery.environments.prod.deployment.strategy": strategy}
        with pytest.raises(ConfigError) as error:
            load_config({**ctx, "delivery.environments.prod.deployment.bake_minutes": str(needed - 1)}, {})
        assert (
            f"environments.prod.deployment: bake_minutes ({needed - 1}) must be at least {needed} with strategy {strategy}"
        ) in str(error.value)
        loaded = load_config({**ctx, "delivery.environments.prod.deployment.bake_minutes": str(needed)}, {})
        assert loaded.environment("prod").deployment.bake_minutes == needed
    # A rolling deployment has no bake.
    dev = load_config(example_context, {}).environment("dev").deployment
    assert (dev.strategy, dev.bake_minutes) == ("ROLLING", 0)


def test_good_values_of_the_checked_fields_pass(example_context):
    ctx = with_override(example_context, "environments.dev.network.availability_zones", '["eu-west-1a","eu-west-1c"]')
    ctx = {**ctx, "delivery.environments.dev.network.cidr": "192.168.0.0/20", "delivery.source.branch": "release/2026-12"}
    ctx = {**ctx, "delivery.environments.dev.database.instance_class": "db.m7g.large", "delivery.environments.dev.color": "#ABCDEF"}
    dev = load_config(ctx, {}).environment("dev")
    assert (dev.network.availability_zones, dev.network.cidr) == (("eu-west-1a", "eu-west-1c"), "192.168.0.0/20")
    assert (dev.database.instance_class, dev.color) == ("m7g.large", "#ABCDEF")


def test_the_instance_classes_come_from_rds_data_for_postgresql_18():
    from config.model import postgres_instance_classes

    # cfn-lint's RDS extension schema is generated from RDS's orderable-instance data, per engine and version.
    classes = postgres_instance_classes()
    assert {"t4g.micro", "t4g.small", "r7g.large", "m7g.large"} <= set(classes)
    assert not any(c.startswith("db.") for c in classes)
    assert "t4g.huge" not in classes and "t2.nano" not in classes


def test_context_and_environment_overrides(example_context):
    ctx = with_override(without_accounts(example_context), "environments.staging.service.max_tasks", "9")
    config = load_config(
        ctx,
        {"DELIVERY_ACCOUNT_PROD": "111111111111", "DELIVERY_PIPELINE_ACCOUNT": "222222222222", "DELIVERY_REPOSITORY": "acme/shop"},
    )
    assert config.environment("staging").service.max_tasks == 9
    assert config.environment("prod").account == "111111111111"
    assert config.environment("dev").account == PLACEHOLDER_ACCOUNT
    assert (config.pipeline.account, config.source.owner, config.source.repo) == ("222222222222", "acme", "shop")


def test_deploy_refuses_placeholder_accounts_naming_each_field(example_context):
    committed = without_accounts(example_context)
    committed["delivery"]["environments"][2]["account"] = "111111111111"
    with pytest.raises(ConfigError) as error:
        load_config(committed, {}, require_real_accounts=True)
    text = str(error.value)
    assert "pipeline.account" in text and "environments.dev.account" in text and "environments.staging.account" in text
    assert "environments.prod.account" not in text
    committed["delivery"]["pipeline"]["account"] = "222222222222"
    for env in committed["delivery"]["environments"]:
        env["account"] = "111111111111"
    assert not load_config(committed, {}, require_real_accounts=True).uses_placeholder_accounts


def test_deploy_takes_accounts_from_committed_config_only(context):
    # The pipeline's own synth runs from git with neither variables nor -c: such a value would retarget it.
    real = {f"DELIVERY_ACCOUNT_{n}": "111111111111" for n in ("DEV", "STAGING", "PROD")}
    with pytest.raises(ConfigError) as error:
        load_config(context, {**real, "DELIVERY_PIPELINE_ACCOUNT": "222222222222"}, require_real_accounts=True)
    assert "committed cdk.json only" in str(error.value) and "DELIVERY_ACCOUNT_PROD" in str(error.value)
    with pytest.raises(ConfigError, match="delivery.pipeline.account"):
        load_config(with_override(context, "pipeline.account", "222222222222"), {}, require_real_accounts=True)


def test_the_pipelines_build_refuses_placeholder_accounts():
    assert read_buildspec(ROOT / "buildspec.yml").env.get("DELIVERY_REQUIRE_REAL_ACCOUNTS") == "1"


def run_app(env: dict[str, str], context: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    # The pipeline's build sets DELIVERY_* variables itself; each test states its own.
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("DELIVERY_")}, **env}
    if context is not None:
        full_env["CDK_CONTEXT_JSON"] = json.dumps(context)
    return subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_app_rejects_a_deploy_with_placeholders_before_synthesizing(tmp_path, context):
    bare = {"delivery": without_accounts(context)["delivery"]}
    result = run_app({"DELIVERY_REQUIRE_REAL_ACCOUNTS": "1", "CDK_OUTDIR": str(tmp_path)}, bare)
    assert result.returncode == 2
    assert "ConfigError: refusing to deploy with placeholder account ids: set pipeline.account" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_app_rejects_bad_cli_context_with_one_clear_line(tmp_path, example_context):
    example = {"delivery": example_context["delivery"]}
    result = run_app({"CDK_OUTDIR": str(tmp_path)}, {**example, "delivery.environments.prod.service.min_tasks": "50"})
    assert result.returncode == 2
    assert "environments.prod.service.min_tasks: Input should be less than or equal to 100 (got 50)" not in result.stderr
    assert "min_tasks (50) is greater than max_tasks (12)" in result.stderr
    assert "Traceback" not in result.stderr


def test_app_stops_a_bad_cidr_with_the_field_and_no_stack_trace(tmp_path, example_context):
    # Before: a jsii/Node stack trace from ec2.IpAddresses.cidr at synth time.
    example = {"delivery": example_context["delivery"]}
    result = run_app({"CDK_OUTDIR": str(tmp_path)}, {**example, "delivery.environments.prod.network.cidr": "300.1.1.1/16"})
    assert result.returncode == 2
    assert "ConfigError: invalid configuration:\n  environments.prod.network.cidr: is not an IPv4 network" in result.stderr
    assert "Traceback" not in result.stderr and "jsii" not in result.stderr
    assert not (tmp_path / "manifest.json").exists()


def test_the_database_version_is_one_aws_cdk_lib_knows_rds_offers(context, example_context):
    from aws_cdk import aws_rds as rds

    # rds.PostgresEngineVersion lists the versions RDS offered when this aws-cdk-lib was released
    newest = max((n for n in dir(rds.PostgresEngineVersion) if n.startswith("VER_18_")), key=lambda n: int(n.split("_")[2]))
    newest = newest.removeprefix("VER_").replace("_", ".")
    # The default (which the example uses everywhere) is the newest; a fork may pin any version aws-cdk-lib knows.
    assert POSTGRES_VERSION == newest
    example = load_config(example_context, {})
    assert {e.database.engine_version for e in example.environments} == {newest}
    assert {e.database.engine_version for e in load_config(context, {}).environments} <= set(postgres_versions())
    with pytest.raises(ConfigError, match=r"environments.dev.database.engine_version: PostgreSQL 18.6 is not a version aws-cdk-lib knows RDS to offer; known: 18.1, 18.2, 18.3"):
        load_config(with_override(example_context, "environments.dev.database.engine_version", "18.6"), {})


def test_names_too_long_for_iam_roles_are_refused(example_context):
    with pytest.raises(ConfigError, match="at most 48 fit the IAM role names"):
        load_config(with_override(with_override(example_context, "service_name", "long-service-name-for-roles"), "project", "delivery-platform"), {})


def test_delivery_validate_is_0_or_1_and_validates_when_unset():
    import app as app_module

    assert app_module.validating({}) is True
    assert app_module.validating({"DELIVERY_VALIDATE": "1"}) is True
    assert app_module.validating({"DELIVERY_VALIDATE": "0"}) is False
    with pytest.raises(ConfigError, match="DELIVERY_VALIDATE must be 0 or 1"):
        app_module.validating({"DELIVERY_VALIDATE": "yes"})
