import io
import json
import os
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from preflight_world import (
    CONNECTION_ARN,
    DEV,
    PARTNER_SECRET_ARN,
    PIPELINE,
    REGION,
    ROOT,
    SECRET_OWNER,
    T0,
    World,
    app_config,
    client,
    context,
)
from stages.naming import execution_policy_name, role_name
from tools.preflight import assembly as assembly_module
from tools.preflight.assembly import AssemblyFacts, read_assembly
from tools.preflight.bootstrap import (
    bootstrap_command,
    check_bootstrap_version,
    check_execution_policies,
    check_identity,
    check_trust,
)
from tools.preflight.capacity import additions, check_network_quotas, check_reserved_concurrency
from tools.preflight.certificate import check_certificate
from tools.preflight.database import check_database
from tools.preflight.notifications import check_email_subscriptions
from tools.preflight.permissions import PERMISSIONS
from tools.preflight.results import Status
from config import load_config
from tools.preflight.runner import run
from tools.preflight.runner import sites as runner_sites
from tools.preflight.scanning import check_image_scanning, filter_matches
from tools.preflight.secrets import check_shared_secret, shared_secret
from tools.preflight.source import check_connection

pytestmark = pytest.mark.xdist_group("preflight")

CONFIG = app_config()
DEV_ENV = CONFIG.environment("dev")
PROD_ENV = CONFIG.environment("prod")
TASK_EXECUTION_ROLE = f"arn:aws:iam::{DEV}:role/{role_name(CONFIG, DEV_ENV, 'task-execution')}"
TARGET_POLICY = execution_policy_name(CONFIG, pipeline_account=False)
PIPELINE_POLICY = execution_policy_name(CONFIG, pipeline_account=True)
FIX = bootstrap_command(account=DEV, region=REGION, trust=PIPELINE, policies=(TARGET_POLICY,))
VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"


def role(name, account, trust):
    return {
        "Role": {
            "Path": "/",
            "RoleName": name,
            "RoleId": "AROA" + "X" * 17,
            "Arn": f"arn:aws:iam::{account}:role/{name}",
            "CreateDate": T0,
            "AssumeRolePolicyDocument": json.dumps(trust),
        }
    }


