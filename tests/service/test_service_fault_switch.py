"""The drill's fault switch (FAULT_ERROR_RATE, FAULT_LATENCY_MS) against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable

import pytest
from service_support import LogCapture, ServiceProcess, live_app, service_env, settings_for, wait_until
from svc_postgres import PostgresServer

from service.faults import FaultInjector
from service.settings import ConfigError

pytestmark = pytest.mark.xdist_group("service")

API_PATHS = ("/", "/api/notes")
HEALTH_PATHS = ("/healthz", "/readyz")


def test_off_by_default(postgres: PostgresServer, captured_output: LogCapture) -> None:
    settings = settings_for(postgres.create_database())
    assert (settings.fault_error_rate, settings.fault_latency_ms) == (0.0, 0)
    with live_app(settings) as live, live.client() as client:
        live.wait_ready()
        statuses = {client.get(path).status_code for path in API_PATHS * 20}
    assert statuses == {200}

    def events() -> list[str | None]:
        return [json.loads(line).get("event") for line in captured_output.lines()]

    wait_until(lambda: events().count("request") >= 40, timeout=10, what="the request lines")
    assert not set(events()) & {"fault_switch_on", "fault_injected"}


def test_rate_one_fails_every_api_request_and_no_health_request(
    postgres: PostgresServer, captured_output: LogCapture
) -> None:
    settings = settings_for(postgres.create_database(), FAULT_ERROR_RATE="1")
    with live_app(settings) as live, live.client() as client:
        live.wait_ready()
        for i, path in enumerate(HEALTH_PATHS * 10):
            assert client.get(path, headers={"X-Request-Id": f"health-{i}"}).status_code == 200, path
        failed = [client.get(path, headers={"X-Request-Id": f"api-{i}"}) for i, path in enumerate(API_PATHS * 5)]
        failed.append(client.post("/api/notes", json={"title": "never stored"}, headers={"X-Request-Id": "api-post"}))
        failed.append(
            client.get("/api/notes/00000000-0000-0000-0000-000000000000", headers={"X-Request-Id": "api-get"})
        )
    assert [r.status_code for r in failed] == [500] * len(failed)
    for response in failed:
        # The service's usual error body, with the request id like any other error.
        assert response.json() == {
            "error": "internal_error",
            "message": "Internal error",
            "request_id": response.headers["x-request-id"],
            "fields": [],
        }

    def ours() -> list[dict] | None:
        lines = [json.loads(line) for line in captured_output.lines()]
        found = [r for r in lines if r.get("event") == "request" and r["request_id"].startswith(("health-", "api-"))]
        return found if len(found) == 20 + len(failed) else None

    lines = wait_until(ours, timeout=10, what="the request lines")
    health = [r for r in lines if r["request_id"].startswith("health-")]
    served = [r for r in lines if r["request_id"].startswith("api-")]
    assert {r["path"] for r in health} == set(HEALTH_PATHS)
    assert all(r["status"] == 200 and r["ServerErrors"] == 0 for r in health)
    # Counted as server errors (the ServerErrors metric) and logged like any failed request.
    assert all(r["status"] == 500 and r["ServerErrors"] == 1 and r["level"] == "WARNING" for r in served)
    records = [json.loads(line) for line in captured_output.lines()]
    injected = [r for r in records if r.get("event") == "fault_injected"]
    assert len(injected) == len(failed) and all(r["level"] == "ERROR" for r in injected)
    assert "FAULT_ERROR_RATE=1" in injected[0]["exc_info"]
    assert [r["message"] for r in records if r.get("event") == "fault_switch_on"] == [
        "fault switch on (drill only): FAULT_ERROR_RATE=1 FAULT_LATENCY_MS=0"
    ]


def test_rate_one_half_fails_some_and_passes_some(postgres: PostgresServer) -> None:
    settings = settings_for(postgres.create_database(), FAULT_ERROR_RATE="0.5")
    faults = FaultInjector(error_rate=settings.fault_error_rate, draw=random.Random(20261201).random)
    with live_app(settings, faults=faults) as live, live.client() as client:
        live.wait_ready()
        statuses = [client.get(API_PATHS[i % 2]).status_code for i in range(200)]
        health = {client.get(path).status_code for path in HEALTH_PATHS * 20}
    assert set(statuses) == {200, 500}
    # Seeded: the same draws every run, so the share is fixed; it is near one half.
    assert 80 <= statuses.count(500) <= 120, statuses.count(500)
    assert health == {200}


def test_latency_is_added_to_api_requests_only(postgres: PostgresServer) -> None:
    delays: list[float] = []

    async def recording_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    settings = settings_for(postgres.create_database(), FAULT_LATENCY_MS="40")
    assert settings.fault_latency_ms == 40
    faults = FaultInjector(latency_ms=settings.fault_latency_ms, sleep=recording_sleep)
    with live_app(settings, faults=faults) as live, live.client() as client:
        live.wait_ready()
        delays.clear()
        for path in HEALTH_PATHS * 5:
            assert client.get(path).status_code == 200
        assert delays == []
        statuses = [client.get(path).status_code for path in API_PATHS * 3]
    # Latency alone fails nothing; every API request waited the configured time first.
    assert statuses == [200] * 6
    assert delays == [0.04] * 6


def test_latency_setting_reaches_the_server_without_injection(postgres: PostgresServer) -> None:
    settings = settings_for(postgres.create_database(), FAULT_LATENCY_MS="1", FAULT_ERROR_RATE="0")
    with live_app(settings) as live:
        faults = live.app.user_middleware[0].kwargs["faults"]
        assert (faults.latency_ms, faults.error_rate, faults.enabled) == (1, 0.0, True)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"FAULT_ERROR_RATE": "1.5"}, "FAULT_ERROR_RATE must be a number 0-1"),
        ({"FAULT_ERROR_RATE": "-0.1"}, "FAULT_ERROR_RATE must be a number 0-1"),
        ({"FAULT_ERROR_RATE": "nan"}, "FAULT_ERROR_RATE must be a number 0-1"),
        ({"FAULT_ERROR_RATE": "half"}, "FAULT_ERROR_RATE must be a number 0-1 (the share of requests to fail"),
        ({"FAULT_LATENCY_MS": "-5"}, "FAULT_LATENCY_MS must be an integer 0-59000, got '-5'"),
        ({"FAULT_LATENCY_MS": "0.5"}, "FAULT_LATENCY_MS must be an integer 0-59000"),
        ({"FAULT_LATENCY_MS": "60000"}, "FAULT_LATENCY_MS must be an integer 0-59000"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_for(**changes, DB_HOST="127.0.0.1", DB_USER="unused", DB_NAME="unused")
    assert str(error.value).startswith(message), str(error.value)


@pytest.mark.parametrize(("raw", "rate"), [("0", 0.0), ("1", 1.0), ("0.25", 0.25), (".5", 0.5), ("1.0", 1.0)])
def test_good_rates_are_read(raw: str, rate: float) -> None:
    assert settings_for(FAULT_ERROR_RATE=raw, DB_HOST="127.0.0.1", DB_USER="u", DB_NAME="n").fault_error_rate == rate


def test_bad_value_stops_the_process_at_start_up(service_process: Callable[[dict[str, str]], ServiceProcess]) -> None:
    process = service_process(service_env(DB_HOST="127.0.0.1", DB_USER="u", DB_NAME="n", FAULT_ERROR_RATE="2"))
    assert process.wait_exit(timeout=30) == 2
    assert process.process.stderr is not None
    assert process.process.stderr.read().startswith("ConfigError: FAULT_ERROR_RATE must be a number 0-1")
