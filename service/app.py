"""The app factory: wires settings, database, routes and telemetry into one FastAPI application."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from psycopg_pool import PoolTimeout

from service import docs_page, errors, notes, notes_store, system
from service.breaker import DatabaseUnavailable
from service.credentials import (
    CredentialsError,
    CredentialSource,
    DbCredentials,
    SecretsManagerCredentials,
    StaticCredentials,
)
from service.cursors import CursorSigner
from service.db import Database
from service.faults import FaultInjector
from service.metrics import RequestTelemetry
from service.middleware import RequestMiddleware
from service.migrations import migrate
from service.page import EnvironmentPage
from service.settings import Settings
from service.state import AppState
from service.task_metadata import TaskMetadata

logger = logging.getLogger(__name__)

POOL_CLOSE_TIMEOUT_SECONDS = 3.0
MIGRATION_RETRY_MAX_SECONDS = 15.0
# The client-side bound of a migration, above the statement timeout it sets for itself.
MIGRATION_TIMEOUT_SECONDS = 250.0
KEY_SWEEP_INTERVAL_SECONDS = 300.0


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, faults: FaultInjector | None = None
) -> FastAPI:
    """Build the application; uvicorn calls it without arguments in each worker (settings from the environment)."""
    settings = settings or Settings.from_env(os.environ)
    faults = faults or FaultInjector.from_settings(settings)
    database = database or Database(
        credentials=credential_source(settings),
        dbname=settings.db_name,
        operation_timeout=settings.db_timeout_ms / 1000,
    )
    state = AppState(
        settings=settings,
        database=database,
        cursors=CursorSigner(secret=settings.app_secret),
        metadata=TaskMetadata(uri=settings.ecs_metadata_uri),
        page=EnvironmentPage(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if faults.enabled:
            logger.warning(
                "fault switch on (drill only): %s", faults.describe(), extra={"event": "fault_switch_on"}
            )
        await database.open()
        background = [
            asyncio.create_task(_migrate_until_done(state)),
            asyncio.create_task(state.metadata.load()),
            asyncio.create_task(_sweep_expired_keys(state)),
        ]
        # Everything imported and built so far lives as long as the process. Moving it out of the collector's
        # reach keeps full collections from scanning boto3's and FastAPI's object graphs mid-request (p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await database.close(timeout=POOL_CLOSE_TIMEOUT_SECONDS)

    app = FastAPI(
        title="notes",
        version=settings.app_version,
        description="Sample service of the delivery system: environment page, health endpoints and a notes API.",
        lifespan=lifespan,
        # FastAPI's pages load their scripts from a CDN; docs_page serves a self-contained one instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = state
    errors.install(app)
    docs_page.install(app)
    app.include_router(system.router)
    app.include_router(notes.router)
    app.add_middleware(
        RequestMiddleware,
        telemetry=RequestTelemetry(environment=settings.environment, namespace=settings.metrics_namespace),
        max_body_bytes=notes.MAX_REQUEST_BYTES,
        body_timeout=settings.request_body_timeout,
        faults=faults,
    )
    return app


def credential_source(settings: Settings) -> CredentialSource:
    if settings.db_secret_arn:
        return SecretsManagerCredentials(secret_arn=settings.db_secret_arn)
    endpoint = settings.db_endpoint
    assert endpoint is not None
    return StaticCredentials(
        DbCredentials(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password)
    )


async def _migrate_until_done(state: AppState) -> None:
    delay = 0.5
    while True:
        try:
            await state.database.run(migrate, timeout=MIGRATION_TIMEOUT_SECONDS)
        except (PoolTimeout, psycopg.Error, CredentialsError, DatabaseUnavailable) as exc:
            state.migration_error = type(exc).__name__
            logger.error(
                "schema migration failed, retrying in %.1f s", delay, exc_info=True, extra={"event": "db_error"}
            )
            breaker = state.database.breaker
            # While the database is known to be down, retry the moment it is back rather than at the next back-off.
            if breaker.is_open:
                await breaker.wait_closed(timeout=delay)
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, MIGRATION_RETRY_MAX_SECONDS)
        else:
            state.migrated = True
            state.migration_error = None
            return


async def _sweep_expired_keys(state: AppState) -> None:
    while True:
        await asyncio.sleep(KEY_SWEEP_INTERVAL_SECONDS)
        if not state.migrated or state.database.breaker.is_open:
            continue
        try:
            deleted = await state.database.run(notes_store.delete_expired_keys)
        except (PoolTimeout, psycopg.Error, CredentialsError, DatabaseUnavailable):
            logger.warning("could not delete expired idempotency keys", exc_info=True)
        else:
            if deleted:
                logger.info("deleted expired idempotency keys", extra={"event": "keys_expired", "count": deleted})
