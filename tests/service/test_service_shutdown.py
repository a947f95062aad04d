"""SIGTERM on the production entry point: stop accepting, finish what was accepted, close the pool, exit 0."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from service_support import ServiceProcess, service_env, wait_until
from svc_postgres import Database

pytestmark = pytest.mark.xdist_group("service")

IN_FLIGHT = 8
Start = Callable[[dict[str, str]], ServiceProcess]


def blocked_on_lock(db: Database) -> int:
    with db.connect() as monitor:
        row = monitor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s", (db.name,)
        ).fetchone()
    return int(row[0]) if row else 0


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def slow_request(url: str, i: int) -> int:
    # Reads and writes both wait on the table lock the test holds: a real slow path, no test-only endpoint.
    if i % 2:
        return httpx.post(f"{url}/api/notes", json={"title": f"in flight {i}"}, timeout=30).status_code
    return httpx.get(f"{url}/api/notes", timeout=30).status_code


def start_ready(start: Start, db: Database, **env: str) -> ServiceProcess:
    # The table lock stands in for slow requests, which must outlast the default statement timeout here.
    process = start(service_env(db, **{"DB_TIMEOUT_MS": "30000", **env}))
    process.wait_healthy()
    wait_until(lambda: httpx.get(f"{process.url}/readyz", timeout=5).status_code == 200, timeout=20, what="ready")
    return process


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_finishes_accepted_requests_then_exits_zero(
    database: Database, service_process: Start, workers: str
) -> None:
    process = start_ready(service_process, database, WORKERS=workers, SHUTDOWN_TIMEOUT_SECONDS="15")
    with database.connect() as admin, concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        futures = [pool.submit(slow_request, process.url, i) for i in range(IN_FLIGHT)]
        wait_until(lambda: blocked_on_lock(database) == IN_FLIGHT, timeout=15, what="requests in flight")

        process.terminate()
        terminated_at = time.monotonic()
        wait_until(lambda: refuses_connections(process.port), timeout=5, what="listener closed")
        time.sleep(0.5)
        assert process.process.poll() is None, "exited while requests were still in flight"
        assert not any(f.done() for f in futures)

        admin.execute("ROLLBACK")
        statuses = [f.result(timeout=30) for f in futures]

    assert process.wait_exit(timeout=15) == 0
    assert time.monotonic() - terminated_at < 15
    assert sorted(statuses) == [200] * (IN_FLIGHT // 2) + [201] * (IN_FLIGHT // 2)
    logged = [json.loads(line) for line in process.lines if '"event": "request"' in line]
    assert sum(1 for line in logged if line["path"] == "/api/notes" and line["status"] in (200, 201)) >= IN_FLIGHT


def test_idle_service_starts_fast_and_stops_fast_on_sigterm(database: Database, service_process: Start) -> None:
    process = service_process(service_env(database))
    startup = process.wait_healthy()
    process.terminate()
    terminated_at = time.monotonic()
    assert process.wait_exit(timeout=10) == 0
    shutdown = time.monotonic() - terminated_at
    # Generous bounds for a busy CI machine; typical here is 0.7 s and 0.4 s.
    assert startup < 15, f"start-up to first /healthz 200 took {startup:.2f} s"
    assert shutdown < 5, f"shutdown after SIGTERM took {shutdown:.2f} s"
    assert process.process.stderr is not None and "Traceback" not in process.process.stderr.read()


def test_requests_stuck_past_the_timeout_do_not_delay_exit(database: Database, service_process: Start) -> None:
    process = start_ready(service_process, database, SHUTDOWN_TIMEOUT_SECONDS="2")
    with database.connect() as admin, concurrent.futures.ThreadPoolExecutor(2) as pool:
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        futures = [pool.submit(slow_request, process.url, i) for i in range(2)]
        wait_until(lambda: blocked_on_lock(database) == 2, timeout=15, what="requests in flight")
        process.terminate()
        terminated_at = time.monotonic()
        assert process.wait_exit(timeout=15) == 0
        elapsed = time.monotonic() - terminated_at
        admin.execute("ROLLBACK")
        for future in futures:
            future.exception(timeout=30)
    # The timeout (2 s) plus closing the pool (at most 3 s): well inside any ECS stop timeout.
    assert elapsed < 8, f"exit took {elapsed:.2f} s"


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def read_to_end(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; True when it ended with a reset instead of a close."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return data, True
    return data, False


def test_a_request_on_a_kept_alive_connection_after_sigterm_is_answered_then_the_connection_closes(
    database: Database, service_process: Start
) -> None:
    process = start_ready(service_process, database)
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", process.port), timeout=10) as sock:
        sock.sendall(request)
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()

        process.terminate()
        # The listener is closed: shutdown has begun, and this idle kept-alive connection is being drained.
        wait_until(lambda: refuses_connections(process.port), timeout=5, interval=0.01, what="listener closed")
        sock.sendall(request)
        answer, reset = read_to_end(sock)

    assert not reset, "the server reset a connection with a request on it"
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert process.wait_exit(timeout=15) == 0
