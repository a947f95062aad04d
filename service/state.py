"""Everything a request handler needs, created once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from service.cursors import CursorSigner
from service.db import Database
from service.page import EnvironmentPage
from service.settings import Settings
from service.task_metadata import TaskMetadata


@dataclass(kw_only=True)
class AppState:
    settings: Settings
    database: Database
    cursors: CursorSigner
    metadata: TaskMetadata
    page: EnvironmentPage
    migrated: bool = False
    migration_error: str | None = None

    @staticmethod
    def of(request: Request) -> AppState:
        state: AppState = request.app.state.service
        return state
