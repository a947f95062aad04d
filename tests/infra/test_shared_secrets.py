"""Shared secrets read from another account: config demands their key, and the task execution role may decrypt with
it through Secrets Manager only (cross-account KMS needs the identity policy as well as the key policy)."""

from __future__ import annotations

import copy
import json

import aws_cdk as cdk
import pytest

import app as app_module
from config import ConfigError, load_config
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")

SECRET = "arn:aws:secretsmanager:eu-west-1:999999999999:secret:shared/partner-api-key-AbCdEf"
KEY = "arn:aws:kms:eu-west-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def with_shared(context, **item):
    forked = copy.deepcopy(context)
    forked["delivery"]["shared_secrets"] = [{"env_var": "PARTNER_API_KEY", "secret": SECRET, **item}]
    return forked


def test_a_secret_in_another_account_needs_its_key_named(context):
    with pytest.raises(ConfigError, match=r"shared_secrets\[0\]\.kms_key_arn is required.*999999999999"):
        load_config(with_shared(context), {})


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("alias/partner", "must be a KMS key ARN"),
        ("arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab", "key of the secret's own Region"),
    ],
)
def test_a_bad_key_is_refused_naming_the_field(context, key, message):
    with pytest.raises(ConfigError, match="kms_key_arn") as error:
        load_config(with_shared(context, kms_key_arn=key), {})
    assert message in str(error.value)


def test_the_execution_role_may_decrypt_with_that_key_through_secrets_manager_only(context, tmp_path):
    forked = with_shared(context, kms_key_arn=KEY)
    config = load_config(forked, {})
    app = cdk.App(outdir=str(tmp_path), context=forked)
    app_module.build(app, config)  # cdk-nag on: a finding fails the synth
    app.synth()
    env = config.environments[0]
    template = json.loads(next(tmp_path.glob(f"assembly-*{env.name.capitalize()}/*Stateless*.template.json")).read_text())
    statements = [
        s
        for policy in resources_of(template, "AWS::IAM::Policy").values()
        if "ExecutionRole" in json.dumps(policy["Properties"]["Roles"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    decrypt = [s for s in statements if "kms:Decrypt" in json.dumps(s["Action"]) and KEY in json.dumps(s["Resource"])]
    assert len(decrypt) == 1
    # Secrets Manager calls KMS in the secret's (and key's) region, whichever region the environment is in.
    region = SECRET.split(":")[3]
    assert decrypt[0]["Condition"] == {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}}
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])]
    assert any(SECRET in json.dumps(s["Resource"]) for s in reads)
