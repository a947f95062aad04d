"""python -m tools.dora: the four DORA metrics from the pipeline's own history, the prod service and local git.

Deployment frequency (successful prod deploys), lead time for changes (commit time → prod deploy succeeded), change
failure rate (prod deploys followed by a stage rollback, an ECS rollback, a failed Verify or a revert commit) and time to
restore (bad deploy live → a rollback execution or the next good deploy finished). Read-only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXIT_NO_CREDENTIALS = 3
EXIT_CONFIG = 2
REVERT = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
ECS_ROLLED_BACK = {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}


@dataclass(frozen=True)
class Commit:
    sha: str
    time: dt.datetime
    reverts: str | None = None


@dataclass(frozen=True)
class Execution:
    id: str
    status: str
    type: str  # STANDARD or ROLLBACK
    start: dt.datetime
    end: dt.datetime
    revision: str | None
    actions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class EcsDeployment:
    status: str
    started: dt.datetime
    finished: dt.datetime | None


@dataclass
class Deployment:
    execution: str
    revision: str | None
    deployed_at: dt.datetime
    lead_time: dt.timedelta | None
    failed_at: dt.datetime | None = None
    failure: str | None = None
    restored_at: dt.datetime | None = None

    @property
    def time_to_restore(self) -> dt.timedelta | None:
        return None if self.failed_at is None or self.restored_at is None else self.restored_at - self.deployed_at


@dataclass
class Report:
    since: dt.datetime
    until: dt.datetime
    deployments: list[Deployment]
    executions: int
    superseded: int
    rollbacks: int
    notes: list[str] = field(default_factory=list)

    @property
    def weeks(self) -> float:
        return max((self.until - self.since).total_seconds() / (7 * 86400), 1 / 7)

    @property
    def per_week(self) -> float:
        return len(self.deployments) / self.weeks

    @property
    def lead_time(self) -> dt.timedelta | None:
        times = [d.lead_time for d in self.deployments if d.lead_time is not None]
        return _median(times)

    @property
    def failed(self) -> list[Deployment]:
        return [d for d in self.deployments if d.failed_at is not None]

    @property
    def change_failure_rate(self) -> float | None:
        return len(self.failed) / len(self.deployments) if self.deployments else None

    @property
    def time_to_restore(self) -> dt.timedelta | None:
        return _median([d.time_to_restore for d in self.failed if d.time_to_restore is not None])


def _median(values: Sequence[dt.timedelta]) -> dt.timedelta | None:
    if not values:
        return None
    return dt.timedelta(seconds=statistics.median(v.total_seconds() for v in values))


# --- collecting ---------------------------------------------------------------------------------------------------


def git_commits(repository: Path, since: dt.datetime) -> dict[str, Commit]:
    out = subprocess.run(
        ["git", "-C", str(repository), "log", "--all", f"--since={(since - dt.timedelta(days=60)).isoformat()}",
         "--format=%H%x1f%cI%x1f%B%x1e"],
        check=True, capture_output=True, text=True,
    ).stdout
    commits: dict[str, Commit] = {}
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        sha, time, body = record.strip("\n").split("\x1f", 2)
        match = REVERT.search(body)
        commits[sha] = Commit(sha, dt.datetime.fromisoformat(time), match.group(1) if match else None)
    return commits


def pipeline_executions(codepipeline: Any, pipeline: str, since: dt.datetime) -> list[Execution]:
    """ListPipelineExecutions (newest first, rollback and superseded ones included) and each one's actions."""
    summaries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"pipelineName": pipeline, "maxResults": 100}
    while True:
        page = codepipeline.list_pipeline_executions(**kwargs)
        summaries.extend(s for s in page["pipelineExecutionSummaries"] if s["startTime"] >= since)
        if not page.get("nextToken") or any(s["startTime"] < since for s in page["pipelineExecutionSummaries"]):
            break
        kwargs["nextToken"] = page["nextToken"]
    executions = []
    for summary in summaries:
        actions: list[dict[str, Any]] = []
        action_kwargs: dict[str, Any] = {
            "pipelineName": pipeline, "filter": {"pipelineExecutionId": summary["pipelineExecutionId"]}, "maxResults": 100,
        }
        while True:
            page = codepipeline.list_action_executions(**action_kwargs)
            actions.extend(page["actionExecutionDetails"])
            if not page.get("nextToken"):
                break
            action_kwargs["nextToken"] = page["nextToken"]
        revisions = summary.get("sourceRevisions") or []
        executions.append(
            Execution(
                id=summary["pipelineExecutionId"],
                status=summary["status"],
                type=summary.get("executionType", "STANDARD"),
                start=summary["startTime"],
                end=summary.get("lastUpdateTime", summary["startTime"]),
                revision=revisions[0]["revisionId"] if revisions else None,
                actions=tuple(actions),
            )
        )
    return executions


