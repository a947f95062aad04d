"""Check 5: RDS offers the configured PostgreSQL version and instance class (Multi-AZ when asked) in the region."""

from __future__ import annotations

from typing import Any

from config import EnvironmentConfig
from tools.preflight.results import Result, failed, passed

ENGINE = "postgres"


def _offered_versions(rds: Any, *, major: str) -> list[str]:
    return sorted(
        (
            v["EngineVersion"]
            for page in rds.get_paginator("describe_db_engine_versions").paginate(
                Engine=ENGINE, DBParameterGroupFamily=f"postgres{major}"
            )
            for v in page["DBEngineVersions"]
        ),
        key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.split(".")),
    )


def check_database(rds: Any, *, env: EnvironmentConfig) -> list[Result]:
    version = env.database.engine_version
    instance_class = f"db.{env.database.instance_class}"
    field = f"environments.{env.name}.database"
    if not rds.describe_db_engine_versions(Engine=ENGINE, EngineVersion=version)["DBEngineVersions"]:
        major = version.split(".")[0]
        offered = _offered_versions(rds, major=major)
        choice = f"one of {', '.join(offered)}" if offered else f"a version RDS offers here (none of {major}.x is)"
        return [
            failed(f"PostgreSQL {version} is not offered in {env.region}", f"set {field}.engine_version to {choice}")
        ]
    results = [passed(f"PostgreSQL {version} is offered in {env.region}")]
    options = [
        option
        for page in rds.get_paginator("describe_orderable_db_instance_options").paginate(
            Engine=ENGINE, EngineVersion=version, DBInstanceClass=instance_class, Vpc=True
        )
        for option in page["OrderableDBInstanceOptions"]
    ]
    listing = (
        f"aws rds describe-orderable-db-instance-options --region {env.region} --engine {ENGINE} "
        f"--engine-version {version} --query 'OrderableDBInstanceOptions[].DBInstanceClass'"
    )
    if not options:
        results.append(
            failed(
                f"{instance_class} is not orderable for PostgreSQL {version} in {env.region}",
                f"set {field}.instance_class to a class that is ({listing})",
            )
        )
    elif env.database.multi_az and not any(o.get("MultiAZCapable") for o in options):
        results.append(
            failed(
                f"{instance_class} with PostgreSQL {version} is not Multi-AZ capable in {env.region}",
                f"choose another {field}.instance_class ({listing}) or set {field}.multi_az to false",
            )
        )
    else:
        multi_az = " with Multi-AZ" if env.database.multi_az else ""
        results.append(passed(f"{instance_class} is orderable{multi_az} for PostgreSQL {version} in {env.region}"))
    return results
