"""Typed, frozen configuration of the whole system; every value the constructs use comes from here."""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import json
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

PLACEHOLDER_ACCOUNT = "000000000000"
MAX_ENVIRONMENT_PREFIX = 64 - len("-deploy-verifier")

def _account(value: str) -> str:
    if not re.fullmatch(r"\d{12}", value):
        raise ValueError(f"must be a 12-digit AWS account id (as a string), got {len(value)} characters")
    return value


Account = Annotated[str, AfterValidator(_account), Field(description="12-digit AWS account id")]


@cache
def aws_regions() -> tuple[str, ...]:
    """The regions aws-cdk-lib's region_info knows (its fact tables are what synthesis uses)."""
    from aws_cdk.region_info import Fact

    # Fact.regions is the list RegionInfo.regions is built from: one call to node instead of one per region.
    return tuple(sorted(Fact.regions))


def _nearest(value: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _region(value: str) -> str:
    known = aws_regions()
    if value not in known:
        hint = _nearest(value, known) or f" (write it like eu-west-1; known: {', '.join(known)})"
        raise ValueError(f"is not an AWS region aws-cdk-lib knows{hint}")
    return value


Region = Annotated[str, AfterValidator(_region), Field(description="AWS region, e.g. eu-west-1")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}$", description="lower-case letters, digits and '-'")]
CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$"
)
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+$")
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
# Fargate's valid CPU units and the memory (MiB) each allows.
FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
}


# The newest PostgreSQL 18 minor of aws-cdk-lib's rds.PostgresEngineVersion (tests hold the two together).
POSTGRES_VERSION = "18.3"


def postgres_versions() -> tuple[str, ...]:
    """PostgreSQL 18 versions aws-cdk-lib's rds.PostgresEngineVersion carries (those RDS offered at its release)."""
    from aws_cdk import aws_rds as rds

    names = [n for n in dir(rds.PostgresEngineVersion) if re.fullmatch(r"VER_18_\d+", n)]
    return tuple(sorted((n.removeprefix("VER_").replace("_", ".") for n in names), key=lambda v: int(v.split(".")[1])))


# RDS's orderable instance classes per engine version, as cfn-lint ships them (generated from RDS's
# DescribeOrderableDBInstanceOptions); per-region orderability is `make preflight`'s job.
RDS_CLASSES_FILE = "data/schemas/extensions/aws_rds_dbinstance/db_instance_class.json"


