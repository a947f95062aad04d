import pytest

from report import model
from tests.report.fixtures import action, codebuild, pipeline_template, service_template, stateful_template

pytestmark = pytest.mark.xdist_group("report")


def env(name="Dev", **kwargs):
    return model.environment_of(name, {f"app-{name.lower()}-stateless": service_template(**kwargs),
                                       f"app-{name.lower()}-stateful": stateful_template()})


def test_service_facts_come_from_the_template():
    svc = model.service_of(service_template())
    assert (svc.health_interval_s, svc.healthy_threshold, svc.deregistration_s) == (10, 3, 20)
    assert (svc.grace_s, svc.stop_timeout_s, svc.min_tasks, svc.max_tasks) == (20, 10, 4, 8)
    assert (svc.cpu_units, svc.memory_mib, svc.alarm_names) == (512, 1024, ("fast", "math"))


def test_rolling_replacement_is_waves_times_start_healthy_drain():
    svc = model.service_of(service_template())  # 4 tasks, 50 %/100 % → 2 per wave
    assert model.rolling_batch_size(svc, 4) == 2
    assert model.healthy_s(svc) == 30  # max(grace 20, 10 s × 3)
    assert model.drain_s(svc) == 30  # deregistration 20 + StopTimeout 10
    r = model.rollout(svc)
    assert (r.waves, r.wave_s, r.replace_s, r.bake_s) == (2, 45 + 30 + 30, 210, 0)


def test_canary_replacement_adds_hook_and_canary_bake_then_bake_time():
    svc = model.service_of(service_template(strategy="CANARY", min_percent=100, max_percent=200, bake=10))
    r = model.rollout(svc)
    assert r.replace_s == 45 + 30 + 30 + 120 + 30
    assert r.bake_s == 600
    assert r.total_s == 855


def test_cdk_default_health_check_slows_replacement():
    svc = model.with_cdk_default_health(model.service_of(service_template()))
    assert model.healthy_s(svc) == 150
    assert model.drain_s(svc) == 310
    assert model.rollout(svc).replace_s == 2 * (45 + 150 + 310)


def test_no_room_to_replace_is_an_error():
    svc = model.service_of(service_template(min_percent=100, max_percent=100))
    with pytest.raises(model.ModelError, match="no room"):
        model.rollout(svc)


def test_rollback_decision_bound_adds_shift_publishing_and_evaluation_fastest_first():
    alarms = model.deployment_alarms(env())
    assert [(a.name, a.period_s, a.datapoints, a.evaluation_periods, a.decision_s) for a in alarms] == [
        ("fast", 10, 2, 3, 3 * 10 + 10 + 60 + 10),  # 10 s periods are evaluated every 10 s
        ("math", 60, 4, 4, 4 * 60 + 60 + 60 + 60),  # math alarm: period from MetricStat, datapoints = evaluation
    ]


def test_rate_alarms_are_recognised_by_their_inputs():
    alarms = model.environment_of("Prod", {"s": service_template(strategy="CANARY", rates=True)}).alarms
    assert (alarms["lb-rate"].rate_scope, alarms["tg-rate"].rate_scope) == ("load balancer", "target group")
    assert alarms["tg-rate"].threshold == 1.0
    assert alarms["fast"].rate_scope is None and alarms["math"].rate_scope is None


def test_a_bad_canary_is_seen_at_its_own_rate_by_the_target_group_alarm_only():
    canary = env("Prod", strategy="CANARY", min_percent=100, max_percent=200, bake=10, rates=True)
    crash = model.bad_canary(canary)  # every canary request fails: 10 % at load-balancer level
    assert [(a.name, rate) for a, rate in crash.seen] == [("lb-rate", 10.0), ("tg-rate", 100.0)]
    assert [a.name for a in crash.tripping] == ["lb-rate", "tg-rate"]
    assert crash.decision_s == 2 * 60 + 60 + 60 + 60
    subtle = model.bad_canary(canary, 5.0)  # 0.5 % diluted, under the 1 % threshold
    assert [a.name for a in subtle.tripping] == ["tg-rate"] and subtle.decision_s == 300
    assert not crash.caught_before_promotion  # canary bake 2 min < 5 min
    longer = env("Prod", strategy="CANARY", min_percent=100, max_percent=200, bake=10, rates=True, canary_bake=5)
    assert model.bad_canary(longer).caught_before_promotion
    assert model.bad_canary(env(rates=True)) is None  # rolling: no canary