def trust_policy(*principals, condition=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def version(value):
    return {"Parameter": {"Name": VERSION_PARAMETER, "Type": "String", "Value": value, "Version": 1}}


def lines(results):
    return [r.line for r in results]


# --- 1. credentials and bootstrap -------------------------------------------------------------------------------


# botocore sts model: GetCallerIdentity returns Account and Arn of the signing principal
def test_identity_passes_for_the_pipeline_account_and_names_the_other_account_otherwise():
    sts, stub = client("sts")
    arn = f"arn:aws:sts::{PIPELINE}:assumed-role/Admin/alice"
    stub.add_response("get_caller_identity", {"UserId": "AROAX:alice", "Account": PIPELINE, "Arn": arn}, {})
    stub.add_response(
        "get_caller_identity", {"UserId": "AIDAX", "Account": DEV, "Arn": f"arn:aws:iam::{DEV}:user/bob"}, {}
    )
    ok = check_identity(sts, pipeline_account=PIPELINE)
    wrong = check_identity(sts, pipeline_account=PIPELINE)
    assert ok.status is Status.PASSED and arn in ok.line
    assert wrong.status is Status.FAILED
    assert f"credentials belong to account {DEV}" in wrong.line and "AWS_PROFILE" in wrong.line
    stub.assert_no_pending_responses()


# CDK bootstrap template: the version lives in SSM /cdk-bootstrap/hnb659fds/version; botocore ssm: ParameterNotFound
@pytest.mark.parametrize(
    ("value", "status", "expected"),
    [
        ("30", Status.PASSED, "CDK bootstrap version 30 in"),
        ("8", Status.PASSED, "CDK bootstrap version 8 in"),
        ("7", Status.FAILED, "is older than 8"),
        (None, Status.FAILED, "not bootstrapped"),
    ],
)
def test_bootstrap_version_against_the_minimum(value, status, expected):
    ssm, stub = client("ssm")
    if value is None:
        stub.add_client_error("get_parameter", "ParameterNotFound", expected_params={"Name": VERSION_PARAMETER})
    else:
        stub.add_response("get_parameter", version(value), {"Name": VERSION_PARAMETER})
    result = check_bootstrap_version(ssm, account=DEV, region=REGION, minimum=8, source="from cdk.out", fix=FIX)
    assert result.status is status
    assert expected in result.line
    if status is Status.FAILED:
        assert result.line.endswith(FIX)
    stub.assert_no_pending_responses()


# botocore iam model: ListAttachedRolePolicies pages with IsTruncated/Marker
def test_execution_role_carries_the_scoped_policy_across_pages():
    iam, stub = client("iam", "us-east-1")
    name = f"cdk-hnb659fds-cfn-exec-role-{DEV}-{REGION}"
    other = {"PolicyName": "ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}
    scoped = {"PolicyName": TARGET_POLICY, "PolicyArn": f"arn:aws:iam::{DEV}:policy/{TARGET_POLICY}"}
    stub.add_response(
        "list_attached_role_policies",
        {"AttachedPolicies": [other], "IsTruncated": True, "Marker": "m1"},
        {"RoleName": name},
    )
    stub.add_response(
        "list_attached_role_policies",
        {"AttachedPolicies": [scoped], "IsTruncated": False},
        {"RoleName": name, "Marker": "m1"},
    )
    result = check_execution_policies(iam, account=DEV, region=REGION, required=(TARGET_POLICY,), fix=FIX)
    assert result.status is Status.PASSED
    assert TARGET_POLICY in result.line and "not AdministratorAccess" in result.line
    stub.assert_no_pending_responses()


# botocore iam model: NoSuchEntity for a missing role; IAM: AdministratorAccess is arn:aws:iam::aws:policy/...
@pytest.mark.parametrize(
    ("attached", "expected"),
    [
        ([{"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_ARN}], "has AdministratorAccess attached"),
        ([], f"lacks {TARGET_POLICY} (attached: none)"),
        (None, "missing (not bootstrapped)"),
    ],
)
def test_execution_role_fails_with_administrator_access_a_missing_policy_or_no_role(attached, expected):
    iam, stub = client("iam", "us-east-1")
    name = f"cdk-hnb659fds-cfn-exec-role-{DEV}-{REGION}"
    if attached is None:
        stub.add_client_error("list_attached_role_policies", "NoSuchEntity", http_status_code=404)
    else:
        stub.add_response(
            "list_attached_role_policies", {"AttachedPolicies": attached, "IsTruncated": False}, {"RoleName": name}
        )
    result = check_execution_policies(iam, account=DEV, region=REGION, required=(TARGET_POLICY,), fix=FIX)
    assert result.status is Status.FAILED
    assert expected in result.line
    assert result.line.endswith(FIX)
    stub.assert_no_pending_responses()


def _trust_roles(stub, trust):
    for kind in ("deploy", "file-publishing", "image-publishing"):
        name = f"cdk-hnb659fds-{kind}-role-{DEV}-{REGION}"
        stub.add_response("get_role", role(name, DEV, trust), {"RoleName": name})


# CDK bootstrap template: --trust adds arn:<partition>:iam::<trusted account>:root to the deploy/publishing roles' trust
def test_trust_passes_when_the_bootstrap_roles_admit_the_pipeline_account_root():
    iam, stub = client("iam", "us-east-1")
    _trust_roles(stub, trust_policy(f"arn:aws:iam::{DEV}:root", f"arn:aws:iam::{PIPELINE}:root"))
    result = check_trust(iam, account=DEV, region=REGION, pipeline_account=PIPELINE, fix=FIX)
    assert result.status is Status.PASSED
    assert f"trust the pipeline account {PIPELINE}" in result.line
    stub.assert_no_pending_responses()


# CDK bootstrap template: without --trust the roles trust only their own account
def test_trust_fails_when_bootstrapped_without_trust_and_names_the_command():
    iam, stub = client("iam", "us-east-1")
    _trust_roles(stub, trust_policy(f"arn:aws:iam::{DEV}:root"))
    result = check_trust(iam, account=DEV, region=REGION, pipeline_account=PIPELINE, fix=FIX)
    assert result.status is Status.FAILED
    assert "do not trust 111111111111" in result.line and "deploy (no statement allows it)" in result.line
    assert result.line.endswith(
        f"--trust {PIPELINE} --cloudformation-execution-policies arn:aws:iam::{DEV}:policy/{TARGET_POLICY}"
    )
    stub.assert_no_pending_responses()


# IAM condition keys: aws:PrincipalOrgID cannot be known from here, so the answer is neither yes nor no
def test_trust_conditioned_on_an_unknown_key_cannot_be_checked_from_here():
    iam, stub = client("iam", "us-east-1")
    _trust_roles(stub, trust_policy("*", condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}))
    result = check_trust(iam, account=DEV, region=REGION, pipeline_account=PIPELINE, fix=FIX)
    assert result.status is Status.UNCHECKED
    assert "cannot check from here" in result.line and "aws:PrincipalOrgID" in result.line
    stub.assert_no_pending_responses()


# --- 3. connection ----------------------------------------------------------------------------------------------


def connection(status):
    return {
        "Connection": {
            "ConnectionName": "github-delivery",
            "ConnectionArn": CONNECTION_ARN,
            "ProviderType": "GitHub",
            "OwnerAccountId": PIPELINE,
            "ConnectionStatus": status,
        }
    }


# botocore codeconnections model: ConnectionStatus is PENDING | AVAILABLE | ERROR
@pytest.mark.parametrize(
    ("status", "outcome", "expected"),
    [
        ("AVAILABLE", Status.PASSED, "✓ connection github-delivery (GitHub) is AVAILABLE"),
        ("PENDING", Status.FAILED, "authorise it in the console: Developer Tools → Connections → github-delivery"),
        ("ERROR", Status.FAILED, "recreate it in the console"),
    ],
)
def test_connection_status(status, outcome, expected):
    connections, stub = client("codeconnections")
    stub.add_response("get_connection", connection(status), {"ConnectionArn": CONNECTION_ARN})
    result = check_connection(connections, arn=CONNECTION_ARN)
    assert result.status is outcome
    assert expected in result.line
    stub.assert_no_pending_responses()


# botocore codeconnections model: GetConnection raises ResourceNotFoundException
def test_connection_not_found_points_at_the_config_field():
    connections, stub = client("codeconnections")
    stub.add_client_error("get_connection", "ResourceNotFoundException", http_status_code=404)
    result = check_connection(connections, arn=CONNECTION_ARN)
    assert result.status is Status.FAILED
    assert "source.connection_arn" in result.line
    stub.assert_no_pending_responses()


# --- 4. shared secrets ------------------------------------------------------------------------------------------

KEY_ARN = f"arn:aws:kms:{REGION}:{SECRET_OWNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PARTNER_CONFIG = app_config(
    shared_secrets=[
        {"env_var": "THIRD_PARTY_API_KEY", "secret": "shared/third-party-api-key"},
        {"env_var": "PARTNER_TOKEN", "secret": PARTNER_SECRET_ARN, "kms_key_arn": KEY_ARN},
    ]
)


def described(arn, name, key=None):
    response = {"ARN": arn, "Name": name, "CreatedDate": T0}
    if key:
        response["KmsKeyId"] = key
    return response


def secret_policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal, action, condition=None):
    statement = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return statement


def key_metadata(manager="CUSTOMER", arn=KEY_ARN):
    return {
        "KeyMetadata": {
            "AWSAccountId": SECRET_OWNER,
            "KeyId": arn.rsplit("/", 1)[1],
            "Arn": arn,
            "KeyManager": manager,
        }
    }


VIA_SECRETS_MANAGER = {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}}


def partner_secret_stubs(secret_policy_document, key_policy_document):
    """Clients stubbed for the whole cross-account check of the partner secret: DescribeSecret, GetResourcePolicy,
    DescribeKey, GetKeyPolicy, answering with the given policy documents."""
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    stub.add_response(
        "describe_secret", described(PARTNER_SECRET_ARN, "shared/partner-token", KEY_ARN), {"SecretId": PARTNER_SECRET_ARN}
    )
    stub.add_response(
        "get_resource_policy",
        {"ARN": PARTNER_SECRET_ARN, "ResourcePolicy": secret_policy_document},
        {"SecretId": PARTNER_SECRET_ARN},
    )
    kms_stub.add_response("describe_key", key_metadata(), {"KeyId": KEY_ARN})
    kms_stub.add_response("get_key_policy", {"Policy": key_policy_document}, {"KeyId": KEY_ARN})
    return secrets, kms, stub, kms_stub


def partner():
    return shared_secret(PARTNER_CONFIG.shared_secrets[1], app=PARTNER_CONFIG, env=PARTNER_CONFIG.environment("dev"))


# botocore secretsmanager model: DescribeSecret by name; a secret in the reader's own account needs no resource policy
def test_same_account_secret_only_has_to_exist():
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    item = shared_secret(PARTNER_CONFIG.shared_secrets[0], app=PARTNER_CONFIG, env=PARTNER_CONFIG.environment("dev"))
    arn = f"arn:aws:secretsmanager:{REGION}:{DEV}:secret:shared/third-party-api-key-Xy12Zw"
    stub.add_response(
        "describe_secret", described(arn, "shared/third-party-api-key"), {"SecretId": "shared/third-party-api-key"}
    )
    results = check_shared_secret(secrets, kms, secret=item)
    assert lines(results) == [
        f"✓ shared secret THIRD_PARTY_API_KEY (shared/third-party-api-key) exists in {DEV}/{REGION}"
    ]
    stub.assert_no_pending_responses()
    kms_stub.assert_no_pending_responses()


# botocore secretsmanager model: DescribeSecret raises ResourceNotFoundException
def test_missing_secret_fails_with_the_create_command():
    secrets, stub = client("secretsmanager")
    kms, _ = client("kms")
    item = shared_secret(PARTNER_CONFIG.shared_secrets[0], app=PARTNER_CONFIG, env=PARTNER_CONFIG.environment("dev"))
    stub.add_client_error("describe_secret", "ResourceNotFoundException", expected_params={"SecretId": item.secret_id})
    [result] = check_shared_secret(secrets, kms, secret=item)
    assert result.status is Status.FAILED
    assert f"aws secretsmanager create-secret --region {REGION} --name shared/third-party-api-key" in result.line
    stub.assert_no_pending_responses()


# Secrets Manager cross-account access: resource policy (GetSecretValue) and key policy (kms:Decrypt via the service)
@pytest.mark.parametrize(
    "principal",
    [
        {"AWS": f"arn:aws:iam::{DEV}:role/delivery-notes-dev-task-execution"},
        {"AWS": f"arn:aws:iam::{DEV}:root"},
        {"AWS": DEV},
    ],
    ids=["exact role", "account root", "account id"],
)
def test_cross_account_secret_admits_the_task_execution_role(principal):
    secrets, kms, stub, kms_stub = partner_secret_stubs(
        secret_policy(allow(principal, "secretsmanager:GetSecretValue")),
        secret_policy(allow(principal, ["kms:Decrypt", "kms:DescribeKey"], VIA_SECRETS_MANAGER)),
    )
    results = check_shared_secret(secrets, kms, secret=partner())
    assert [r.status for r in results] == [Status.PASSED] * 3
    assert TASK_EXECUTION_ROLE in results[1].line and "secretsmanager:GetSecretValue" in results[1].line
    assert "kms:Decrypt" in results[2].line
    stub.assert_no_pending_responses()
    kms_stub.assert_no_pending_responses()


# IAM policy language: Principal "*" narrowed by an ArnLike aws:PrincipalArn wildcard admits the matching role
def test_cross_account_secret_admits_the_role_through_a_matching_wildcard_condition():
    wildcard = {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{DEV}:role/delivery-notes-*-task-execution"}}
    secrets, kms, stub, kms_stub = partner_secret_stubs(
        secret_policy(allow("*", "secretsmanager:GetSecretValue", wildcard)),
        secret_policy(allow("*", "kms:*", wildcard)),
    )
    results = check_shared_secret(secrets, kms, secret=partner())
    assert [r.status for r in results] == [Status.PASSED] * 3


# IAM policy evaluation: without a matching Allow (another account's role only) the request is implicitly denied
def test_cross_account_secret_whose_policies_admit_someone_else_fails_with_both_fixes():
    someone_else = {"AWS": "arn:aws:iam::999999999999:role/reader"}
    secrets, kms, stub, kms_stub = partner_secret_stubs(
        secret_policy(allow(someone_else, "secretsmanager:GetSecretValue")),
        secret_policy(allow(someone_else, "kms:Decrypt")),
    )
    _, policy, key = check_shared_secret(secrets, kms, secret=partner())
    assert policy.status is Status.FAILED and "aws secretsmanager put-resource-policy" in policy.line
    assert key.status is Status.FAILED and f"aws kms put-key-policy --region {REGION} --key-id {KEY_ARN}" in key.line


# IAM policy evaluation: an explicit Deny overrides the Allow (kms:ViaService for a different service)
def test_explicit_deny_in_the_key_policy_wins():
    role_principal = {"AWS": TASK_EXECUTION_ROLE}
    deny = {
        "Sid": "OnlyThroughSsm",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}},
    }
    secrets, kms, stub, kms_stub = partner_secret_stubs(
        secret_policy(allow(role_principal, "secretsmanager:GetSecretValue")),
        secret_policy(allow(role_principal, "kms:Decrypt"), deny),
    )
    _, policy, key = check_shared_secret(secrets, kms, secret=partner())
    assert policy.status is Status.PASSED
    assert key.status is Status.FAILED and "statement OnlyThroughSsm denies it" in key.line


# Secrets Manager: without KmsKeyId the secret uses aws/secretsmanager, whose key policy no other account can use
def test_cross_account_secret_on_the_aws_managed_key_fails():
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    stub.add_response(
        "describe_secret", described(PARTNER_SECRET_ARN, "shared/partner-token"), {"SecretId": PARTNER_SECRET_ARN}
    )
    stub.add_response(
        "get_resource_policy",
        {"ResourcePolicy": secret_policy(allow({"AWS": TASK_EXECUTION_ROLE}, "secretsmanager:GetSecretValue"))},
        {"SecretId": PARTNER_SECRET_ARN},
    )
    _, _, key = check_shared_secret(secrets, kms, secret=partner())
    assert key.status is Status.FAILED
    assert "AWS-managed key alias/aws/secretsmanager" in key.line and "--kms-key-id <key ARN>" in key.line
    kms_stub.assert_no_pending_responses()


