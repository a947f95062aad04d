"""One JSON error shape for every 4xx/5xx, and the handlers that produce it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from service.breaker import CircuitOpen, DatabaseUnavailable
from service.logs import REQUEST_ID

logger = logging.getLogger(__name__)

Location = Literal["body", "query", "path", "header", "request"]
# The name an error about the request body as a whole (not JSON, too large, too slow, missing, not an object) gives
# as its field, with location `request`: `body` alone would read as the note's own `body` field.
WHOLE_BODY = "request_body"


class FieldError(BaseModel):
    field: str = Field(
        description=(
            "Name of the offending field, for example `title` or `limit`; `request_body` when the request body as a"
            " whole is at fault"
        )
    )
    location: Location = Field(
        description=(
            "Where it is: `body` (a field of the JSON body, dotted path for nested ones), `query`, `path`, `header`,"
            " or `request` (the request body as a whole)"
        )
    )
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="Machine-readable error code, for example `validation_failed`")
    message: str
    request_id: str | None = None
    fields: list[FieldError] = Field(default_factory=list)


def responses(*statuses: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error responses an operation can return."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = (descriptions or {}).get(status, _DESCRIPTIONS[status])
        declared[status] = {"model": ErrorBody, "description": description}
        if status in (409, 503):
            declared[status]["headers"] = {"Retry-After": _RETRY_AFTER}
    return declared


_DESCRIPTIONS = {
    400: "Malformed request body (not JSON)",
    404: "No such resource",
    408: "The request body did not arrive in time; the connection is closed",
    409: "A request with the same Idempotency-Key is still being processed; retry after `Retry-After` seconds",
    413: "Request body too large",
    415: "The request body is not JSON: send `Content-Type: application/json`",
    422: "Invalid input; `fields` names each offending field",
    503: "The database is unreachable or did not answer in time; retry after `Retry-After` seconds",
}
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "idempotency_key_in_use",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    503: "database_unavailable",
}
RETRY_AFTER_SECONDS = 1


class RequestInProgressError(Exception):
    """The same Idempotency-Key is in flight in another request (draft-ietf-httpapi-idempotency-key-header: 409)."""

    def __init__(self, *, field: str) -> None:
        super().__init__(field)
        self.field = field


def whole_body_error(message: str) -> FieldError:
    return FieldError(field=WHOLE_BODY, location="request", message=message)


class InvalidFieldError(Exception):
    """Input that passed the schema but not our own checks (for example a forged cursor)."""

    def __init__(self, *, field: str, location: Location, message: str) -> None:
        super().__init__(message)
        self.error = FieldError(field=field, location=location, message=message)


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    fields: Iterable[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error=code or _CODES.get(status, "error"),
        message=message,
        request_id=REQUEST_ID.get(),
        fields=list(fields),
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidFieldError, _invalid_field)  # type: ignore[arg-type]
    app.add_exception_handler(RequestInProgressError, _request_in_progress)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(CircuitOpen, _failing_fast)
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(psycopg.Error, _database_error)


async def _validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(
            400, "Request body is not valid JSON", code="malformed_json", fields=[_malformed_body(errors)]
        )
    fields = [_field_error(error) for error in errors]
    names = ", ".join(dict.fromkeys(f.field for f in fields))
    return error_response(422, f"Invalid input: {names}", fields=fields)


def _malformed_body(errors: Sequence[Any]) -> FieldError:
    detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "invalid JSON")
    return whole_body_error(str(detail))


def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [str(part) for part in error.get("loc", ())]
    location = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else "body"
    message = str(error.get("msg", "invalid value"))
    if location == "body" and len(loc) <= 1:
        # The body itself is missing or not a JSON object: no field of it is at fault.
        if error.get("type") == "missing":
            message = "A JSON object is required"
        return whole_body_error(message)
    field = ".".join(loc[1:]) or location
    return FieldError(field=field, location=location, message=message)  # type: ignore[arg-type]


async def _invalid_field(request: Request, exc: InvalidFieldError) -> JSONResponse:
    return error_response(422, f"Invalid input: {exc.error.field}", fields=[exc.error])


async def _request_in_progress(request: Request, exc: RequestInProgressError) -> JSONResponse:
    message = "A request with this key is still being processed; retry it unchanged"
    return error_response(
        409,
        message,
        fields=[FieldError(field=exc.field, location="header", message=message)],
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    headers = dict(exc.headers or {})
    fields = []
    if exc.status_code in (400, 408, 413):
        # Raised while reading the body (unreadable, too slow, too large): the body as a whole is at fault.
        fields.append(whole_body_error(message))
    elif exc.status_code == 415:
        fields.append(FieldError(field="Content-Type", location="header", message=message))
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; RFC 9110 wants every allowed method.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return error_response(exc.status_code, message, fields=fields, headers=headers)


def _allowed_methods(request: Request) -> set[str]:
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern, _, _ = compile_path(template)
        if pattern.match(request.url.path):
            methods |= {method.upper() for method in operations}
    return methods


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable", exc_info=exc, extra={"event": "db_error"})
    return _unavailable()


async def _failing_fast(request: Request, exc: Exception) -> JSONResponse:
    # The breaker logged the cause when it opened and logs the outage while it lasts; one line per refused request
    # would only slow the service down when it most needs to be quick. The request line still counts it.
    return _unavailable()


def _unavailable() -> JSONResponse:
    return error_response(
        503, "The database is unavailable; retry later", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database error", exc_info=exc, extra={"event": "db_error"})
    return error_response(500, "Internal error", code="internal_error")
