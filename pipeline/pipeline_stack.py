from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import pipelines
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from pipeline.buildspec import read_buildspec
from pipeline.compute import (
    CDK_CLI,
    LAMBDA_NODE_IMAGE,
    STANDARD_IMAGE,
    STANDARD_TIMEOUT,
    cdk_cli_install,
    lambda_options,
    runtime_buildspec,
    standard_options,
)
from pipeline.gates import AlarmGate, apply_gates
from pipeline.tests_action import add_service_tests
from pipeline.verification import verification_step
from stages.retention import retention
from stages.nag import acknowledge, acknowledge_wildcards
from stages.pipeline_support import cover_pipeline_support_stacks
from stages.service_stage import ServiceStage

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


def _rewrite_fragments(spec: Any, rewrite: Callable[[str], str]) -> Any:
    """A buildspec (a JSON string, or a Fn::Join of strings and tokens) with `rewrite` applied to its strings."""
    if isinstance(spec, dict) and "Fn::Join" in spec:
        separator, parts = spec["Fn::Join"]
        return {"Fn::Join": [separator, [_rewrite_fragments(part, rewrite) for part in parts]]}
    return rewrite(spec) if isinstance(spec, str) else spec


def _pinned_cli_in_tmp(cli_version: str) -> Callable[[str], str]:
    """CDK's generated commands install the CLI globally (`npm install -g aws-cdk[@v]`) and call `cdk`; on Lambda
    compute only /tmp is writable, so install the pinned CLI there and call it by path."""

    def rewrite(spec: str) -> str:
        spec = re.sub(r'"npm install -g aws-cdk(@[0-9.]+)?"', json.dumps(cdk_cli_install(cli_version)), spec)
        return spec.replace('"cdk -a . deploy ', f'"{CDK_CLI} -a . deploy ').replace("if cdk diff ", f"if {CDK_CLI} diff ")

    return rewrite


# CodeBuild's local cache of Docker layers on the build host (CodeBuild User Guide, "Build caching": local caching).
DOCKER_LAYER_CACHE = {"Type": "LOCAL", "Modes": ["LOCAL_DOCKER_LAYER_CACHE"]}


