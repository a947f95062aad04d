"""Reads buildspec.yml so the pipeline's build runs exactly the make targets a developer runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True, kw_only=True)
class BuildCommands:
    install: list[str]
    build: list[str]
    env: dict[str, str]


def read_buildspec(path: Path) -> BuildCommands:
    spec = yaml.safe_load(path.read_text())
    phases = spec.get("phases", {})
    return BuildCommands(
        install=list(phases.get("install", {}).get("commands", [])),
        build=list(phases.get("build", {}).get("commands", [])),
        env={k: str(v) for k, v in spec.get("env", {}).get("variables", {}).items()},
    )
