from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.buildspec import read_buildspec
from pipeline.compute import LAMBDA_BUILD_LIMIT_SECONDS, TOOLS_PREFIX
from pipeline.verification import verify_budget_seconds
from stages.regions import separate_cloudfront_alarm
from tests.infra.conftest import resources_of

pytestmark = pytest.mark.xdist_group("infra")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline(pipeline_template):
    (resource,) = resources_of(pipeline_template, "AWS::CodePipeline::Pipeline").values()
    return resource["Properties"]


def actions(pipeline, stage_name):
    stage = next(s for s in pipeline["Stages"] if s["Name"] == stage_name)
    return sorted(stage["Actions"], key=lambda a: (a.get("RunOrder", 1), a["Name"]))


def test_pipeline_is_v2_superseded_and_stages_follow_config_order(pipeline, config):
    assert pipeline["PipelineType"] == "V2"
    assert pipeline["ExecutionMode"] == config.pipeline.execution_mode
    last = config.environments[-1].name
    expected = []
    for env in config.environments:
        # Approvals (and prod's broadening check) sit in their own stage in front of the deploy they guard.
        if env.requires_approval or env.name == last:
            expected.append(f"Approve-{env.name.capitalize()}")
        expected.append(env.name.capitalize())
    names = [s["Name"] for s in pipeline["Stages"]]
    assert [n for n in names if n != "Assets"] == ["Source", "Build", "UpdatePipeline", *expected]
    # CDK Pipelines publishes assets right before the first stage that deploys (after an approval in front of it).
    assert names.index("Assets") == names.index(config.environments[0].name.capitalize()) - 1


