"""The environment page at `/`: the same code everywhere, only configuration makes it differ."""

from __future__ import annotations

import html
import json
from typing import Literal

from pydantic import BaseModel

from service.settings import Settings
from service.task_metadata import Placement


class ServiceInfo(BaseModel):
    service: Literal["notes"]
    environment: str
    version: str
    region: str | None
    availability_zone: str | None


class EnvironmentPage:
    """Renders `/` once per placement: the content changes only when the task metadata arrives."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._rendered_for: Placement | None = None
        self._json = b""
        self._html = b""

    def render(self, placement: Placement, *, as_html: bool) -> bytes:
        if placement is not self._rendered_for:
            info = ServiceInfo(
                service="notes",
                environment=self._settings.environment,
                version=self._settings.app_version,
                region=placement.region,
                availability_zone=placement.availability_zone,
            )
            self._json = json.dumps(info.model_dump(), separators=(",", ":")).encode()
            self._html = _html(info, color=self._settings.env_color).encode()
            self._rendered_for = placement
        return self._html if as_html else self._json


def _html(info: ServiceInfo, *, color: str) -> str:
    e = html.escape
    where = " / ".join(e(part) for part in (info.region, info.availability_zone) if part) or "not on ECS"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>notes · {e(info.environment)}</title>
<style>body{{margin:0;font-family:system-ui,sans-serif}}
header{{background:{e(color)};color:#fff;padding:1.5rem 2rem;font-size:1.6rem;text-shadow:0 1px 2px #0008}}
dl{{padding:1rem 2rem;display:grid;grid-template-columns:max-content auto;gap:.4rem 1.5rem}}
dt{{font-weight:600}}</style>
</head><body><header>notes — {e(info.environment)}</header>
<dl><dt>Environment</dt><dd>{e(info.environment)}</dd><dt>Version</dt><dd>{e(info.version)}</dd>
<dt>Region / AZ</dt><dd>{where}</dd></dl></body></html>
"""