def test_missing_deployment_alarm_is_named():
    template = service_template()
    del template["Resources"]["Fast"]
    with pytest.raises(model.ModelError, match="fast"):
        model.deployment_alarms(model.environment_of("Dev", {"s": template}))


def _services(default_health=False):
    services = {"app-dev-stateless": model.service_of(service_template()),
                "app-prod-stateless": model.service_of(
                    service_template(strategy="CANARY", min_percent=100, max_percent=200, bake=10))}
    if default_health:
        services = {k: model.with_cdk_default_health(v) for k, v in services.items()}
    return services


def _steps(template=None, **kwargs):
    template = template or pipeline_template()
    return model.pipeline_steps(template["Resources"]["Pipeline"]["Properties"], services=_services(),
                                assets={"docker": 1, "file": 2}, template=template, **kwargs)


TOOL = model.TOOL_INSTALL_S
# Standard compute: 90 s before the first command; pull, build without cache, push to the one destination.
DOCKER = 90 + TOOL + model.DOCKER_BASE_PULL_S + model.DOCKER_BUILD_S + model.DOCKER_PUSH_S
BUILD_WORK = model.BUILD_INSTALL_S + model.BUILD_SYNTH_S + model.BUILD_TESTS_S
BUILD = 90 + BUILD_WORK
VERIFY = model.VERIFY_WORK_S


def test_critical_path_orders_actions_and_sums_the_model():
    steps = _steps()
    dev = 10 + BUILD + DOCKER
    assert [(s.name, s.kind, s.start_s, s.duration_s) for s in steps] == [
        ("Checkout", "source", 0, 10),
        ("Build", "codebuild", 10, BUILD),  # standard compute: 90 s before the first command
        ("DockerAssets", "codebuild", 10 + BUILD, DOCKER),
        ("FileAssets", "codebuild", 10 + BUILD, 5 + TOOL + 2 * 10),  # Lambda compute starts in seconds
        ("app-dev-stateless.Deploy", "cloudformation", dev, 45 + 210),
        ("Verify-dev", "codebuild", dev + 255, 5 + VERIFY),
        ("OnSuccess: HealthyForBakeTime", "gate", dev + 260 + VERIFY, 300),  # the gate function's BAKE_SECONDS
        ("BeforeEntry: DeploymentWindow", "condition", dev + 560 + VERIFY, 0),  # calendar wait: excluded
        ("Promote-to-prod", "approval", dev + 560 + VERIFY, 0),
        ("app-prod-stateless.Deploy", "cloudformation", dev + 560 + VERIFY, 45 + 255 + 600),
    ]
    assert model.lead_time_s(steps) == dev + 560 + VERIFY + 900
    assert [s.name for s in model.critical_path(steps)][2:4] == ["DockerAssets", "app-dev-stateless.Deploy"]


def test_compute_type_and_image_come_from_the_template():
    by_name = {s.name: s for s in _steps()}
    assert by_name["Build"].compute == "BUILD_GENERAL1_MEDIUM, aws/codebuild/standard:7.0"
    assert by_name["Verify-dev"].compute.startswith("BUILD_LAMBDA_1GB, ")
    template = pipeline_template()
    template["Resources"]["VerifyProject"]["Properties"]["Environment"]["ComputeType"] = "BUILD_GENERAL1_SMALL"
    assert {s.name: s.duration_s for s in _steps(template)}["Verify-dev"] == 90 + VERIFY
    del template["Resources"]["BuildProject"]
    with pytest.raises(model.ModelError, match="BuildProject"):
        _steps(template)