@cache
def postgres_instance_classes() -> tuple[str, ...]:
    """Instance classes (without the "db." prefix) RDS offers for at least one PostgreSQL 18 version."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed: run `make install`")
    data = json.loads((Path(spec.submodule_search_locations[0]) / RDS_CLASSES_FILE).read_text())
    classes: set[str] = set()
    for branch in data["allOf"]:
        condition = branch["if"]["properties"]
        version = condition.get("EngineVersion", {}).get("pattern", "")
        if condition.get("Engine", {}).get("const") == "postgres" and version.startswith("^(18\\."):
            classes.update(c.removeprefix("db.") for c in branch["then"]["properties"]["DBInstanceClass"]["enum"])
    return tuple(sorted(classes))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceConfig(_Frozen):
    owner: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="GitHub owner or organisation")
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="repository name")
    branch: str = Field(default="main", description="branch whose pushes start the pipeline")
    connection_arn: str = Field(description="CodeConnections connection ARN, authorised once in the console")

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        # The rules of `git check-ref-format --branch` that a configured name can break.
        if not value.strip():
            raise ValueError("must name the branch whose pushes start the pipeline, e.g. main; it is blank")
        if value != value.strip() or re.search(r"[\s~^:?*\[\\]|\.\.|@\{|//", value):
            raise ValueError("is not a valid git branch name: no spaces, '..', '@{', '//' or any of ~^:?*[\\")
        if value.startswith(("-", "/", ".")) or value.endswith(("/", ".", ".lock")):
            raise ValueError("is not a valid git branch name: it may not start with - / . nor end with / . or .lock")
        return value

    @field_validator("connection_arn")
    @classmethod
    def _connection(cls, value: str) -> str:
        if not CONNECTION_ARN.match(value):
            raise ValueError(
                "must be a CodeConnections ARN like "
                "arn:aws:codeconnections:eu-west-1:123456789012:connection/<uuid>"
            )
        return value


class NetworkConfig(_Frozen):
    cidr: str = Field(default="10.0.0.0/16", description="the VPC's IPv4 network, /16 to /24, e.g. 10.10.0.0/16")
    availability_zones: tuple[str, ...] = Field(description="AZ names (no lookups): at least two")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}/\d{1,2}", value):
            raise ValueError("must be an IPv4 network in CIDR notation like 10.10.0.0/16")
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError as error:
            raise ValueError(f"is not an IPv4 network: {error}") from None
        if not 16 <= network.prefixlen <= 24:
            raise ValueError(f"prefix /{network.prefixlen} is outside the /16 to /24 a VPC here may use")
        if str(network) != value:
            raise ValueError(f"has host bits set: the network is {network} (write that, or pick another range)")
        if not network.is_private:
            raise ValueError("must be a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
        return value

    @field_validator("availability_zones", mode="before")
    @classmethod
    def _az_list(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "must be a list of AZ names: in cdk.json [\"eu-west-1a\", \"eu-west-1b\"], on the command line "
                "-c 'delivery.environments.<name>.network.availability_zones=[\"eu-west-1a\",\"eu-west-1b\"]'"
            )
        return value
    nat_gateways: int = Field(ge=1, le=6, description="one per AZ for high availability, one to save cost")
    interface_endpoints: bool = Field(default=True, description="ECR, Logs, Secrets Manager endpoints (cost money)")

    @field_validator("availability_zones")
    @classmethod
    def _azs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) < 2:
            raise ValueError(f"needs at least two availability zones for high availability, got {len(value)}")
        if len(set(value)) != len(value):
            raise ValueError("availability zones must be distinct")
        return value

    @model_validator(mode="after")
    def _nat_per_az(self) -> NetworkConfig:
        if self.nat_gateways > len(self.availability_zones):
            raise ValueError(
                f"nat_gateways ({self.nat_gateways}) cannot exceed the number of availability zones "
                f"({len(self.availability_zones)})"
            )
        return self


class ServiceConfig(_Frozen):
    cpu: int = Field(description="Fargate CPU units: 256, 512, 1024, 2048 or 4096")
    memory_mib: int
    min_tasks: int = Field(ge=1, le=100)
    max_tasks: int = Field(ge=1, le=100)
    workers: int = Field(default=1, ge=1, le=16, description="server worker processes per task")
    container_port: int = Field(default=8080, ge=1024, le=65535)
    cpu_target_percent: int = Field(default=60, ge=10, le=90)
    requests_per_target: int = Field(default=500, ge=10, description="ALB requests per target per minute to scale at")

    @model_validator(mode="after")
    def _sizes(self) -> ServiceConfig:
        if self.cpu not in FARGATE_SIZES:
            raise ValueError(f"cpu must be one of {sorted(FARGATE_SIZES)}, got {self.cpu}")
        allowed = FARGATE_SIZES[self.cpu]
        if self.memory_mib not in allowed:
            raise ValueError(
                f"memory_mib {self.memory_mib} is not valid with cpu {self.cpu}: "
                f"allowed {allowed.start}-{allowed.stop - 1} in steps of {allowed.step}"
            )
        if self.min_tasks > self.max_tasks:
            raise ValueError(f"min_tasks ({self.min_tasks}) is greater than max_tasks ({self.max_tasks})")
        return self


class DatabaseConfig(_Frozen):
    instance_class: str = Field(description="RDS class without the db. prefix, e.g. t4g.micro, r7g.large")
    engine_version: str = Field(
        default=POSTGRES_VERSION,
        pattern=r"^18\.\d+$",
        description="PostgreSQL 18 minor version that aws-cdk-lib knows; `make preflight` checks RDS offers it in the region",
    )
    allocated_storage_gib: int = Field(default=20, ge=20, le=65536)
    max_allocated_storage_gib: int = Field(default=100, ge=20, le=65536, description="storage autoscaling ceiling")
    multi_az: bool = False
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    deletion_protection: bool = False
    rotation_days: int = Field(default=30, ge=1, le=365)
    database_name: str = Field(default="app", pattern=r"^[a-z][a-z0-9_]{0,62}$")

    @field_validator("instance_class")
    @classmethod
    def _known_class(cls, value: str) -> str:
        known = postgres_instance_classes()
        name = value.removeprefix("db.")
        if name not in known:
            family = name.split(".")[0]
            sizes = [c for c in known if c.split(".")[0] == family]
            hint = f"; {family} classes: {', '.join(sizes)}" if sizes else _nearest(name, known)
            raise ValueError(f"is not an instance class RDS offers for PostgreSQL 18{hint}")
        return name

    @field_validator("engine_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        known = postgres_versions()
        if value not in known:
            raise ValueError(f"PostgreSQL {value} is not a version aws-cdk-lib knows RDS to offer; known: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError("max_allocated_storage_gib must be >= allocated_storage_gib")
        return self


class DeploymentConfig(_Frozen):
    # Each value is chosen against the service's measured start-up (< 2 s to /healthz) and drain (< 1 s idle):
    # see README "Fast, safe rollouts".
    strategy: Literal["ROLLING", "CANARY", "LINEAR", "BLUE_GREEN"] = "ROLLING"
    bake_minutes: int = Field(default=0, ge=0, le=1440)
    canary_percent: float = Field(default=10, gt=0, lt=100)
    linear_step_percent: float = Field(default=25, ge=3, le=100)
    step_bake_minutes: int = Field(default=2, ge=0, le=60)
    health_check_interval_seconds: int = Field(default=5, ge=5, le=300)
    healthy_threshold: int = Field(default=2, ge=2, le=10)
    unhealthy_threshold: int = Field(default=2, ge=2, le=10)
    deregistration_delay_seconds: int = Field(default=15, ge=0, le=3600)
    stop_timeout_seconds: int = Field(default=30, ge=2, le=120)
    shutdown_timeout_seconds: int = Field(default=20, ge=1, le=110)
    health_check_grace_seconds: int = Field(default=10, ge=0, le=600)
    max_percent: int = Field(default=200, ge=100, le=400)
    min_healthy_percent: int = Field(default=100, ge=0, le=100)

    @model_validator(mode="after")
    def _timeouts(self) -> DeploymentConfig:
        # After draining, the service needs up to 3 s to close its database pool.
        if self.shutdown_timeout_seconds + 5 > self.stop_timeout_seconds:
            raise ValueError(
                f"shutdown_timeout_seconds ({self.shutdown_timeout_seconds}) must be at least 5 s less than "
                f"stop_timeout_seconds ({self.stop_timeout_seconds}) so ECS never kills a draining task"
            )
        if self.strategy != "ROLLING":
            # Imported here: stages.naming imports this module. The timings are plain data (stages/alarm_timing.py).
            from stages.alarm_timing import minimum_bake_minutes

            needed = minimum_bake_minutes()
            if self.bake_minutes < needed:
                raise ValueError(
                    f"bake_minutes ({self.bake_minutes}) must be at least {needed} with strategy {self.strategy}: "
                    f"the slowest deployment alarm needs up to {needed} min to decide, and ECS rolls back on alarms "
                    "only until the bake ends"
                )
        return self


class AlarmConfig(_Frozen):
    error_rate_percent: float = Field(default=5, gt=0, le=100, description="ALB target 5xx / requests")
    app_errors_per_10s: int = Field(default=5, ge=1, description="service ServerErrors in one 10 s period")
    p99_latency_ms: int = Field(default=1000, ge=10)
    unhealthy_hosts: int = Field(default=1, ge=1)
    slow_request_ms: int = Field(default=1000, ge=10, description="log lines slower than this count as slow")
    cpu_percent: int = Field(default=85, ge=10, le=100)
    memory_percent: int = Field(default=85, ge=10, le=100)
    db_cpu_percent: int = Field(default=80, ge=10, le=100)
    db_free_storage_gib: int = Field(default=5, ge=1)
    db_connections: int = Field(default=80, ge=1)
    escalate_after_minutes: int = Field(default=15, ge=5, le=1440, description="warning that persists → critical")
    cloudfront_5xx_rate_percent: float | None = Field(
        default=None, gt=0, le=100,
        description=(
            "CloudFront 5xxErrorRate that pages (from us-east-1 unless the environment is there); null: no alarm; "
            "unused with tls.terminate alb (no CloudFront)"
        ),
    )
    cloudfront_min_requests: int = Field(
        default=50, ge=1, description="viewer requests per minute below which the CloudFront 5xx rate is not judged"
    )


class NotificationConfig(_Frozen):
    emails: tuple[str, ...] = ()
    critical_endpoints: tuple[str, ...] = Field(
        default=(), description="paging HTTPS URLs or chat-forwarder Lambda ARNs that receive critical alarms"
    )

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [e for e in value if not EMAIL.match(e)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @field_validator("critical_endpoints")
    @classmethod
    def _endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [e for e in value if not (e.startswith("https://") or LAMBDA_ARN.match(e))]
        if bad:
            raise ValueError(f"each must be an https:// URL or a Lambda function ARN, got {bad}")
        return value


class TlsConfig(_Frozen):
    domain_name: str = Field(
        max_length=253,
        pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        description="lower-case host name users type, e.g. notes.example.com",
    )
    certificate_arn: str = Field(description="ACM certificate covering domain_name (us-east-1 when terminate is cloudfront)")
    terminate: Literal["cloudfront", "alb"] = Field(
        default="cloudfront",
        description="cloudfront: domain as an alias on the distribution, ALB internal; alb: public ALB with HTTPS, no CloudFront",
    )

    @field_validator("certificate_arn")
    @classmethod
    def _cert(cls, value: str) -> str:
        if not CERTIFICATE_ARN.match(value):
            raise ValueError("must be an ACM certificate ARN")
        return value

    @model_validator(mode="after")
    def _certificate_region(self) -> TlsConfig:
        # CloudFront accepts viewer certificates only from ACM in us-east-1.
        region = self.certificate_arn.split(":")[3]
        if self.terminate == "cloudfront" and region != "us-east-1":
            raise ValueError(
                f"certificate_arn is in {region}; a certificate on CloudFront must be in us-east-1 "
                "(or set terminate: alb to use a certificate in the environment's region on a public ALB)"
            )
        return self


class SharedSecretConfig(_Frozen):
    env_var: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,63}$", description="variable the task sees")
    secret: str = Field(description="secret name in the environment's account, or full ARN (required cross-account)")
    kms_key_arn: str | None = Field(
        default=None,
        description="the customer-managed KMS key that encrypts the secret (required when it is in another account): "
        "the task execution role is granted kms:Decrypt on it through Secrets Manager",
    )

    @field_validator("kms_key_arn")
    @classmethod
    def _kms_key_arn(cls, value: str | None) -> str | None:
        if value is not None and not KMS_KEY_ARN.match(value):
            raise ValueError(
                "must be a KMS key ARN, arn:aws:kms:<region>:<account>:key/<key id> (an alias cannot be granted)"
            )
        return value

    @model_validator(mode="after")
    def _key_beside_secret(self) -> SharedSecretConfig:
        if self.kms_key_arn and self.secret.startswith("arn:"):
            key_region = KMS_KEY_ARN.match(self.kms_key_arn).group(1)  # type: ignore[union-attr]
            secret_region = self.secret.split(":")[3]
            if key_region != secret_region:
                raise ValueError(
                    f"kms_key_arn is in {key_region} but the secret in {secret_region}: Secrets Manager encrypts with a "
                    "key of the secret's own Region"
                )
        return self

    @property
    def account(self) -> str | None:
        """The account that owns the secret when given as an ARN (a name means each environment's own account)."""
        return self.secret.split(":")[4] if self.secret.startswith("arn:") else None

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if value.startswith("arn:") and not SECRET_ARN.match(value):
            raise ValueError("must be a full Secrets Manager secret ARN (with its 6-character suffix) or a name")
        if not value.startswith("arn:") and not re.match(r"^[A-Za-z0-9/_+=.@-]{1,512}$", value):
            raise ValueError("secret names may contain letters, digits and /_+=.@-")
        return value


class EnvironmentConfig(_Frozen):
    name: Name
    account: Account = PLACEHOLDER_ACCOUNT
    region: Region
    requires_approval: bool = Field(description="a person approves promotion into this environment")
    color: str = Field(default="#6b7280", description="banner colour of the page, #rrggbb")
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653]
    network: NetworkConfig
    service: ServiceConfig
    database: DatabaseConfig
    deployment: DeploymentConfig = DeploymentConfig()
    alarms: AlarmConfig = AlarmConfig()
    notifications: NotificationConfig = NotificationConfig()
    tls: TlsConfig | None = None
    waf: bool = False
    alb_deletion_protection: bool = False
    retain_data: bool = Field(default=False, description="snapshot/retain stateful resources on stack deletion")
    tags: dict[str, str] = Field(default_factory=dict, description="extra tags on top of the standard ones")

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError("must be a hex colour '#' plus six hex digits, e.g. #2563eb")
        return value

    @property
    def uses_placeholder_account(self) -> bool:
        return self.account == PLACEHOLDER_ACCOUNT

    @model_validator(mode="after")
    def _azs_in_region(self) -> EnvironmentConfig:
        wrong = [az for az in self.network.availability_zones if not az.startswith(self.region)]
        if wrong:
            raise ValueError(f"availability zones {wrong} are not in region {self.region}")
        return self

    @model_validator(mode="after")
    def _lambda_endpoints_in_region(self) -> EnvironmentConfig:
        # Lambda takes the permission SNS needs only in the function's region, where this environment's stacks are.
        wrong = [e for e in self.notifications.critical_endpoints if e.startswith("arn:") and e.split(":")[3] != self.region]
        if wrong:
            raise ValueError(
                f"notifications.critical_endpoints: Lambda functions {wrong} are not in this environment's region "
                f"{self.region}; use a forwarder function in {self.region} (its stacks grant SNS the invoke permission there)"
            )
        return self

    @model_validator(mode="after")
    def _alb_certificate_region(self) -> EnvironmentConfig:
        # An ALB takes certificates only from ACM in its own region (and account).
        if self.tls and self.tls.terminate == "alb":
            _, _, _, region, account, _ = self.tls.certificate_arn.split(":", 5)
            if region != self.region or (account != self.account and not self.uses_placeholder_account):
                raise ValueError(
                    f"tls.certificate_arn is in {account}/{region}; with terminate: alb it must be an ACM certificate "
                    f"of this environment's account and region ({self.account}/{self.region})"
                )
        return self


