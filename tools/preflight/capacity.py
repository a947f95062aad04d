"""Check 6: the quotas what the environments add would hit: VPCs, Elastic IPs, NAT gateways, Lambda concurrency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from config import EnvironmentConfig
from tools.preflight.results import Result, error_code, failed, neutral, passed
from tools.preflight.stacks import stack_resources


@dataclass(frozen=True)
class Quota:
    service_code: str
    quota_code: str
    name: str


VPCS = Quota("vpc", "L-F678F1CE", "VPCs per Region")
ELASTIC_IPS = Quota("ec2", "L-0263D0A3", "EC2-VPC Elastic IPs")
NAT_GATEWAYS_PER_AZ = Quota("vpc", "L-FE5A380F", "NAT gateways per Availability Zone")
LAMBDA_CONCURRENCY = Quota("lambda", "L-B99A9384", "Concurrent executions")
# Lambda: "You can reserve up to the Unreserved account concurrency value minus 100" (configuration-concurrency).
UNRESERVED_MINIMUM = 100


@dataclass(frozen=True)
class Additions:
    environments: tuple[str, ...]
    vpcs: int
    elastic_ips: int
    nat_gateways: Mapping[str, int]  # availability zone → NAT gateways added there


def additions(envs: Sequence[EnvironmentConfig]) -> Additions:
    """What deploying `envs` for the first time adds: one VPC each, and one NAT gateway (with one EIP) per NAT AZ."""
    nat: Counter[str] = Counter()
    for env in envs:
        # CDK's Vpc places its NAT gateways in the public subnets of the first `nat_gateways` AZs
        nat.update(env.network.availability_zones[: env.network.nat_gateways])
    return Additions(tuple(e.name for e in envs), len(envs), sum(e.network.nat_gateways for e in envs), dict(nat))


def quota_value(servicequotas: Any, quota: Quota) -> tuple[float, str]:
    """The applied value; AWS answers NoSuchResourceException when only the default exists."""
    try:
        return (
            servicequotas.get_service_quota(ServiceCode=quota.service_code, QuotaCode=quota.quota_code)["Quota"][
                "Value"
            ],
            "applied",
        )
    except ClientError as error:
        if error_code(error) != "NoSuchResourceException":
            raise
    value = servicequotas.get_aws_default_service_quota(ServiceCode=quota.service_code, QuotaCode=quota.quota_code)
    return value["Quota"]["Value"], "default"


def _increase(quota: Quota, *, account: str, region: str, desired: float) -> str:
    return (
        f"request an increase in account {account}: aws service-quotas request-service-quota-increase "
        f"--region {region} --service-code {quota.service_code} --quota-code {quota.quota_code} "
        f"--desired-value {desired:g}"
    )


def _compare(
    quota: Quota, *, used: int, adding: int, limit: float, source: str, account: str, region: str, who: str
) -> Result:
    total = used + adding
    what = f"{quota.name}: {used} in use + {adding}{who} = {total} of {limit:g} ({source} quota {quota.quota_code})"
    if total <= limit:
        return passed(what)
    return failed(what, _increase(quota, account=account, region=region, desired=total))


def _nat_gateways_per_zone(ec2: Any) -> Counter[str]:
    nat_gateways = [
        nat
        for page in ec2.get_paginator("describe_nat_gateways").paginate(
            Filter=[{"Name": "state", "Values": ["pending", "available"]}]
        )
        for nat in page["NatGateways"]
    ]
    # NAT gateways name their subnet, not its zone; regional NAT gateways (no subnet) are not counted per zone
    subnet_ids = sorted({n["SubnetId"] for n in nat_gateways if n.get("SubnetId")})
    if not subnet_ids:
        return Counter()
    zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    return Counter(zone_of[n["SubnetId"]] for n in nat_gateways if n.get("SubnetId") in zone_of)


def check_network_quotas(ec2: Any, servicequotas: Any, *, account: str, region: str, adds: Additions) -> list[Result]:
    who = f" for {', '.join(adds.environments)}" if adds.environments else ""
    vpcs = sum(len(page["Vpcs"]) for page in ec2.get_paginator("describe_vpcs").paginate())
    addresses = len(ec2.describe_addresses(Filters=[{"Name": "domain", "Values": ["vpc"]}])["Addresses"])
    nat_in_use = _nat_gateways_per_zone(ec2)
    common = {"account": account, "region": region, "who": who}
    limit, source = quota_value(servicequotas, VPCS)
    results = [_compare(VPCS, used=vpcs, adding=adds.vpcs, limit=limit, source=source, **common)]
    limit, source = quota_value(servicequotas, ELASTIC_IPS)
    results.append(_compare(ELASTIC_IPS, used=addresses, adding=adds.elastic_ips, limit=limit, source=source, **common))
    limit, source = quota_value(servicequotas, NAT_GATEWAYS_PER_AZ)
    zones = sorted(set(nat_in_use) | set(adds.nat_gateways))
    per_zone = ", ".join(f"{z} {nat_in_use[z]}+{adds.nat_gateways.get(z, 0)}" for z in zones) or "none"
    over = [z for z in zones if nat_in_use[z] + adds.nat_gateways.get(z, 0) > limit]
    what = (
        f"{NAT_GATEWAYS_PER_AZ.name} (in use + to add{who}): {per_zone}, each at most {limit:g} "
        f"({source} quota {NAT_GATEWAYS_PER_AZ.quota_code})"
    )
    if over:
        desired = max(nat_in_use[z] + adds.nat_gateways.get(z, 0) for z in over)
        increase = _increase(NAT_GATEWAYS_PER_AZ, account=account, region=region, desired=desired)
        results.append(failed(f"{what}: over in {', '.join(over)}", increase))
    else:
        results.append(passed(what))
    return results


def check_reserved_concurrency(
    cloudformation: Any, lambda_: Any, *, account: str, region: str, requested: Mapping[str, Mapping[str, int]] | None
) -> Result:
    """`requested`: stack name → ReservedConcurrentExecutions per function logical id, from cdk.out."""
    if requested is None:
        return neutral("reserved Lambda concurrency: no cdk.out to read (run `make synth` to check it)")
    wanted = sum(v for functions in requested.values() for v in functions.values())
    if not wanted:
        return passed("no reserved concurrency in the assembly")
    # a function that already holds its reservation needs no new headroom, only the difference
    extra = 0
    for stack, functions in requested.items():
        deployed = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId")
            for r in stack_resources(cloudformation, stack_name=stack) or []
            if r["ResourceType"] == "AWS::Lambda::Function"
        }
        for logical_id, value in functions.items():
            held = 0
            if deployed.get(logical_id):
                held = lambda_.get_function_concurrency(FunctionName=deployed[logical_id]).get(
                    "ReservedConcurrentExecutions", 0
                )
            extra += max(value - held, 0)
    limit = lambda_.get_account_settings()["AccountLimit"]
    unreserved, total = limit["UnreservedConcurrentExecutions"], limit["ConcurrentExecutions"]
    left = unreserved - extra
    what = (
        f"reserved Lambda concurrency: {wanted} in the assembly ({extra} new) leaves {left} of {total} unreserved "
        f"(AWS keeps at least {UNRESERVED_MINIMUM})"
    )
    if left >= UNRESERVED_MINIMUM:
        return passed(what)
    desired = total + UNRESERVED_MINIMUM - left
    return failed(
        what, _increase(LAMBDA_CONCURRENCY, account=account, region=region, desired=desired) + ", or reserve less"
    )
