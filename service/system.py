"""The environment page and the health endpoints."""

from __future__ import annotations

from typing import Literal

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel

from service.breaker import DatabaseUnavailable
from service.page import ServiceInfo
from service.state import AppState

READY_TIMEOUT_SECONDS = 2.0


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    reason: str | None = None


router = APIRouter()

_ROOT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "JSON by default; an HTML page with the environment's colour banner for `Accept: text/html`",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


@router.get("/", response_model=ServiceInfo, responses=_ROOT_RESPONSES, summary="Where and what is running")
async def root(request: Request) -> Response:
    state = AppState.of(request)
    as_html = "text/html" in request.headers.get("accept", "")
    body = state.page.render(state.metadata.placement, as_html=as_html)
    return Response(
        body,
        media_type="text/html; charset=utf-8" if as_html else "application/json",
        headers={"Vary": "Accept"},
    )


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process serves requests")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `reason` says why"}},
    summary="Readiness: the database answers and the schema is migrated",
)
async def readyz(request: Request) -> JSONResponse:
    state = AppState.of(request)
    if not state.migrated:
        return _not_ready(f"database schema not migrated yet ({state.migration_error or 'in progress'})")
    try:
        await state.database.ping(timeout=READY_TIMEOUT_SECONDS)
    except (PoolTimeout, psycopg.Error, DatabaseUnavailable) as exc:
        # The class name is enough for an operator and reveals nothing about the database endpoint.
        return _not_ready(f"database unreachable ({type(exc).__name__})")
    return JSONResponse(Readiness(status="ready").model_dump())


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse(Readiness(status="not_ready", reason=reason).model_dump(), status_code=503)