# botocore kms model: KeyManager AWS marks an AWS-managed key even when the secret names it by alias ARN
def test_cross_account_secret_naming_an_aws_managed_key_by_alias_fails():
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    alias = f"arn:aws:kms:{REGION}:{SECRET_OWNER}:alias/legacy"
    stub.add_response(
        "describe_secret",
        described(PARTNER_SECRET_ARN, "shared/partner-token", alias),
        {"SecretId": PARTNER_SECRET_ARN},
    )
    stub.add_response(
        "get_resource_policy",
        {"ResourcePolicy": secret_policy(allow("*", "secretsmanager:*"))},
        {"SecretId": PARTNER_SECRET_ARN},
    )
    kms_stub.add_response("describe_key", key_metadata("AWS"), {"KeyId": alias})
    _, _, key = check_shared_secret(secrets, kms, secret=partner())
    assert (
        key.status is Status.FAILED and "AWS-managed key alias/aws/secretsmanager, which no other account" in key.line
    )


# botocore: AccessDeniedException from another account's secret and key is a third outcome, not a failure
def test_policies_that_cannot_be_read_from_here_are_reported_as_such():
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    stub.add_response(
        "describe_secret",
        described(PARTNER_SECRET_ARN, "shared/partner-token", KEY_ARN),
        {"SecretId": PARTNER_SECRET_ARN},
    )
    stub.add_client_error("get_resource_policy", "AccessDeniedException", http_status_code=400)
    kms_stub.add_client_error("describe_key", "AccessDeniedException", http_status_code=400)
    _, policy, key = check_shared_secret(secrets, kms, secret=partner())
    assert policy.status is Status.UNCHECKED and key.status is Status.UNCHECKED
    assert policy.line.startswith("! ") and "cannot check from here: GetResourcePolicy was denied" in policy.line
    assert f"check in account {SECRET_OWNER}" in key.line and TASK_EXECUTION_ROLE in key.line


# --- 5. RDS -----------------------------------------------------------------------------------------------------


def engine_version(value):
    return {"Engine": "postgres", "EngineVersion": value, "DBParameterGroupFamily": "postgres18", "Status": "available"}


def orderable(instance_class, multi_az):
    return {
        "Engine": "postgres",
        "EngineVersion": DEV_ENV.database.engine_version,
        "DBInstanceClass": instance_class,
        "MultiAZCapable": multi_az,
        "Vpc": True,
        "StorageType": "gp3",
        "AvailabilityZones": [{"Name": f"{REGION}a"}],
    }


def orderable_params(env, marker=None):
    params = {
        "Engine": "postgres",
        "EngineVersion": env.database.engine_version,
        "DBInstanceClass": f"db.{env.database.instance_class}",
        "Vpc": True,
    }
    return {**params, "Marker": marker} if marker else params


# botocore rds model: DescribeOrderableDBInstanceOptions pages with Marker; an empty first page is not the answer
def test_database_version_offered_and_class_orderable_on_a_later_page():
    rds, stub = client("rds")
    engine = DEV_ENV.database.engine_version
    stub.add_response(
        "describe_db_engine_versions",
        {"DBEngineVersions": [engine_version(engine)]},
        {"Engine": "postgres", "EngineVersion": engine},
    )
    stub.add_response(
        "describe_orderable_db_instance_options",
        {"OrderableDBInstanceOptions": [], "Marker": "p2"},
        orderable_params(DEV_ENV),
    )
    stub.add_response(
        "describe_orderable_db_instance_options",
        {"OrderableDBInstanceOptions": [orderable(f"db.{DEV_ENV.database.instance_class}", False)]},
        orderable_params(DEV_ENV, "p2"),
    )
    results = check_database(rds, env=DEV_ENV)
    assert lines(results) == [
        f"✓ PostgreSQL {engine} is offered in {REGION}",
        f"✓ db.{DEV_ENV.database.instance_class} is orderable for PostgreSQL {engine} in {REGION}",
    ]
    stub.assert_no_pending_responses()


# botocore rds model: DescribeDBEngineVersions returns an empty list for a version the region does not offer
def test_database_version_not_offered_lists_what_is():
    rds, stub = client("rds")
    engine = DEV_ENV.database.engine_version
    stub.add_response(
        "describe_db_engine_versions", {"DBEngineVersions": []}, {"Engine": "postgres", "EngineVersion": engine}
    )
    stub.add_response(
        "describe_db_engine_versions",
        {"DBEngineVersions": [engine_version("18.10"), engine_version("18.2")]},
        {"Engine": "postgres", "DBParameterGroupFamily": "postgres18"},
    )
    [result] = check_database(rds, env=DEV_ENV)
    assert result.status is Status.FAILED
    assert result.line.endswith("set environments.dev.database.engine_version to one of 18.2, 18.10")
    stub.assert_no_pending_responses()


# botocore rds model: OrderableDBInstanceOption.MultiAZCapable; no option at all means the class is not orderable
@pytest.mark.parametrize(
    ("options", "expected"),
    [([], "is not orderable for PostgreSQL"), ([orderable("db.r7g.large", False)], "is not Multi-AZ capable")],
)
def test_database_class_not_orderable_or_not_multi_az(options, expected):
    rds, stub = client("rds")
    engine = PROD_ENV.database.engine_version
    stub.add_response(
        "describe_db_engine_versions",
        {"DBEngineVersions": [engine_version(engine)]},
        {"Engine": "postgres", "EngineVersion": engine},
    )
    stub.add_response(
        "describe_orderable_db_instance_options", {"OrderableDBInstanceOptions": options}, orderable_params(PROD_ENV)
    )
    _, result = check_database(rds, env=PROD_ENV)
    assert result.status is Status.FAILED
    assert expected in result.line and "environments.prod.database" in result.line
    stub.assert_no_pending_responses()


# --- 6. quotas and reserved concurrency -------------------------------------------------------------------------


def quota(service, code, value):
    return {"Quota": {"ServiceCode": service, "QuotaCode": code, "Value": value, "QuotaName": code}}


def vpcs(count):
    return {"Vpcs": [{"VpcId": f"vpc-{i:08x}", "State": "available", "CidrBlock": "10.0.0.0/16"} for i in range(count)]}


def stub_usage(ec2_stub, *, vpc_pages, addresses, nat_subnets, subnet_zones):
    for index, count in enumerate(vpc_pages):
        last = index == len(vpc_pages) - 1
        response = {**vpcs(count), **({} if last else {"NextToken": f"v{index + 1}"})}
        ec2_stub.add_response("describe_vpcs", response, {"NextToken": f"v{index}"} if index else {})
    ec2_stub.add_response(
        "describe_addresses",
        {
            "Addresses": [
                {"AllocationId": f"eipalloc-{i}", "PublicIp": f"198.51.100.{i}", "Domain": "vpc"}
                for i in range(addresses)
            ]
        },
        {"Filters": [{"Name": "domain", "Values": ["vpc"]}]},
    )
    ec2_stub.add_response(
        "describe_nat_gateways",
        {
            "NatGateways": [
                {"NatGatewayId": f"nat-{i}", "SubnetId": s, "State": "available"} for i, s in enumerate(nat_subnets)
            ]
        },
        {"Filter": [{"Name": "state", "Values": ["pending", "available"]}]},
    )
    if nat_subnets:
        ec2_stub.add_response(
            "describe_subnets",
            {"Subnets": [{"SubnetId": s, "AvailabilityZone": z} for s, z in subnet_zones.items()]},
            {"SubnetIds": sorted(set(nat_subnets))},
        )


# Service Quotas codes: VPCs per Region L-F678F1CE, NAT gateways per AZ L-FE5A380F (vpc); Elastic IPs L-0263D0A3 (ec2)
def test_network_quotas_with_room_count_every_page_and_fall_back_to_the_default_quota():
    ec2, ec2_stub = client("ec2")
    quotas, quotas_stub = client("service-quotas")
    stub_usage(
        ec2_stub, vpc_pages=[2, 1], addresses=2, nat_subnets=["subnet-a"], subnet_zones={"subnet-a": f"{REGION}a"}
    )
    quotas_stub.add_response(
        "get_service_quota", quota("vpc", "L-F678F1CE", 10.0), {"ServiceCode": "vpc", "QuotaCode": "L-F678F1CE"}
    )
    quotas_stub.add_client_error(
        "get_service_quota",
        "NoSuchResourceException",
        expected_params={"ServiceCode": "ec2", "QuotaCode": "L-0263D0A3"},
    )
    quotas_stub.add_response(
        "get_aws_default_service_quota",
        quota("ec2", "L-0263D0A3", 5.0),
        {"ServiceCode": "ec2", "QuotaCode": "L-0263D0A3"},
    )
    quotas_stub.add_response(
        "get_service_quota", quota("vpc", "L-FE5A380F", 5.0), {"ServiceCode": "vpc", "QuotaCode": "L-FE5A380F"}
    )
    results = check_network_quotas(ec2, quotas, account=DEV, region=REGION, adds=additions([PROD_ENV]))
    assert lines(results) == [
        "✓ VPCs per Region: 3 in use + 1 for prod = 4 of 10 (applied quota L-F678F1CE)",
        "✓ EC2-VPC Elastic IPs: 2 in use + 3 for prod = 5 of 5 (default quota L-0263D0A3)",  # at the quota still fits
        "✓ NAT gateways per Availability Zone (in use + to add for prod): eu-west-1a 1+1, eu-west-1b 0+1, "
        "eu-west-1c 0+1, each at most 5 (applied quota L-FE5A380F)",
    ]
    ec2_stub.assert_no_pending_responses()
    quotas_stub.assert_no_pending_responses()


