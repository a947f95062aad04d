"""Request ids, the per-request log/metrics line, and a JSON 500 for anything unhandled.

A plain ASGI middleware (not BaseHTTPMiddleware): it sits on every request, so it stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response, whole_body_error
from service.faults import FaultInjector, InjectedFault
from service.logs import REQUEST_ID
from service.metrics import RequestTelemetry

logger = logging.getLogger(__name__)

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+=/@-]{1,128}")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        telemetry: RequestTelemetry,
        max_body_bytes: int,
        body_timeout: float = 30.0,
        faults: FaultInjector | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.faults = faults if faults is not None and faults.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id, content_length = _scan_headers(scope)
        token = REQUEST_ID.set(request_id)
        id_header = (b"x-request-id", request_id.encode("ascii"))
        status = 0
        loop = asyncio.get_running_loop()
        body_deadline = loop.time() + self.body_timeout

        async def receive_in_time() -> Message:
            # The whole body must arrive within the budget, however it is trickled: a slow client holds nothing longer.
            try:
                async with asyncio.timeout_at(body_deadline):
                    return await receive()
            except TimeoutError:
                raise HTTPException(
                    408,
                    f"Request body not received within {self.body_timeout:g} s",
                    headers={"Connection": "close"},
                ) from None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            if self.faults is not None:
                await self.faults.before(scope["path"])
            if content_length is not None and content_length > self.max_body_bytes:
                # Refused from the header alone, without reading the body. (FastAPI's own limit, which also covers
                # chunked bodies, answers this case in plain text; our clients get the same JSON error as always.)
                message = f"Request body exceeds {self.max_body_bytes} bytes"
                response = error_response(413, message, fields=[whole_body_error(message)])
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, receive_in_time, send_with_id)
        except InjectedFault:
            # Like any other 500: an ERROR line with its trace, then the request line counts it as a server error.
            logger.exception("injected fault", extra={"event": "fault_injected"})
            await error_response(500, "Internal error", code="internal_error")(scope, receive, send_with_id)
            status = 500
        except Exception:
            logger.exception("unhandled error", extra={"event": "unhandled_error"})
            if status == 0:
                await error_response(500, "Internal error", code="internal_error")(scope, receive, send_with_id)
            status = 500
        finally:
            REQUEST_ID.reset(token)
            self.telemetry.record(
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
                status=status or 500,
                duration_ms=round((time.perf_counter() - started_at) * 1000.0, 3),
            )


def _scan_headers(scope: Scope) -> tuple[str, int | None]:
    request_id = None
    content_length = None
    for name, value in scope["headers"]:
        # Honour the caller's id for tracing across services, unless it could break a log line or a header.
        if name == b"x-request-id" and _SANE_REQUEST_ID.fullmatch(value):
            request_id = value.decode("ascii")
        elif name == b"content-length" and value.isdigit():
            content_length = int(value)
    return request_id or secrets.token_hex(16), content_length
