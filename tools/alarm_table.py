"""Every CloudWatch alarm of every environment, read from the synthesized cloud assembly, as Markdown tables.

    python -m tools.alarm_table [cdk.out] [--out FILE]

One table per environment (pipeline order), one row per alarm: metric alarms, metric-math alarms, anomaly-detection
alarms and composite alarms, with the SNS topic (warning or critical) each one notifies on ALARM and on OK and
whether the ECS service rolls a deployment back on it (its name is in DeploymentConfiguration.Alarms.AlarmNames).
The heading line names the alarms that page (notify the critical topic).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALARM = "AWS::CloudWatch::Alarm"
COMPOSITE = "AWS::CloudWatch::CompositeAlarm"
TOPIC = "AWS::SNS::Topic"
ECS_SERVICE = "AWS::ECS::Service"

COMPARISONS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside",
    "LessThanLowerThreshold": "below",
    "GreaterThanUpperThreshold": "above",
}
COLUMNS = (
    "alarm",
    "kind",
    "metric",
    "statistic",
    "threshold",
    "period",
    "datapoints",
    "missing data",
    "alarm actions",
    "OK actions",
    "deployment alarm",
)


class AssemblyError(Exception):
    """The directory holds no cloud assembly, or one this tool cannot read."""


@dataclass(frozen=True)
class AlarmRow:
    logical_id: str
    name: str
    kind: str  # metric, math, anomaly, composite
    metric: str
    statistic: str
    threshold: str
    period: str
    datapoints: str
    missing_data: str
    alarm_actions: tuple[str, ...]
    ok_actions: tuple[str, ...]
    deployment_alarm: bool

    def cells(self) -> tuple[str, ...]:
        return (
            self.name,
            self.kind,
            self.metric,
            self.statistic,
            self.threshold,
            self.period,
            self.datapoints,
            self.missing_data,
            ", ".join(self.alarm_actions) or "—",
            ", ".join(self.ok_actions) or "—",
            "yes" if self.deployment_alarm else "",
        )


@dataclass(frozen=True)
class EnvironmentAlarms:
    environment: str
    stacks: tuple[str, ...]
    rows: list[AlarmRow] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Reading the assembly


def _manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.is_file():
        raise AssemblyError(f"no cloud assembly at {directory}: run `make synth` first")
    return json.loads(path.read_text())


def _stacks(directory: Path, manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    stacks = [(n, a) for n, a in manifest.get("artifacts", {}).items() if a.get("type") == "aws:cloudformation:stack"]
    regions = {_region(artifact) for _, artifact in stacks}
    for name, artifact in stacks:
        template = json.loads((directory / artifact["properties"]["templateFile"]).read_text())
        display = artifact.get("displayName", name)
        # An environment's CloudFront alarm lives in us-east-1: name the region wherever an assembly spans several.
        found.append((f"{display} ({_region(artifact)})" if len(regions) > 1 else display, template))
    return found


def _region(artifact: dict[str, Any]) -> str:
    return str(artifact.get("environment", "")).rsplit("/", 1)[-1]


def _has_alarms(template: dict[str, Any]) -> bool:
    return any(r.get("Type") in (ALARM, COMPOSITE) for r in template.get("Resources", {}).values())


def collect(outdir: Path) -> list[EnvironmentAlarms]:
    """The alarms per environment: one entry per nested assembly (pipeline stage) holding alarms, in pipeline order."""
    root = _manifest(outdir)
    groups: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    for name, artifact in root.get("artifacts", {}).items():
        if artifact.get("type") == "cdk:cloud-assembly":
            nested = outdir / artifact.get("properties", {}).get("directoryName", name)
            stacks = [s for s in _stacks(nested, _manifest(nested)) if _has_alarms(s[1])]
            if stacks:
                groups.append((_environment_of(stacks[0][0]), stacks))
    # Stacks directly in the root assembly (an app without pipeline stages): each is its own group.
    for display_name, template in _stacks(outdir, root):
        if _has_alarms(template):
            groups.append((display_name, [(display_name, template)]))
    if not groups:
        raise AssemblyError(f"no alarms in the cloud assembly at {outdir}")
    return [
        EnvironmentAlarms(
            environment=environment,
            stacks=tuple(display for display, _ in stacks),
            rows=[row for _, template in stacks for row in rows_of(template)],
        )
        for environment, stacks in groups
    ]


def _environment_of(display_name: str) -> str:
    # "delivery-notes-pipeline/Dev/Stateless" -> "dev"
    parts = display_name.split(" ", 1)[0].split("/")
    return parts[-2].lower() if len(parts) >= 3 else display_name


# ---------------------------------------------------------------------------------------------------------------
# One template's alarms


def rows_of(template: dict[str, Any]) -> list[AlarmRow]:
    resources = template.get("Resources", {})
    deployment_names = {
        name
        for resource in resources.values()
        if resource.get("Type") == ECS_SERVICE
        for name in resource.get("Properties", {})
        .get("DeploymentConfiguration", {})
        .get("Alarms", {})
        .get("AlarmNames", [])
        if isinstance(name, str)
    }
    names = {
        logical_id: _alarm_name(logical_id, resource)
        for logical_id, resource in resources.items()
        if resource.get("Type") in (ALARM, COMPOSITE)
    }
    rows = []
    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        if kind not in (ALARM, COMPOSITE):
            continue
        props = resource.get("Properties", {})
        common = dict(
            logical_id=logical_id,
            name=names[logical_id],
            alarm_actions=tuple(_action(a, resources) for a in props.get("AlarmActions", [])),
            ok_actions=tuple(_action(a, resources) for a in props.get("OKActions", [])),
            deployment_alarm=isinstance(props.get("AlarmName"), str) and props["AlarmName"] in deployment_names,
        )
        if kind == COMPOSITE:
            rows.append(
                AlarmRow(
                    kind="composite",
                    metric="rule: " + _rule(props.get("AlarmRule"), names),
                    statistic="—",
                    threshold="—",
                    period="—",
                    datapoints="—",
                    missing_data="—",
                    **common,  # type: ignore[arg-type]
                )
            )
        else:
            rows.append(_metric_alarm(props, common))
    return rows


def _alarm_name(logical_id: str, resource: dict[str, Any]) -> str:
    name = resource.get("Properties", {}).get("AlarmName")
    return name if isinstance(name, str) else logical_id


def _metric_alarm(props: dict[str, Any], common: dict[str, Any]) -> AlarmRow:
    evaluation = props.get("EvaluationPeriods")
    datapoints = f"{props.get('DatapointsToAlarm', evaluation)}/{evaluation}"
    missing = props.get("TreatMissingData", "missing")
    comparison = COMPARISONS.get(props.get("ComparisonOperator", ""), props.get("ComparisonOperator", "?"))
    if "Metrics" not in props:
        statistic = props.get("ExtendedStatistic") or props.get("Statistic") or "?"
        return AlarmRow(
            kind="metric",
            metric=_metric_text(props.get("Namespace"), props.get("MetricName"), props.get("Dimensions")),
            statistic=statistic,
            threshold=f"{comparison} {_number(props.get('Threshold'))}",
            period=_period(props.get("Period")),
            datapoints=datapoints,
            missing_data=missing,
            **common,
        )
    queries = {query["Id"]: query for query in props["Metrics"]}
    stats = [q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q]
    periods = sorted({stat["Period"] for stat in stats} | {q["Period"] for q in props["Metrics"] if "Period" in q})
    statistic = ", ".join(dict.fromkeys(stat["Stat"] for stat in stats)) or "—"
    band_id = props.get("ThresholdMetricId")
    if band_id:
        band = queries[band_id]
        watched = [q for q in props["Metrics"] if q.get("ReturnData", True) and q["Id"] != band_id]
        inputs = [q for q in props["Metrics"] if q is not band and q not in watched]
        return AlarmRow(
            kind="anomaly",
            metric="; ".join(_query_text(q) for q in watched)
            + (" where " + ", ".join(f"{q['Id']} = {_query_text(q)}" for q in inputs) if inputs else ""),
            statistic=statistic,
            threshold=f"{comparison} band {band.get('Expression', band_id)}",
            period=", ".join(_period(p) for p in periods),
            datapoints=datapoints,
            missing_data=missing,
            **common,
        )
    result = next(q for q in props["Metrics"] if q.get("ReturnData", True))
    inputs = [q for q in props["Metrics"] if q is not result]
    metric = _query_text(result)
    if inputs:
        metric += " where " + ", ".join(f"{q['Id']} = {_query_text(q)}" for q in inputs)
    return AlarmRow(
        kind="math" if "Expression" in result else "metric",
        metric=metric,
        statistic=statistic,
        threshold=f"{comparison} {_number(props.get('Threshold'))}",
        period=", ".join(_period(p) for p in periods),
        datapoints=datapoints,
        missing_data=missing,
        **common,
    )


def _query_text(query: dict[str, Any]) -> str:
    if "Expression" in query:
        return query["Expression"]
    stat = query["MetricStat"]
    metric = stat["Metric"]
    return _metric_text(metric.get("Namespace"), metric.get("MetricName"), metric.get("Dimensions")) + (
        f" ({stat['Stat']}, {_period(stat['Period'])})"
    )


def _metric_text(namespace: Any, metric_name: Any, dimensions: Any) -> str:
    text = f"{_value(namespace)}/{_value(metric_name)}"
    names = [d.get("Name") for d in dimensions or []]
    return text + (f" [{', '.join(names)}]" if names else "")


def _action(action: Any, resources: dict[str, Any]) -> str:
    """'critical' / 'warning' for the environment's SNS topics, else the topic's logical id or the action itself."""
    target = action.get("Ref") if isinstance(action, dict) else None
    if target and resources.get(target, {}).get("Type") == TOPIC:
        props = resources[target].get("Properties", {})
        described = " ".join(
            str(text) for text in (target, props.get("DisplayName"), props.get("TopicName")) if isinstance(text, str)
        ).lower()
        for level in ("critical", "warning"):
            if level in described:
                return f"{level} ({target})"
        return target
    return _value(action)


def _rule(rule: Any, names: dict[str, str]) -> str:
    """The composite rule with each referenced alarm's ARN replaced by that alarm's name."""
    if isinstance(rule, str):
        return rule
    if isinstance(rule, dict) and "Fn::Join" in rule:
        separator, parts = rule["Fn::Join"]
        return separator.join(_rule(part, names) for part in parts)
    if isinstance(rule, dict) and "Fn::GetAtt" in rule:
        logical_id, attribute = rule["Fn::GetAtt"]
        if attribute == "Arn" and logical_id in names:
            return names[logical_id]
    return _value(rule)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (function, argument), = value.items()
        if function == "Ref":
            return f"Ref:{argument}"
        if function == "Fn::GetAtt":
            return f"{argument[0]}.{argument[1]}"
        if function == "Fn::ImportValue":
            return f"Import:{_value(argument)}"
    return json.dumps(value, separators=(",", ":"))


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value) if isinstance(value, int | float) else _value(value)


def _period(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return _value(seconds) if seconds is not None else "—"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# ---------------------------------------------------------------------------------------------------------------
# Markdown


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render(environments: list[EnvironmentAlarms]) -> str:
    lines = ["# Alarms per environment", ""]
    for env in environments:
        rows = env.rows
        deployment = sum(row.deployment_alarm for row in rows)
        paging = [row.name for row in rows if any(action.startswith("critical") for action in row.alarm_actions)]
        lines += [
            f"## {env.environment}",
            "",
            f"{len(rows)} alarms from {', '.join(env.stacks)}; {deployment} roll an ECS deployment back; "
            f"{len(paging)} notify the critical topic (page): {', '.join(paging) or 'none'}.",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join("---" for _ in COLUMNS) + "|",
        ]
        lines += ["| " + " | ".join(_cell(cell) for cell in row.cells()) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.alarm_table", description=__doc__.splitlines()[0])
    parser.add_argument("assembly", nargs="?", default="cdk.out", help="cloud assembly directory (default cdk.out)")
    parser.add_argument("--out", type=Path, help="write the Markdown to this file instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = render(collect(Path(args.assembly)))
    except AssemblyError as exc:
        print(f"alarm_table: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
