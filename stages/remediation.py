from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from config import EnvironmentConfig
from stages.function import VpcFunction
from stages.nag import acknowledge

CODE = Path(__file__).parent / "functions" / "remediation"
MIN_INTERVAL_SECONDS = 900
# The alarm rule fires only on the change into ALARM; the schedule retries skipped runs while it stays there.
RECHECK_MINUTES = 5


class Remediation(Construct):
    """When tasks stay below the minimum outside a deployment, force one new deployment and tell the critical topic."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        service: ecs.FargateService,
        alarm: cw.IAlarm,
        topic: sns.ITopic,
        deployment_alarm_names: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id_)
        claims = self._claims(key)
        self.handler = VpcFunction(
            self,
            "ForceDeployment",
            config=config,
            vpc=vpc,
            key=key,
            code_path=str(CODE),
            handler="index.handler",
            description=f"{config.name}: force a new deployment when tasks stay below the minimum",
            environment={
                "CLUSTER_NAME": service.cluster.cluster_name,
                "SERVICE_NAME": service.service_name,
                "TOPIC_ARN": topic.topic_arn,
                "ALARM_NAME": alarm.alarm_name,
                "DEPLOYMENT_ALARM_NAMES": ",".join(deployment_alarm_names),
                "CLAIMS_TABLE": claims.table_name,
                "MIN_INTERVAL_SECONDS": str(MIN_INTERVAL_SECONDS),
                "RECHECK_MINUTES": str(RECHECK_MINUTES),
            },
            timeout=Duration.seconds(30),
        )
        self.function = self.handler.function
        self._permissions(service=service, alarm=alarm, deployment_alarm_names=deployment_alarm_names, topic=topic,
                          claims=claims)
        self._triggers(alarm)
        acknowledge(
            self.function,
            {
                "NIST.800.53.R5-LambdaConcurrency": (
                    "Runs on one alarm's changes and a 5-minute schedule; overlapping runs are made safe by a "
                    "conditional write in the claims table, and a reservation would take from the account's "
                    "unreserved pool, which is 10 in new accounts and makes the deploy fail"
                ),
            },
        )

    def _claims(self, key: kms.IKey) -> dynamodb.Table:
        # One item per remediation, written only if no other run claimed the same deployment; items expire in a day.
        table = dynamodb.Table(
            self,
            "Claims",
            partition_key=dynamodb.Attribute(name="claim", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            table,
            {
                "NIST.800.53.R5-DynamoDBInBackupPlan": (
                    "Holds only short-lived claims that stop two remediation runs acting at once; they expire within "
                    "a day and there is nothing to restore"
                ),
            },
        )
        return table

    def _permissions(
        self,
        *,
        service: ecs.FargateService,
        alarm: cw.IAlarm,
        deployment_alarm_names: Sequence[str],
        topic: sns.ITopic,
        claims: dynamodb.Table,
    ) -> None:
        self.handler.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the ECS, SNS, CloudWatch and DynamoDB APIs"
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["ecs:DescribeServices", "ecs:UpdateService"], resources=[service.service_arn])
        )
        stack = Stack.of(self)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn]
                + [
                    stack.format_arn(
                        service="cloudwatch", resource="alarm", resource_name=name,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                    for name in deployment_alarm_names
                ],
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[claims.table_arn])
        )
        # the table is encrypted with the environment key
        claims.encryption_key.grant_encrypt_decrypt(self.function)
        topic.grant_publish(self.function)

    def _triggers(self, alarm: cw.IAlarm) -> None:
        events.Rule(
            self,
            "OnAlarm",
            description="Tasks below minimum entered ALARM",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
        )
        events.Rule(
            self,
            "Recheck",
            description="Re-check tasks below minimum while its alarm stays in ALARM",
            schedule=events.Schedule.rate(Duration.minutes(RECHECK_MINUTES)),
            # a re-check older than the next one is worth nothing
            targets=[
                targets.LambdaFunction(
                    self.function, retry_attempts=1, max_event_age=Duration.minutes(RECHECK_MINUTES - 1)
                )
            ],
        )
