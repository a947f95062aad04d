from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from stages.retention import retention
from config import EnvironmentConfig
from stages.nag import acknowledge

ADMIN_USER = "app_admin"
EXPORTED_LOGS = ("postgresql", "upgrade")


class Database(Construct):
    """PostgreSQL 18 in the isolated subnets; credentials generated, attached and rotated by Secrets Manager."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        instance_identifier: str,
        secrets_manager_endpoint: ec2.IInterfaceVpcEndpoint | None,
    ) -> None:
        super().__init__(scope, id_)
        db = config.database
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        engine = rds.DatabaseInstanceEngine.postgres(
            version=getattr(rds.PostgresEngineVersion, "VER_" + db.engine_version.replace(".", "_"))
        )
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description=f"{config.name}: TLS required, slow statements logged",
            parameters={"rds.force_ssl": "1", "log_min_duration_statement": "1000"},
        )
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Database: PostgreSQL from the service and rotation only",
            allow_all_outbound=False,
        )
        # RDS creates these on first export; creating them first gives them our retention and key.
        log_groups = [
            logs.LogGroup(
                self,
                f"{kind.capitalize()}Logs",
                log_group_name=f"/aws/rds/instance/{instance_identifier}/{kind}",
                retention=retention(config.log_retention_days),
                encryption_key=key,
                removal_policy=removal,
            )
            for kind in EXPORTED_LOGS
        ]
        monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonRDSEnhancedMonitoringRole")
            ],
        )
        acknowledge(
            monitoring_role,
            {
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]": (
                    "AWS-maintained policy scoped to writing the RDSOSMetrics log group; it is the documented role for "
                    "enhanced monitoring and has no customer-scoped alternative"
                ),
            },
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            # Fixed so the exported log groups above can be created before the instance.
            instance_identifier=instance_identifier,
            instance_type=ec2.InstanceType(db.instance_class),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group],
            credentials=rds.Credentials.from_generated_secret(ADMIN_USER, encryption_key=key),
            database_name=db.database_name,
            parameter_group=parameters,
            storage_encrypted=True,
            storage_encryption_key=key,
            allocated_storage=db.allocated_storage_gib,
            max_allocated_storage=db.max_allocated_storage_gib,
            storage_type=rds.StorageType.GP3,
            multi_az=db.multi_az,
            publicly_accessible=False,
            iam_authentication=True,
            auto_minor_version_upgrade=True,
            backup_retention=Duration.days(db.backup_retention_days),
            copy_tags_to_snapshot=True,
            delete_automated_backups=not config.retain_data,
            deletion_protection=db.deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if config.retain_data else RemovalPolicy.DESTROY,
            cloudwatch_logs_exports=list(EXPORTED_LOGS),
            monitoring_interval=Duration.seconds(60),
            monitoring_role=monitoring_role,
        )
        for log_group in log_groups:
            self.instance.node.add_dependency(log_group)
        self.secret = self.instance.secret
        assert self.secret is not None
        self.rotation = self.instance.add_rotation_single_user(
            automatically_after=Duration.days(db.rotation_days),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            endpoint=secrets_manager_endpoint,
        )
        self.rotation_application = self.rotation.node.default_child
        self.database_name = db.database_name
        acknowledge(
            self.security_group,
            {
                "NIST.800.53.R5-EC2RestrictedCommonPorts": "The rule admits the database port from the rotation function's security group only (port is a token the rule cannot resolve)",
                "NIST.800.53.R5-EC2RestrictedSSH": "No SSH: the source is the rotation function's security group on the database port",
            },
        )
        reasons = {
            "NIST.800.53.R5-RDSInBackupPlan": (
                "Automated RDS backups with point-in-time recovery and retention from config; an AWS Backup plan "
                "(cross-account vault) is an organisation-level control outside this repository"
            ),
            "AwsSolutions-RDS11": (
                "PostgreSQL keeps its default port 5432: the instance is in isolated subnets and its security group "
                "admits only the service and the rotation function, so a non-default port adds no control"
            ),
        }
        if not db.multi_az:
            reasons["AwsSolutions-RDS3"] = f"{config.name} is not production: a single-AZ instance is a cost choice made in config"
            reasons["NIST.800.53.R5-RDSMultiAZSupport"] = reasons["AwsSolutions-RDS3"]
        if not db.deletion_protection:
            reasons["AwsSolutions-RDS10"] = (
                f"{config.name} is disposable by design (config: deletion_protection false); prod enables it"
            )
            reasons["NIST.800.53.R5-RDSInstanceDeletionProtectionEnabled"] = reasons["AwsSolutions-RDS10"]
        acknowledge(self.instance, reasons)
