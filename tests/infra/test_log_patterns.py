"""The metric filters on the service's log group match the log lines the service really writes.

The patterns come from stages.service_alarms.log_patterns (the same text the templates carry); the log lines come
from the service itself, run in-process against the session PostgreSQL and against an unreachable database.
Nothing here hand-writes a service log line: the evaluator's own unit tests use made-up events only.
"""

from __future__ import annotations

import json
import math
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk.aws_logs as cdk_logs
import httpx
import pytest

from config import AppConfig, EnvironmentConfig, load_config
from stages.service_alarms import LogPattern, log_patterns
from tests.infra.configured import environment_names
from tests.infra.filter_pattern import FilterPatternError, matches, parse

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"
if str(SERVICE_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVICE_TESTS))

from service_support import (  # noqa: E402
    LogCapture,
    json_logging,  # noqa: F401  (autouse: the production logging configuration)
    live_app,
    postgres,  # noqa: F401  (session PostgreSQL server)
    settings_for,
)
from svc_postgres import PostgresServer  # noqa: E402

from service.logs import OUTPUT  # noqa: E402

pytestmark = pytest.mark.xdist_group("service")

ENVS = environment_names()

# ---------------------------------------------------------------------------------------------------------------
# The evaluator, on events modelled after the AWS documentation's JSON filter-pattern examples.

EVENT = json.dumps(
    {
        "eventType": "UpdateTrail",
        "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": None,
        "ThisFlag": True,
        "bandwidth": 80,
        "latency": 12.5,
        "errorCode": "400",
    }
)
USERS = json.dumps(
    {
        "user": {"id": 1, "email": "John.Stiles@example.com"},
        "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
        "actions": ["GET", "PUT", "DELETE"],
        "coordinates": [[0, 1], [2, 3]],
    }
)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ('{ $.eventType = "UpdateTrail" }', EVENT, True),
        ("{ $.eventType = UpdateTrail }", EVENT, True),
        ('{ $.eventType = "updatetrail" }', EVENT, False),  # case-sensitive
        ('{ $.eventType = "Update" }', EVENT, False),  # whole value, not a substring
        ('{ $.eventType = "Update*" }', EVENT, True),
        ('{ $.eventType = "*Trail" }', EVENT, True),
        ("{ $.sourceIPAddress != 123.123.* }", EVENT, True),
        ("{ $.sourceIPAddress = 111.111.* }", EVENT, True),
        ('{ $.arrayKey[0] = "value" }', EVENT, True),
        ('{ $.arrayKey[1] = "value" }', EVENT, False),
        ("{ $.objectList[1].id = 2 }", EVENT, True),
        ("{ $.objectList[5].id = 2 }", EVENT, False),
        ("{ $.SomeObject IS NULL }", EVENT, True),
        ("{ $.eventType IS NULL }", EVENT, False),
        ("{ $.SomeOtherObject NOT EXISTS }", EVENT, True),
        ("{ $.SomeObject NOT EXISTS }", EVENT, False),  # present with value null
        ("{ $.ThisFlag IS TRUE }", EVENT, True),
        ("{ $.ThisFlag IS FALSE }", EVENT, False),
        ("{ $.bandwidth > 75 }", EVENT, True),
        ("{ $.bandwidth >= 80 }", EVENT, True),
        ("{ $.bandwidth < 80 }", EVENT, False),
        ("{ $.latency <= 12.5 }", EVENT, True),
        ("{ $.latency = 1.25e1 }", EVENT, True),
        ("{ $.latency != 12.5 }", EVENT, False),
        ("{ $.errorCode = 400 }", EVENT, False),  # numeric comparison only on numbers: "400" is a string
        ("{ $.errorCode > 100 }", EVENT, False),
        ("{ $.eventType > 1 }", EVENT, False),
        ("{ $.ThisFlag = 1 }", EVENT, False),  # a boolean is not a number
        ('{ $.missing != "x" }', EVENT, False),  # an absent field never compares
        ("{ $.missing < 1 }", EVENT, False),
        ("{ $.eventType = * }", EVENT, True),
        ("{ $.missing = * }", EVENT, False),
        ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', USERS, True),
        ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', USERS, False),
        ('{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = 0 && $.actions[2] = "x" }', USERS, True),
        ('{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = 0) && $.actions[2] = "x" }', USERS, False),
        ("{ $.coordinates[1][0] = 2 }", USERS, True),
        ('{ $.user.id = 1 && $.actions[0] = "GET" && $.users[1].id >= 3 }', USERS, True),
        ('{ $.eventType = "UpdateTrail" }', "UpdateTrail happened", False),  # not JSON
        ('{ $.eventType = "UpdateTrail" }', '["UpdateTrail"]', False),  # JSON, but not an object
    ],
)
def test_evaluator_follows_the_documented_semantics(pattern: str, event: str, expected: bool) -> None:
    assert matches(pattern, event) is expected


