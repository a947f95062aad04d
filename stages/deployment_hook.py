from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from config import EnvironmentConfig
from stages.function import VpcFunction
from stages.load_balancer import TEST_LISTENER_PORT
from stages.nag import acknowledge

SMOKE = Path(__file__).resolve().parent.parent / "smoke"
# One invocation fits a whole smoke run: 30 s readiness + ~20 s of checks + 5 s to answer (smoke/lifecycle_hook.py);
# a slower start is answered IN_PROGRESS and ECS calls the hook again.
TIMEOUT_SECONDS = 90
# The hook gives up (FAILED) this long after its first invocation in a deployment.
HOOK_DEADLINE_SECONDS = 600


class DeploymentHook(Construct):
    """Runs the smoke test against the new tasks behind the test listener before production traffic moves."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        key: kms.IKey,
        test_url: str,
        expected_version: str | None = None,
        load_balancer: ec2.ISecurityGroup | None = None,
    ) -> None:
        super().__init__(scope, id_)
        environment = {
            "TEST_URL": test_url,
            "EXPECTED_ENVIRONMENT": config.name,
            "HOOK_DEADLINE_SECONDS": str(HOOK_DEADLINE_SECONDS),
        }
        if expected_version:
            # GET / reports the image's version: the hook proves it tested the new tasks, not the old ones
            environment["EXPECTED_VERSION"] = expected_version
        self.handler = VpcFunction(
            self,
            "SmokeTest",
            config=config,
            vpc=vpc,
            key=key,
            code_path=str(SMOKE),
            handler="lifecycle_hook.handler",
            description=f"{config.name}: smoke test of new tasks through the test listener",
            environment=environment,
            timeout=Duration.seconds(TIMEOUT_SECONDS),
        )
        if load_balancer is not None:
            # Internal ALB: security group to security group, both directions, the test port only.
            self.handler.security_group.connections.allow_to(
                ec2.Connections(security_groups=[load_balancer]),
                ec2.Port.tcp(TEST_LISTENER_PORT),
                "Smoke-test hook to the internal ALB's test listener",
            )
        else:
            # A public ALB's addresses are not known in advance; only the test port is allowed out.
            self.handler.security_group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(TEST_LISTENER_PORT), "Test listener of the internet-facing ALB"
            )
        self.function = self.handler.function
        acknowledge(
            self.function,
            {
                "NIST.800.53.R5-LambdaConcurrency": (
                    "Invoked only by ECS, once per lifecycle stage of a deployment; a reservation would take from "
                    "the account's unreserved pool, which is 10 in new accounts and makes the deploy fail"
                ),
            },
        )