class PipelineStack(Stack):
    """The self-mutating pipeline: source → build → self-update → assets → each environment in config order."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        app_config: AppConfig,
        cli_version: str,
        cdk_assets_version: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        source_config = app_config.source
        self.key = kms.Key(
            self, "PipelineKey", description="Pipeline build logs and notifications", enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:{self.partition}:logs:{self.region}:{self.account}:*"}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowNotifications",
                principals=[iam.ServicePrincipal("codestar-notifications.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        build_logs = logs.LogGroup(
            self, "BuildLogs", retention=retention(app_config.pipeline.log_retention_days), encryption_key=self.key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.source = pipelines.CodePipelineSource.connection(
            f"{source_config.owner}/{source_config.repo}",
            source_config.branch,
            connection_arn=source_config.connection_arn,
            trigger_on_push=True,
            action_name="Checkout",
        )
        commit = self.source.source_attribute("CommitId")
        buildspec = read_buildspec(REPOSITORY_ROOT / "buildspec.yml")
        synth = pipelines.CodeBuildStep(
            "Build",
            input=self.source,
            install_commands=buildspec.install,
            commands=buildspec.build,
            env={**buildspec.env, "COMMIT_ID": commit},
            primary_output_directory="cdk.out",
            partial_build_spec=runtime_buildspec(),
            timeout=STANDARD_TIMEOUT,
        )
        cross_account = any(e.account != app_config.pipeline.account for e in app_config.environments)
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=synth,
            pipeline_type=codepipeline.PipelineType.V2,
            execution_mode=codepipeline.ExecutionMode[app_config.pipeline.execution_mode],
            self_mutation=True,
            cli_version=cli_version,
            cdk_assets_cli_version=cdk_assets_version,
            cross_account_keys=cross_account,
            enable_key_rotation=cross_account,
            # One publishing action per asset type and one deploy action per stack: fewer sequential CodeBuild starts.
            publish_assets_in_parallel=False,
            use_change_sets=False,
            # Standard compute unless a step says otherwise; runtimes and timeouts are set per step (pipeline/compute.py),
            # because Lambda compute rejects both.
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=STANDARD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
                ),
                logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=build_logs)),
            ),
            # Docker needs standard compute (privileged); self-mutation is a `cdk deploy` that usually finds nothing
            # to change, so it starts in seconds on Lambda compute.
            asset_publishing_code_build_defaults=standard_options(),
            self_mutation_code_build_defaults=lambda_options(LAMBDA_NODE_IMAGE),
        )
        self.stages: list[ServiceStage] = []
        last = app_config.environments[-1].name
        review_url = f"https://github.com/{source_config.owner}/{source_config.repo}/commit/{commit}"
        previous = None
        deploy_stages: dict[str, EnvironmentConfig] = {}
        for env in app_config.environments:
            stage = ServiceStage(self, env.name.capitalize(), app_config=app_config, config=env)
            pre = self._promotion_steps(env, stage, commit=commit, review_url=review_url, previous=previous, last=last)
            if pre:
                # Its own CodePipeline stage: a stage rollback re-runs the deploy stage and never replays an approval.
                self.pipeline.add_wave(f"Approve-{env.name.capitalize()}", pre=pre)
            self.pipeline.add_stage(
                stage,
                post=[verification_step(env=env, stage=stage, scan_image=previous is None)],
            )
            deploy_stages[env.name.capitalize()] = env
            self.stages.append(stage)
            previous = env.name
        self.pipeline.build_pipeline()
        # A deploy action in another region makes CodePipeline add a support stack there (stages/pipeline_support.py).
        cover_pipeline_support_stacks(self, app_config.standard_tags(None))
        add_service_tests(self.pipeline, self.pipeline.pipeline, log_group=build_logs)
        self._verify_right_after_the_service(deploy_stages)
        # The environment whose health decides whether the last one may be approved (staging by default).
        self.gates: dict[str, AlarmGate] = {}
        if len(app_config.environments) > 1:
            gated = app_config.environments[-2]
            self.gates[gated.name.capitalize()] = AlarmGate(
                self, "PromotionGate", app_config=app_config, env=gated, key=self.key
            )
        apply_gates(self.pipeline.pipeline, app_config=app_config, deploy_stages=deploy_stages, gates=self.gates)
        self._cli_under_tmp(cli_version)
        self._docker_layer_cache()
        self._acknowledge_generated(cross_account=cross_account)
        self.notifications = sns.Topic(
            self, "Notifications", display_name="Pipeline: failures and approvals", master_key=self.key,
            enforce_ssl=True,
        )
        for email in app_config.pipeline.notification_emails:
            self.notifications.add_subscription(subscriptions.EmailSubscription(email))
        self.pipeline.pipeline.notify_on(
            "FailuresAndApprovals",
            self.notifications,
            events=[
                codepipeline.PipelineNotificationEvents.PIPELINE_EXECUTION_FAILED,
                codepipeline.PipelineNotificationEvents.MANUAL_APPROVAL_NEEDED,
                codepipeline.PipelineNotificationEvents.ACTION_EXECUTION_FAILED,
                codepipeline.PipelineNotificationEvents.PIPELINE_EXECUTION_SUCCEEDED,
            ],
        )

    def _promotion_steps(
        self, env: EnvironmentConfig, stage: ServiceStage, *, commit: str, review_url: str, previous: str | None, last: str
    ) -> list[pipelines.Step]:
        """The approval (and, before the last environment, the permissions-broadening check) in front of a deploy."""
        pre: list[pipelines.Step] = []
        if env.requires_approval:
            pre.append(
                pipelines.ManualApprovalStep(
                    f"Promote-to-{env.name}",
                    comment=(
                        f"Promote commit {commit} to {env.name}"
                        + (f" (verified in {previous}: see its dashboard and the Verify step log)" if previous else "")
                        + ". The link shows the commit."
                    ),
                    review_url=review_url,
                )
            )
        if env.name == last:
            # After the person approves: CDK's auto-approve function polls only five minutes for the Confirm
            # action, which becomes pending right after the check, so a check beside the approval always expired.
            check = pipelines.ConfirmPermissionsBroadening(f"Check-broadening-{env.name}", stage=stage)
            if pre:
                check.add_step_dependency(pre[-1])
            pre.append(check)
        return pre

    def _verify_right_after_the_service(self, deploy_stages: dict[str, EnvironmentConfig]) -> None:
        """Verify reads only the service stack's outputs: it runs right after that deploy, beside any later one (the
        us-east-1 CloudFront alarm stack), instead of after it. The stage still fails (and rolls back) if either does."""
        cfn = self.pipeline.pipeline.node.default_child
        assert isinstance(cfn, codepipeline.CfnPipeline)
        stateless = {stage.node.id: stage.stateless.stack_name for stage in self.stages}
        # One resolve of the pipeline's stages instead of three round trips to node per action.
        for index, stage in enumerate(self.resolve(cfn.stages)):
            if stage["name"] not in deploy_stages:
                continue
            actions = stage["actions"]
            service = next(a for a in actions if a["name"] == f"{stateless[stage['name']]}.Deploy")
            after = service.get("runOrder", 1) + 1
            for position, action in enumerate(actions):
                if action["name"].startswith("Verify-") and action.get("runOrder", 1) > after:
                    cfn.add_property_override(f"Stages.{index}.Actions.{position}.RunOrder", after)

    def _cli_under_tmp(self, cli_version: str) -> None:
        """Self-mutation and the permissions-broadening check run on Lambda compute with the pinned CLI under /tmp.

        CDK Pipelines builds the broadening check's project itself (standard compute, latest aws-cdk on the image's
        default Node), so its environment is overridden here; self-mutation takes its environment from
        `self_mutation_code_build_defaults`."""
        projects = [n for n in self.pipeline.node.find_all() if isinstance(n, codebuild.CfnProject)]
        (mutation,) = [p for p in projects if "SelfMutation" in p.node.path]
        (check,) = [p for p in projects if "CDKSecurityCheck" in p.node.path]
        # The same Lambda environment as self-mutation (Node 22 image, no runtime-versions, no timeout).
        lambda_env = self.resolve(mutation.environment)
        for key in ("type", "computeType", "image", "privilegedMode"):
            check.add_property_override(f"Environment.{key[0].upper()}{key[1:]}", lambda_env[key])
        if "imagePullCredentialsType" not in lambda_env:
            check.add_property_deletion_override("Environment.ImagePullCredentialsType")
        for project in (mutation, check):
            spec = self.resolve(project.source)["buildSpec"]
            project.add_property_override(
                "Source.BuildSpec", _rewrite_fragments(spec, _pinned_cli_in_tmp(cli_version))
            )

    def _docker_layer_cache(self) -> None:
        """The Docker asset project keeps CodeBuild's local Docker layer cache: a build that lands on a host which built
        the image shortly before reuses its unchanged layers (the base image, the dependencies). Best effort by AWS's
        definition, so report/model.py does not count on it. Only this project: the mode needs privileged mode, which
        the file asset project does not have; CDK Pipelines gives both the same defaults, hence the override."""
        (docker,) = [
            n for n in self.pipeline.node.find_all()
            if isinstance(n, codebuild.CfnProject) and "/Assets/DockerAsset" in n.node.path
        ]
        docker.add_property_override("Cache", DOCKER_LAYER_CACHE)

    def _acknowledge_generated(self, *, cross_account: bool) -> None:
        """Findings on what CDK Pipelines generates; our own resources carry their acknowledgments themselves."""
        if not cross_account:
            # With cross-account keys CDK Pipelines gives every project the artifact key, and the finding is gone.
            acknowledge(
                self.pipeline,
                {
                    "AwsSolutions-CB4": "Build artifacts are encrypted by the artifact bucket's key; CodeBuild's own project encryption key is the AWS-managed S3 key for its transient cache",
                },
            )
        acknowledge_wildcards(
            self.pipeline,
            [
                (r"^Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*$",
                 "CDK Pipelines' artifact-bucket grant: object read/write verbs on the pipeline's own artifact bucket only"),
                (r"^Resource::<PipelineArtifactsBucket[0-9A-F]{8}\.Arn>/\*$",
                 "Objects of the pipeline's own artifact bucket; object keys are execution ids not known in advance"),
                (r"^Resource::arn:<AWS::Partition>:(logs|codebuild):[a-z0-9-]+:\d{12}:(log-group:/aws/codebuild/|report-group/)",
                 "CodeBuild's own log streams and report groups, named after each project at run time"),
                (r"^Resource::arn:\*:iam::\d{12}:role/\*$",
                 "Self-mutation assumes the CDK bootstrap roles (conditioned on the bootstrap role tag by CDK Pipelines)"),
                (r"^Action::kms:(GenerateDataKey|ReEncrypt)\*$",
                 "Artifact-bucket key grant limited to the pipeline's own key"),
                (r"^Resource::\*$",
                 "Actions without resource-level permissions: ecr:GetAuthorizationToken, cloudformation:DescribeStacks "
                 "lookups and the approval function's codepipeline:PutApprovalResult set by CDK Pipelines"),
                (r"^Resource::<PipelinePipelinesSecurityCheckCDKPipelinesAutoApprove[0-9A-F]{8}\.Arn>:\*$",
                 "Invoking versions of the permissions-broadening auto-approve function"),
            ],
        )
        acknowledge(
            self.pipeline,
            {
                "AwsSolutions-S1": "The artifact bucket holds transient build artifacts readable only by this pipeline's roles (CDK Pipelines' bucket policy); object access is audited with CloudTrail data events at account level, which server access logs would only duplicate",
                "NIST.800.53.R5-S3BucketLoggingEnabled": "Same as AwsSolutions-S1: transient pipeline artifacts",
                "NIST.800.53.R5-S3BucketReplicationEnabled": "Transient build artifacts are reproducible from git; replication would add cost and no recovery value",
                "NIST.800.53.R5-S3BucketVersioningEnabled": "Artifacts are immutable per execution id; versioning adds nothing",
                "NIST.800.53.R5-IAMNoInlinePolicy": "CDK Pipelines generates one inline policy per role, scoped to that role's resources; inline policies live and die with their role",
                "NIST.800.53.R5-LambdaConcurrency": "The permissions-broadening approval function runs once per prod promotion",
                "NIST.800.53.R5-LambdaDLQ": "The approval function is invoked synchronously by CodeBuild; failures fail the pipeline action",
                "NIST.800.53.R5-LambdaInsideVPC": "The approval function calls only the CodePipeline API; a VPC adds no control",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": "AWS-maintained policy limited to the function's own logs",
            },
        )