def test_evaluator_reads_what_the_cdk_pattern_builders_render() -> None:
    fp = cdk_logs.FilterPattern
    pattern = fp.all(
        fp.string_value("$.eventType", "=", "Update*"),
        fp.any(fp.number_value("$.bandwidth", ">", 75), fp.boolean_value("$.ThisFlag", False)),
        fp.is_null("$.SomeObject"),
        fp.not_exists("$.SomeOtherObject"),
        fp.exists("$.sourceIPAddress"),
    ).log_pattern_string
    assert matches(pattern, EVENT)
    assert not matches(fp.number_value("$.bandwidth", "<", 75).log_pattern_string, EVENT)


@pytest.mark.parametrize(
    "pattern",
    [
        "ERROR",  # a term pattern, not JSON
        "[ip, user, status > 400]",  # space-delimited
        "{ }",
        "{ $.a = }",
        '{ $.a > "x" }',  # strings compare only with = and !=
        "{ $.a > abc }",
        "{ $.a = 1 && }",
        "{ ($.a = 1 }",
        "{ $.a = 1 $.b = 2 }",
        "{ $.a IS MAYBE }",
        "{ $.a = %ab+c% }",  # regex values are outside the subset
    ],
)
def test_evaluator_rejects_what_it_does_not_implement(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        parse(pattern)


# ---------------------------------------------------------------------------------------------------------------
# The real thing: the service's own log lines.


@dataclass(frozen=True)
class Line:
    text: str
    record: dict[str, Any]


@dataclass(frozen=True)
class ServiceLines:
    all: list[Line]
    healthz: Line  # GET /healthz on a healthy service: event=request, INFO, fast
    unhandled_error: Line  # the ERROR line, with stack trace, of a request that raised
    unhandled_request: Line  # that request's own line: 500, WARNING
    db_error: Line  # ERROR db_error line of an API call while the database is down
    db_request: Line  # that request's own line: 503 after waiting for a connection (slow)
    pool_warnings: list[Line]  # psycopg pool's failed (re)connections, tagged db_error, WARNING


def _by_request(lines: list[Line], request_id: str, **fields: Any) -> Line:
    found = [
        line
        for line in lines
        if line.record.get("request_id") == request_id and all(line.record.get(k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (request_id, fields, [line.record for line in lines])
    return found[0]


@pytest.fixture(scope="module")
def service_lines(postgres: PostgresServer, json_logging: None) -> Iterator[ServiceLines]:  # noqa: F811
    capture = LogCapture()
    previous = OUTPUT.stream
    OUTPUT.stream = capture  # type: ignore[assignment]
    try:
        with live_app(settings_for(postgres.create_database())) as server:
            server.wait_ready()

            # The path the service's own tests use for an unhandled exception (test_service_telemetry): the
            # route is the test's, the 500 response, the ERROR line and the request line are the service's.
            @server.app.get("/raises")
            async def raises() -> None:
                raise RuntimeError("metric filter probe")

            with server.client() as client:
                assert client.get("/healthz", headers={"X-Request-Id": "lp-healthz"}).status_code == 200
                assert client.get("/raises", headers={"X-Request-Id": "lp-raises"}).status_code == 500

        # A database that accepts connections and never answers (a hung host): the request waits out its deadline
        # and logs its own db_error. A refused port would not do: the circuit breaker then refuses at once.
        with socket.create_server(("127.0.0.1", 0)) as silent:
            unreachable = settings_for(
                None, DB_HOST="127.0.0.1", DB_PORT=str(silent.getsockname()[1]), DB_USER="nobody", DB_NAME="nothing"
            )
            with live_app(unreachable) as server, server.client() as client:
                response = client.get("/api/notes", headers={"X-Request-Id": "lp-db-down"})
                assert response.status_code == 503, response.text
    finally:
        OUTPUT.stream = previous

    # Only the service's lines: the in-process HTTP client (httpx) logs through the same root handler.
    lines = [Line(text, json.loads(text)) for text in capture.lines()]
    lines = [line for line in lines if line.record["logger"] != "httpx"]
    yield ServiceLines(
        all=lines,
        healthz=_by_request(lines, "lp-healthz", event="request"),
        unhandled_error=_by_request(lines, "lp-raises", level="ERROR"),
        unhandled_request=_by_request(lines, "lp-raises", event="request"),
        db_error=_by_request(lines, "lp-db-down", event="db_error"),
        db_request=_by_request(lines, "lp-db-down", event="request"),
        pool_warnings=[line for line in lines if line.record["logger"].startswith("psycopg")],
    )


def pattern_of(config: EnvironmentConfig, metric_name: str) -> LogPattern:
    return next(item for item in log_patterns(config) if item.metric_name == metric_name)


def test_the_sample_lines_are_what_the_contract_describes(service_lines: ServiceLines) -> None:
    # Guards the fixture: if the service stopped producing one of these, the tests below would prove nothing.
    healthz = service_lines.healthz.record
    assert healthz["level"] == "INFO" and healthz["status"] == 200 and healthz["path"] == "/healthz"
    error = service_lines.unhandled_error.record
    assert "Traceback" in error["exc_info"] and "RuntimeError: metric filter probe" in error["exc_info"]
    assert error.get("event") != "db_error"
    assert service_lines.unhandled_request.record["status"] == 500
    assert service_lines.unhandled_request.record["level"] == "WARNING"
    db_error = service_lines.db_error.record
    assert db_error["level"] == "ERROR" and "PoolTimeout" in db_error["exc_info"]
    assert service_lines.db_request.record["status"] == 503
    assert service_lines.pool_warnings, "the pool logged no failed connection while the database was down"
    assert all(
        line.record["level"] == "WARNING" and line.record["event"] == "db_error"
        for line in service_lines.pool_warnings
    )
    # Lines from uvicorn (startup, shutdown) are JSON objects too and must stay out of every filter.
    assert any(line.record["logger"].startswith("uvicorn") for line in service_lines.all)


@pytest.mark.parametrize("env", ENVS)
def test_error_filter_counts_error_lines_only(service_lines: ServiceLines, config: AppConfig, env: str) -> None:
    pattern = pattern_of(config.environment(env), "ErrorLogLines").pattern
    assert matches(pattern, service_lines.unhandled_error.text)
    assert matches(pattern, service_lines.db_error.text)
    assert not matches(pattern, service_lines.healthz.text)
    # A 5xx request line is WARNING: the ERROR line next to it carries the stack trace and is counted once.
    assert not matches(pattern, service_lines.unhandled_request.text)
    assert not matches(pattern, service_lines.db_request.text)
    assert not any(matches(pattern, line.text) for line in service_lines.pool_warnings)
    for line in service_lines.all:
        assert matches(pattern, line.text) is (line.record["level"] == "ERROR"), line.record


@pytest.mark.parametrize("env", ENVS)
def test_database_error_filter_counts_db_error_lines_only(
    service_lines: ServiceLines, config: AppConfig, env: str
) -> None:
    pattern = pattern_of(config.environment(env), "DatabaseErrorLogLines").pattern
    assert matches(pattern, service_lines.db_error.text)
    assert all(matches(pattern, line.text) for line in service_lines.pool_warnings)
    assert not matches(pattern, service_lines.unhandled_error.text)
    assert not matches(pattern, service_lines.db_request.text)  # the request line of the same failed request
    assert not matches(pattern, service_lines.healthz.text)
    for line in service_lines.all:
        assert matches(pattern, line.text) is (line.record.get("event") == "db_error"), line.record


@pytest.mark.parametrize("env", ENVS)
def test_slow_request_filter_at_the_configured_threshold(
    service_lines: ServiceLines, config: AppConfig, env: str
) -> None:
    threshold = config.environment(env).alarms.slow_request_ms
    pattern = pattern_of(config.environment(env), "SlowRequests").pattern
    # A request waiting for the database's pool (3 s acquire timeout) is a real slow request.
    assert service_lines.db_request.record["duration_ms"] > threshold
    assert matches(pattern, service_lines.db_request.text)
    assert service_lines.healthz.record["duration_ms"] <= threshold
    assert not matches(pattern, service_lines.healthz.text)
    # Slow ERROR lines are not requests: no event=request, no duration.
    assert not matches(pattern, service_lines.db_error.text)
    assert not matches(pattern, service_lines.unhandled_error.text)
    for line in service_lines.all:
        record = line.record
        expected = record.get("event") == "request" and record["duration_ms"] > threshold
        assert matches(pattern, line.text) is expected, record


def test_slow_request_threshold_from_config_is_strict_at_the_real_line(
    service_lines: ServiceLines, context: dict[str, Any], config: AppConfig
) -> None:
    # Thresholds set through the configuration (as `-c delivery.environments.dev.alarms.slow_request_ms=…` would)
    # around the real slow line's duration: just below it counts the line, at or above it does not (`>`).
    duration = service_lines.db_request.record["duration_ms"]
    below, at_or_above = math.ceil(duration) - 1, math.ceil(duration)
    name = config.environments[0].name

    def pattern_with(threshold: int) -> str:
        overridden = load_config({**context, f"delivery.environments.{name}.alarms.slow_request_ms": str(threshold)}, {})
        env = overridden.environment(name)
        assert env.alarms.slow_request_ms == threshold
        return pattern_of(env, "SlowRequests").pattern

    assert matches(pattern_with(below), service_lines.db_request.text)
    assert not matches(pattern_with(at_or_above), service_lines.db_request.text)
    # The lowest threshold the configuration accepts (10 ms) renders a pattern that still counts it.
    assert matches(pattern_with(10), service_lines.db_request.text)