# Service Quotas: RequestServiceQuotaIncrease takes ServiceCode, QuotaCode and DesiredValue
def test_network_quotas_over_the_limit_fail_with_the_increase_request():
    ec2, ec2_stub = client("ec2")
    quotas, quotas_stub = client("service-quotas")
    stub_usage(
        ec2_stub,
        vpc_pages=[5],
        addresses=4,
        nat_subnets=["subnet-a", "subnet-b"],
        subnet_zones={"subnet-a": f"{REGION}a", "subnet-b": f"{REGION}a"},
    )
    for service, code in (("vpc", "L-F678F1CE"), ("ec2", "L-0263D0A3")):
        quotas_stub.add_response(
            "get_service_quota", quota(service, code, 5.0), {"ServiceCode": service, "QuotaCode": code}
        )
    quotas_stub.add_response(
        "get_service_quota", quota("vpc", "L-FE5A380F", 2.0), {"ServiceCode": "vpc", "QuotaCode": "L-FE5A380F"}
    )
    vpc, eip, nat = check_network_quotas(ec2, quotas, account=DEV, region=REGION, adds=additions([PROD_ENV]))
    assert vpc.status is Status.FAILED
    assert vpc.line.endswith(
        f"request an increase in account {DEV}: aws service-quotas request-service-quota-increase --region {REGION} "
        "--service-code vpc --quota-code L-F678F1CE --desired-value 6"
    )
    assert eip.status is Status.FAILED and "--quota-code L-0263D0A3 --desired-value 7" in eip.line
    assert nat.status is Status.FAILED and "over in eu-west-1a" in nat.line and "--desired-value 3" in nat.line


# Lambda concurrency docs: "reserve up to the Unreserved account concurrency value minus 100"
@pytest.mark.parametrize(
    ("unreserved", "total", "status", "expected"),
    [
        (1000, 1000, Status.PASSED, "3 in the assembly (3 new) leaves 997 of 1000 unreserved"),
        (10, 10, Status.FAILED, "--service-code lambda --quota-code L-B99A9384 --desired-value 103"),
        (102, 102, Status.FAILED, "leaves 99 of 102 unreserved"),
        (103, 103, Status.PASSED, "leaves 100 of 103 unreserved"),
    ],
)
def test_reserved_concurrency_keeps_one_hundred_unreserved(unreserved, total, status, expected):
    cloudformation, cf_stub = client("cloudformation")
    lambda_, lambda_stub = client("lambda")
    cf_stub.add_client_error(
        "list_stack_resources",
        "ValidationError",
        "Stack with id delivery-notes-dev-stateless does not exist",
        expected_params={"StackName": "delivery-notes-dev-stateless"},
    )
    lambda_stub.add_response(
        "get_account_settings",
        {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}},
        {},
    )
    result = check_reserved_concurrency(
        cloudformation,
        lambda_,
        account=DEV,
        region=REGION,
        requested={"delivery-notes-dev-stateless": {"HookFunction": 1, "RemediationFunction": 2}},
    )
    assert result.status is status
    assert expected in result.line
    lambda_stub.assert_no_pending_responses()


# botocore lambda model: GetFunctionConcurrency of a deployed function; its current reservation needs no new headroom
def test_reserved_concurrency_counts_only_what_deployed_functions_do_not_hold_yet():
    cloudformation, cf_stub = client("cloudformation")
    lambda_, lambda_stub = client("lambda")
    cf_stub.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "HookFunction",
                    "PhysicalResourceId": "delivery-notes-dev-stateless-HookFunction-abc",
                    "ResourceType": "AWS::Lambda::Function",
                    "LastUpdatedTimestamp": T0,
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
            ]
        },
        {"StackName": "delivery-notes-dev-stateless"},
    )
    lambda_stub.add_response(
        "get_function_concurrency",
        {"ReservedConcurrentExecutions": 2},
        {"FunctionName": "delivery-notes-dev-stateless-HookFunction-abc"},
    )
    lambda_stub.add_response(
        "get_account_settings",
        {"AccountLimit": {"ConcurrentExecutions": 104, "UnreservedConcurrentExecutions": 102}},
        {},
    )
    result = check_reserved_concurrency(
        cloudformation,
        lambda_,
        account=DEV,
        region=REGION,
        requested={"delivery-notes-dev-stateless": {"HookFunction": 3}},
    )
    assert result.status is Status.PASSED
    assert "3 in the assembly (1 new) leaves 101 of 104 unreserved" in result.line
    lambda_stub.assert_no_pending_responses()


# the stacks reserve none (aws-cdk-lib: ReservedConcurrentExecutions absent); no account call is needed
def test_no_reserved_concurrency_in_the_assembly_passes_without_asking():
    cloudformation, cf_stub = client("cloudformation")
    lambda_, lambda_stub = client("lambda")
    result = check_reserved_concurrency(cloudformation, lambda_, account=DEV, region=REGION, requested={})
    assert result.line == "✓ no reserved concurrency in the assembly"
    cf_stub.assert_no_pending_responses()
    lambda_stub.assert_no_pending_responses()


# --- 7. e-mail subscriptions ------------------------------------------------------------------------------------

TOPIC = f"arn:aws:sns:{REGION}:{DEV}:delivery-notes-dev-stateless-AlertingWarning1234-AbCd"


def topic_resources():
    return {
        "StackResourceSummaries": [
            {
                "LogicalResourceId": "AlertingWarning1234",
                "PhysicalResourceId": TOPIC,
                "ResourceType": "AWS::SNS::Topic",
                "LastUpdatedTimestamp": T0,
                "ResourceStatus": "CREATE_COMPLETE",
            }
        ]
    }


def subscription(endpoint, arn, protocol="email"):
    return {"SubscriptionArn": arn, "Owner": DEV, "Protocol": protocol, "Endpoint": endpoint, "TopicArn": TOPIC}


# botocore sns model: ListSubscriptionsByTopic reports an unconfirmed subscription's ARN as "PendingConfirmation"
def test_pending_email_subscription_fails_and_confirmed_ones_pass():
    cloudformation, cf_stub = client("cloudformation")
    sns, sns_stub = client("sns")
    stack = "delivery-notes-dev-stateless"
    cf_stub.add_response("list_stack_resources", topic_resources(), {"StackName": stack})
    sns_stub.add_response(
        "list_subscriptions_by_topic",
        {
            "Subscriptions": [
                subscription("oncall@example.com", f"{TOPIC}:1b2c"),
                subscription("https://pager.example", f"{TOPIC}:3d4e", "https"),
            ],
            "NextToken": "n",
        },
        {"TopicArn": TOPIC},
    )
    sns_stub.add_response(
        "list_subscriptions_by_topic",
        {"Subscriptions": [subscription("lead@example.com", "PendingConfirmation")]},
        {"TopicArn": TOPIC, "NextToken": "n"},
    )
    [result] = check_email_subscriptions(cloudformation, sns, stack_name=stack)
    assert result.status is Status.FAILED
    assert result.line.startswith(
        "✗ e-mail subscription of lead@example.com to delivery-notes-dev-stateless-AlertingWarning1234-AbCd"
    )
    assert "confirm the e-mail sent to lead@example.com" in result.line
    cf_stub.add_response("list_stack_resources", topic_resources(), {"StackName": stack})
    sns_stub.add_response(
        "list_subscriptions_by_topic",
        {"Subscriptions": [subscription("oncall@example.com", f"{TOPIC}:1b2c")]},
        {"TopicArn": TOPIC},
    )
    assert lines(check_email_subscriptions(cloudformation, sns, stack_name=stack)) == [
        f"✓ 1 e-mail subscription(s) on 1 topic(s) of {stack} confirmed"
    ]
    sns_stub.assert_no_pending_responses()


# botocore cloudformation: ValidationError "Stack with id ... does not exist" for a stack not deployed yet
def test_email_subscriptions_of_a_stack_not_deployed_yet_are_a_neutral_line():
    cloudformation, cf_stub = client("cloudformation")
    sns, _ = client("sns")
    cf_stub.add_client_error(
        "list_stack_resources", "ValidationError", "Stack with id delivery-notes-pipeline does not exist"
    )
    [result] = check_email_subscriptions(cloudformation, sns, stack_name="delivery-notes-pipeline")
    assert result.status is Status.NEUTRAL
    assert result.line == "– e-mail subscriptions: delivery-notes-pipeline is not deployed yet (checked once it is)"


# --- 8. ECR scanning --------------------------------------------------------------------------------------------

REPOSITORY = f"cdk-hnb659fds-container-assets-{DEV}-{REGION}"


# ECR user guide, scanning filters: a filter without '*' matches names containing it; '*' matches zero or more chars
@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("cdk-*-container-assets-*", True),
        ("container-assets", True),
        ("*", True),
        ("cdk-*-file-assets-*", False),
        ("prod*", False),
    ],
)
def test_scanning_filter_semantics(pattern, matches):
    assert filter_matches(pattern, REPOSITORY) is matches


def scanning(scan_type, rules):
    return {"registryId": DEV, "scanningConfiguration": {"scanType": scan_type, "rules": rules}}


# botocore ecr model: GetRegistryScanningConfiguration rules of scanFrequency SCAN_ON_PUSH | CONTINUOUS_SCAN | MANUAL
@pytest.mark.parametrize(
    ("scan_type", "frequency"),
    [("ENHANCED", "SCAN_ON_PUSH"), ("ENHANCED", "CONTINUOUS_SCAN"), ("BASIC", "SCAN_ON_PUSH")],
)
def test_registry_scans_the_asset_repository_on_push(scan_type, frequency):
    ecr, stub = client("ecr")
    rule = {
        "scanFrequency": frequency,
        "repositoryFilters": [{"filter": "cdk-*-container-assets-*", "filterType": "WILDCARD"}],
    }
    stub.add_response("get_registry_scanning_configuration", scanning(scan_type, [rule]), {})
    result = check_image_scanning(ecr, account=DEV, region=REGION)
    assert (
        result.line
        == f"✓ ECR {scan_type} scanning: rule 'cdk-*-container-assets-*' ({frequency}) scans {REPOSITORY} on push"
    )