def ecs_deployments(ecs: Any, *, cluster: str, service: str, since: dt.datetime) -> list[EcsDeployment]:
    found: list[EcsDeployment] = []
    kwargs: dict[str, Any] = {"cluster": cluster, "service": service, "createdAt": {"after": since}}
    while True:
        page = ecs.list_service_deployments(**kwargs)
        for d in page["serviceDeployments"]:
            found.append(EcsDeployment(d["status"], d.get("startedAt") or d["createdAt"], d.get("finishedAt")))
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


# --- computing ----------------------------------------------------------------------------------------------------


def compute(
    executions: Iterable[Execution],
    commits: Mapping[str, Commit],
    ecs: Iterable[EcsDeployment],
    *,
    prod_stage: str,
    since: dt.datetime,
    until: dt.datetime,
) -> Report:
    executions = sorted(executions, key=lambda e: e.start)
    deployments: list[Deployment] = []
    verify_failures: dict[str, dt.datetime] = {}
    for execution in executions:
        if execution.type != "STANDARD":
            continue
        in_prod = [a for a in execution.actions if a["stageName"] == prod_stage]
        deploys = [a for a in in_prod if a["input"]["actionTypeId"]["provider"] == "CloudFormation"]
        # Deployed: every stack of prod updated (a superseded or stopped execution never gets here).
        if not deploys or any(a["status"] != "Succeeded" for a in deploys):
            continue
        deployed_at = max(a["lastUpdateTime"] for a in deploys)
        commit = commits.get(execution.revision or "")
        deployments.append(
            Deployment(execution.id, execution.revision, deployed_at, deployed_at - commit.time if commit else None)
        )
        verify = [a for a in in_prod if a["actionName"].startswith("Verify") and a["status"] == "Failed"]
        if verify:
            verify_failures[execution.id] = verify[0]["lastUpdateTime"]
    deployments.sort(key=lambda d: d.deployed_at)
    rollbacks = [e for e in executions if e.type == "ROLLBACK" and any(a["stageName"] == prod_stage for a in e.actions)]
    reverts = {c.reverts: c.time for c in commits.values() if c.reverts}
    ecs_rollbacks = [d for d in ecs if d.status in ECS_ROLLED_BACK]
    for index, deployment in enumerate(deployments):
        window_end = deployments[index + 1].deployed_at if index + 1 < len(deployments) else until
        signals: list[tuple[dt.datetime, str]] = []
        if deployment.execution in verify_failures:
            signals.append((verify_failures[deployment.execution], "Verify failed"))
        signals += [(r.start, "stage rollback") for r in rollbacks if deployment.deployed_at <= r.start < window_end]
        signals += [(d.started, "ECS rollback") for d in ecs_rollbacks if deployment.deployed_at <= d.started < window_end]
        for reverted, time in reverts.items():
            if deployment.revision and deployment.revision.startswith(reverted) or (
                deployment.revision and reverted.startswith(deployment.revision)
            ):
                signals.append((max(time, deployment.deployed_at), "reverted"))
        if not signals:
            continue
        deployment.failed_at, deployment.failure = min(signals)
        restores = [r.end for r in rollbacks if r.status == "Succeeded" and r.start >= deployment.deployed_at]
        restores += [
            d.finished for d in ecs_rollbacks
            if d.status == "ROLLBACK_SUCCESSFUL" and d.finished and deployment.deployed_at <= d.started < window_end
        ]
        restores += [
            d.deployed_at for d in deployments[index + 1 :]
            if d.execution not in verify_failures and d.revision != deployment.revision
        ]
        later = [t for t in restores if t >= deployment.failed_at]
        deployment.restored_at = min(later) if later else None
    in_window = [d for d in deployments if since <= d.deployed_at <= until]
    return Report(
        since=since,
        until=until,
        deployments=in_window,
        executions=len(executions),
        superseded=sum(e.status == "Superseded" for e in executions),
        rollbacks=len(rollbacks),
    )