def test_prod_deploy_names_its_two_bakes_apart():
    prod = _steps()[-1]
    assert prod.segments == (("stack update", 45), ("ECS rollout", 45 + 30 + 30),
                             ("canary step bake (traffic held at 10 %)", 120), ("ECS rollout", 30),
                             ("post-rollout bake", 600))
    assert (prod.seconds_of("work"), prod.seconds_of("bake")) == (45 + 105 + 30, 720)


def test_headline_splits_work_from_bakes_and_gates():
    steps = _steps()
    lead = model.lead_time(steps)
    # work: source, build, Docker (file assets run beside it), dev deploy, verify, prod deploy without bakes
    assert lead.work_s == 10 + BUILD + DOCKER + 255 + 5 + VERIFY + 180
    assert lead.bakes_and_gates_s == 300 + 120 + 600
    assert lead.total_s == model.lead_time_s(steps)
    assert model.bakes_and_gates(steps) == [("Dev", "promotion gate watch", 300),
                                            ("Prod", "canary step bake (traffic held at 10 %)", 120),
                                            ("Prod", "post-rollout bake", 600)]


def test_gate_watch_needs_bake_seconds_in_the_template():
    assert {s.name: s.duration_s for s in _steps(pipeline_template(gate_seconds="480"))}[
        "OnSuccess: HealthyForBakeTime"] == 480
    with pytest.raises(model.ModelError, match="BAKE_SECONDS"):
        _steps(pipeline_template(gate_seconds=None))


def test_unknown_stage_condition_is_an_error_not_zero():
    template = pipeline_template()
    stage = template["Resources"]["Pipeline"]["Properties"]["Stages"][-1]
    stage["BeforeEntry"]["Conditions"][0]["Rules"][0]["RuleTypeId"]["Provider"] = "Commands"
    with pytest.raises(model.ModelError, match="Commands"):
        _steps(template)


def test_revert_finds_the_image_and_skips_the_docker_build():
    release, revert = _steps(), _steps(image_exists=True)
    docker = {s.name: s for s in revert}["DockerAssets"]
    assert docker.segments[-1] == ("image found: build skipped", 5)
    assert docker.duration_s == 90 + TOOL + 5  # still slower than the Lambda file assets (35 s)
    assert model.lead_time_s(revert) == model.lead_time_s(release) - (DOCKER - (90 + TOOL + 5))
    assert model.lead_time(revert).bakes_and_gates_s == model.lead_time(release).bakes_and_gates_s


def test_previous_model_on_the_same_template():
    # 45 s per CodeBuild start whatever the compute type, stage conditions not modelled: the old 29 min.
    previous = _steps(timing=model.PREVIOUS)
    assert not [s for s in previous if s.kind in ("gate", "condition")]
    assert model.lead_time_s(previous) == 10 + 45 + BUILD_WORK + (DOCKER - 45) + (255 + 45 + VERIFY) + 900
    assert model.lead_time_s(_steps()) - model.lead_time_s(previous) == (45 + 45 - 40) + 300


def test_linear_deployment_bakes_every_held_step():
    template = service_template(strategy="LINEAR", min_percent=100, max_percent=200, bake=5)
    template["Resources"]["Service"]["Properties"]["DeploymentConfiguration"]["LinearConfiguration"] = {
        "StepPercent": 25, "StepBakeTimeInMinutes": 3}
    svc = model.service_of(template)
    assert (svc.canary_percent, svc.canary_bake_min, svc.held_steps) == (25.0, 3, 3)  # 25, 50, 75 % held
    assert model.rollout(svc).step_bake_s == 3 * 180
    assert ("canary step bake (traffic held at 25 %)", 540) in model.ecs_segments(svc)


