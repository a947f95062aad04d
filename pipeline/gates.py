"""CodePipeline V2 stage rollback and stage conditions, which `pipelines.CodePipeline` does not expose.

They go onto the built pipeline's L1 (DESIGN.md: "CodePipeline V2 stage rollback and conditions"); shapes follow
botocore's codepipeline model (StageDeclaration.onFailure/onSuccess/beforeEntry, Condition, RuleDeclaration).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from config import AppConfig, EnvironmentConfig
from stages.naming import alarm_name, role_name
from stages.nag import acknowledge
from stages.retention import retention

FUNCTION_CODE = Path(__file__).resolve().parent / "functions" / "alarm_gate"
# The composite page of stages/service_alarms.py; its physical name is fixed so the gate can name it.
GATE_ALARM_KIND = "service-unhealthy"
# Lambda's own limit is 15 minutes; the function needs the bake plus time to assume the role and answer.
FUNCTION_MARGIN_MINUTES = 2


def rule_type(provider: str) -> dict[str, str]:
    return {"Category": "Rule", "Owner": "AWS", "Provider": provider, "Version": "1"}


def rollback_on_failure() -> dict[str, Any]:
    return {"Result": "ROLLBACK"}


def deployment_window_condition(*, cron: str, time_zone: str) -> dict[str, Any]:
    # BeforeEntry allows FAIL or SKIP; FAIL stops the release visibly instead of silently skipping prod.
    return {
        "Conditions": [
            {
                "Result": "FAIL",
                "Rules": [
                    {
                        "Name": "DeploymentWindow",
                        "RuleTypeId": rule_type("DeploymentWindow"),
                        "Configuration": {"Cron": cron, "TimeZone": time_zone},
                    }
                ],
            }
        ]
    }


class AlarmGate(Construct):
    """A function in the pipeline account that watches one environment's composite alarm for the bake time."""

    def __init__(
        self, scope: Construct, id_: str, *, app_config: AppConfig, env: EnvironmentConfig, key: kms.IKey
    ) -> None:
        super().__init__(scope, id_)
        bake = app_config.pipeline.promotion_bake_minutes
        self.alarm_name = alarm_name(app_config, env, GATE_ALARM_KIND)
        self.role_arn = f"arn:{Stack.of(self).partition}:iam::{env.account}:role/{role_name(app_config, env, 'deploy-verifier')}"
        self.timeout_minutes = bake + FUNCTION_MARGIN_MINUTES
        log_group = logs.LogGroup(
            self, "Logs", retention=retention(app_config.pipeline.log_retention_days), encryption_key=key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(FUNCTION_CODE), exclude=["__pycache__", "*.pyc"]),
            handler="index.handler",
            description=f"Promotion gate: {self.alarm_name} stays out of ALARM for {bake} minutes after the deploy",
            environment={
                "ROLE_ARN": self.role_arn,
                "ALARM_NAME": self.alarm_name,
                "ALARM_REGION": env.region,
                "BAKE_SECONDS": str(bake * 60),
            },
            environment_encryption=key,
            timeout=Duration.minutes(self.timeout_minutes),
            memory_size=128,
            log_group=log_group,
        )
        assert self.function.role is not None
        self.function.add_to_role_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[self.role_arn]))
        # CodePipeline job results have no resource type (Service Authorization Reference).
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"], resources=["*"])
        )
        acknowledge(
            self.function.role,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                    "AWS-maintained policy limited to writing this function's own logs"
                ),
                "AwsSolutions-IAM5[Resource::*]": (
                    "codepipeline:PutJobSuccessResult/PutJobFailureResult have no resource-level permissions"
                ),
                "NIST.800.53.R5-IAMNoInlinePolicy": "The function's own policy lives and dies with its role",
            },
        )
        acknowledge(
            self.function,
            {
                "NIST.800.53.R5-LambdaDLQ": "Invoked synchronously by the pipeline's stage condition; a failure fails the rule and rolls the stage back",
                "NIST.800.53.R5-LambdaInsideVPC": "Calls only STS and CloudWatch APIs in another account; a VPC adds no control",
                "NIST.800.53.R5-LambdaConcurrency": (
                    "No reservation: new accounts have a concurrency quota of 10 and Lambda refuses any reservation "
                    "that leaves less than 10 unreserved; the gate runs once per staging release and only reads"
                ),
            },
        )

    def condition(self) -> dict[str, Any]:
        """OnSuccess: any ALARM during the bake rolls the stage back before the next approval is offered."""
        return {
            "Conditions": [
                {
                    "Result": "ROLLBACK",
                    "Rules": [
                        {
                            "Name": "HealthyForBakeTime",
                            "RuleTypeId": rule_type("LambdaInvoke"),
                            "Configuration": {"FunctionName": self.function.function_name},
                        }
                    ],
                }
            ]
        }


def apply_gates(
    pipeline: codepipeline.Pipeline,
    *,
    app_config: AppConfig,
    deploy_stages: dict[str, EnvironmentConfig],
    gates: dict[str, AlarmGate],
) -> None:
    """deploy_stages: CodePipeline stage name → its environment; gates: stage name → the alarm gate after it."""
    cfn = pipeline.node.default_child
    assert isinstance(cfn, codepipeline.CfnPipeline)
    names = [stage.stage_name for stage in pipeline.stages]
    last = app_config.environments[-1].name
    window = app_config.pipeline.deployment_window
    for index, name in enumerate(names):
        env = deploy_stages.get(name)
        if env is None:
            continue
        # Re-runs the stage with the last successful execution's artifacts; approvals live in their own stages.
        cfn.add_property_override(f"Stages.{index}.OnFailure", rollback_on_failure())
        if name in gates:
            cfn.add_property_override(f"Stages.{index}.OnSuccess", gates[name].condition())
            # Rules grant nothing themselves; the unqualified function only (no versions or aliases: no wildcard).
            pipeline.role.add_to_principal_policy(
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[gates[name].function.function_arn])
            )
        if env.name == last and window is not None:
            cfn.add_property_override(
                f"Stages.{index}.BeforeEntry",
                deployment_window_condition(cron=window, time_zone=app_config.pipeline.time_zone),
            )
