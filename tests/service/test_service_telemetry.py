"""Log lines and EMF metrics exactly as docs/contracts.md names them (stages/ metric filters depend on them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from aws_embedded_metrics.logger.metrics_context import MetricsContext
from aws_embedded_metrics.serializers.log_serializer import LogSerializer
from service_support import LogCapture, ServiceProcess, live_app, service_env, settings_for, wait_until
from svc_postgres import PostgresServer, free_port

from service.logs import LineWriter
from service.metrics import RequestTelemetry, declare

pytestmark = pytest.mark.xdist_group("service")

REQUEST_FIELDS = {"level", "logger", "message", "event", "request_id", "method", "path", "status", "duration_ms"}
METRICS = {"Requests": "Count", "ServerErrors": "Count", "Latency": "Milliseconds"}


def records(lines: list[str]) -> list[dict]:
    parsed = [json.loads(line) for line in lines]
    for record in parsed:
        assert {"level", "logger", "message"} <= record.keys(), record
        assert record["level"] in ("INFO", "WARNING", "ERROR"), record
    return parsed


def request_lines(lines: list[str], path: str) -> list[dict]:
    return [r for r in records(lines) if r.get("event") == "request" and r["path"] == path]


def assert_emf(record: dict, *, environment: str, namespace: str) -> None:
    directive = record["_aws"]["CloudWatchMetrics"]
    assert len(directive) == 1
    assert directive[0]["Namespace"] == namespace
    assert directive[0]["Dimensions"] == [["Environment"]]
    assert {m["Name"]: m["Unit"] for m in directive[0]["Metrics"]} == METRICS
    assert all(m["StorageResolution"] == 1 for m in directive[0]["Metrics"])
    assert isinstance(record["_aws"]["Timestamp"], int)
    assert record["Environment"] == environment
    assert record["Requests"] == 1
    assert record["Latency"] == record["duration_ms"]


@pytest.fixture(scope="module")
def production_process(postgres: PostgresServer) -> Iterator[ServiceProcess]:
    # `python -m service` as ECS runs it, its stdout being the log stream awslogs would ship.
    db = postgres.create_database()
    process = ServiceProcess(service_env(db, ENVIRONMENT="dev", METRICS_NAMESPACE="Delivery/Test"))
    try:
        process.wait_healthy()
        wait_until(lambda: httpx.get(f"{process.url}/readyz").status_code == 200, timeout=20, what="ready")
        yield process
    finally:
        process.terminate()
        process.wait_exit(timeout=15)
        process.stop()


def test_every_stdout_line_of_the_process_is_a_json_log_object(production_process: ServiceProcess) -> None:
    httpx.get(f"{production_process.url}/")
    wait_until(lambda: request_lines(production_process.lines, "/"), timeout=5, what="request line")
    assert records(production_process.lines)
    assert not any("color_message" in line for line in production_process.lines)


def test_request_line_has_the_contract_fields_and_is_the_emf_document(production_process: ServiceProcess) -> None:
    response = httpx.get(f"{production_process.url}/healthz", headers={"X-Request-Id": "req-contract-1"})
    assert response.headers["x-request-id"] == "req-contract-1"
    line = wait_until(
        lambda: [r for r in request_lines(production_process.lines, "/healthz") if r["request_id"] == "req-contract-1"],
        timeout=5,
        what="request line",
    )[0]
    assert line.keys() >= REQUEST_FIELDS
    assert line["event"] == "request" and line["method"] == "GET" and line["level"] == "INFO"
    assert line["status"] == 200 and isinstance(line["status"], int)
    assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
    assert line["ServerErrors"] == 0
    assert_emf(line, environment="dev", namespace="Delivery/Test")


def test_one_line_per_request(production_process: ServiceProcess) -> None:
    ids = [f"count-{i}" for i in range(5)]
    for request_id in ids:
        httpx.get(f"{production_process.url}/", headers={"X-Request-Id": request_id})

    def logged_ids() -> list[str]:
        return sorted(r["request_id"] for r in request_lines(production_process.lines, "/") if r["request_id"] in ids)

    wait_until(lambda: len(logged_ids()) >= len(ids), timeout=5, what="five request lines")
    assert logged_ids() == ids


def test_database_errors_are_logged_with_stack_trace_and_count_as_server_errors(
    service_process: Callable[[dict[str, str]], ServiceProcess],
) -> None:
    unreachable = {"DB_HOST": "127.0.0.1", "DB_PORT": str(free_port()), "DB_USER": "nobody", "DB_NAME": "nothing"}
    process = service_process(service_env(None, ENVIRONMENT="dev", **unreachable))
    process.wait_healthy()
    response = httpx.get(f"{process.url}/api/notes", headers={"X-Request-Id": "db-down-1"}, timeout=15)
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"

    def logged() -> tuple[list[dict], dict] | None:
        found = records(process.lines)
        errors = [r for r in found if r.get("event") == "db_error" and r["level"] == "ERROR"]
        request = [r for r in found if r.get("event") == "request" and r.get("request_id") == "db-down-1"]
        return (errors, request[0]) if errors and request else None

    errors, request = wait_until(logged, timeout=5, what="db_error and request lines")
    assert request["status"] == 503 and request["ServerErrors"] == 1 and request["level"] == "WARNING"
    # The request's own error line while the service still waits for the database, or the breaker's when it opens
    # (after which refused requests add no line of their own): either way the cause with its stack trace.
    assert all("Traceback" in e["exc_info"] for e in errors)
    assert any(e.get("request_id") == "db-down-1" or e.get("circuit") == "open" for e in errors)
    assert any("PoolTimeout" in e["exc_info"] or "OperationalError" in e["exc_info"] for e in errors)
    # The background migration and the pool report the outage too, tagged for the same metric filter.
    assert any(
        r.get("event") == "db_error" and r["logger"].startswith(("psycopg", "service")) for r in records(process.lines)
    )


def test_unhandled_errors_get_a_json_500_and_one_error_line_with_the_stack_trace(
    postgres: PostgresServer, captured_output: LogCapture
) -> None:
    app_settings = settings_for(postgres.create_database())
    with live_app(app_settings) as server:

        @server.app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("kaboom")

        response = httpx.get(f"{server.url}/boom", headers={"X-Request-Id": "boom-1"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error" and response.json()["request_id"] == "boom-1"
    assert "kaboom" not in response.text
    found = [r for r in records(captured_output.lines()) if r.get("request_id") == "boom-1"]
    errors = [r for r in found if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert "RuntimeError: kaboom" in errors[0]["exc_info"] and "Traceback" in errors[0]["exc_info"]
    request = next(r for r in found if r.get("event") == "request")
    assert request["status"] == 500 and request["ServerErrors"] == 1


def test_every_error_line_carries_a_stack_trace(postgres: PostgresServer, captured_output: LogCapture) -> None:
    with live_app(settings_for(postgres.create_database())) as server, server.client() as client:
        server.wait_ready()
        client.get("/api/notes/not-a-uuid")
        client.post("/api/notes", content=b"{")
    assert all("exc_info" in r for r in records(captured_output.lines()) if r["level"] == "ERROR")


def test_request_line_equals_what_the_library_serializes() -> None:
    class Lines:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            return None

    sink = Lines()
    RequestTelemetry(environment="prod", namespace="Delivery/Prod", writer=LineWriter(sink)).record(  # type: ignore[arg-type]
        request_id="abc", method="POST", path="/api/notes", status=502, duration_ms=12.5
    )
    ours = json.loads(sink.text)

    context: MetricsContext = declare(environment="prod", namespace="Delivery/Prod")
    context.metrics.clear()
    context.put_metric("Requests", 1, "Count", context.metric_name_and_resolution_map["Requests"])
    context.put_metric("ServerErrors", 1, "Count", context.metric_name_and_resolution_map["ServerErrors"])
    context.put_metric("Latency", 12.5, "Milliseconds", context.metric_name_and_resolution_map["Latency"])
    context.properties.update({k: v for k, v in ours.items() if k in REQUEST_FIELDS})
    library = json.loads(LogSerializer.serialize(context)[0])
    library["_aws"]["Timestamp"] = ours["_aws"]["Timestamp"]
    assert ours == library
    assert ours["level"] == "WARNING" and ours["ServerErrors"] == 1


def test_request_lines_are_written_once_per_loop_iteration_and_never_reordered() -> None:
    class Stream:
        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, text: str) -> None:
            self.writes.append(text)

        def flush(self) -> None:
            return None

    stream = Stream()
    writer = LineWriter(stream)  # type: ignore[arg-type]

    async def scenario() -> None:
        writer.write_soon("one")
        writer.write_soon("two")
        assert stream.writes == []
        await asyncio.sleep(0)
        assert stream.writes == ["one\ntwo\n"]
        writer.write_soon("three")
        writer.write("error")
        assert stream.writes[-1] == "three\nerror\n"

    asyncio.run(scenario())