# botocore ecr model: PutRegistryScanningConfiguration replaces every rule, so the fix keeps the existing ones
def test_registry_without_a_covering_rule_fails_with_a_command_that_keeps_existing_rules():
    ecr, stub = client("ecr")
    manual = {"scanFrequency": "MANUAL", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}
    on_push = {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "team-*", "filterType": "WILDCARD"}]}
    stub.add_response("get_registry_scanning_configuration", scanning("BASIC", [manual, on_push]), {})
    result = check_image_scanning(ecr, account=DEV, region=REGION)
    assert result.status is Status.FAILED
    command = result.detail
    assert command.startswith(
        f"aws ecr put-registry-scanning-configuration --region {REGION} --scan-type BASIC --rules '"
    )
    rules = json.loads(command.split("--rules ", 1)[1].strip("'"))
    assert rules == [
        manual,
        {
            **on_push,
            "repositoryFilters": [
                *on_push["repositoryFilters"],
                {"filter": "cdk-*-container-assets-*", "filterType": "WILDCARD"},
            ],
        },
    ]
    # the suggested rules are valid input: Stubber checks them against the ecr model's PutRegistryScanningConfiguration
    stub.add_response("put_registry_scanning_configuration", {}, {"scanType": "BASIC", "rules": rules})
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
    stub.assert_no_pending_responses()


# --- assembly ---------------------------------------------------------------------------------------------------


def write_assembly(directory: Path, *, reserved: int | None):
    nested = directory / "assembly-delivery-notes-pipeline-Dev"
    nested.mkdir(parents=True)
    function = {"Type": "AWS::Lambda::Function", "Properties": {"Handler": "index.handler"}}
    if reserved is not None:
        function["Properties"]["ReservedConcurrentExecutions"] = reserved
    (nested / "Stateless.template.json").write_text(json.dumps({"Resources": {"HookFunction": function}}))
    (nested / "manifest.json").write_text(
        json.dumps(
            {
                "artifacts": {
                    "Stateless.assets": {
                        "type": "cdk:asset-manifest",
                        "properties": {"requiresBootstrapStackVersion": 6},
                    },
                    "Stateless": {
                        "type": "aws:cloudformation:stack",
                        "properties": {
                            "templateFile": "Stateless.template.json",
                            "stackName": "delivery-notes-dev-stateless",
                            "requiresBootstrapStackVersion": 21,
                            "lookupRole": {"arn": "arn", "requiresBootstrapStackVersion": 8},
                        },
                    },
                }
            }
        )
    )
    (directory / "manifest.json").write_text(
        json.dumps({"artifacts": {"Dev": {"type": "cdk:cloud-assembly", "properties": {"directoryName": nested.name}}}})
    )


# cloud-assembly-schema: stacks and asset manifests carry requiresBootstrapStackVersion, stacks a lookupRole entry
def test_assembly_minimums_and_reservations_come_from_every_nested_manifest(tmp_path):
    write_assembly(tmp_path, reserved=2)
    facts = read_assembly(tmp_path)
    assert (facts.deploy_version, facts.lookup_version) == (21, 8)
    assert facts.reserved_for("delivery-notes-dev-") == {"delivery-notes-dev-stateless": {"HookFunction": 2}}
    assert facts.reserved_for("delivery-notes-prod-") == {}


# without cdk.out the documented aws-cdk-lib minimums apply and reserved concurrency is unknown, not zero
def test_without_an_assembly_the_documented_defaults_apply(tmp_path):
    facts = read_assembly(tmp_path / "missing")
    assert (facts.deploy_version, facts.lookup_version) == (assembly_module.DEFAULT_DEPLOY_VERSION, 8)
    assert facts.reserved_for("delivery-notes-dev-") is None


# --- the runner: one environment in its own account, first deploy and re-run, then the ways a run stops or skips --

PIPELINE_STACK = "delivery-notes-pipeline"
STATELESS = "delivery-notes-dev-stateless"
STATEFUL = "delivery-notes-dev-stateful"
ONE_ENV = app_config(environments=("dev",))
FACTS = AssemblyFacts("from cdk.out", 6, 8, {STATELESS: {"HookFunction": 1}})
NAME_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{DEV}:secret:shared/third-party-api-key-Xy12Zw"
ON_PUSH = {
    "scanFrequency": "SCAN_ON_PUSH",
    "repositoryFilters": [{"filter": "cdk-*-container-assets-*", "filterType": "WILDCARD"}],
}
NO_STACK = "ValidationError"


def attached(account, *names):
    policies = [{"PolicyName": n, "PolicyArn": f"arn:aws:iam::{account}:policy/{n}"} for n in names]
    return {"AttachedPolicies": policies, "IsTruncated": False}


def resource(logical_id, physical_id, resource_type):
    return {
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical_id,
        "ResourceType": resource_type,
        "LastUpdatedTimestamp": T0,
        "ResourceStatus": "UPDATE_COMPLETE",
    }


def no_stack(world, account, method, stack):
    world.refuse(
        "cloudformation", account, method, NO_STACK, f"Stack with id {stack} does not exist", {"StackName": stack}
    )


def expect_pipeline(world: World, *, identity_account=PIPELINE):
    arn = f"arn:aws:sts::{identity_account}:assumed-role/Admin/me"
    world.expect(
        "sts", PIPELINE, "get_caller_identity", {"UserId": "AROAX:me", "Account": identity_account, "Arn": arn}, {}
    )


def expect_bootstrapped(world: World, *, pipeline_stack_deployed: bool):
    expect_pipeline(world)
    world.expect("ssm", PIPELINE, "get_parameter", version("30"), {"Name": VERSION_PARAMETER})
    exec_role = {"RoleName": f"cdk-hnb659fds-cfn-exec-role-{PIPELINE}-{REGION}"}
    world.expect("iam", PIPELINE, "list_attached_role_policies", attached(PIPELINE, PIPELINE_POLICY), exec_role)
    world.expect(
        "codeconnections", PIPELINE, "get_connection", connection("AVAILABLE"), {"ConnectionArn": CONNECTION_ARN}
    )
    if pipeline_stack_deployed:
        topic = f"arn:aws:sns:{REGION}:{PIPELINE}:delivery-notes-pipeline-Notifications-AbCd"
        summaries = {"StackResourceSummaries": [resource("Notifications", topic, "AWS::SNS::Topic")]}
        world.expect("cloudformation", PIPELINE, "list_stack_resources", summaries, {"StackName": PIPELINE_STACK})
        confirmed = {**subscription("team@example.com", f"{topic}:5f6a"), "TopicArn": topic, "Owner": PIPELINE}
        world.expect(
            "sns", PIPELINE, "list_subscriptions_by_topic", {"Subscriptions": [confirmed]}, {"TopicArn": topic}
        )
    else:
        no_stack(world, PIPELINE, "list_stack_resources", PIPELINE_STACK)
    world.expect("ssm", DEV, "get_parameter", version("30"), {"Name": VERSION_PARAMETER})
    exec_role = {"RoleName": f"cdk-hnb659fds-cfn-exec-role-{DEV}-{REGION}"}
    world.expect("iam", DEV, "list_attached_role_policies", attached(DEV, TARGET_POLICY), exec_role)
    for kind in ("deploy", "file-publishing", "image-publishing"):
        name = f"cdk-hnb659fds-{kind}-role-{DEV}-{REGION}"
        trusted = role(name, DEV, trust_policy(f"arn:aws:iam::{PIPELINE}:root"))
        world.expect("iam", DEV, "get_role", trusted, {"RoleName": name})
    world.expect("ecr", DEV, "get_registry_scanning_configuration", scanning("ENHANCED", [ON_PUSH]), {})
    name = "shared/third-party-api-key"
    world.expect("secretsmanager", DEV, "describe_secret", described(NAME_SECRET_ARN, name), {"SecretId": name})


def expect_database(world: World):
    engine = DEV_ENV.database.engine_version
    offered = {"DBEngineVersions": [engine_version(engine)]}
    world.expect("rds", DEV, "describe_db_engine_versions", offered, {"Engine": "postgres", "EngineVersion": engine})
    options = {"OrderableDBInstanceOptions": [orderable("db.t4g.micro", False)]}
    world.expect("rds", DEV, "describe_orderable_db_instance_options", options, orderable_params(DEV_ENV))


def expect_quotas(world: World, *, default_eip_quota: bool):
    for service, code in (("vpc", "L-F678F1CE"), ("ec2", "L-0263D0A3"), ("vpc", "L-FE5A380F")):
        params = {"ServiceCode": service, "QuotaCode": code}
        if default_eip_quota and code == "L-0263D0A3":
            world.refuse("service-quotas", DEV, "get_service_quota", "NoSuchResourceException", params=params)
            world.expect("service-quotas", DEV, "get_aws_default_service_quota", quota(service, code, 5.0), params)
        else:
            world.expect("service-quotas", DEV, "get_service_quota", quota(service, code, 5.0), params)


def expect_first_deploy(world: World):
    """Bootstrapped accounts, nothing of ours deployed yet."""
    expect_bootstrapped(world, pipeline_stack_deployed=False)
    expect_database(world)
    no_stack(world, DEV, "list_stack_resources", STATELESS)
    no_stack(world, DEV, "describe_stacks", STATEFUL)
    world.expect("ec2", DEV, "describe_vpcs", vpcs(1), {})
    world.expect(
        "ec2", DEV, "describe_addresses", {"Addresses": []}, {"Filters": [{"Name": "domain", "Values": ["vpc"]}]}
    )
    states = {"Filter": [{"Name": "state", "Values": ["pending", "available"]}]}
    world.expect("ec2", DEV, "describe_nat_gateways", {"NatGateways": []}, states)
    expect_quotas(world, default_eip_quota=False)
    no_stack(world, DEV, "list_stack_resources", STATELESS)
    limits = {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}}
    world.expect("lambda", DEV, "get_account_settings", limits, {})


