"""Slow and silent clients hold nothing for long: headers, bodies and idle connections each have a deadline, the
client gets a 408 where one is owed, and the connection ends with a close, never a reset."""

from __future__ import annotations

import concurrent.futures
import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from service_support import LiveServer, LogCapture, live_app, settings_for, wait_until
from svc_postgres import PostgresServer

pytestmark = pytest.mark.xdist_group("service")

# Far beyond every deadline configured below: a client still sending by then was never cut off.
GIVE_UP_SECONDS = 15.0
SLOW_BODY = (
    b"POST /api/notes HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2000\r\nX-Request-Id: slow-body\r\n\r\n{"
)
SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: "


@dataclass
class Trickled:
    sent_bytes: int
    seconds: float
    received: bytes
    reset: bool

    @property
    def head(self) -> str:
        return self.received.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()

    @property
    def body(self) -> dict:
        return json.loads(self.received.split(b"\r\n\r\n", 1)[1])


def trickle(port: int, prefix: bytes, *, interval: float = 0.1) -> Trickled:
    """Sends `prefix`, then one byte per `interval` until the server answers or closes; then reads to the end."""
    started = time.monotonic()
    received = b""
    reset = False
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_SECONDS) as sock:
        sock.sendall(prefix)
        while time.monotonic() - started < GIVE_UP_SECONDS:
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                break
            try:
                sock.send(b"a")
            except OSError:
                break
            sent += 1
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            reset = True
    return Trickled(sent_bytes=sent, seconds=time.monotonic() - started, received=received, reset=reset)


@pytest.fixture
def server(postgres: PostgresServer) -> Iterator[LiveServer]:
    settings = settings_for(
        postgres.create_database(),
        REQUEST_HEADER_TIMEOUT_SECONDS="1",
        REQUEST_BODY_TIMEOUT_SECONDS="2",
        KEEP_ALIVE_TIMEOUT_SECONDS="2",
    )
    with live_app(settings) as live:
        live.wait_ready()
        yield live


def test_headers_trickled_byte_by_byte_get_408_and_a_clean_close(server: LiveServer) -> None:
    # RFC 9110, 15.5.9: "A server SHOULD send the "close" connection option ... since 408 implies that the server
    # has decided to close the connection rather than continue waiting."
    result = trickle(server.port, SLOW_HEADERS)
    assert result.seconds < GIVE_UP_SECONDS, "the server let the client trickle headers as long as it liked"
    assert not result.reset
    assert result.head.startswith("http/1.1 408"), result.received[:200]
    assert "connection: close" in result.head
    assert result.body["error"] == "request_timeout"


def test_a_body_trickled_byte_by_byte_gets_408_in_the_error_shape_and_a_clean_close(
    server: LiveServer, captured_output: LogCapture
) -> None:
    result = trickle(server.port, SLOW_BODY)
    assert result.seconds < GIVE_UP_SECONDS, "the server let the client trickle its body as long as it liked"
    # RFC 9112, 9.6: "If a server performs an immediate close of a TCP connection, there is a significant risk that
    # the client will not be able to read the last HTTP response." This client was still sending when the 408 came.
    assert not result.reset
    assert result.head.startswith("http/1.1 408"), result.received[:200]
    assert "connection: close" in result.head and "x-request-id: slow-body" in result.head
    assert result.body["error"] == "request_timeout"
    assert [(f["field"], f["location"]) for f in result.body["fields"]] == [("request_body", "request")]

    def request_line() -> list[dict]:
        lines = [json.loads(line) for line in captured_output.lines()]
        return [r for r in lines if r.get("event") == "request" and r.get("request_id") == "slow-body"]

    assert wait_until(request_line, timeout=5, what="the request line")[0]["status"] == 408


def test_twenty_slow_bodies_are_all_cut_off_while_other_requests_are_served(server: LiveServer) -> None:
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(trickle, server.port, SLOW_BODY) for _ in range(20)]
        with server.client() as client:
            served = [client.get("/api/notes", params={"limit": 1}).status_code for _ in range(5)]
        results = [f.result(timeout=GIVE_UP_SECONDS + 10) for f in futures]
    assert served == [200] * 5
    assert all(r.head.startswith("http/1.1 408") and not r.reset for r in results)
    assert max(r.seconds for r in results) < GIVE_UP_SECONDS


def test_a_silent_connection_is_closed_after_the_keep_alive_timeout(server: LiveServer) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=GIVE_UP_SECONDS) as sock:
        assert sock.recv(1) == b""
    assert time.monotonic() - started < GIVE_UP_SECONDS


def test_a_body_sent_in_pieces_within_its_deadline_is_accepted(server: LiveServer) -> None:
    def pieces() -> Iterator[bytes]:
        for piece in (b'{"title": ', b'"sent in ', b'pieces"}'):
            time.sleep(0.1)
            yield piece

    with server.client() as client:
        response = client.post("/api/notes", content=pieces(), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "sent in pieces"


def test_request_deadlines_are_settings(postgres: PostgresServer) -> None:
    settings = settings_for(postgres.create_database(), REQUEST_HEADER_TIMEOUT_SECONDS="7")
    with live_app(settings) as live:
        config = live.server.config
        assert (config.header_timeout, config.body_timeout, config.timeout_keep_alive) == (7, 30, 75)
        assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
