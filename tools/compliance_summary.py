"""Counts the cdk-nag acknowledgments in a synthesized assembly, per pack and per rule, with each distinct reason."""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

PACKS = ("AwsSolutions", "NIST.800.53.R5")


def summarize(outdir: Path) -> str:
    if not (outdir / "manifest.json").exists():
        raise SystemExit(f"compliance_summary: no cloud assembly at {outdir}: run `DELIVERY_VALIDATE=1 make synth` first")
    if not (outdir / "validation-report.json").exists():
        # A synth without validation (plain `make synth`) records no acknowledgments (stages/nag.py): an empty
        # summary would read as "nothing acknowledged".
        raise SystemExit(
            f"compliance_summary: {outdir} was synthesized without validation, which records no acknowledgments: "
            "run `DELIVERY_VALIDATE=1 make synth` first"
        )
    rules: dict[str, dict[str, list[str]]] = {pack: defaultdict(list) for pack in PACKS}
    for metadata in sorted(outdir.rglob("*.metadata.json")):
        for entries in json.loads(metadata.read_text()).values():
            for entry in entries:
                if entry.get("type") != "aws:cdk:acknowledged-rules":
                    continue
                for rule, reason in entry["data"].items():
                    pack, _, name = rule.partition("::")
                    if pack in rules:
                        rules[pack][name.split("[")[0]].append(reason)
    lines = []
    for pack, by_rule in rules.items():
        total = sum(len(v) for v in by_rule.values())
        lines += [f"## {pack}: {total} acknowledgments, {len(by_rule)} rules", "", "| rule | count | reason |", "|---|---|---|"]
        for rule, reasons in sorted(by_rule.items()):
            # One row per distinct reason (most frequent first); the rule is named on its first row only.
            for index, (reason, count) in enumerate(sorted(Counter(reasons).items(), key=lambda rc: (-rc[1], rc[0]))):
                lines.append(f"| {rule if index == 0 else ''} | {count} | {_cell(reason)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
