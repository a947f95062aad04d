"""Runs the checks in order, prints one line per check, and turns the outcomes into an exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from config import AppConfig, EnvironmentConfig
from config.model import PLACEHOLDER_ACCOUNT
from stages.naming import environment_prefix, execution_policy_name
from stages.regions import deploy_regions
from tools.preflight.compute import check_lambda_compute_region
from tools.preflight.accounts import AccountUnreachable, ClientFactory
from tools.preflight.assembly import AssemblyFacts
from tools.preflight.bootstrap import (
    bootstrap_command,
    check_bootstrap_version,
    check_execution_policies,
    check_identity,
    check_trust,
)
from tools.preflight.certificate import check_certificate
from tools.preflight.capacity import additions, check_network_quotas, check_reserved_concurrency
from tools.preflight.database import check_database
from tools.preflight.notifications import check_email_subscriptions
from tools.preflight.results import Result, Status, failed, guarded, neutral
from tools.preflight.scanning import check_image_scanning
from tools.preflight.secrets import check_shared_secret, shared_secret
from tools.preflight.source import check_connection, connection_account, connection_region, connection_service
from tools.preflight.stacks import stack_exists

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass(frozen=True)
class Site:
    """One account/region `cdk bootstrap` must have prepared, and for what."""

    account: str
    region: str
    pipeline: bool  # the pipeline's own account and region
    environments: tuple[str, ...]  # target environments deployed here
    # environments whose CloudFront alarm stack alone deploys here (us-east-1, stages/regions.py): no image, no ECR
    alarm_environments: tuple[str, ...] = ()


@dataclass
class Report:
    out: TextIO
    results: list[Result] = field(default_factory=list)

    def heading(self, text: str) -> None:
        print(f"\n{text}", file=self.out, flush=True)

    def add(self, results: Iterable[Result]) -> list[Result]:
        added = list(results)
        for result in added:
            self.results.append(result)
            print(result.line, file=self.out, flush=True)
        return added

    def close(self) -> int:
        counts = {status: sum(r.status is status for r in self.results) for status in Status}
        print(
            f"\npreflight: {counts[Status.PASSED]} passed, {counts[Status.FAILED]} failed, "
            f"{counts[Status.UNCHECKED]} could not be checked from here",
            file=self.out,
            flush=True,
        )
        return EXIT_FAILED if counts[Status.FAILED] else EXIT_OK


def sites(config: AppConfig) -> list[Site]:
    found: dict[tuple[str, str], Site] = {
        (config.pipeline.account, config.pipeline.region): Site(
            config.pipeline.account, config.pipeline.region, True, ()
        )
    }
    for env in config.environments:
        key = (env.account, env.region)
        site = found.get(key) or Site(env.account, env.region, False, ())
        found[key] = replace(site, environments=(*site.environments, env.name))
    for env in config.environments:
        for region in deploy_regions(env)[1:]:
            key = (env.account, region)
            site = found.get(key) or Site(env.account, region, False, ())
            found[key] = replace(site, alarm_environments=(*site.alarm_environments, env.name))
    return list(found.values())


class Preflight:
    def __init__(self, config: AppConfig, *, clients: ClientFactory, facts: AssemblyFacts, out: TextIO) -> None:
        self.config = config
        self.clients = clients
        self.facts = facts
        self.report = Report(out)
        self.pipeline_account = config.pipeline.account
        self.sites = {(s.account, s.region): s for s in sites(config)}
        self.checked_sites: set[tuple[str, str]] = set()
        self.unreachable: set[str] = set()

    def client(self, service: str, *, account: str, region: str) -> Any:
        return self.clients.client(service, account=account, region=region)

    def run(self) -> int:
        if self._pipeline():
            for env in self.config.environments:
                self._environment(env)
            self._capacity()
        return self.report.close()

    def _pipeline(self) -> bool:
        """Checks 1, 3 and 7 in the pipeline account; False when its credentials are not the pipeline account's."""
        account, region = self.pipeline_account, self.config.pipeline.region
        # before any output: without usable credentials the one line main() prints is all there is
        identity = guarded(
            "credentials",
            lambda: [check_identity(self.client("sts", account=account, region=region), pipeline_account=account)],
            by_hand="run `aws sts get-caller-identity`",
        )
        self.report.heading(f"pipeline account {account}, {region} (current credentials)")
        if self.report.add(identity)[0].status is not Status.PASSED:
            return False
        self._site(self.sites[(account, region)])
        self.report.add([check_lambda_compute_region(region)])
        deployed = {r for e in self.config.environments for r in deploy_regions(e)}
        for other_region in sorted(deployed - {region}):
            if (account, other_region) not in self.sites:
                # CDK Pipelines deploys a replication-bucket support stack into the pipeline account in each region
                self._bootstrap_version(account, other_region, fix=self._bootstrap_fix(account, other_region, ()))
        self._connection()
        self._guard(
            "pipeline e-mail subscriptions",
            account,
            region,
            lambda: check_email_subscriptions(
                self.client("cloudformation", account=account, region=region),
                self.client("sns", account=account, region=region),
                stack_name=f"{self.config.project}-{self.config.service_name}-pipeline",
            ),
        )
        return True

    def _guard(self, what: str, account: str, region: str, check: Callable[[], list[Result]]) -> list[Result]:
        return self.report.add(guarded(what, check, by_hand=f"check it by hand in {account}/{region}"))

    def _policies(self, site: Site) -> tuple[str, ...]:
        names = (execution_policy_name(self.config, pipeline_account=True),) if site.pipeline else ()
        if site.environments or site.alarm_environments:
            names += (execution_policy_name(self.config, pipeline_account=False),)
        return names

    def _bootstrap_fix(self, account: str, region: str, policies: tuple[str, ...]) -> str:
        trust = self.pipeline_account if account != self.pipeline_account else None
        names = policies or (execution_policy_name(self.config, pipeline_account=account == self.pipeline_account),)
        return bootstrap_command(account=account, region=region, trust=trust, policies=names)

    def _bootstrap_version(self, account: str, region: str, *, fix: str) -> None:
        # a target account is read through its lookup role, which needs a newer bootstrap than deploying does
        through_lookup = account != self.pipeline_account
        minimum = max(self.facts.deploy_version, self.facts.lookup_version if through_lookup else 0)
        self._guard(
            "CDK bootstrap",
            account,
            region,
            lambda: [
                check_bootstrap_version(
                    self.client("ssm", account=account, region=region),
                    account=account,
                    region=region,
                    minimum=minimum,
                    source=self.facts.source,
                    fix=fix,
                )
            ],
        )

    def _site(self, site: Site) -> None:
        """Check 2 (and 8 where environments live): bootstrap version, execution policies, trust, ECR scanning."""
        account, region = site.account, site.region
        if (account, region) in self.checked_sites:
            self.report.add([neutral(f"bootstrap of {account}/{region}: checked above")])
            return
        self.checked_sites.add((account, region))
        policies = self._policies(site)
        fix = self._bootstrap_fix(account, region, policies)
        self._bootstrap_version(account, region, fix=fix)
        iam = self.client("iam", account=account, region=region)
        self._guard(
            "CloudFormation execution role",
            account,
            region,
            lambda: [check_execution_policies(iam, account=account, region=region, required=policies, fix=fix)],
        )
        if account != self.pipeline_account:
            self._guard(
                "trust of the pipeline account",
                account,
                region,
                lambda: [
                    check_trust(iam, account=account, region=region, pipeline_account=self.pipeline_account, fix=fix)
                ],
            )
        if site.environments:
            self._guard(
                "ECR scanning",
                account,
                region,
                lambda: [
                    check_image_scanning(
                        self.client("ecr", account=account, region=region), account=account, region=region
                    )
                ],
            )

    def _connection(self) -> None:
        arn = self.config.source.connection_arn
        if connection_account(arn) == PLACEHOLDER_ACCOUNT:
            self.report.add(
                [
                    failed(
                        f"connection {arn}",
                        "this is the placeholder: set source.connection_arn in cdk.json",
                    )
                ]
            )
            return
        account, region = connection_account(arn), connection_region(arn)
        self._guard(
            "CodeConnections connection",
            account,
            region,
            lambda: [check_connection(self.client(connection_service(arn), account=account, region=region), arn=arn)],
        )

    def _environment(self, env: EnvironmentConfig) -> None:
        """Checks 2, 4, 5, 7 and 8 for one environment."""
        self.report.heading(f"{env.name}: account {env.account}, {env.region} ({self.clients.via(env.account)})")
        site = self.sites[(env.account, env.region)]
        try:
            self.client("sts", account=env.account, region=env.region)
        except AccountUnreachable as error:
            self.unreachable.add(env.account)
            fix = self._bootstrap_fix(env.account, env.region, self._policies(site))
            self.report.add(
                [failed(f"read account {env.account}", f"{error}; bootstrap it trusting the pipeline: {fix}")]
            )
            return
        self._site(site)
        for region in deploy_regions(env)[1:]:
            # The CloudFront alarm's stack: CloudFormation in us-east-1 needs the same bootstrap, policies and trust.
            self.report.add([neutral(f"{env.name}'s CloudFront alarm deploys to {env.account}/{region}")])
            self._site(self.sites[(env.account, region)])
            self._guard(
                "CloudFront alarm e-mail subscriptions",
                env.account,
                region,
                lambda region=region: check_email_subscriptions(
                    self.client("cloudformation", account=env.account, region=region),
                    self.client("sns", account=env.account, region=region),
                    stack_name=f"{environment_prefix(self.config, env)}-cloudfront-alarm",
                ),
            )
        for item in self.config.shared_secrets:
            self._shared_secret(env, item)
        self._guard(
            "RDS PostgreSQL",
            env.account,
            env.region,
            lambda: check_database(self.client("rds", account=env.account, region=env.region), env=env),
        )
        if env.tls is not None:
            # CloudFront reads viewer certificates from us-east-1; an ALB from its own region.
            region = "us-east-1" if env.tls.terminate == "cloudfront" else env.region
            self._guard(
                "TLS certificate",
                env.account,
                region,
                lambda: check_certificate(self.client("acm", account=env.account, region=region), env=env),
            )
        self._guard(
            "alarm e-mail subscriptions",
            env.account,
            env.region,
            lambda: check_email_subscriptions(
                self.client("cloudformation", account=env.account, region=env.region),
                self.client("sns", account=env.account, region=env.region),
                stack_name=f"{environment_prefix(self.config, env)}-stateless",
            ),
        )

    def _shared_secret(self, env: EnvironmentConfig, item: Any) -> None:
        secret = shared_secret(item, app=self.config, env=env)
        try:
            secretsmanager = self.client("secretsmanager", account=secret.account, region=secret.region)
            kms = self.client("kms", account=secret.account, region=secret.region)
        except AccountUnreachable as error:
            self.report.add([failed(secret.label, f"{error}: the secret's account cannot be read")])
            return
        self._guard(
            secret.label,
            secret.account,
            secret.region,
            lambda: check_shared_secret(secretsmanager, kms, secret=secret),
        )

    def _capacity(self) -> None:
        groups: dict[tuple[str, str], list[EnvironmentConfig]] = {}
        for env in self.config.environments:
            if env.account not in self.unreachable:
                groups.setdefault((env.account, env.region), []).append(env)
        for (account, region), envs in groups.items():
            self.report.heading(f"capacity in {account}, {region} ({', '.join(e.name for e in envs)})")
            self._guard("network quotas", account, region, lambda: self._network_quotas(account, region, envs))
            requested = None
            if self.facts.reserved_concurrency is not None:
                requested = {}
                for env in envs:
                    requested.update(self.facts.reserved_for(f"{environment_prefix(self.config, env)}-") or {})
            self._guard(
                "reserved Lambda concurrency",
                account,
                region,
                lambda: [
                    check_reserved_concurrency(
                        self.client("cloudformation", account=account, region=region),
                        self.client("lambda", account=account, region=region),
                        account=account,
                        region=region,
                        requested=requested,
                    )
                ],
            )

    def _network_quotas(self, account: str, region: str, envs: list[EnvironmentConfig]) -> list[Result]:
        cloudformation = self.client("cloudformation", account=account, region=region)
        deployed = [
            e for e in envs if stack_exists(cloudformation, stack_name=f"{environment_prefix(self.config, e)}-stateful")
        ]
        results = (
            [neutral(f"deployed already, counted as in use: {', '.join(e.name for e in deployed)}")] if deployed else []
        )
        adds = additions([e for e in envs if e not in deployed])
        return results + check_network_quotas(
            self.client("ec2", account=account, region=region),
            self.client("service-quotas", account=account, region=region),
            account=account,
            region=region,
            adds=adds,
        )


def run(config: AppConfig, *, clients: ClientFactory, facts: AssemblyFacts, out: TextIO) -> int:
    return Preflight(config, clients=clients, facts=facts, out=out).run()
