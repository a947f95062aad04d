"""Check 3: the CodeConnections connection the pipeline's source action uses is authorised."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from tools.preflight.results import Result, error_code, failed, passed

CONSOLE = "Developer Tools → Connections"


def connection_service(arn: str) -> str:
    # connections created before the rename keep their codestar-connections ARN; both APIs serve both
    return "codestar-connections" if ":codestar-connections:" in arn else "codeconnections"


def connection_region(arn: str) -> str:
    return arn.split(":")[3]


def connection_account(arn: str) -> str:
    return arn.split(":")[4]


def check_connection(client: Any, *, arn: str) -> Result:
    try:
        connection = client.get_connection(ConnectionArn=arn)["Connection"]
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise
        return failed(
            f"connection {arn}",
            f"not found: create one in the console ({CONSOLE}) and set source.connection_arn in cdk.json",
        )
    name = connection.get("ConnectionName", arn)
    status = connection.get("ConnectionStatus")
    provider = connection.get("ProviderType", "?")
    if status == "AVAILABLE":
        return passed(f"connection {name} ({provider}) is AVAILABLE")
    if status == "PENDING":
        return failed(
            f"connection {name} ({provider}) is PENDING",
            f"authorise it in the console: {CONSOLE} → {name} → Update pending connection",
        )
    return failed(
        f"connection {name} ({provider}) is {status}",
        f"recreate it in the console ({CONSOLE}) and set source.connection_arn to the new ARN",
    )