def test_source_is_the_configured_connection_and_branch_and_triggers_on_push(pipeline, config):
    (source,) = actions(pipeline, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {
        "ConnectionArn": config.source.connection_arn,
        "FullRepositoryId": f"{config.source.owner}/{config.source.repo}",
        "BranchName": config.source.branch,
        "DetectChanges": True,
    }


def test_self_mutation_uses_the_pinned_cli(pipeline, pipeline_template):
    (mutate,) = actions(pipeline, "UpdatePipeline")
    assert mutate["Name"] == "SelfMutate"
    cli = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    projects = resources_of(pipeline_template, "AWS::CodeBuild::Project")
    specs = [p["Properties"]["Source"]["BuildSpec"] for p in projects.values()]
    mutation_spec = json.loads(next(s for s in specs if isinstance(s, str) and "-a . deploy" in s))
    (install,) = mutation_spec["phases"]["install"]["commands"]
    (deploy,) = mutation_spec["phases"]["build"]["commands"]
    assert install == f"npm install --no-audit --no-fund --prefix {TOOLS_PREFIX} aws-cdk@{cli}"
    # The CLI it just installed, not whatever `cdk` the image might have on its PATH.
    assert deploy.startswith(f"{TOOLS_PREFIX}/node_modules/.bin/cdk -a . deploy ")


def test_build_runs_the_buildspec_make_targets(pipeline_template):
    commands = read_buildspec(ROOT / "buildspec.yml")
    assert any("make" in c for c in commands.build)
    specs = [p["Properties"]["Source"]["BuildSpec"] for p in resources_of(pipeline_template, "AWS::CodeBuild::Project").values()]
    build_spec = next(json.loads(s) for s in specs if '"make synth"' in s)
    assert build_spec["phases"]["install"]["commands"] == commands.install
    assert build_spec["phases"]["build"]["commands"] == commands.build


def test_assets_publish_in_one_action_per_type(pipeline):
    assert [a["Name"] for a in actions(pipeline, "Assets")] == ["DockerAssets", "FileAssets"]


def test_approvals_before_staging_and_prod_name_the_commit_and_link_to_it(pipeline, config):
    stage_names = {s["Name"] for s in pipeline["Stages"]}
    for env in config.environments:
        assert not [a for a in actions(pipeline, env.name.capitalize()) if a["Name"].startswith("Promote-to-")]
        approval_stage = f"Approve-{env.name.capitalize()}"
        approvals = (
            [a for a in actions(pipeline, approval_stage) if a["Name"].startswith("Promote-to-")]
            if approval_stage in stage_names
            else []
        )
        if not env.requires_approval:
            assert approvals == []
            continue
        (approval,) = approvals
        assert approval["ActionTypeId"]["Category"] == "Approval"
        assert approval["RunOrder"] == 1
        assert "#{Source@" in approval["Configuration"]["CustomData"] and ".CommitId}" in approval["Configuration"]["CustomData"]
        assert approval["Configuration"]["ExternalEntityLink"].startswith(
            f"https://github.com/{config.source.owner}/{config.source.repo}/commit/#{{Source@"
        )


def test_each_environment_deploys_stateful_then_stateless_then_verifies(pipeline, config):
    for env in config.environments:
        stage = actions(pipeline, env.name.capitalize())
        deploys = [a for a in stage if a["ActionTypeId"]["Provider"] == "CloudFormation"]
        # Where CloudFront's alarm cannot live in the environment's region, its us-east-1 stack deploys last.
        expected = ["stateful", "stateless"] + (["alarm"] if separate_cloudfront_alarm(env) else [])
        assert [a["Name"].split(".")[0].rsplit("-", 1)[1] for a in deploys] == expected
        assert [a["RunOrder"] for a in deploys] == sorted({a["RunOrder"] for a in deploys})
        verify = next(a for a in stage if a["Name"] == f"Verify-{env.name}")
        # Verify reads the service stack's outputs: right after that deploy, beside the alarm stack's if any.
        assert verify["RunOrder"] == deploys[1]["RunOrder"] + 1
        assert all(d["RunOrder"] <= verify["RunOrder"] for d in deploys)
        env_vars = json.loads(verify["Configuration"]["EnvironmentVariables"])
        names = {v["name"] for v in env_vars}
        assert {"SERVICE_URL", "CLUSTER_NAME", "SERVICE_NAME", "TASK_DEFINITION_ARN"} <= names


def test_verification_runs_the_rollout_check_and_the_smoke_test(pipeline_template, config):
    specs = [p["Properties"]["Source"]["BuildSpec"] for p in resources_of(pipeline_template, "AWS::CodeBuild::Project").values()]
    verify_specs = [s for s in specs if "verify_rollout.py" in s]
    assert len(verify_specs) == len(config.environments)
    for spec in verify_specs:
        assert "smoke/smoke_test.py" in spec


def test_prod_needs_a_human_for_permission_broadening(pipeline, config):
    last = f"Approve-{config.environments[-1].name.capitalize()}"
    names = [a["Name"] for a in actions(pipeline, last)]
    assert any(n.startswith("Check-broadening") and n.endswith(".Check") for n in names)
    assert any(n.startswith("Check-broadening") and n.endswith(".Confirm") for n in names)


def test_failures_and_waiting_approvals_are_notified(pipeline_template):
    (rule,) = resources_of(pipeline_template, "AWS::CodeStarNotifications::NotificationRule").values()
    events = set(rule["Properties"]["EventTypeIds"])
    assert {
        "codepipeline-pipeline-pipeline-execution-failed",
        "codepipeline-pipeline-manual-approval-needed",
        "codepipeline-pipeline-action-execution-failed",
    } <= events
    (topic,) = resources_of(pipeline_template, "AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]


def test_the_image_scan_gates_promotion_in_the_first_environment_only(pipeline_template, config):
    specs = {
        name: p["Properties"]
        for name, p in resources_of(pipeline_template, "AWS::CodeBuild::Project").items()
        if "verify_rollout.py" in p["Properties"]["Source"]["BuildSpec"]
    }
    scanning = [p for p in specs.values() if "image_scan_gate.py" in p["Source"]["BuildSpec"]]
    assert len(scanning) == 1
    spec = json.loads(scanning[0]["Source"]["BuildSpec"])
    commands = spec["phases"]["build"]["commands"]
    # Scan first: a bad image must fail before anything is reported as verified.
    assert "image_scan_gate.py" in commands[0] and "verify_rollout.py" in commands[1]
    first = config.environments[0]
    assert f"cdk-hnb659fds-container-assets-{first.account}-{first.region}" in json.dumps(pipeline_template)


def test_the_broadening_check_runs_after_the_approval_so_its_auto_approval_finds_confirm(pipeline, config):
    # CDK's auto-approve function polls GetPipelineState for five minutes for the Confirm action's token; Confirm is
    # pending only once every action with a lower run order finished, so nothing may stand between Check and Confirm.
    stage = actions(pipeline, f"Approve-{config.environments[-1].name.capitalize()}")
    order = {a["Name"]: a["RunOrder"] for a in stage}
    check = next(n for n in order if n.startswith("Check-broadening") and n.endswith(".Check"))
    confirm = next(n for n in order if n.startswith("Check-broadening") and n.endswith(".Confirm"))
    approvals = [n for n in order if n.startswith("Promote-to-")]
    assert len(approvals) == config.environments[-1].requires_approval
    assert all(order[approval] < order[check] for approval in approvals) and order[confirm] == order[check] + 1
    assert [n for n, o in order.items() if o == order[check]] == [check]


def _buildspecs(pipeline_template, assembly_dir):
    for name, project in resources_of(pipeline_template, "AWS::CodeBuild::Project").items():
        spec = project["Properties"]["Source"]["BuildSpec"]
        if isinstance(spec, dict):  # Fn::Join around tokens such as a function name
            spec = "".join(part if isinstance(part, str) else "TOKEN" for part in spec["Fn::Join"][1])
        elif not spec.lstrip().startswith("{"):  # asset publishing reads a buildspec file from the assembly
            spec = (assembly_dir / spec).read_text()
        yield name, project["Properties"]["Environment"], yaml.safe_load(spec)


LAMBDA_IMAGE = re.compile(r"^aws/codebuild/amazonlinux-x86_64-lambda-standard:(nodejs(22|24)|python3\.1[2-9])$")
# Options whose next token is a value, not a package.
VALUED_OPTIONS = {"--prefix", "--target"}


def _installed_packages(command: str) -> list[str] | None:
    """The packages of an `npm install` / `pip install` command, or None if it installs nothing."""
    words = command.split()
    for tool, skip in (("npm", 2), ("pip", 2)):
        if tool == "pip" and words[:3] == ["python3", "-m", "pip"]:
            words = words[2:]
        if words[:2] == [tool, "install"]:
            packages, rest = [], words[skip:]
            while rest:
                word, rest = rest[0], rest[1:]
                if word in VALUED_OPTIONS:
                    rest = rest[1:]
                elif not word.startswith("-"):
                    packages.append(word)
            return packages
    return None


def test_every_codebuild_action_picks_a_supported_runtime_and_pins_what_it_installs(pipeline_template, assembly_dir, config):
    # Standard compute uses the image's default runtime unless runtime-versions names one ("Available runtimes");
    # Lambda compute rejects runtime-versions and takes its one runtime from the image name. Node 22 and 24 are the
    # supported LTS lines.
    exact = re.compile(r"@\d+\.\d+\.\d+$")
    seen = 0
    for name, environment, spec in _buildspecs(pipeline_template, assembly_dir):
        if environment["Type"] == "LINUX_LAMBDA_CONTAINER":
            assert LAMBDA_IMAGE.match(environment["Image"]), name
            assert "runtime-versions" not in json.dumps(spec), name
        else:
            assert environment["Image"].startswith("aws/codebuild/standard:"), name
            runtimes = spec["phases"]["install"]["runtime-versions"]
            assert str(runtimes["nodejs"]) in {"22", "24"}, name
        commands = [c for phase in spec["phases"].values() for c in phase.get("commands", [])]
        for command in commands:
            packages = _installed_packages(command)
            if packages is None:
                continue
            assert packages, f"{name}: {command}"
            if command.startswith("npm"):
                assert all(exact.search(p) for p in packages), f"{name}: {command}"
            else:
                assert all("==" in p for p in packages), f"{name}: {command}"
        seen += 1
    # Build, ServiceTests, self-mutation, the broadening check, the asset actions and one Verify per environment.
    assert seen >= 5 + len(config.environments)


def test_lambda_compute_projects_respect_its_limits(pipeline_template, assembly_dir, config):
    # Lambda compute: no Docker/privileged mode, no project timeout or cache (synthesis or the API rejects them),
    # files written only under /tmp, and CodeBuild stops the build after 15 minutes.
    on_lambda = {}
    for name, environment, spec in _buildspecs(pipeline_template, assembly_dir):
        if environment["Type"] != "LINUX_LAMBDA_CONTAINER":
            continue
        props = resources_of(pipeline_template, "AWS::CodeBuild::Project")[name]["Properties"]
        assert environment["ComputeType"].startswith("BUILD_LAMBDA_"), name
        assert not environment.get("PrivilegedMode"), name
        assert "TimeoutInMinutes" not in props and props.get("Cache", {"Type": "NO_CACHE"})["Type"] == "NO_CACHE", name
        for phase in spec["phases"].values():
            for command in phase.get("commands", []):
                if _installed_packages(command) is not None:
                    assert re.search(r"--(prefix|target) /tmp/", command), f"{name}: {command}"
        on_lambda[name] = spec
    names = " ".join(on_lambda)
    # The light steps: self-mutation, the broadening check and every Verify.
    assert "SelfMutation" in names and "SecurityCheck" in names and names.count("Verify") == len(config.environments)
    # Docker needs standard compute.
    for name, environment, _ in _buildspecs(pipeline_template, assembly_dir):
        if "DockerAsset" in name:
            assert environment["Type"] == "LINUX_CONTAINER" and environment["PrivilegedMode"] is True


def test_verify_fits_in_a_lambda_build_and_bounds_every_wait(pipeline_template, config):
    first = config.environments[0].name
    budgets = {scan: verify_budget_seconds(scan_image=scan) for scan in (True, False)}
    assert max(budgets.values()) <= LAMBDA_BUILD_LIMIT_SECONDS - 60
    for name, project in resources_of(pipeline_template, "AWS::CodeBuild::Project").items():
        spec = project["Properties"]["Source"]["BuildSpec"]
        if not (isinstance(spec, str) and "verify_rollout.py" in spec):
            continue
        variables = {v["Name"]: int(v["Value"]) for v in project["Properties"]["Environment"]["EnvironmentVariables"]
                     if v["Name"].endswith("_SECONDS")}
        scans = "image_scan_gate.py" in spec
        assert scans == (f"Verify{first}" in name)
        # Every wait the scripts make is set here (they would fall back to their own longer defaults).
        waits = variables["VERIFY_TIMEOUT_SECONDS"] + (variables["IMAGE_SCAN_TIMEOUT_SECONDS"] if scans else 0)
        assert waits < budgets[scans] and variables["VERIFY_POLL_SECONDS"] <= 10


def test_the_build_validates_once_and_tests_the_assembly_it_deploys():
    # cdk-nag and the template validator run in the build's `make synth`; `make check` then tests that same cdk.out,
    # the Build action's output: what deploys is what was validated and tested.
    spec = read_buildspec(ROOT / "buildspec.yml")
    assert spec.env["DELIVERY_VALIDATE"] == "1" and spec.env["DELIVERY_TEST_ASSEMBLY"] == "cdk.out"
    assert spec.build.index("make synth") < spec.build.index("make check-assembly")
    # pip skips bytecode compilation in the build (Python compiles what it imports, once).
    assert spec.env["PIP_INSTALL_FLAGS"] == "--no-compile"


def _recipe(target: str) -> str:
    """The command of a Makefile target (its first recipe line)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    return lines[start + 1].strip()


def test_every_test_without_docker_runs_before_anything_deploys_in_two_parallel_actions(pipeline, pipeline_template):
    build = actions(pipeline, "Build")
    assert [a["Name"] for a in build] == ["Build", "ServiceTests"]
    assert {a["RunOrder"] for a in build} == {1}  # in parallel; the stage (and every deploy) waits for both
    (source,) = actions(pipeline, "Source")
    assert all(a["InputArtifacts"] == source["OutputArtifacts"] for a in build)
    # Together the two actions run what `make check` runs: check-assembly leaves out only the service's tests,
    # which check-service runs.
    assert read_buildspec(ROOT / "buildspec.yml").build[-1] == "make check-assembly"
    assert read_buildspec(ROOT / "buildspec-service-tests.yml").build == ["make check-service"]
    check = _recipe("check").split()
    assert _recipe("check-assembly").split() == [*check, "--ignore=tests/service"]
    assert _recipe("check-service").split()[-1] == "tests/service" and "tests" not in _recipe("check-service").split()
    # Its project: standard compute with chosen runtimes (the runtime test covers it), the artifact key, our logs.
    (project,) = [p["Properties"] for p in resources_of(pipeline_template, "AWS::CodeBuild::Project").values()
                  if "make check-service" in json.dumps(p["Properties"]["Source"].get("BuildSpec", ""))]
    assert project["EncryptionKey"] and project["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"


def test_the_broadening_check_calls_the_cli_it_installed_and_still_approves(pipeline_template):
    (spec,) = [p["Properties"]["Source"]["BuildSpec"] for name, p in
               resources_of(pipeline_template, "AWS::CodeBuild::Project").items() if "SecurityCheck" in name]
    text = "".join(part if isinstance(part, str) else "TOKEN" for part in spec["Fn::Join"][1])
    commands = json.loads(text)["phases"]["build"]["commands"]
    cli = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert commands[0] == f"npm install --no-audit --no-fund --prefix {TOOLS_PREFIX} aws-cdk@{cli}"
    check = next(c for c in commands if "--security-only" in c)
    assert check.startswith(f"if {TOOLS_PREFIX}/node_modules/.bin/cdk diff -a . --security-only --fail ")
    # No change found: it still invokes CDK's approve function, which approves the Confirm action.
    assert "aws lambda invoke --function-name TOKEN" in check
    assert json.loads(text)["env"]["exported-variables"] == ["LINK", "MESSAGE"]