class PipelineConfig(_Frozen):
    account: Account = PLACEHOLDER_ACCOUNT
    region: Region
    notification_emails: tuple[str, ...] = ()
    log_retention_days: Literal[7, 14, 30, 60, 90, 180, 365, 731] = 90
    # SUPERSEDED: a newer commit overtakes an older one waiting at an approval (see README).
    execution_mode: Literal["SUPERSEDED", "QUEUED"] = "SUPERSEDED"
    # IANA time zone of the deployment window (and of people reading the pipeline's schedule).
    time_zone: str = "UTC"
    # How long staging's health is watched after its deploy before prod may be approved; the gate function runs at
    # most 15 minutes (Lambda's limit) including two minutes of margin.
    promotion_bake_minutes: int = Field(default=10, ge=1, le=13)
    # When the last environment may be entered: CodePipeline's DeploymentWindow cron (seconds minutes hours
    # day-of-month month day-of-week [year], seconds "*"); default Monday–Thursday 09:00–16:00; null disables it.
    deployment_window: str | None = "* * 9-15 ? * MON-THU *"

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}, for example 'Europe/Berlin' or 'UTC'") from None
        return value

    @field_validator("deployment_window")
    @classmethod
    def _deployment_window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields = value.split()
        if len(fields) not in (6, 7) or fields[0] != "*":
            raise ValueError(
                f"{value!r} is not a DeploymentWindow cron: 6 or 7 fields (seconds minutes hours day-of-month month "
                "day-of-week [year]) with '*' as seconds, for example '* * 9-15 ? * MON-THU *'"
            )
        return value

    @property
    def uses_placeholder_account(self) -> bool:
        return self.account == PLACEHOLDER_ACCOUNT