# --- presenting ---------------------------------------------------------------------------------------------------


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "–"
    minutes = value.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def _band(metric: str, report: Report) -> str:
    # The DORA report's performance clusters, roughly.
    if metric == "frequency":
        return "elite" if report.per_week >= 7 else "high" if report.per_week >= 1 else "medium" if report.per_week >= 0.25 else "low"
    if metric == "lead":
        lt = report.lead_time
        return "–" if lt is None else "elite" if lt <= dt.timedelta(days=1) else "high" if lt <= dt.timedelta(days=7) else "medium" if lt <= dt.timedelta(days=30) else "low"
    if metric == "cfr":
        r = report.change_failure_rate
        return "–" if r is None else "elite" if r <= 0.05 else "high" if r <= 0.15 else "medium" if r <= 0.30 else "low"
    ttr = report.time_to_restore
    return "–" if ttr is None else "elite" if ttr <= dt.timedelta(hours=1) else "high" if ttr <= dt.timedelta(days=1) else "medium" if ttr <= dt.timedelta(days=7) else "low"


def rows(report: Report) -> list[tuple[str, str, str]]:
    cfr = report.change_failure_rate
    return [
        ("Deployment frequency (prod)", f"{len(report.deployments)} in {report.weeks:.1f} weeks = {report.per_week:.2f}/week", _band("frequency", report)),
        ("Lead time for changes (median)", _duration(report.lead_time), _band("lead", report)),
        ("Change failure rate", "–" if cfr is None else f"{len(report.failed)}/{len(report.deployments)} = {cfr:.0%}", _band("cfr", report)),
        ("Time to restore (median)", _duration(report.time_to_restore), _band("ttr", report)),
    ]


def table(report: Report) -> str:
    data = [("Metric", "Value", "Band"), *rows(report)]
    widths = [max(len(r[i]) for r in data) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in data]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"({report.executions} executions since {report.since:%Y-%m-%d}: {report.superseded} superseded, "
        f"{report.rollbacks} prod rollback executions)"
    )
    return "\n".join(lines)


def markdown(report: Report, picture: str | None) -> str:
    lines = [
        f"# Delivery metrics {report.since:%Y-%m-%d} – {report.until:%Y-%m-%d}",
        "",
        "| Metric | Value | Band |",
        "|---|---|---|",
        *(f"| {m} | {v} | {b} |" for m, v, b in rows(report)),
        "",
        f"{report.executions} pipeline executions, {report.superseded} superseded, {report.rollbacks} prod rollback executions.",
        "",
        "| Deployed | Commit | Lead time | Failure | Restored after |",
        "|---|---|---|---|---|",
        *(
            f"| {d.deployed_at:%Y-%m-%d %H:%M} | {(d.revision or '?')[:8]} | {_duration(d.lead_time)} | "
            f"{d.failure or ''} | {_duration(d.time_to_restore) if d.failure else ''} |"
            for d in report.deployments
        ),
    ]
    if picture:
        lines += ["", f"![weekly trend]({picture})"]
    return "\n".join(lines) + "\n"


