from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from config import EnvironmentConfig
from stages.function import VpcFunction
from stages.load_balancer import TEST_LISTENER_PORT

SMOKE = Path(__file__).resolve().parent.parent / "smoke"


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
    ) -> None:
        super().__init__(scope, id_)
        self.handler = VpcFunction(
            self,
            "SmokeTest",
            config=config,
            vpc=vpc,
            key=key,
            code_path=str(SMOKE),
            handler="lifecycle_hook.handler",
            description=f"{config.name}: smoke test of new tasks through the test listener",
            environment={"TEST_URL": test_url, "EXPECTED_ENVIRONMENT": config.name},
            timeout=Duration.seconds(60),
            reserved_concurrency=2,
        )
        # The ALB's public addresses are not known in advance; only the test port is allowed out.
        self.handler.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(TEST_LISTENER_PORT), "Test listener of the internet-facing ALB"
        )
        self.function = self.handler.function