PARTNER_ONE_ENV = app_config(
    environments=("dev",),
    shared_secrets=[
        {"env_var": "THIRD_PARTY_API_KEY", "secret": "shared/third-party-api-key"},
        {"env_var": "PARTNER_TOKEN", "secret": PARTNER_SECRET_ARN, "kms_key_arn": KEY_ARN},
    ],
)


def expect_redeploy(world: World):
    """Everything deployed once already, with a cross-account shared secret: the calls a re-run adds."""
    expect_bootstrapped(world, pipeline_stack_deployed=True)
    partner_described = described(PARTNER_SECRET_ARN, "shared/partner-token", KEY_ARN)
    world.expect("secretsmanager", SECRET_OWNER, "describe_secret", partner_described, {"SecretId": PARTNER_SECRET_ARN})
    policy = secret_policy(allow({"AWS": TASK_EXECUTION_ROLE}, "secretsmanager:GetSecretValue"))
    world.expect(
        "secretsmanager",
        SECRET_OWNER,
        "get_resource_policy",
        {"ResourcePolicy": policy},
        {"SecretId": PARTNER_SECRET_ARN},
    )
    world.expect("kms", SECRET_OWNER, "describe_key", key_metadata(), {"KeyId": KEY_ARN})
    key_policy = secret_policy(allow({"AWS": TASK_EXECUTION_ROLE}, "kms:Decrypt", VIA_SECRETS_MANAGER))
    world.expect("kms", SECRET_OWNER, "get_key_policy", {"Policy": key_policy}, {"KeyId": KEY_ARN})
    expect_database(world)
    function = "delivery-notes-dev-stateless-HookFunction-abc"
    deployed = {
        "StackResourceSummaries": [
            resource("AlertingWarning1234", TOPIC, "AWS::SNS::Topic"),
            resource("HookFunction", function, "AWS::Lambda::Function"),
        ]
    }
    world.expect("cloudformation", DEV, "list_stack_resources", deployed, {"StackName": STATELESS})
    confirmed = {"Subscriptions": [subscription("oncall@example.com", f"{TOPIC}:1b2c")]}
    world.expect("sns", DEV, "list_subscriptions_by_topic", confirmed, {"TopicArn": TOPIC})
    stack = {"StackName": STATEFUL, "CreationTime": T0, "StackStatus": "UPDATE_COMPLETE"}
    world.expect("cloudformation", DEV, "describe_stacks", {"Stacks": [stack]}, {"StackName": STATEFUL})
    world.expect("ec2", DEV, "describe_vpcs", vpcs(2), {})
    eip = {"AllocationId": "eipalloc-1", "PublicIp": "198.51.100.1", "Domain": "vpc"}
    world.expect(
        "ec2", DEV, "describe_addresses", {"Addresses": [eip]}, {"Filters": [{"Name": "domain", "Values": ["vpc"]}]}
    )
    nat = {"NatGatewayId": "nat-1", "SubnetId": "subnet-a", "State": "available"}
    states = {"Filter": [{"Name": "state", "Values": ["pending", "available"]}]}
    world.expect("ec2", DEV, "describe_nat_gateways", {"NatGateways": [nat]}, states)
    zones = {"Subnets": [{"SubnetId": "subnet-a", "AvailabilityZone": f"{REGION}a"}]}
    world.expect("ec2", DEV, "describe_subnets", zones, {"SubnetIds": ["subnet-a"]})
    expect_quotas(world, default_eip_quota=True)
    world.expect("cloudformation", DEV, "list_stack_resources", deployed, {"StackName": STATELESS})
    world.expect(
        "lambda", DEV, "get_function_concurrency", {"ReservedConcurrentExecutions": 1}, {"FunctionName": function}
    )
    limits = {"AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 999}}
    world.expect("lambda", DEV, "get_account_settings", limits, {})


def check_lines(text):
    return [line for line in text.splitlines() if line[:2] in {"✓ ", "✗ ", "! ", "– "}]


# every check against a bootstrapped pipeline account and one target account before the first deploy: exit 0
def test_first_deploy_passes_every_check_in_order():
    world = World()
    expect_first_deploy(world)
    out = io.StringIO()
    assert run(ONE_ENV, clients=world, facts=FACTS, out=out) == 0
    world.verify()
    text = out.getvalue()
    assert [line[0] for line in check_lines(text)] == ["✓"] * 5 + ["–"] + ["✓"] * 7 + ["–"] + ["✓"] * 4
    assert "dev: account 222222222222, eu-west-1 (lookup role of 222222222222)" in text
    assert f"✓ CDK bootstrap version 30 in {DEV}/{REGION} (needs 8, from cdk.out)" in text
    assert "✓ VPCs per Region: 1 in use + 1 for dev = 2 of 5 (applied quota L-F678F1CE)" in text
    assert "✓ reserved Lambda concurrency: 1 in the assembly (1 new) leaves 999 of 1000 unreserved" in text
    assert "✓ CodeBuild Lambda compute in eu-west-1 (self-mutation, IAM-broadening check, Verify)" in text
    assert text.rstrip().endswith("preflight: 16 passed, 0 failed, 0 could not be checked from here")


US_EAST_1 = "us-east-1"


def cloudfront_alarm_config(region=REGION):
    settings = context(environments=("dev",))
    dev = settings["delivery"]["environments"][0]
    dev["alarms"] = {"cloudfront_5xx_rate_percent": 1}
    if region != REGION:
        dev["region"] = region
        dev["network"]["availability_zones"] = [f"{region}a", f"{region}b"]
    return load_config(settings, {}, require_real_accounts=True)


def expect_us_east_1_bootstrapped(world: World, *, trusted: bool = True):
    """The pipeline account's and dev's account's us-east-1 bootstrap, for dev's CloudFront alarm stack."""
    world.expect("ssm", PIPELINE, "get_parameter", version("30"), {"Name": VERSION_PARAMETER}, region=US_EAST_1)
    world.expect("ssm", DEV, "get_parameter", version("30"), {"Name": VERSION_PARAMETER}, region=US_EAST_1)
    exec_role = {"RoleName": f"cdk-hnb659fds-cfn-exec-role-{DEV}-{US_EAST_1}"}
    world.expect(
        "iam", DEV, "list_attached_role_policies", attached(DEV, TARGET_POLICY), exec_role, region=US_EAST_1
    )
    for kind in ("deploy", "file-publishing", "image-publishing"):
        name = f"cdk-hnb659fds-{kind}-role-{DEV}-{US_EAST_1}"
        principal = f"arn:aws:iam::{PIPELINE}:root" if trusted else f"arn:aws:iam::{DEV}:root"
        world.expect("iam", DEV, "get_role", role(name, DEV, trust_policy(principal)), {"RoleName": name}, region=US_EAST_1)
    no_stack_us_east_1 = {"StackName": "delivery-notes-dev-cloudfront-alarm"}
    world.refuse(
        "cloudformation", DEV, "list_stack_resources", NO_STACK,
        "Stack with id delivery-notes-dev-cloudfront-alarm does not exist", no_stack_us_east_1, region=US_EAST_1,
    )


# an environment outside us-east-1 with a CloudFront alarm deploys a stack there: both accounts bootstrapped there
def test_a_cloudfront_alarm_outside_us_east_1_needs_both_accounts_bootstrapped_in_us_east_1():
    world = World()
    expect_first_deploy(world)
    expect_us_east_1_bootstrapped(world)
    out = io.StringIO()
    assert run(cloudfront_alarm_config(), clients=world, facts=FACTS, out=out) == 0
    world.verify()
    text = out.getvalue()
    assert f"✓ CDK bootstrap version 30 in {PIPELINE}/{US_EAST_1} (needs 6, from cdk.out)" in text
    assert f"– dev's CloudFront alarm deploys to {DEV}/{US_EAST_1}" in text
    assert f"✓ CDK bootstrap version 30 in {DEV}/{US_EAST_1} (needs 8, from cdk.out)" in text
    assert f"✓ cdk-hnb659fds-cfn-exec-role-{DEV}-{US_EAST_1} carries {TARGET_POLICY}" in text
    assert f"roles in {DEV}/{US_EAST_1} trust the pipeline account {PIPELINE}" in text
    assert "delivery-notes-dev-cloudfront-alarm is not deployed yet" in text
    # Four more checks than without the alarm; the alarm stack holds no image, so no ECR check runs in us-east-1
    # (an unstubbed call would have made a "could not be checked" line).
    assert text.rstrip().endswith("preflight: 20 passed, 0 failed, 0 could not be checked from here")


def test_missing_us_east_1_bootstrap_fails_with_the_command_that_makes_it():
    world = World()
    expect_first_deploy(world)
    world.refuse("ssm", PIPELINE, "get_parameter", "ParameterNotFound", params={"Name": VERSION_PARAMETER}, region=US_EAST_1)
    world.refuse("ssm", DEV, "get_parameter", "ParameterNotFound", params={"Name": VERSION_PARAMETER}, region=US_EAST_1)
    world.refuse(
        "iam", DEV, "list_attached_role_policies", "NoSuchEntity",
        params={"RoleName": f"cdk-hnb659fds-cfn-exec-role-{DEV}-{US_EAST_1}"}, region=US_EAST_1,
    )
    for kind in ("deploy", "file-publishing", "image-publishing"):
        name = f"cdk-hnb659fds-{kind}-role-{DEV}-{US_EAST_1}"
        world.refuse("iam", DEV, "get_role", "NoSuchEntity", params={"RoleName": name}, region=US_EAST_1)
    world.refuse(
        "cloudformation", DEV, "list_stack_resources", NO_STACK, "does not exist",
        {"StackName": "delivery-notes-dev-cloudfront-alarm"}, region=US_EAST_1,
    )
    out = io.StringIO()
    assert run(cloudfront_alarm_config(), clients=world, facts=FACTS, out=out) == 1
    world.verify()
    text = out.getvalue()
    pipeline_fix = bootstrap_command(account=PIPELINE, region=US_EAST_1, trust=None, policies=(PIPELINE_POLICY,))
    dev_fix = bootstrap_command(account=DEV, region=US_EAST_1, trust=PIPELINE, policies=(TARGET_POLICY,))
    assert f"✗ CDK bootstrap in {PIPELINE}/{US_EAST_1}: not bootstrapped" in text and pipeline_fix in text
    assert f"✗ CDK bootstrap in {DEV}/{US_EAST_1}: not bootstrapped" in text and dev_fix in text


# an environment in us-east-1 keeps its CloudFront alarm in its own stacks: no extra site, as before
def test_an_environment_in_us_east_1_needs_no_extra_bootstrap():
    config = cloudfront_alarm_config(region=US_EAST_1)
    sites = {(s.account, s.region): s for s in runner_sites(config)}
    assert set(sites) == {(PIPELINE, REGION), (DEV, US_EAST_1)}
    assert sites[(DEV, US_EAST_1)].environments == ("dev",) and sites[(DEV, US_EAST_1)].alarm_environments == ()


# a re-run once the stacks exist: what is deployed counts as in use, not again as an addition
def test_rerun_after_deploying_counts_deployed_resources_once():
    world = World()
    expect_redeploy(world)
    out = io.StringIO()
    assert run(PARTNER_ONE_ENV, clients=world, facts=FACTS, out=out) == 0
    world.verify()
    text = out.getvalue()
    assert f"✓ 1 e-mail subscription(s) on 1 topic(s) of {PIPELINE_STACK} confirmed" in text
    assert f"✓ 1 e-mail subscription(s) on 1 topic(s) of {STATELESS} confirmed" in text
    assert "– deployed already, counted as in use: dev" in text
    assert "✓ VPCs per Region: 2 in use + 0 = 2 of 5 (applied quota L-F678F1CE)" in text
    assert "✓ EC2-VPC Elastic IPs: 1 in use + 0 = 1 of 5 (default quota L-0263D0A3)" in text
    assert "eu-west-1a 1+0, each at most 5" in text
    assert "1 in the assembly (0 new) leaves 999 of 1000 unreserved" in text
    assert "✗" not in text and "preflight: 21 passed, 0 failed" in text


# IAM: preflight's own calls need exactly the actions the README lists (permission names from the botocore models)
def test_every_call_preflight_makes_is_in_the_permissions_table():
    session = botocore.session.get_session()
    listed = {p.action for p in PERMISSIONS}
    for scenario, config in ((expect_first_deploy, ONE_ENV), (expect_redeploy, PARTNER_ONE_ENV)):
        world = World()
        scenario(world)
        run(config, clients=world, facts=FACTS, out=io.StringIO())
        world.verify()
        for service, method in world.operations:
            model = session.get_service_model(service)
            operation = next(name for name in model.operation_names if botocore.xform_name(name) == method)
            prefix = "servicequotas" if service == "service-quotas" else model.signing_name
            assert f"{prefix}:{operation}" in listed, f"{prefix}:{operation}"


# botocore service models: every action in the table names a real operation of its service
def test_permissions_table_names_real_operations():
    session = botocore.session.get_session()
    services = {"servicequotas": "service-quotas"}
    for permission in PERMISSIONS:
        prefix, operation = permission.action.split(":")
        assert operation in session.get_service_model(services.get(prefix, prefix)).operation_names, permission.action


# sts:GetCallerIdentity names another account: nothing else runs against the wrong account
def test_credentials_of_another_account_stop_the_run():
    world = World()
    expect_pipeline(world, identity_account=DEV)
    out = io.StringIO()
    assert run(ONE_ENV, clients=world, facts=FACTS, out=out) == 1
    world.verify()
    assert check_lines(out.getvalue()) == [
        f"✗ credentials belong to account {DEV} (arn:aws:sts::{DEV}:assumed-role/Admin/me), not the pipeline account "
        f"{PIPELINE}: use the pipeline account's credentials (AWS_PROFILE=<its profile>) or fix pipeline.account "
        "in cdk.json"
    ]


PLACEHOLDER_CONNECTION = (
    "arn:aws:codeconnections:eu-west-1:000000000000:connection/00000000-0000-0000-0000-000000000000"
)


# sts:AssumeRole of the lookup role refused (not bootstrapped with --trust): that account is skipped, the rest runs
def test_unreachable_target_account_fails_once_and_skips_its_checks():
    config = app_config(
        environments=("dev",),
        source={"owner": "example-org", "repo": "delivery-system", "connection_arn": PLACEHOLDER_CONNECTION},
    )
    world = World()
    expect_pipeline(world)
    world.expect("ssm", PIPELINE, "get_parameter", version("30"), {"Name": VERSION_PARAMETER})
    administrator = {
        "AttachedPolicies": [{"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_ARN}],
        "IsTruncated": False,
    }
    exec_role = {"RoleName": f"cdk-hnb659fds-cfn-exec-role-{PIPELINE}-{REGION}"}
    world.expect("iam", PIPELINE, "list_attached_role_policies", administrator, exec_role)
    params = {"StackName": PIPELINE_STACK}
    world.refuse(
        "cloudformation", PIPELINE, "list_stack_resources", "AccessDenied", "not authorized", params, status=403
    )
    world.unreachable.add(DEV)
    out = io.StringIO()
    assert run(config, clients=world, facts=FACTS, out=out) == 1
    world.verify()
    text = out.getvalue()
    assert "has AdministratorAccess attached" in text
    assert f"✗ connection {PLACEHOLDER_CONNECTION}: this is the placeholder: set source.connection_arn" in text
    assert (
        "! pipeline e-mail subscriptions: cannot check from here: ListStackResources was denied (AccessDenied)" in text
    )
    assert f"✗ read account {DEV}: cannot assume the lookup role of {DEV}" in text
    assert f"--trust {PIPELINE} --cloudformation-execution-policies arn:aws:iam::{DEV}:policy/{TARGET_POLICY}" in text
    assert "capacity in" not in text
    assert "preflight: 3 passed, 3 failed, 1 could not be checked from here" in text


# --- the command line -------------------------------------------------------------------------------------------


def bare_environment(tmp_path):
    """No AWS_* or DELIVERY_* variables, empty AWS config files, no instance metadata: nothing reaches the network."""
    empty = tmp_path / "empty"
    empty.write_text("")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DELIVERY_"))}
    environment.update(
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
        HOME=str(tmp_path),
    )
    return environment


def preflight(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "tools.preflight", "--assembly", str(tmp_path / "no-cdk.out"), *args],
        cwd=ROOT,
        env=bare_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


# botocore credential chain: with no variables, empty files and IMDS disabled it raises NoCredentialsError
def test_no_credentials_is_one_line_and_exit_3(tmp_path):
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": context()}))
    done = preflight(tmp_path, "--cdk-json", str(cdk_json))
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"preflight: no usable AWS credentials for the pipeline account {PIPELINE}")
    assert "AWS_PROFILE" in done.stderr


# config/loader.py: placeholder accounts are refused for deploying, naming every field to set
def test_placeholder_accounts_exit_2_naming_the_fields(tmp_path):
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": context(placeholders=True)}))
    done = preflight(tmp_path, "--cdk-json", str(cdk_json))
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("ConfigError: refusing to deploy with placeholder account ids")
    for field in (
        "pipeline.account",
        "environments.dev.account",
        "environments.staging.account",
        "environments.prod.account",
    ):
        assert field in done.stderr


# Makefile: `make deploy` runs preflight before cdk deploy, and keeps refusing placeholder accounts
def test_deploy_runs_preflight_first():
    done = subprocess.run(["make", "-n", "deploy"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    preflight_at = next(i for i, c in enumerate(commands) if "-m tools.preflight" in c)
    deploy_at = next(i for i, c in enumerate(commands) if " deploy --all" in c)
    assert preflight_at < deploy_at
    assert "DELIVERY_REQUIRE_REAL_ACCOUNTS=1" in commands[deploy_at]


# --- the credential model ---------------------------------------------------------------------------------------


class FakeSession:
    """Stands in for boto3.Session: records the credentials it was made with and the clients asked of it."""

    def __init__(self, sts=None, **credentials):
        self.sts = sts
        self.credentials = credentials
        self.clients = []

    def client(self, service, region_name=None, config=None):
        if service == "sts" and self.sts is not None:
            return self.sts
        self.clients.append((service, region_name))
        return self


def sessions(sts):
    from tools.preflight.accounts import Sessions

    base = FakeSession(sts)
    made = []

    def factory(**credentials):
        session = base if not credentials else FakeSession(**credentials)
        made.append(session)
        return session

    return (
        Sessions(
            pipeline_account=PIPELINE, pipeline_region=REGION, lookup_regions={DEV: REGION}, session_factory=factory
        ),
        base,
        made,
    )


def assumed(key_id):
    return {
        "Credentials": {"AccessKeyId": key_id, "SecretAccessKey": "secret", "SessionToken": "token", "Expiration": T0},
        "AssumedRoleUser": {"AssumedRoleId": "AROAX:delivery-preflight", "Arn": f"arn:aws:sts::{DEV}:assumed-role/x/y"},
    }


LOOKUP_ROLE = f"arn:aws:iam::{DEV}:role/cdk-hnb659fds-lookup-role-{DEV}-{REGION}"


# CDK bootstrap template: the lookup role cdk-hnb659fds-lookup-role-<account>-<region>, assumed once per account
def test_target_accounts_are_read_through_their_lookup_role_and_the_pipeline_account_directly():
    sts, stub = client("sts")
    stub.add_response(
        "assume_role",
        assumed("ASIADEVEXAMPLEKEY123"),
        {"RoleArn": LOOKUP_ROLE, "RoleSessionName": "delivery-preflight"},
    )
    factory, base, made = sessions(sts)
    factory.client("ssm", account=DEV, region=REGION)
    factory.client("ecr", account=DEV, region="eu-central-1")
    factory.client("ssm", account=PIPELINE, region=REGION)
    stub.assert_no_pending_responses()
    target = made[-1]
    assert target.credentials == {
        "aws_access_key_id": "ASIADEVEXAMPLEKEY123",
        "aws_secret_access_key": "secret",
        "aws_session_token": "token",
    }
    assert target.clients == [("ssm", REGION), ("ecr", "eu-central-1")]
    assert base.clients == [("ssm", REGION)]
    assert (
        factory.via(DEV) == f"cdk-hnb659fds-lookup-role-{DEV}-{REGION}"
        and factory.via(PIPELINE) == "current credentials"
    )


# botocore sts model: AssumeRole AccessDenied (no trust) vs ExpiredToken (the caller's own credentials)
@pytest.mark.parametrize(
    ("code", "raised"), [("AccessDenied", "AccountUnreachable"), ("ExpiredToken", "CredentialsUnusable")]
)
def test_a_refused_lookup_role_is_that_account_s_problem_but_expired_credentials_stop_everything(code, raised):
    from tools.preflight import accounts, results

    sts, stub = client("sts")
    stub.add_client_error("assume_role", code, "refused", http_status_code=403)
    factory, _, _ = sessions(sts)
    expected = {"AccountUnreachable": accounts.AccountUnreachable, "CredentialsUnusable": results.CredentialsUnusable}
    with pytest.raises(expected[raised], match="refused"):
        factory.client("ssm", account=DEV, region=REGION)


# --- the policy reader ------------------------------------------------------------------------------------------


# IAM JSON policy element reference: NotPrincipal, NotAction, Null and ...IfExists; an unknown operator stays unknown
@pytest.mark.parametrize(
    ("statement", "decision"),
    [
        ({"Effect": "Allow", "Principal": {"AWS": "*"}, "NotAction": "kms:Encrypt"}, "ALLOWED"),
        ({"Effect": "Allow", "Principal": {"AWS": "*"}, "NotAction": "kms:*"}, "NOT_ALLOWED"),
        ({"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{DEV}:root"}, "Action": "*"}, "NOT_ALLOWED"),
        ({"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "*"}, "NOT_ALLOWED"),
        (
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Condition": {"Null": {"aws:PrincipalArn": "false"}}},
            "ALLOWED",
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "*",
                "Condition": {"StringEqualsIfExists": {"kms:CallerAccount": DEV}},
            },
            "ALLOWED",
        ),
        (
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "*",
                "Condition": {"IpAddress": {"aws:PrincipalArn": "10.0.0.0/8"}},
            },
            "UNKNOWN",
        ),
        ({"Effect": "Allow", "Principal": "*", "Action": "*", "NotResource": KEY_ARN}, "NOT_ALLOWED"),
    ],
)
def test_policy_reader(statement, decision):
    from tools.preflight.policy import Decision, Request, evaluate

    request = Request(
        principal_arn=TASK_EXECUTION_ROLE,
        account=DEV,
        action="kms:Decrypt",
        resource=KEY_ARN,
        context={"aws:PrincipalArn": TASK_EXECUTION_ROLE, "kms:CallerAccount": DEV},
    )
    assert evaluate({"Version": "2012-10-17", "Statement": [statement]}, request).decision is Decision[decision]


# without cdk.out nothing says whether the stacks reserve concurrency: a neutral line, and no account call
def test_reserved_concurrency_without_an_assembly_is_neutral():
    cloudformation, cf_stub = client("cloudformation")
    lambda_, lambda_stub = client("lambda")
    result = check_reserved_concurrency(cloudformation, lambda_, account=DEV, region=REGION, requested=None)
    assert result.status is Status.NEUTRAL and "no cdk.out to read" in result.line
    cf_stub.assert_no_pending_responses()
    lambda_stub.assert_no_pending_responses()


# botocore sts: ExpiredToken on the first call is the caller's credentials, reported as one line with exit 3
def test_expired_credentials_are_one_line_and_exit_3(tmp_path, monkeypatch, capsys):
    from tools.preflight import __main__ as cli

    world = World()
    world.refuse(
        "sts",
        PIPELINE,
        "get_caller_identity",
        "ExpiredToken",
        "The security token included in the request is expired",
        {},
        status=403,
    )
    monkeypatch.setattr(cli, "sessions_for", lambda config: world)
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": context()}))
    assert cli.main(["--cdk-json", str(cdk_json), "--assembly", str(tmp_path / "none")], environ={}) == 3
    world.verify()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"preflight: no usable AWS credentials for the pipeline account {PIPELINE} (ExpiredToken: The security token "
        "included in the request is expired): set AWS_PROFILE to its profile "
        "(or run `aws sso login` / `aws configure`) and try again\n"
    )


# --- TLS certificate --------------------------------------------------------------------------------------------

CERT_ARN = "arn:aws:acm:us-east-1:111111111111:certificate/11111111-2222-3333-4444-555555555555"


def env_with_tls(domain="notes.example.com"):
    from config.model import TlsConfig

    env = app_config().environments[-1]
    return env.model_copy(update={"tls": TlsConfig(domain_name=domain, certificate_arn=CERT_ARN)})


def certificate(status, names):
    return {"Certificate": {"CertificateArn": CERT_ARN, "DomainName": names[0], "SubjectAlternativeNames": names, "Status": status}}


# botocore acm model: DescribeCertificate Status is PENDING_VALIDATION | ISSUED | ...; SubjectAlternativeNames may hold
# a wildcard, which covers exactly one label (ACM User Guide, "Wildcard names")
@pytest.mark.parametrize(
    ("status", "names", "domain", "outcome", "expected"),
    [
        ("ISSUED", ["notes.example.com"], "notes.example.com", Status.PASSED, "is ISSUED and covers it"),
        ("ISSUED", ["*.example.com"], "notes.example.com", Status.PASSED, "is ISSUED and covers it"),
        ("ISSUED", ["*.example.com"], "a.notes.example.com", Status.FAILED, "covers *.example.com, not a.notes.example.com"),
        ("ISSUED", ["other.example.com"], "notes.example.com", Status.FAILED, "not notes.example.com"),
        ("PENDING_VALIDATION", ["notes.example.com"], "notes.example.com", Status.FAILED, "finish its DNS validation"),
    ],
)
def test_the_certificate_is_issued_and_covers_the_domain(status, names, domain, outcome, expected):
    acm, stub = client("acm", region="us-east-1")
    stub.add_response("describe_certificate", certificate(status, names), {"CertificateArn": CERT_ARN})
    (result,) = check_certificate(acm, env=env_with_tls(domain))
    assert result.status is outcome and expected in result.line
    stub.assert_no_pending_responses()


def test_a_missing_certificate_names_the_config_field():
    acm, stub = client("acm", region="us-east-1")
    stub.add_client_error("describe_certificate", "ResourceNotFoundException", http_status_code=400)
    (result,) = check_certificate(acm, env=env_with_tls())
    assert result.status is Status.FAILED and ".tls.certificate_arn" in result.line


def test_lambda_compute_outside_the_documented_regions_cannot_be_checked_but_is_named():
    from tools.preflight.compute import check_lambda_compute_region
    from tools.preflight.results import Status

    assert check_lambda_compute_region("eu-west-1").status is Status.PASSED
    outside = check_lambda_compute_region("eu-south-2")
    assert outside.status is not Status.PASSED and outside.status is not Status.FAILED
    assert "eu-south-2" in outside.line and "codebuild/latest/userguide/lambda.html" in outside.line


# The execution role is granted kms:Decrypt on the key cdk.json names; the secret must really use that key
def test_a_secret_on_another_key_than_cdk_json_names_fails():
    secrets, stub = client("secretsmanager")
    kms, kms_stub = client("kms")
    other = f"arn:aws:kms:{REGION}:{SECRET_OWNER}:key/99999999-12ab-34cd-56ef-1234567890ab"
    stub.add_response(
        "describe_secret", described(PARTNER_SECRET_ARN, "shared/partner-token", other), {"SecretId": PARTNER_SECRET_ARN}
    )
    stub.add_response(
        "get_resource_policy",
        {"ResourcePolicy": secret_policy(allow({"AWS": TASK_EXECUTION_ROLE}, "secretsmanager:GetSecretValue"))},
        {"SecretId": PARTNER_SECRET_ARN},
    )
    kms_stub.add_response("describe_key", key_metadata("CUSTOMER", other), {"KeyId": other})
    _, _, key = check_shared_secret(secrets, kms, secret=partner())
    assert key.status is Status.FAILED
    assert f"encrypted with {other}" in key.line and "shared_secrets[].kms_key_arn" in key.line