def weekly(report: Report) -> list[tuple[dt.date, int, int]]:
    start = (report.since - dt.timedelta(days=report.since.weekday())).date()
    weeks: list[tuple[dt.date, int, int]] = []
    monday = start
    while monday <= report.until.date():
        these = [d for d in report.deployments if monday <= d.deployed_at.date() < monday + dt.timedelta(days=7)]
        weeks.append((monday, len(these), sum(d.failed_at is not None for d in these)))
        monday += dt.timedelta(days=7)
    return weeks


def picture(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = weekly(report)
    labels = [w.strftime("%m-%d") for w, _, _ in data]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(labels, [n - f for _, n, f in data], label="deployed, no failure", color="#2563eb")
    ax.bar(labels, [f for _, _, f in data], bottom=[n - f for _, n, f in data], label="failed change", color="#dc2626")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Prod deployments per week")
    ax.set_xlabel("week starting")
    ax.legend()
    ax.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- command ------------------------------------------------------------------------------------------------------


def find_pipeline(codepipeline: Any, stack_name: str) -> str:
    names: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = codepipeline.list_pipelines(**kwargs)
        names += [p["name"] for p in page["pipelines"] if p["name"].startswith(f"{stack_name}-Pipeline")]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    if len(names) != 1:
        raise LookupError(f"expected one pipeline named {stack_name}-Pipeline…, found {names or 'none'}: pass --pipeline")
    return names[0]


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    sessions: Any = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dora", description=__doc__)
    parser.add_argument("--days", type=int, default=90, help="how far back (default 90)")
    parser.add_argument("--pipeline", help="pipeline name (default: the one the pipeline stack created)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "dora", help="directory for dora.md and dora.png")
    parser.add_argument("--repository", type=Path, default=ROOT, help="git repository whose history the pipeline built")
    args = parser.parse_args(argv)

    from config import ConfigError, load_config, read_context
    from tools.preflight.__main__ import sessions_for
    from tools.preflight.results import CREDENTIAL_ERRORS, CredentialsUnusable

    try:
        config = load_config(read_context(ROOT / "cdk.json"), os.environ if environ is None else environ)
    except ConfigError as error:
        print(f"dora: {error}", file=sys.stderr)
        return EXIT_CONFIG
    prod = config.environments[-1]
    until = now()
    since = until - dt.timedelta(days=args.days)
    sessions = sessions or sessions_for(config)
    try:
        codepipeline = sessions.client("codepipeline", account=config.pipeline.account, region=config.pipeline.region)
        name = args.pipeline or find_pipeline(codepipeline, f"{config.project}-{config.service_name}-pipeline")
        executions = pipeline_executions(codepipeline, name, since)
        cloudformation = sessions.client("cloudformation", account=prod.account, region=prod.region)
        (stack,) = cloudformation.describe_stacks(StackName=f"{config.project}-{config.service_name}-{prod.name}-stateless")["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        ecs = sessions.client("ecs", account=prod.account, region=prod.region)
        services = ecs_deployments(ecs, cluster=outputs["ClusterName"], service=outputs["ServiceName"], since=since)
    except (CredentialsUnusable, *CREDENTIAL_ERRORS) as error:
        print(f"dora: no usable AWS credentials for the pipeline account {config.pipeline.account} ({error}): "
              "set AWS_PROFILE to its profile (or run `aws sso login`) and try again", file=sys.stderr)
        return EXIT_NO_CREDENTIALS
    except LookupError as error:
        print(f"dora: {error}", file=sys.stderr)
        return EXIT_CONFIG
    report = compute(
        executions, git_commits(args.repository, since), services,
        prod_stage=prod.name.capitalize(), since=since, until=until,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    picture(report, args.out / "dora.png")
    (args.out / "dora.md").write_text(markdown(report, "dora.png"))
    print(table(report))
    print(f"Written: {args.out / 'dora.md'}, {args.out / 'dora.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
