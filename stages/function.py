from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stages.retention import retention
from config import EnvironmentConfig
from stages.nag import acknowledge


class VpcFunction(Construct):
    """A small Python function in the private subnets with its own encrypted log group and dead-letter queue."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        code_path: str,
        handler: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration,
    ) -> None:
        super().__init__(scope, id_)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description=f"{description}: outbound only", allow_all_outbound=False
        )
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(config.log_retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(code_path, exclude=["__pycache__", "*.pyc"]),
            handler=handler,
            description=description,
            environment=environment,
            environment_encryption=key,
            timeout=timeout,
            memory_size=256,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            log_group=log_group,
            dead_letter_queue=dead_letters,
            tracing=lambda_.Tracing.ACTIVE,
        )
        assert self.function.role is not None
        acknowledge(
            self.function.role,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]": (
                    "AWS-maintained policy limited to writing this function's own logs"
                ),
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]": (
                    "AWS-maintained policy for the network interfaces a function in a VPC needs"
                ),
                "AwsSolutions-IAM5[Resource::*]": (
                    "X-Ray PutTraceSegments/PutTelemetryRecords have no resource-level permissions"
                ),
            },
        )