def test_cdk_defaults_split_assets_and_use_change_sets():
    template = pipeline_template()
    pipeline = template["Resources"]["Pipeline"]["Properties"]
    defaults = model.cdk_defaults_pipeline(pipeline, asset_ids={"docker": ["d"], "file": ["f1", "f2"]})
    steps = model.pipeline_steps(defaults, services=_services(default_health=True), assets={"docker": 1, "file": 1},
                                 template=template)
    names = [(s.stage, s.name, s.run_order, s.duration_s) for s in steps]
    assert ("Assets", "DockerAsset1", 1, DOCKER) in names
    assert ("Assets", "FileAsset2", 1, 90 + TOOL + 10) in names  # one standard CodeBuild per asset
    assert ("Dev", "app-dev-stateless.Prepare", 1, 25) in names
    assert ("Dev", "app-dev-stateless.Deploy", 2, 45 + 1010) in names
    assert ("Dev", "Verify-dev", 3, 5 + VERIFY) in names
    assert ("Dev", "OnSuccess: HealthyForBakeTime", 4, 300) in names  # the same gates as ours
    assert ("Prod", "app-prod-stateless.Prepare", 2, 25) in names
    assert model.lead_time_s(steps) == 10 + BUILD + DOCKER + (25 + 1055 + 5 + VERIFY + 300) + (25 + 45 + 655 + 600)


def test_monthly_cost_from_sizes():
    lines = dict(model.monthly_cost(env()))
    assert lines["Fargate 4 × (0.5 vCPU, 1 GB)"] == 72.08
    assert lines["NAT gateway × 1"] == 35.04
    assert lines["Interface endpoint AZ-hours × 2"] == 16.06
    assert lines["RDS db.t4g.micro Single-AZ"] == 12.41
    assert lines["Alarms 2 standard + 1 high-res"] == 0.50
    assert lines["Total"] == pytest.approx(172.48, abs=0.005)


def test_multi_az_database_costs_double():
    e = model.environment_of("Prod", {"s": stateful_template(db_class="db.r7g.large", multi_az=True)})
    lines = dict(model.monthly_cost(e))
    assert lines["RDS db.r7g.large Multi-AZ"] == 385.44
    assert lines["gp3 20 GB Multi-AZ"] == 5.08


def test_unknown_instance_class_is_an_error():
    e = model.environment_of("Dev", {"s": stateful_template(db_class="db.x9.huge")})
    with pytest.raises(model.ModelError, match="db.x9.huge"):
        model.monthly_cost(e)


def test_cloudfront_and_its_vpc_origin_are_costed_per_environment():
    # CloudFront pricing page: HTTPS requests per 10,000 and data transfer out per GB; VPC origins cost nothing extra.
    edge = {"Resources": {
        "Distribution": {"Type": "AWS::CloudFront::Distribution", "Properties": {}},
        "VpcOrigin": {"Type": "AWS::CloudFront::VpcOrigin", "Properties": {}},
    }}
    lines = dict(model.monthly_cost(model.environment_of("Dev", {"s": stateful_template(), "e": edge})))
    expected = model.CLOUDFRONT_MILLION_REQUESTS * 100 * 0.012 + model.CLOUDFRONT_GB_OUT * 0.085
    (cloudfront,) = [v for k, v in lines.items() if k.startswith("CloudFront × 1:")]
    assert cloudfront == pytest.approx(expected, abs=0.005) and cloudfront > 0
    assert lines["CloudFront VPC origin × 1"] == 0
    without = dict(model.monthly_cost(model.environment_of("Dev", {"s": stateful_template()})))
    assert lines["Total"] == pytest.approx(without["Total"] + expected, abs=0.01)


