"""Every acknowledgment must suppress a finding that really exists: no stale or speculative acknowledgments."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import aws_cdk as cdk
import pytest

import app as app_module
from stages.nag import PACKS

pytestmark = pytest.mark.xdist_group("infra")


def acknowledged(assembly_dir: Path) -> dict[str, set[str]]:
    """construct path → rules acknowledged there (pack prefix removed), from the assembly's metadata."""
    found: dict[str, set[str]] = defaultdict(set)
    for metadata in assembly_dir.rglob("*.metadata.json"):
        for path, entries in json.loads(metadata.read_text()).items():
            for entry in entries:
                if entry.get("type") == "aws:cdk:acknowledged-rules":
                    for rule in entry["data"]:
                        pack, _, name = rule.partition("::")
                        if pack in PACKS:
                            found[path.lstrip("/")].add(name)
    return found


@pytest.fixture(scope="module")
def unacknowledged_findings(tmp_path_factory, context, config, monkeypatch_module):
    monkeypatch_module.setattr(cdk.Validations, "acknowledge", lambda self, *rules: None)
    outdir = tmp_path_factory.mktemp("no-acks")
    app = cdk.App(outdir=str(outdir), context=context)
    app_module.build(app, config)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    findings: dict[str, set[str]] = defaultdict(set)
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            for construct in violation["violatingConstructs"]:
                findings[violation["ruleName"]].add(construct["constructPath"])
    return findings


@pytest.fixture(scope="module")
def monkeypatch_module():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


def test_every_acknowledgment_suppresses_a_real_finding(assembly_dir, unacknowledged_findings):
    acks = acknowledged(assembly_dir)
    assert sum(len(rules) for rules in acks.values()) > 50
    stale = []
    for scope, rules in acks.items():
        for rule in rules:
            paths = unacknowledged_findings.get(rule, set())
            if not any(p == scope or p.startswith(scope + "/") for p in paths):
                stale.append(f"{scope}: {rule}")
    assert stale == [], "\n".join(sorted(stale))
