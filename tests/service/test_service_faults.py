"""The database misbehaving under the service: frozen, stopped, slow. Every request ends within its budget, a known
outage is refused at once, and the service recovers by itself when the database does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
import uuid

import httpx
import pytest
from service_support import LogCapture, live_app, settings_for, wait_until
from svc_postgres import Database, PostgresServer

from service.breaker import CircuitBreaker, CircuitOpen
from service.credentials import DbCredentials, StaticCredentials
from service.db import Database as ServiceDatabase

pytestmark = pytest.mark.xdist_group("service")

# The service's budget for one database call in these tests (the server-side statement timeout is 2/3 of it).
BUDGET_MS = 1500
BUDGET = BUDGET_MS / 1000
READY_BUDGET = 2.0
# Generous: the database stays frozen or stopped for as long as the test runs, so a request that waited for it
# would take far longer than this.
BOUNDED = 6.0


def timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def circuit_open(client: httpx.Client) -> bool:
    response = client.get("/readyz")
    return response.status_code == 503 and "CircuitOpen" in (response.json()["reason"] or "")


def note_count(db: Database, title: str) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM notes WHERE title = %s", (title,)).fetchone()
    return int(row[0]) if row else 0


def logged(capture: LogCapture, **fields: object) -> list[dict]:
    lines = [json.loads(line) for line in capture.lines()]
    return [line for line in lines if all(line.get(k) == v for k, v in fields.items())]


def assert_unavailable(response: httpx.Response) -> None:
    # RFC 9110, 10.2.3: "When sent with a 503 (Service Unavailable) response, Retry-After indicates how long the
    # service is expected to be unavailable to the client."
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert response.headers["retry-after"] == "1"


def test_a_frozen_database_costs_each_request_its_budget_then_requests_fail_fast(
    own_postgres: PostgresServer, captured_output: LogCapture
) -> None:
    db = own_postgres.create_database()
    with live_app(settings_for(db, DB_TIMEOUT_MS=str(BUDGET_MS))) as server, server.client(timeout=30) as client:
        server.wait_ready()
        note = client.post("/api/notes", json={"title": "before the freeze"}).json()
        key = str(uuid.uuid4())
        own_postgres.pause()
        try:
            calls = [("GET", f"/api/notes/{note['id']}", {})] * 4 + [
                ("GET", "/api/notes", {}),
                ("POST", "/api/notes", {"json": {"title": "during the freeze"}, "headers": {"Idempotency-Key": key}}),
                ("GET", "/readyz", {}),
            ]
            with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
                results = list(pool.map(lambda call: timed(client, call[0], call[1], **call[2]), calls))
            for (method, path, _), (response, elapsed) in zip(calls, results, strict=True):
                assert elapsed < BOUNDED, f"{method} {path} took {elapsed:.1f} s against a frozen database"
                if path == "/readyz":
                    assert response.status_code == 503
                    assert response.json()["status"] == "not_ready"
                    assert "database unreachable" in response.json()["reason"]
                else:
                    assert_unavailable(response)

            wait_until(lambda: circuit_open(client), timeout=15, what="the circuit to open")
            for _ in range(20):
                response, elapsed = timed(client, "GET", f"/api/notes/{note['id']}")
                assert_unavailable(response)
                # Refused without waiting for the database: well under the budget a waiting request would spend.
                assert elapsed < BUDGET, f"a refused request took {elapsed:.2f} s"
            response, elapsed = timed(client, "GET", "/readyz")
            assert response.status_code == 503 and elapsed < READY_BUDGET
            assert client.get("/healthz").status_code == 200
        finally:
            own_postgres.resume()

        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=15, what="recovery without restart")
        assert client.get(f"/api/notes/{note['id']}").json()["title"] == "before the freeze"
        # The write cut off by the deadline never committed: its retry creates the note exactly once.
        retried = client.post("/api/notes", json={"title": "during the freeze"}, headers={"Idempotency-Key": key})
        assert retried.status_code == 201
        assert client.post(
            "/api/notes", json={"title": "during the freeze"}, headers={"Idempotency-Key": key}
        ).json()["id"] == retried.json()["id"]
    assert note_count(db, "during the freeze") == 1

    opened = logged(captured_output, event="db_error", circuit="open", level="ERROR")
    assert opened and "Traceback" in opened[0]["exc_info"]
    assert logged(captured_output, event="db_recovered")


def test_a_stopped_database_is_refused_at_once_and_found_again_when_it_returns(
    own_postgres: PostgresServer, captured_output: LogCapture
) -> None:
    db = own_postgres.create_database()
    with live_app(settings_for(db, DB_TIMEOUT_MS=str(BUDGET_MS))) as server, server.client(timeout=30) as client:
        server.wait_ready()
        note = client.post("/api/notes", json={"title": "before the stop"}).json()
        own_postgres.stop()

        response, elapsed = timed(client, "GET", f"/api/notes/{note['id']}")
        assert_unavailable(response)
        assert elapsed < BOUNDED
        wait_until(lambda: circuit_open(client), timeout=15, what="the circuit to open")
        refused = [timed(client, "GET", "/api/notes") for _ in range(50)]
        for response, elapsed in refused:
            assert_unavailable(response)
            assert elapsed < BUDGET, f"a refused request took {elapsed:.2f} s"
        statuses = {client.post("/api/notes", json={"title": "while stopped"}).status_code for _ in range(5)}
        assert statuses == {503}

        own_postgres.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=15, what="recovery without restart")
        assert client.get(f"/api/notes/{note['id']}").json()["title"] == "before the stop"
        assert client.post("/api/notes", json={"title": "after the stop"}).status_code == 201
    assert note_count(db, "while stopped") == 0
    assert logged(captured_output, event="db_error", circuit="open")
    assert logged(captured_output, event="db_recovered")


def test_a_slow_statement_is_cancelled_by_the_server_and_opens_no_circuit(postgres: PostgresServer) -> None:
    db = postgres.create_database()
    with live_app(settings_for(db, DB_TIMEOUT_MS=str(BUDGET_MS))) as server, server.client(timeout=30) as client:
        server.wait_ready()
        with db.connect() as admin:
            admin.execute("BEGIN")
            admin.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
            for _ in range(4):
                response, elapsed = timed(client, "GET", "/api/notes")
                assert_unavailable(response)
                assert elapsed < BOUNDED
            # The server answered each time (with its statement timeout): it is slow, not gone.
            assert client.get("/readyz").status_code == 200
            admin.execute("ROLLBACK")
        assert client.get("/api/notes").status_code == 200


def test_breaker_opens_on_consecutive_failures_only_and_closes_on_the_first_successful_probe() -> None:
    async def scenario() -> None:
        outcomes: list[Exception | None] = [OSError("refused"), OSError("refused"), None]
        probes = 0

        async def probe() -> None:
            nonlocal probes
            probes += 1
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome

        breaker = CircuitBreaker(probe=probe, failure_threshold=3, probe_interval=0.01)
        breaker.failure(OSError("one"))
        breaker.failure(OSError("two"))
        breaker.success()
        breaker.failure(OSError("three"))
        breaker.failure(OSError("four"))
        breaker.check()
        assert not breaker.is_open
        breaker.failure(OSError("five"))
        assert breaker.is_open
        with pytest.raises(CircuitOpen):
            breaker.check()
        assert await breaker.wait_closed(timeout=10)
        breaker.check()
        assert probes == 3 and not outcomes
        await breaker.stop()

    asyncio.run(scenario())


def test_every_refusal_carries_retry_after_in_the_openapi_document(postgres: PostgresServer) -> None:
    with live_app(settings_for(postgres.create_database())) as server:
        document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/") and "503" in operation["responses"]:
                assert "Retry-After" in operation["responses"]["503"]["headers"], (method, path)



def test_calls_waiting_for_a_connection_are_refused_the_moment_the_circuit_opens(database: Database) -> None:
    credentials = StaticCredentials(
        DbCredentials(host="127.0.0.1", port=database.server.port, user=database.user, password=database.password)
    )

    async def scenario() -> tuple[type[BaseException], float]:
        service_db = ServiceDatabase(credentials=credentials, dbname=database.name, max_size=1, operation_timeout=30)
        await service_db.open()
        try:
            holding = asyncio.create_task(service_db.run(lambda conn: conn.execute("SELECT pg_sleep(2)")))
            await asyncio.sleep(0.3)
            waiting = asyncio.create_task(service_db.run(lambda conn: conn.execute("SELECT 1")))
            await asyncio.sleep(0.3)
            assert not waiting.done()
            started = time.monotonic()
            for _ in range(3):
                service_db.breaker.failure(OSError("stand-in for refused connections"))
            error = await asyncio.wait_for(asyncio.gather(waiting, return_exceptions=True), 10)
            refused_after = time.monotonic() - started
            await holding
            return type(error[0]), refused_after
        finally:
            await service_db.close()

    error, refused_after = asyncio.run(scenario())
    assert error is CircuitOpen
    # It did not wait for the connection the other call held for two seconds.
    assert refused_after < 1.5