def test_a_service_change_leaves_the_other_stacks_and_file_assets_alone():
    # Stacks without the image keep their template: CloudFormation's no-op update; file assets are found.
    template = pipeline_template()
    pipeline = template["Resources"]["Pipeline"]["Properties"]
    dev = next(st for st in pipeline["Stages"] if st["Name"] == "Dev")
    dev["Actions"].insert(0, action("app-dev-stateful.Deploy", "CloudFormation", 1, category="Deploy",
                                    StackName="app-dev-stateful", ActionMode="CREATE_UPDATE"))
    for a in dev["Actions"][1:]:
        a["RunOrder"] = a.get("RunOrder", 1) + 1
    unchanged = frozenset({"app-dev-stateful"})
    by_name = {s.name: s for s in _steps(template, unchanged_stacks=unchanged)}
    assert by_name["app-dev-stateful.Deploy"].segments == (("no-op update (template unchanged)", 15),)
    assert by_name["app-dev-stateless.Deploy"].segments[0] == ("stack update", 45)
    full = {s.name: s for s in _steps(template, unchanged_stacks=unchanged, timing=model.BEFORE_LEVERS)}
    assert full["app-dev-stateful.Deploy"].segments == (("stack update", 45),)
    found = model.pipeline_steps(pipeline, services=_services(), template=template,
                                 assets={"docker": 1, "file": 2, "files_unchanged": 1})
    assert {s.name: s for s in found}["FileAssets"].segments[-1] == ("files found: upload skipped", 2 * 3)


def test_before_the_levers_prices_lambda_compute_as_standard():
    after, before = _steps(), _steps(timing=model.BEFORE_LEVERS)
    verify = lambda steps: {s.name: s for s in steps}["Verify-dev"]  # noqa: E731
    assert verify(after).segments[0] == ("provision", 5)
    assert verify(before).segments[0] == ("provision", 90)
    # Verify-dev on the path, and pip byte-compiling the lock in Build.
    assert model.lead_time(before).work_s - model.lead_time(after).work_s == 85 + model.PIP_COMPILE_S


def test_docker_pushes_once_per_destination():
    steps = model.pipeline_steps(pipeline_template()["Resources"]["Pipeline"]["Properties"], services=_services(),
                                 template=pipeline_template(), assets={"docker": 1, "file": 2, "docker_destinations": 3})
    docker = {s.name: s for s in steps}["DockerAssets"]
    assert docker.segments[-1] == ("push to 3 registries", 3 * model.DOCKER_PUSH_S)


def test_the_service_tests_run_beside_build_and_before_inside_it():
    template = pipeline_template()
    build = next(st for st in template["Resources"]["Pipeline"]["Properties"]["Stages"] if st["Name"] == "Build")
    build["Actions"].append(codebuild(model.SERVICE_TESTS_ACTION, "BuildProject"))
    after = {s.name: s for s in _steps(template)}
    assert after[model.SERVICE_TESTS_ACTION].segments[-1] == ("service tests", model.SERVICE_TESTS_S)
    assert ("service tests", model.SERVICE_TESTS_S) not in after["Build"].segments
    before = {s.name: s for s in _steps(template, timing=model.BEFORE_LEVERS)}
    assert model.SERVICE_TESTS_ACTION not in before
    assert before["Build"].segments[-1] == ("service tests", model.SERVICE_TESTS_S)
    assert before["Build"].duration_s - after["Build"].duration_s == model.SERVICE_TESTS_S + model.PIP_COMPILE_S


def test_only_the_verify_that_runs_the_scan_gate_pays_for_it():
    template = pipeline_template()
    plain = {s.name: s for s in _steps(template)}["Verify-dev"]
    template["Resources"]["VerifyProject"]["Properties"]["Source"] = {
        "BuildSpec": '{"phases": {"build": {"commands": ["python3 pipeline/scripts/image_scan_gate.py"]}}}'}
    scanning = {s.name: s for s in _steps(template)}["Verify-dev"]
    assert ("image scan evidence", model.VERIFY_SCAN_S) in scanning.segments
    assert scanning.duration_s - plain.duration_s == model.VERIFY_SCAN_S
