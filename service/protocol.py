"""HTTP/1.1 connections as production needs them, on top of uvicorn's httptools protocol.

- The request line and headers must arrive within `header_timeout` of their first byte, or the client gets a 408
  and the connection closes; a connection that never sends anything is closed after the keep-alive timeout.
- The body's own deadline is the middleware's (it answers 408 in our JSON error shape); a body nobody reads is cut
  off here, shortly after that deadline.
- On shutdown, kept-alive idle connections stay open for `DRAIN_IDLE_SECONDS`: a request already on its way is
  answered (with `Connection: close`) instead of meeting a closed socket.
- Every close is a lingering close (RFC 9112, section 9.6): half-close, read and discard until the client closes
  or `LINGER_SECONDS` pass, so a client still sending never gets a reset that would destroy the response it is owed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

DRAIN_IDLE_SECONDS = 1.0
LINGER_SECONDS = 1.0
# The middleware answers a slow body with a 408 at its deadline; this only ends bodies that nobody reads.
BODY_BACKSTOP_GRACE_SECONDS = 1.0


class ServiceConfig(uvicorn.Config):
    """uvicorn's configuration plus our read deadlines; with several workers it is pickled into each of them."""

    def __init__(self, app: Any, *, header_timeout: float = 10.0, body_timeout: float = 30.0, **kwargs: Any) -> None:
        super().__init__(app, http=ServiceHttpProtocol, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout


class _LingeringTransport:
    """The connection's transport, with close() made a lingering close."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def write(self, data: bytes) -> None:
        if not self._closing:
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport.is_closing() or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._loop.call_later(LINGER_SECONDS, transport.close)


def _timeout_response(message: str) -> bytes:
    body = json.dumps(
        {"error": "request_timeout", "message": message, "request_id": None, "fields": []}, separators=(",", ":")
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ServiceHttpProtocol(HttpToolsProtocol):
    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = getattr(config, "header_timeout", 10.0)
        self.body_timeout: float = getattr(config, "body_timeout", 30.0)
        self._read_timer: asyncio.TimerHandle | None = None
        self._draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_LingeringTransport(transport, self.loop))  # type: ignore[arg-type]
        # uvicorn arms its idle timeout only after a response; a connection that never sends a byte is idle too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False
        self._arm(self.body_timeout + BODY_BACKSTOP_GRACE_SECONDS, self._body_too_slow)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def shutdown(self) -> None:
        self._draining = True
        if self._idle():
            self.loop.call_later(DRAIN_IDLE_SECONDS, self._close_if_idle)
        elif self.cycle is not None:
            self.cycle.keep_alive = False

    def _idle(self) -> bool:
        return self._read_timer is None and (self.cycle is None or self.cycle.response_complete)

    def _close_if_idle(self) -> None:
        if self._idle():
            self.transport.close()

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _headers_too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        message = f"Request headers not received within {self.header_timeout:g} s"
        logger.warning(message, extra={"event": "request_timeout", "phase": "headers"})
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_timeout_response(message))
            self.transport.close()
        else:
            # A pipelined request is still being answered: end the connection after that response.
            self.cycle.keep_alive = False

    def _body_too_slow(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        logger.warning(
            "request body not received within %g s",
            self.body_timeout,
            extra={"event": "request_timeout", "phase": "body"},
        )
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()
        else:
            self.cycle.keep_alive = False