class AppConfig(_Frozen):
    project: Name
    service_name: Name
    owner: str = Field(min_length=1, max_length=128)
    cost_center: str = Field(min_length=1, max_length=128)
    source: SourceConfig
    pipeline: PipelineConfig
    shared_secrets: tuple[SharedSecretConfig, ...] = ()
    environments: tuple[EnvironmentConfig, ...]

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: tuple[EnvironmentConfig, ...]) -> tuple[EnvironmentConfig, ...]:
        if not value:
            raise ValueError("at least one environment is required")
        names = [e.name for e in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"environment names must be unique, repeated: {duplicates}")
        return value

    @model_validator(mode="after")
    def _name_lengths(self) -> AppConfig:
        # IAM role names (at most 64 characters) are "<project>-<service_name>-<environment>-deploy-verifier".
        longest = max(len(f"{self.project}-{self.service_name}-{e.name}") for e in self.environments)
        if longest > MAX_ENVIRONMENT_PREFIX:
            raise ValueError(
                f"'<project>-<service_name>-<environment name>' is {longest} characters; at most "
                f"{MAX_ENVIRONMENT_PREFIX} fit the IAM role names built from it: shorten project, service_name or "
                "an environment name"
            )
        return self

    @model_validator(mode="after")
    def _cross_account_secrets_name_their_key(self) -> AppConfig:
        for index, item in enumerate(self.shared_secrets):
            readers = [e.name for e in self.environments if item.account and item.account != e.account]
            if readers and not item.kms_key_arn:
                raise ValueError(
                    f"shared_secrets[{index}].kms_key_arn is required: {item.secret} is in account {item.account}, "
                    f"read from {', '.join(readers)} in other accounts. A secret read across accounts is encrypted "
                    "with a customer-managed key (the AWS-managed aws/secretsmanager key cannot be shared), and the "
                    "task execution role needs kms:Decrypt on it: give that key's ARN"
                )
        return self

    @property
    def uses_placeholder_accounts(self) -> bool:
        return self.pipeline.uses_placeholder_account or any(e.uses_placeholder_account for e in self.environments)

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)

    def standard_tags(self, env: EnvironmentConfig | None) -> dict[str, str]:
        tags = {
            "Project": self.project,
            "Service": self.service_name,
            "Owner": self.owner,
            "CostCenter": self.cost_center,
            "ManagedBy": "cdk",
            "Environment": env.name if env else "pipeline",
        }
        return {**(env.tags if env else {}), **tags}
