"""Pure model of the delivery system: timings and cost from parsed CloudFormation template dicts.

Nothing here reads files; every function takes dicts (templates, manifests) and returns plain values, so the
numbers can be checked on small hand-made templates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from stages.alarm_timing import PUBLISHING_DELAY_S, decision_bound_s

# ---------------------------------------------------------------------------------------------------------------
# Timing assumptions (seconds). Each is stated once, with its source, in ASSUMPTIONS (rendered in the report).
# ---------------------------------------------------------------------------------------------------------------
SOURCE_S = 10
# Before the first command: PROVISIONING + DOWNLOAD_SOURCE (+ QUEUED). Issue 12's stricter figure for standard
# (EC2) compute; Lambda compute starts in seconds. The previous model used 45 s for every CodeBuild start.
CODEBUILD_PROVISION_S = 90
CODEBUILD_LAMBDA_PROVISION_S = 5
PREVIOUS_CODEBUILD_PROVISION_S = 45
# The Build action's commands (buildspec.yml), measured on the 2-vCPU development machine (bench/README.md, "The
# pipeline's Build step", and the assumptions below); CodeBuild MEDIUM has 4 vCPUs and `make` runs 4 test workers
# there, which this does not credit. make install: venv 6.5 s + pip install without bytecode compilation
# (PIP_INSTALL_FLAGS=--no-compile) 65 s from a local wheel mirror + 20 s of downloads from PyPI (estimate) + npm ci 2 s.
BUILD_INSTALL_S = 94
# What pip's bytecode compilation of the lock adds (149.6 s with it, 65.2 s without, same machine).
PIP_COMPILE_S = 84
BUILD_SYNTH_S = 16  # make synth with cdk-nag and the template validator (the build's only synth): `make bench` "validated"
BUILD_TESTS_S = 97  # make check-assembly, -n 2, on that validated assembly (725 tests; 87.8–100.5 s, 3 runs, 2026-12-01 17:18–17:28 UTC)
# The ServiceTests action beside it (pipeline/tests_action.py): make install, then make check-service.
SERVICE_TESTS_S = 82
SERVICE_TESTS_ACTION = "ServiceTests"  # pipeline/tests_action.py
# Installing the pinned CLI: `make bench` row "pipeline tools" measured 1.7 s (aws-cdk) and 1.3 s (cdk-assets) from
# this machine's npm mirror, plus 0.6–1.9 s to start; from the public registry in AWS, 10 s (estimate).
TOOL_INSTALL_S = 10
# Self-mutation: the CLI install plus a `cdk deploy` that finds the pipeline stack unchanged (estimate 25 s).
SELF_MUTATE_WORK_S = TOOL_INSTALL_S + 25
ASSET_TOOL_INSTALL_S = TOOL_INSTALL_S
# bench/results ("container: `docker build` without layer cache"): this Dockerfile built with --no-cache on the
# 2-vCPU development machine, base image already local; CodeBuild MEDIUM has 4 vCPUs.
DOCKER_BUILD_S = 64
DOCKER_BASE_PULL_S = 15
DOCKER_PUSH_S = 15
# cdk-assets looks the tag up in ECR first and skips build and push when the image is already there.
DOCKER_IMAGE_FOUND_S = 5
FILE_ASSET_WORK_S = 10
# A file asset already in the bucket (its hash unchanged): cdk-assets checks and skips the upload.
FILE_ASSET_FOUND_S = 3
# Verify (pipeline/verification.py): boto3 into /tmp (`make bench` "pipeline tools": 8.2 s from a local mirror, plus
# 2 s of download, estimate), one rollout poll that finds CloudFormation's finished deployment (assume role + ECS
# reads, 5 s, estimate), the smoke test (0.12–0.18 s against `make run` here; 3 s through CloudFront, estimate) and,
# in the first environment, the image scan evidence (3 s, estimate).
VERIFY_INSTALL_S = 10
VERIFY_CONFIRM_S = 5
VERIFY_SMOKE_S = 3
VERIFY_SCAN_S = 3
VERIFY_WORK_S = VERIFY_INSTALL_S + VERIFY_CONFIRM_S + VERIFY_SMOKE_S
SECURITY_CHECK_WORK_S = 30
GENERIC_BUILD_WORK_S = 60
CFN_UPDATE_OVERHEAD_S = 45
# A stack whose template did not change: CloudFormation refuses the update at once ("No updates are to be
# performed") and the CodePipeline action succeeds; what remains is the action's dispatch and status polling.
CFN_NOOP_UPDATE_S = 15
CHANGE_SET_CREATE_S = 25
TASK_START_S = 45
LIFECYCLE_HOOK_S = 30

CDK_DEFAULT_HEALTH_INTERVAL_S = 30
CDK_DEFAULT_HEALTHY_THRESHOLD = 5
CDK_DEFAULT_DEREGISTRATION_S = 300

DOCS = {
    "codebuild_phases": "https://docs.aws.amazon.com/codebuild/latest/userguide/view-build-details.html#view-build-details-phases",
    "codebuild_compute": "https://docs.aws.amazon.com/codebuild/latest/userguide/lambda.html",
    "cdk_assets": "https://github.com/cdklabs/cdk-assets#readme",
    "codepipeline_conditions": "https://docs.aws.amazon.com/codepipeline/latest/userguide/stage-conditions.html",
    "codepipeline_rules": "https://docs.aws.amazon.com/codepipeline/latest/userguide/rule-reference.html",
    "fargate_task_launch": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html",
    "cfn_changesets": "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-changesets.html",
    "cfn_ecs_update": "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-ecs-service.html",
    "alb_health": "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health-checks.html",
    "alb_dereg": "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-target-group-attributes.html#deregistration-delay",
    "ecs_rolling": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html",
    "ecs_canary": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html",
    "ecs_alarms": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-alarm-failure.html",
    "ecs_stop_timeout": "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#container_definition_timeout",
    "ecs_grace": "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html#ECS-CreateService-request-healthCheckGracePeriodSeconds",
    "cw_alarm_eval": "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation",
    "alb_metrics": "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html",
    "cdk_pipelines": "https://docs.aws.amazon.com/cdk/api/v2/docs/aws-cdk-lib.pipelines-readme.html",
}

# (name, value, source or "estimate: why")
ASSUMPTIONS: list[tuple[str, str, str]] = [
    ("Source (CodeConnections) fetch", f"{SOURCE_S} s", "estimate (small repository)"),
    ("CodeBuild start before the first command (QUEUED + PROVISIONING + DOWNLOAD_SOURCE), standard (EC2) compute "
     "(BUILD_GENERAL1_*), compute type and image read per project from the pipeline template",
     f"{CODEBUILD_PROVISION_S} s (previous model: {PREVIOUS_CODEBUILD_PROVISION_S} s)",
     f"estimate (issue 12's stricter figure; curated images are cached on the hosts, so no image pull); phases: "
     f"{DOCS['codebuild_phases']}"),
    ("CodeBuild start on Lambda compute (BUILD_LAMBDA_*)", f"{CODEBUILD_LAMBDA_PROVISION_S} s",
     f"estimate (\"starts in seconds\"); {DOCS['codebuild_compute']}"),
    ("Build action: make install", f"{BUILD_INSTALL_S} s",
     "measured on the 2-vCPU development machine, 2026-12-01: venv 6.5 s (5.1–7.0 s, 3 runs), pip install without "
     "bytecode compilation 65.2 s (149.6 s with it), npm ci 2 s (bench/README.md); plus 20 s of PyPI downloads "
     "(estimate)"),
    ("Build action: make synth (cdk-nag and template validation, once per build)", f"{BUILD_SYNTH_S} s",
     "`make bench` synth \"validated\" on the 2-vCPU development machine, 2026-12-01 17:17 UTC: median 15.7 s "
     "(14.1–16.9 s, n=5); 14.6 s in the 15:36 UTC run"),
    ("Build action: make check-assembly (every test without Docker but the service's, on that assembly)",
     f"{BUILD_TESTS_S} s", "measured with 2 workers on 2 vCPUs, 2026-12-01 17:18–17:28 UTC: 725 tests, median of "
     "3 runs 97.0 s (87.8–100.5 s); CodeBuild MEDIUM's 4 vCPUs and the 4 workers `make` starts there not credited"),
    ("ServiceTests action (beside Build): make install + make check-service (163 tests, a real PostgreSQL)",
     f"{BUILD_INSTALL_S} s + {SERVICE_TESTS_S} s", "measured with 2 workers on 2 vCPUs, 2026-12-01 15:10 UTC: 81.8 s"),
    ("Pinned CDK tool install (npm aws-cdk or cdk-assets into /tmp) per action", f"{TOOL_INSTALL_S} s",
     "estimate from the public npm registry; measured from this machine's mirror: `make bench` rows \"pipeline "
     "tools\" (1.3–1.7 s install, 0.6–1.9 s start)"),
    ("Self-mutation work (tool install + `cdk deploy` of an unchanged pipeline stack)", f"{SELF_MUTATE_WORK_S} s",
     "estimate for the deploy (assume role, read the deployed template, compare: no changes)"),
    ("Docker image asset build without layer cache", f"{DOCKER_BUILD_S} s per image",
     "measured: `make bench` container row \"docker build without layer cache\" (63.8 s, 2 vCPUs, 2026-12-01)"),
    ("Docker base image pull (public ECR, slim Python, ~45 MB compressed)", f"{DOCKER_BASE_PULL_S} s per image",
     "estimate"),
    ("Docker push per destination registry (the rebuilt layers, ~30 MB compressed; unchanged layers are skipped)",
     f"{DOCKER_PUSH_S} s per destination; destinations read from the asset manifests", "estimate"),
    ("Docker image asset already in ECR (revert): existence check, build and push skipped",
     f"{DOCKER_IMAGE_FOUND_S} s per image", f"estimate; mechanism: {DOCS['cdk_assets']}"),
    ("File asset upload", f"{FILE_ASSET_WORK_S} s per file asset", "estimate"),
    ("File asset already in the bucket (a service change leaves every file asset's hash unchanged): checked, "
     "upload skipped", f"{FILE_ASSET_FOUND_S} s per file asset; count read from the action's buildspec in the "
     "assembly", f"estimate; mechanism: {DOCS['cdk_assets']}"),
    ("Verify action work: boto3 install + one rollout poll + smoke test (+ image scan evidence in the first "
     "environment)", f"{VERIFY_INSTALL_S} + {VERIFY_CONFIRM_S} + {VERIFY_SMOKE_S} s (+ {VERIFY_SCAN_S} s)",
     "install measured: `make bench` \"pipeline tools\" (8.2 s from a local mirror) + 2 s download (estimate); "
     "smoke test measured at 0.12–0.18 s against `make run`, 3 s through CloudFront (estimate); the poll and the "
     "scan lookup are estimates (CloudFormation completes only after the ECS deployment, so one poll finds it)"),
    ("IAM-broadening check work", f"{SECURITY_CHECK_WORK_S} s", "estimate"),
    ("CloudFormation stack update overhead (per stack, excluding ECS wait)", f"{CFN_UPDATE_OVERHEAD_S} s",
     f"estimate (change detection, IAM/parameter updates, stack events); {DOCS['cfn_ecs_update']}"),
    ("Stack whose template a service change leaves unchanged (no Docker image asset of its own): a no-op update",
     f"{CFN_NOOP_UPDATE_S} s", "estimate (CloudFormation answers \"No updates are to be performed\" at once, the "
     "CodePipeline action succeeds; dispatch and polling remain); which stacks hold the image is read from the "
     "assembly's asset manifests"),
    ("Change-set creation (useChangeSets)", f"{CHANGE_SET_CREATE_S} s (range 20–30 s)",
     f"estimate; mechanism: {DOCS['cfn_changesets']}"),
    ("CloudFormation waits for the ECS deployment (incl. bake) before the stack update completes", "yes",
     DOCS["cfn_ecs_update"]),
    ("Fargate task start (ENI, image pull, container start) until registered", f"{TASK_START_S} s",
     f"estimate (image of a few hundred MB pulled through ECR interface endpoints; a larger image pulls longer); "
     f"lifecycle: {DOCS['fargate_task_launch']}"),
    ("Target becomes healthy after interval × healthy threshold; grace period as a floor", "formula",
     f"{DOCS['alb_health']}; {DOCS['ecs_grace']}"),
    ("Old task drain = deregistration delay + StopTimeout (worst case: SIGKILL at StopTimeout)", "formula",
     f"{DOCS['alb_dereg']}; {DOCS['ecs_stop_timeout']}"),
    ("Rolling batches from minimumHealthyPercent / maximumPercent", "formula", DOCS["ecs_rolling"]),
    ("Canary: lifecycle hook (smoke test) run", f"{LIFECYCLE_HOOK_S} s", f"estimate; {DOCS['ecs_canary']}"),
    ("Alarm decision bound = period × evaluation periods + one period (traffic shifts mid-period) + publishing "
     "delay + evaluation interval (10 s for 10/30 s periods, else 60 s); stages/alarm_timing.py",
     f"formula; publishing delay {PUBLISHING_DELAY_S} s",
     f"{DOCS['alb_metrics']} (\"sends its metrics in 60-second intervals\"); {DOCS['cw_alarm_eval']}; {DOCS['ecs_alarms']}"),
    ("Bad canary: every request the canary serves answers 5xx; a per-target-group rate sees it at its own rate, a "
     "load-balancer rate diluted by the canary percentage", "model", DOCS["alb_metrics"]),
    ("Human waits (manual approvals, the prod BeforeEntry DeploymentWindow) excluded from lead time", "0 s",
     f"by definition of the metric; a deploy outside the window waits for it (or fails): {DOCS['codepipeline_rules']}"),
    ("Promotion gate (OnSuccess LambdaInvoke rule) watches the stage's composite alarm for BAKE_SECONDS",
     "BAKE_SECONDS of the gate function, from the template", DOCS["codepipeline_conditions"]),
    ("Headline split: \"work\" is everything except bakes, gate watches and human waits; \"bakes and gates\" are "
     "the canary step bake, the post-rollout bake and the promotion gate's watch", "definition",
     "issue 12 (bakes reported apart)"),
    ("CDK Pipelines defaults: publishAssetsInParallel=true, useChangeSets=true", "one action per asset; "
     "prepare+execute per stack", DOCS["cdk_pipelines"]),
    ("ALB target-group defaults: interval 30 s, healthy threshold 5, deregistration delay 300 s",
     f"{CDK_DEFAULT_HEALTH_INTERVAL_S} s × {CDK_DEFAULT_HEALTHY_THRESHOLD}, {CDK_DEFAULT_DEREGISTRATION_S} s",
     f"{DOCS['alb_health']}; {DOCS['alb_dereg']}"),
]


class ModelError(ValueError):
    """The template lacks something the model needs."""


# ---------------------------------------------------------------------------------------------------------------
# Template helpers
# ---------------------------------------------------------------------------------------------------------------
def resources_of(template: dict, type_: str) -> list[tuple[str, dict]]:
    return [(lid, r.get("Properties", {})) for lid, r in template.get("Resources", {}).items()
            if r.get("Type") == type_]


def find_pipeline(template: dict) -> dict | None:
    found = resources_of(template, "AWS::CodePipeline::Pipeline")
    return found[0][1] if found else None


def _int(value, default: int = 0) -> int:
    if value is None:
        return default
    return int(float(value))


# ---------------------------------------------------------------------------------------------------------------
# Environment facts (merged over the stacks of one stage)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Alarm:
    name: str
    period_s: int
    datapoints: int
    evaluation_periods: int = 0  # 0: as many as datapoints
    threshold: float | None = None
    rate_scope: str | None = None  # 5xx rate alarms: "target group" (each alone) or "load balancer"

    @property
    def decision_s(self) -> int:
        """Upper bound from bad traffic to ALARM (stages/alarm_timing.py), held condition assumed."""
        return decision_bound_s(self.period_s, self.evaluation_periods or self.datapoints)


@dataclass(frozen=True, kw_only=True)
class Service:
    strategy: str
    min_percent: int
    max_percent: int
    grace_s: int
    bake_min: int
    canary_percent: float | None  # canary percent, or the step percent of a linear deployment
    canary_bake_min: int  # the bake of one held step
    held_steps: int = 1  # canary: 1; linear: every step before 100 %
    alarm_names: tuple[str, ...]
    health_interval_s: int
    healthy_threshold: int
    deregistration_s: int
    stop_timeout_s: int
    cpu_units: int
    memory_mib: int
    min_tasks: int
    max_tasks: int


@dataclass(frozen=True, kw_only=True)
class Environment:
    name: str
    stack_names: tuple[str, ...] = ()
    service: Service | None = None
    service_stack: str | None = None
    alarms: dict[str, Alarm] = field(default_factory=dict)
    nat_gateways: int = 0
    eips: int = 0
    interface_endpoint_azs: int = 0
    db_class: str | None = None
    db_multi_az: bool = False
    db_storage_gb: int = 0
    kms_keys: int = 0
    secrets: int = 0
    web_acls: int = 0
    waf_rules: int = 0
    load_balancers: int = 0
    distributions: int = 0
    vpc_origins: int = 0
    alarm_count_standard: int = 0
    alarm_count_high_res: int = 0


def alarm_of(props: dict) -> Alarm:
    """Period × datapoints; math alarms take the longest period among their metrics."""
    period = props.get("Period")
    if period is None:
        periods = [m["MetricStat"]["Period"] for m in props.get("Metrics", []) if "MetricStat" in m]
        periods += [m["Period"] for m in props.get("Metrics", []) if "Period" in m]
        if not periods:
            raise ModelError(f"alarm {props.get('AlarmName')!r} has no period")
        period = max(_int(p) for p in periods)
    evaluation = _int(props.get("EvaluationPeriods"), 1)
    datapoints = _int(props.get("DatapointsToAlarm"), evaluation)
    threshold = props.get("Threshold")
    return Alarm(name=str(props.get("AlarmName", "")), period_s=_int(period), datapoints=datapoints,
                 evaluation_periods=evaluation, threshold=float(threshold) if threshold is not None else None,
                 rate_scope=_rate_scope(props))


def _rate_scope(props: dict) -> str | None:
    """A 5xx-per-requests expression: judged per target group when every input carries a TargetGroup dimension."""
    stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    names = {m.get("MetricName", "") for m in stats}
    if "RequestCount" not in names or not any("5XX" in n for n in names):
        return None
    grouped = all(any(d.get("Name") == "TargetGroup" for d in m.get("Dimensions", [])) for m in stats)
    return "target group" if grouped else "load balancer"


def _attributes(props: dict) -> dict[str, str]:
    return {a["Key"]: a["Value"] for a in props.get("TargetGroupAttributes", [])}


def service_of(template: dict) -> Service | None:
    services = resources_of(template, "AWS::ECS::Service")
    if not services:
        return None
    _, svc = services[0]
    dc = svc.get("DeploymentConfiguration", {})
    groups = [p for _, p in resources_of(template, "AWS::ElasticLoadBalancingV2::TargetGroup")]
    tg = groups[0] if groups else {}
    tasks = [p for _, p in resources_of(template, "AWS::ECS::TaskDefinition")]
    task = tasks[0] if tasks else {}
    container = (task.get("ContainerDefinitions") or [{}])[0]
    targets = [p for _, p in resources_of(template, "AWS::ApplicationAutoScaling::ScalableTarget")]
    desired = _int(svc.get("DesiredCount"), 1)
    min_tasks = _int(targets[0].get("MinCapacity"), desired) if targets else desired
    max_tasks = _int(targets[0].get("MaxCapacity"), min_tasks) if targets else min_tasks
    canary = dc.get("CanaryConfiguration") or {}
    linear = dc.get("LinearConfiguration") or {}
    if linear and "StepPercent" in linear:
        step = float(linear["StepPercent"])
        canary = {"CanaryPercent": step, "CanaryBakeTimeInMinutes": linear.get("StepBakeTimeInMinutes", 0)}
        held = max(math.ceil(100 / step) - 1, 1)
    else:
        held = 1
    return Service(
        strategy=dc.get("Strategy", "ROLLING"),
        min_percent=_int(dc.get("MinimumHealthyPercent"), 100),
        max_percent=_int(dc.get("MaximumPercent"), 200),
        grace_s=_int(svc.get("HealthCheckGracePeriodSeconds"), 0),
        bake_min=_int(dc.get("BakeTimeInMinutes"), 0),
        canary_percent=float(canary["CanaryPercent"]) if "CanaryPercent" in canary else None,
        canary_bake_min=_int(canary.get("CanaryBakeTimeInMinutes"), 0),
        held_steps=held,
        alarm_names=tuple((dc.get("Alarms") or {}).get("AlarmNames", [])),
        health_interval_s=_int(tg.get("HealthCheckIntervalSeconds"), CDK_DEFAULT_HEALTH_INTERVAL_S),
        healthy_threshold=_int(tg.get("HealthyThresholdCount"), CDK_DEFAULT_HEALTHY_THRESHOLD),
        deregistration_s=_int(_attributes(tg).get("deregistration_delay.timeout_seconds"),
                              CDK_DEFAULT_DEREGISTRATION_S),
        stop_timeout_s=_int(container.get("StopTimeout"), 30),
        cpu_units=_int(task.get("Cpu"), 256),
        memory_mib=_int(task.get("Memory"), 512),
        min_tasks=min_tasks,
        max_tasks=max_tasks,
    )


def environment_of(name: str, stacks: dict[str, dict]) -> Environment:
    """Merge the facts of one environment's stacks ({stack name: template})."""
    env = Environment(name=name, stack_names=tuple(stacks))
    alarms: dict[str, Alarm] = {}
    counts = dict(nat=0, eip=0, endpoints=0, kms=0, secrets=0, acl=0, rules=0, lb=0, std=0, hi=0, cf=0, vpco=0)
    db = None
    for stack_name, template in stacks.items():
        svc = service_of(template)
        if svc is not None:
            env = replace(env, service=svc, service_stack=stack_name)
        for _, props in resources_of(template, "AWS::CloudWatch::Alarm"):
            alarm = alarm_of(props)
            if alarm.name:
                alarms[alarm.name] = alarm
            counts["hi" if alarm.period_s < 60 else "std"] += 1
        counts["nat"] += len(resources_of(template, "AWS::EC2::NatGateway"))
        counts["eip"] += len(resources_of(template, "AWS::EC2::EIP"))
        counts["endpoints"] += sum(max(len(p.get("SubnetIds", [])), 1)
                                   for _, p in resources_of(template, "AWS::EC2::VPCEndpoint")
                                   if p.get("VpcEndpointType") == "Interface")
        counts["kms"] += len(resources_of(template, "AWS::KMS::Key"))
        counts["secrets"] += len(resources_of(template, "AWS::SecretsManager::Secret"))
        acls = resources_of(template, "AWS::WAFv2::WebACL")
        counts["acl"] += len(acls)
        counts["rules"] += sum(len(p.get("Rules", [])) for _, p in acls)
        counts["lb"] += len(resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer"))
        counts["cf"] += len(resources_of(template, "AWS::CloudFront::Distribution"))
        counts["vpco"] += len(resources_of(template, "AWS::CloudFront::VpcOrigin"))
        instances = resources_of(template, "AWS::RDS::DBInstance")
        if instances:
            db = instances[0][1]
    return replace(
        env, alarms=alarms, nat_gateways=counts["nat"], eips=counts["eip"],
        interface_endpoint_azs=counts["endpoints"], kms_keys=counts["kms"], secrets=counts["secrets"],
        web_acls=counts["acl"], waf_rules=counts["rules"], load_balancers=counts["lb"],
        distributions=counts["cf"], vpc_origins=counts["vpco"],
        alarm_count_standard=counts["std"], alarm_count_high_res=counts["hi"],
        db_class=db.get("DBInstanceClass") if db else None,
        db_multi_az=str(db.get("MultiAZ", False)).lower() == "true" if db else False,
        db_storage_gb=_int(db.get("AllocatedStorage"), 0) if db else 0,
    )


# ---------------------------------------------------------------------------------------------------------------
# ECS rollout and rollback
# ---------------------------------------------------------------------------------------------------------------
def healthy_s(svc: Service) -> int:
    return max(svc.grace_s, svc.health_interval_s * svc.healthy_threshold)


def drain_s(svc: Service) -> int:
    return svc.deregistration_s + svc.stop_timeout_s


def rolling_batch_size(svc: Service, tasks: int) -> int:
    """Tasks replaced per wave: headroom above desired (maximumPercent) plus allowed dip (minimumHealthyPercent)."""
    above = max(math.floor(tasks * svc.max_percent / 100) - tasks, 0)
    below = max(tasks - math.ceil(tasks * svc.min_percent / 100), 0)
    size = above + below
    if size <= 0:
        raise ModelError("minimumHealthyPercent/maximumPercent leave no room to replace a task")
    return min(size, tasks)


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """Modelled ECS deployment of a healthy change: replacement (tasks swapped) then bake."""
    tasks: int
    waves: int
    wave_s: int
    replace_s: int  # includes the step bake(s): traffic is held on the new tasks meanwhile
    bake_s: int  # the post-rollout bake (BakeTimeInMinutes)
    step_bake_s: int = 0  # canary/linear step bake(s) inside replace_s

    @property
    def total_s(self) -> int:
        return self.replace_s + self.bake_s


def rollout(svc: Service, tasks: int | None = None) -> Rollout:
    """Rolling: waves × (start + healthy + drain). Canary/blue-green: one wave for the full green set, the
    lifecycle hook, canary bake, then (after the bake time) the old set drains."""
    n = svc.min_tasks if tasks is None else tasks
    if svc.strategy == "ROLLING":
        size = rolling_batch_size(svc, n)
        waves = math.ceil(n / size)
        wave = TASK_START_S + healthy_s(svc) + drain_s(svc)
        return Rollout(tasks=n, waves=waves, wave_s=wave, replace_s=waves * wave, bake_s=svc.bake_min * 60)
    step_bake = svc.canary_bake_min * 60 * (svc.held_steps if svc.canary_percent is not None else 0)
    wave = TASK_START_S + healthy_s(svc) + LIFECYCLE_HOOK_S + step_bake
    return Rollout(tasks=n, waves=1, wave_s=wave, replace_s=wave + drain_s(svc), bake_s=svc.bake_min * 60,
                   step_bake_s=step_bake)


def with_cdk_default_health(svc: Service) -> Service:
    return replace(svc, health_interval_s=CDK_DEFAULT_HEALTH_INTERVAL_S,
                   healthy_threshold=CDK_DEFAULT_HEALTHY_THRESHOLD, deregistration_s=CDK_DEFAULT_DEREGISTRATION_S)


@dataclass(frozen=True, kw_only=True)
class CanaryVerdict:
    """How the deployment 5xx-rate alarms see a canary of which `failing_percent` of requests answer 5xx."""
    canary_percent: float
    failing_percent: float
    seen: tuple[tuple[Alarm, float], ...]  # (rate alarm, the rate it sees)
    canary_bake_s: int

    @property
    def tripping(self) -> list[Alarm]:
        return [a for a, rate in self.seen if a.threshold is not None and rate >= a.threshold]

    @property
    def decision_s(self) -> int | None:
        return min((a.decision_s for a in self.tripping), default=None)

    @property
    def caught_before_promotion(self) -> bool:
        return self.decision_s is not None and self.decision_s <= self.canary_bake_s


def bad_canary(env: Environment, failing_percent: float = 100.0) -> CanaryVerdict | None:
    """None unless the environment deploys by canary."""
    svc = env.service
    if svc is None or svc.canary_percent is None:
        return None
    seen = []
    for alarm in deployment_alarms(env):
        if alarm.rate_scope == "target group":
            seen.append((alarm, failing_percent))
        elif alarm.rate_scope == "load balancer":
            seen.append((alarm, failing_percent * svc.canary_percent / 100))
    return CanaryVerdict(canary_percent=svc.canary_percent, failing_percent=failing_percent, seen=tuple(seen),
                         canary_bake_s=svc.canary_bake_min * 60)


def deployment_alarms(env: Environment) -> list[Alarm]:
    if env.service is None:
        return []
    missing = [n for n in env.service.alarm_names if n not in env.alarms]
    if missing:
        raise ModelError(f"{env.name}: deployment alarm(s) not in the templates: {', '.join(missing)}")
    return sorted((env.alarms[n] for n in env.service.alarm_names), key=lambda a: (a.decision_s, a.name))


# ---------------------------------------------------------------------------------------------------------------
# Pipeline critical path
# ---------------------------------------------------------------------------------------------------------------
# Segment labels the headline split depends on (bakes and gates are reported apart from work).
POST_BAKE_LABEL = "post-rollout bake"
GATE_LABEL = "promotion gate watch"
HUMAN_WAIT_LABEL = "human wait (excluded)"
WINDOW_LABEL = "deployment window: calendar wait (excluded)"


def canary_bake_label(percent: float) -> str:
    return f"canary step bake (traffic held at {percent:g} %)"


def segment_class(label: str) -> str:
    """work | bake | gate | wait."""
    if label.startswith("canary step bake") or label == POST_BAKE_LABEL:
        return "bake"
    if label == GATE_LABEL:
        return "gate"
    if label in (HUMAN_WAIT_LABEL, WINDOW_LABEL):
        return "wait"
    return "work"


@dataclass(frozen=True, kw_only=True)
class Timing:
    """The estimates that differ between model variants, so each runs on the same template."""
    label: str
    provision_standard_s: int
    provision_lambda_s: int
    stage_conditions: bool  # model BeforeEntry / OnSuccess conditions (gate watch, deployment window)
    lambda_compute: bool = True  # price Lambda-compute projects as Lambda (False: as standard compute)
    noop_updates: bool = True  # a stack the commit leaves unchanged costs a no-op update
    split_tests: bool = True  # the service's tests run in their own action beside Build (False: inside Build)
    pip_no_compile: bool = True  # make install skips pip's bytecode compilation


CURRENT = Timing(label="this model", provision_standard_s=CODEBUILD_PROVISION_S,
                 provision_lambda_s=CODEBUILD_LAMBDA_PROVISION_S, stage_conditions=True)
PREVIOUS = Timing(label="previous model", provision_standard_s=PREVIOUS_CODEBUILD_PROVISION_S,
                  provision_lambda_s=PREVIOUS_CODEBUILD_PROVISION_S, stage_conditions=False, noop_updates=False)
# This model with issue 12's levers taken out: every CodeBuild action on standard compute, every stack fully updated.
BEFORE_LEVERS = replace(CURRENT, label="before the levers", lambda_compute=False, noop_updates=False,
                        split_tests=False, pip_no_compile=False)
# CDK Pipelines' defaults put every CodeBuild action on standard compute.
CDK_DEFAULTS = replace(CURRENT, label="CDK Pipelines defaults", lambda_compute=False)


@dataclass(frozen=True, kw_only=True)
class Step:
    stage: str
    name: str
    kind: str  # source | codebuild | cloudformation | changeset | approval | gate | condition | other
    run_order: int
    segments: tuple[tuple[str, int], ...]  # (label, seconds): e.g. ("provision", 90), ("ECS rollout", 40)
    stack: str | None = None
    compute: str | None = None  # CodeBuild compute type and image, from the template
    start_s: int = 0

    @property
    def duration_s(self) -> int:
        return sum(s for _, s in self.segments)

    def seconds_of(self, *classes: str) -> int:
        return sum(sec for label, sec in self.segments if segment_class(label) in classes)


@dataclass(frozen=True, kw_only=True)
class Project:
    compute_type: str
    image: str
    scans_image: bool = False  # its buildspec runs the image scan gate

    @property
    def is_lambda(self) -> bool:
        return "LAMBDA" in self.compute_type.upper()

    def provision_s(self, timing: Timing) -> int:
        return timing.provision_lambda_s if self.is_lambda and timing.lambda_compute else timing.provision_standard_s


def codebuild_projects(template: dict) -> dict[str, Project]:
    """logical id → compute type and image of every CodeBuild project in the pipeline template."""
    out = {}
    for lid, props in resources_of(template, "AWS::CodeBuild::Project"):
        env = props.get("Environment") or {}
        spec = (props.get("Source") or {}).get("BuildSpec")
        out[lid] = Project(compute_type=str(env.get("ComputeType", "")), image=str(env.get("Image", "")),
                           scans_image=isinstance(spec, str) and "image_scan_gate.py" in spec)
    return out


def _ref(value) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def gate_seconds(template: dict, function) -> int:
    """The watch time of a LambdaInvoke gate: its function's BAKE_SECONDS environment variable."""
    lid = _ref(function)
    props = dict(resources_of(template, "AWS::Lambda::Function")).get(lid or "")
    variables = ((props or {}).get("Environment") or {}).get("Variables") or {}
    if "BAKE_SECONDS" not in variables:
        raise ModelError(f"gate function {function!r}: no BAKE_SECONDS in the template")
    return _int(variables["BAKE_SECONDS"])


def _codebuild_work(name: str, timing: Timing, *, tests_beside: bool = False,
                    scans: bool = False) -> tuple[tuple[str, int], ...]:
    """tests_beside: the pipeline has a ServiceTests action (whose tests Build ran itself before the split)."""
    lowered = name.lower()
    install = BUILD_INSTALL_S + (0 if timing.pip_no_compile else PIP_COMPILE_S)
    if "selfmutat" in lowered:
        return (("self-mutation", SELF_MUTATE_WORK_S),)
    if lowered.startswith("verify"):
        scan = (("image scan evidence", VERIFY_SCAN_S),) if scans else ()
        return (("boto3 install", VERIFY_INSTALL_S), *scan, ("rollout confirmed", VERIFY_CONFIRM_S),
                ("smoke test", VERIFY_SMOKE_S))
    if "broadening" in lowered or "securitycheck" in lowered:
        return (("IAM check", SECURITY_CHECK_WORK_S),)
    if lowered in {"build", "synth"}:
        service = (("service tests", SERVICE_TESTS_S),) if tests_beside and not timing.split_tests else ()
        return (("install", install), ("synth", BUILD_SYNTH_S), ("tests", BUILD_TESTS_S), *service)
    if lowered == SERVICE_TESTS_ACTION.lower():
        return (("install", install), ("service tests", SERVICE_TESTS_S))
    return (("work", GENERIC_BUILD_WORK_S),)


def _is_asset_action(name: str) -> bool:
    lowered = name.lower()
    return "docker" in lowered or ("file" in lowered and "asset" in lowered)


def _asset_segments(name: str, assets: dict[str, int], *, provision_s: int,
                    image_exists: bool) -> tuple[tuple[str, int], ...]:
    head = (("provision", provision_s), ("asset tool", ASSET_TOOL_INSTALL_S))
    if "docker" in name.lower():
        images = max(assets.get("docker", 0), 1)
        destinations = max(assets.get("docker_destinations", 0), images)
        if image_exists:
            return (*head, ("image found: build skipped", DOCKER_IMAGE_FOUND_S * destinations))
        return (*head, ("base image pull", DOCKER_BASE_PULL_S * images), ("docker build", DOCKER_BUILD_S * images),
                (f"push to {destinations} registr{'y' if destinations == 1 else 'ies'}", DOCKER_PUSH_S * destinations))
    files = max(assets.get("file", 0), 1)
    if assets.get("files_unchanged"):
        return (*head, ("files found: upload skipped", FILE_ASSET_FOUND_S * files))
    return (*head, ("file upload", FILE_ASSET_WORK_S * files))


def ecs_segments(svc: Service) -> tuple[tuple[str, int], ...]:
    r = rollout(svc)
    if r.step_bake_s:
        assert svc.canary_percent is not None
        segs: list[tuple[str, int]] = [("ECS rollout", r.replace_s - r.step_bake_s - drain_s(svc)),
                                       (canary_bake_label(svc.canary_percent), r.step_bake_s),
                                       ("ECS rollout", drain_s(svc))]
    else:
        segs = [("ECS rollout", r.replace_s)]
    if r.bake_s:
        segs.append((POST_BAKE_LABEL, r.bake_s))
    return tuple(segs)


def _condition_steps(stage: dict, template: dict, members: list[Step]) -> list[Step]:
    """BeforeEntry rules as a step before the stage's first action, OnSuccess rules as one after its last."""
    out = []
    first = min((s.run_order for s in members), default=1)
    last = max((s.run_order for s in members), default=1)
    for key, run_order, kind in (("BeforeEntry", first - 1, "condition"), ("OnSuccess", last + 1, "gate")):
        for condition in (stage.get(key) or {}).get("Conditions", []):
            for rule in condition.get("Rules", []):
                provider = rule.get("RuleTypeId", {}).get("Provider")
                if provider == "LambdaInvoke":
                    segs = ((GATE_LABEL, gate_seconds(template, rule.get("Configuration", {}).get("FunctionName"))),)
                elif provider == "DeploymentWindow":
                    segs = ((WINDOW_LABEL, 0),)
                else:
                    raise ModelError(f"{stage['Name']}: no model for a {provider} rule ({key})")
                out.append(Step(stage=stage["Name"], name=f"{key}: {rule.get('Name', provider)}", kind=kind,
                                run_order=run_order, segments=segs))
    return out


def pipeline_steps(pipeline: dict, *, services: dict[str, Service], assets: dict[str, int],
                   template: dict | None = None, timing: Timing = CURRENT, image_exists: bool = False,
                   unchanged_stacks: frozenset[str] = frozenset()) -> list[Step]:
    """Every action, ordered by stage then RunOrder, with modelled segments.

    services: stack name → Service for stacks that hold an ECS service. assets: counts of "docker"/"file".
    template: the pipeline stack's template (CodeBuild projects, gate functions). image_exists: a revert, whose
    image is already in ECR. unchanged_stacks: stacks whose template the modelled commit does not change.
    """
    template = template or {}
    projects = codebuild_projects(template)
    tests_beside = any(a["Name"] == SERVICE_TESTS_ACTION for st in pipeline.get("Stages", []) for a in st.get("Actions", []))
    steps: list[Step] = []
    for stage in pipeline.get("Stages", []):
        members: list[Step] = []
        actions = sorted(stage.get("Actions", []), key=lambda a: (_int(a.get("RunOrder"), 1), a["Name"]))
        for action in actions:
            type_ = action.get("ActionTypeId", {})
            category, provider = type_.get("Category"), type_.get("Provider")
            config = action.get("Configuration", {})
            stack = config.get("StackName")
            run_order = _int(action.get("RunOrder"), 1)
            compute = None
            if category == "Approval":
                kind, segs = "approval", ((HUMAN_WAIT_LABEL, 0),)
            elif category == "Source":
                kind, segs = "source", (("fetch", SOURCE_S),)
            elif provider == "CodeBuild" and action["Name"] == SERVICE_TESTS_ACTION and not timing.split_tests:
                continue  # before the split, the Build action ran these tests itself
            elif provider == "CodeBuild":
                kind = "codebuild"
                ref = _ref(config.get("ProjectName"))
                if ref is not None and template and ref not in projects:
                    raise ModelError(f"{action['Name']}: CodeBuild project {ref} not in the pipeline template")
                project = projects.get(ref or "", Project(compute_type="BUILD_GENERAL1_MEDIUM", image="(assumed)"))
                compute = f"{project.compute_type}, {project.image}"
                provision = project.provision_s(timing)
                if _is_asset_action(action["Name"]):
                    segs = _asset_segments(action["Name"], assets, provision_s=provision, image_exists=image_exists)
                else:
                    segs = (("provision", provision), *_codebuild_work(action["Name"], timing, tests_beside=tests_beside,
                                                                       scans=project.scans_image))
            elif provider == "CloudFormation":
                mode = config.get("ActionMode", "CREATE_UPDATE")
                if mode == "CHANGE_SET_REPLACE":
                    kind, segs = "changeset", (("create change set", CHANGE_SET_CREATE_S),)
                else:
                    kind = "cloudformation"
                    segs = (("stack update", CFN_UPDATE_OVERHEAD_S),)
                    if timing.noop_updates and stack in unchanged_stacks:
                        segs = (("no-op update (template unchanged)", CFN_NOOP_UPDATE_S),)
                    elif stack in services:
                        segs += ecs_segments(services[stack])
            else:
                kind, segs = "other", (("work", GENERIC_BUILD_WORK_S),)
            members.append(Step(stage=stage["Name"], name=action["Name"], kind=kind, run_order=run_order,
                                segments=segs, stack=stack, compute=compute))
        if timing.stage_conditions:
            members += _condition_steps(stage, template, members)
        steps += members
    return schedule(steps)


def schedule(steps: list[Step]) -> list[Step]:
    """Stages run one after another; within a stage, RunOrder groups in sequence, actions of a group in
    parallel (a group lasts as long as its slowest action)."""
    out: list[Step] = []
    clock = 0
    for stage, order, group in _groups(steps):
        for s in group:
            out.append(replace(s, start_s=clock))
        clock += max(s.duration_s for s in group)
    return out


def _groups(steps: list[Step]) -> list[tuple[str, int, list[Step]]]:
    stages: list[str] = []
    for s in steps:
        if s.stage not in stages:
            stages.append(s.stage)
    out = []
    for stage in stages:
        members = [s for s in steps if s.stage == stage]
        for order in sorted({s.run_order for s in members}):
            out.append((stage, order, [s for s in members if s.run_order == order]))
    return out


def lead_time_s(steps: list[Step]) -> int:
    return max((s.start_s + s.duration_s for s in steps), default=0)


def critical_path(steps: list[Step]) -> list[Step]:
    """The slowest action of every RunOrder group: the actions the lead time is made of."""
    return [max(group, key=lambda s: s.duration_s) for _, _, group in _groups(steps)]


@dataclass(frozen=True, kw_only=True)
class LeadTime:
    work_s: int
    bakes_and_gates_s: int

    @property
    def total_s(self) -> int:
        return self.work_s + self.bakes_and_gates_s


def lead_time(steps: list[Step]) -> LeadTime:
    path = critical_path(steps)
    return LeadTime(work_s=sum(s.seconds_of("work") for s in path),
                    bakes_and_gates_s=sum(s.seconds_of("bake", "gate") for s in path))


def bakes_and_gates(steps: list[Step]) -> list[tuple[str, str, int]]:
    """(stage, label, seconds) of every bake and gate watch on the critical path."""
    return [(s.stage, label, sec) for s in critical_path(steps) for label, sec in s.segments
            if segment_class(label) in ("bake", "gate")]


def cdk_defaults_pipeline(pipeline: dict, *, asset_ids: dict[str, list[str]]) -> dict:
    """Rewrite our pipeline as CDK Pipelines would lay it out with its defaults: one asset action per asset,
    and each CloudFormation deploy split into a change-set prepare + execute pair."""
    stages = []
    for stage in pipeline.get("Stages", []):
        actions = stage.get("Actions", [])
        is_assets = bool(actions) and all(_is_asset_action(a["Name"]) for a in actions)
        if is_assets:
            new = [{"Name": f"{kind.capitalize()}Asset{i + 1}", "RunOrder": 1,
                    "ActionTypeId": {"Category": "Build", "Provider": "CodeBuild"}}
                   for kind in ("docker", "file") for i in range(len(asset_ids.get(kind, [])))]
            stages.append({**stage, "Actions": new})
            continue
        new = []
        shift = 0
        for order in sorted({_int(a.get("RunOrder"), 1) for a in actions}):
            group = [a for a in actions if _int(a.get("RunOrder"), 1) == order]
            deploys = [a for a in group if a.get("ActionTypeId", {}).get("Provider") == "CloudFormation"
                       and a.get("Configuration", {}).get("ActionMode", "CREATE_UPDATE") == "CREATE_UPDATE"]
            for a in group:
                if a in deploys:
                    base = a["Name"].rsplit(".", 1)[0]
                    cfg = dict(a.get("Configuration", {}))
                    new.append({**a, "Name": f"{base}.Prepare", "RunOrder": order + shift,
                                "Configuration": {**cfg, "ActionMode": "CHANGE_SET_REPLACE"}})
                    new.append({**a, "Name": f"{base}.Deploy", "RunOrder": order + shift + 1,
                                "Configuration": {**cfg, "ActionMode": "CHANGE_SET_EXECUTE"}})
                else:
                    new.append({**a, "RunOrder": order + shift})
            if deploys:
                shift += 1
        stages.append({**stage, "Actions": new})
    return {**pipeline, "Stages": stages}


# ---------------------------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------------------------
HOURS_PER_MONTH = 730
PRICE_DATE = "2025-06"
PRICES: dict[str, tuple[float, str, str]] = {
    # key: (USD, unit, source page)
    "fargate_vcpu_hour": (0.04048, "per vCPU-hour (Linux/x86)", "https://aws.amazon.com/fargate/pricing/"),
    "fargate_gb_hour": (0.004445, "per GB-hour", "https://aws.amazon.com/fargate/pricing/"),
    "alb_hour": (0.0252, "per ALB-hour", "https://aws.amazon.com/elasticloadbalancing/pricing/"),
    "alb_lcu_hour": (0.008, "per LCU-hour", "https://aws.amazon.com/elasticloadbalancing/pricing/"),
    "nat_hour": (0.048, "per NAT gateway-hour (data processing not included)", "https://aws.amazon.com/vpc/pricing/"),
    "public_ipv4_hour": (0.005, "per public IPv4 address-hour (NAT EIPs)", "https://aws.amazon.com/vpc/pricing/"),
    "endpoint_az_hour": (0.011, "per interface endpoint per AZ-hour", "https://aws.amazon.com/privatelink/pricing/"),
    "db.t4g.micro": (0.017, "per instance-hour, PostgreSQL Single-AZ", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "db.t4g.small": (0.034, "per instance-hour, PostgreSQL Single-AZ", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "db.r7g.large": (0.264, "per instance-hour, PostgreSQL Single-AZ", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "gp3_gb_month": (0.127, "per GB-month, Single-AZ (×2 Multi-AZ)", "https://aws.amazon.com/rds/postgresql/pricing/"),
    "kms_key_month": (1.00, "per customer managed key-month", "https://aws.amazon.com/kms/pricing/"),
    "secret_month": (0.40, "per secret-month", "https://aws.amazon.com/secrets-manager/pricing/"),
    "logs_ingest_gb": (0.57, "per GB ingested", "https://aws.amazon.com/cloudwatch/pricing/"),
    "alarm_standard_month": (0.10, "per standard-resolution alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "alarm_high_res_month": (0.30, "per high-resolution alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "waf_acl_month": (5.00, "per web ACL-month", "https://aws.amazon.com/waf/pricing/"),
    "waf_rule_month": (1.00, "per rule-month", "https://aws.amazon.com/waf/pricing/"),
    "cloudfront_https_10k": (0.012, "per 10,000 HTTPS requests (Europe; the always-free tier not deducted)",
                             "https://aws.amazon.com/cloudfront/pricing/"),
    "cloudfront_gb_out": (0.085, "per GB to the internet, first 10 TB (Europe/US; the always-free tier not deducted)",
                          "https://aws.amazon.com/cloudfront/pricing/"),
    "vpc_origin_month": (0.00, "per VPC origin-month: no additional charge", "https://aws.amazon.com/cloudfront/pricing/"),
}
LCU_ESTIMATE = 1.0
# Traffic a small service sees per environment and month (estimate); CloudFront has no fixed monthly charge.
CLOUDFRONT_MILLION_REQUESTS = 1.0
CLOUDFRONT_GB_OUT = 10.0
LOG_GB_PER_TASK_MONTH = 2.0


def monthly_cost(env: Environment, prices: dict[str, tuple[float, str, str]] = PRICES) -> list[tuple[str, float]]:
    """(line, USD per month) at the minimum task count; the last line is the total."""
    p = {k: v[0] for k, v in prices.items()}
    h = HOURS_PER_MONTH
    lines: list[tuple[str, float]] = []
    svc = env.service
    if svc is not None:
        vcpu, gb = svc.cpu_units / 1024, svc.memory_mib / 1024
        lines.append((f"Fargate {svc.min_tasks} × ({vcpu:g} vCPU, {gb:g} GB)",
                      svc.min_tasks * h * (vcpu * p["fargate_vcpu_hour"] + gb * p["fargate_gb_hour"])))
        lines.append((f"Logs ingestion ~{LOG_GB_PER_TASK_MONTH * svc.min_tasks:g} GB (estimate)",
                      LOG_GB_PER_TASK_MONTH * svc.min_tasks * p["logs_ingest_gb"]))
    if env.load_balancers:
        lines.append((f"ALB × {env.load_balancers} + {LCU_ESTIMATE:g} LCU (estimate)",
                      env.load_balancers * h * (p["alb_hour"] + LCU_ESTIMATE * p["alb_lcu_hour"])))
    if env.nat_gateways:
        lines.append((f"NAT gateway × {env.nat_gateways}", env.nat_gateways * h * p["nat_hour"]))
    if env.eips:
        lines.append((f"Public IPv4 (EIP) × {env.eips}", env.eips * h * p["public_ipv4_hour"]))
    if env.interface_endpoint_azs:
        lines.append((f"Interface endpoint AZ-hours × {env.interface_endpoint_azs}",
                      env.interface_endpoint_azs * h * p["endpoint_az_hour"]))
    if env.db_class:
        if env.db_class not in p:
            raise ModelError(f"{env.name}: no price for {env.db_class}")
        factor = 2 if env.db_multi_az else 1
        az = "Multi-AZ" if env.db_multi_az else "Single-AZ"
        lines.append((f"RDS {env.db_class} {az}", factor * h * p[env.db_class]))
        lines.append((f"gp3 {env.db_storage_gb} GB {az}", factor * env.db_storage_gb * p["gp3_gb_month"]))
    if env.kms_keys:
        lines.append((f"KMS keys × {env.kms_keys}", env.kms_keys * p["kms_key_month"]))
    if env.secrets:
        lines.append((f"Secrets × {env.secrets}", env.secrets * p["secret_month"]))
    if env.alarm_count_standard or env.alarm_count_high_res:
        lines.append((f"Alarms {env.alarm_count_standard} standard + {env.alarm_count_high_res} high-res",
                      env.alarm_count_standard * p["alarm_standard_month"]
                      + env.alarm_count_high_res * p["alarm_high_res_month"]))
    if env.web_acls:
        lines.append((f"WAF web ACL × {env.web_acls} + {env.waf_rules} rules (requests extra)",
                      env.web_acls * p["waf_acl_month"] + env.waf_rules * p["waf_rule_month"]))
    if env.distributions:
        lines.append((f"CloudFront × {env.distributions}: ~{CLOUDFRONT_MILLION_REQUESTS:g} M HTTPS requests + "
                      f"{CLOUDFRONT_GB_OUT:g} GB out each (estimate)",
                      env.distributions * (CLOUDFRONT_MILLION_REQUESTS * 100 * p["cloudfront_https_10k"]
                                           + CLOUDFRONT_GB_OUT * p["cloudfront_gb_out"])))
    if env.vpc_origins:
        lines.append((f"CloudFront VPC origin × {env.vpc_origins}", env.vpc_origins * p["vpc_origin_month"]))
    lines = [(name, round(v, 2)) for name, v in lines]
    lines.append(("Total", round(sum(v for _, v in lines), 2)))
    return lines
