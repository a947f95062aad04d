"""The running container: health, environment-specific content, loopback-only publishing, graceful stop."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("docker")

STOP_TIMEOUT_SECONDS = 30
# Well inside the stop timeout: a clean stop must not be a SIGKILL at the deadline.
GRACEFUL_STOP_BUDGET_SECONDS = 10


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_healthz_answers_without_a_database(service: Any) -> None:
    response = httpx.get(f"{service.base_url}/healthz", timeout=5)
    assert response.status_code == 200


def test_root_shows_the_environment_and_version_it_was_given(service: Any) -> None:
    response = httpx.get(f"{service.base_url}/", timeout=5, headers={"Accept": "application/json"})
    assert response.status_code == 200
    values = _strings(response.json())
    assert service.environment["ENVIRONMENT"] in values, response.text
    assert service.environment["APP_VERSION"] in values, response.text


def test_root_as_html_carries_the_environment_colour(service: Any) -> None:
    response = httpx.get(f"{service.base_url}/", timeout=5, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert service.environment["ENVIRONMENT"] in response.text
    assert service.environment["ENV_COLOR"] in response.text


def test_readyz_reports_the_missing_database(service: Any) -> None:
    response = httpx.get(f"{service.base_url}/readyz", timeout=20)
    assert response.status_code == 503


def test_publishes_only_on_loopback(service: Any) -> None:
    service.container.reload()
    ports = service.container.attrs["NetworkSettings"]["Ports"]
    published = {port: bindings for port, bindings in ports.items() if bindings}
    assert set(published) == {"8080/tcp"}, ports
    assert {binding["HostIp"] for binding in published["8080/tcp"]} == {"127.0.0.1"}, ports


def test_logs_are_one_json_object_per_line(service: Any) -> None:
    httpx.get(f"{service.base_url}/healthz", timeout=5)
    lines = [line for line in service.logs().splitlines() if line.strip()]
    assert lines, "the service logged nothing"
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"log line is not JSON: {line!r}")
        assert {"level", "logger", "message"} <= set(entry), line
    assert service.environment["APP_SECRET"] not in "\n".join(lines)
    assert service.environment["DB_PASSWORD"] not in "\n".join(lines)


def test_docker_stop_is_graceful(start_service: Any, record_metric: Any) -> None:
    running = start_service()
    httpx.get(f"{running.base_url}/healthz", timeout=5)
    started = time.monotonic()
    running.container.stop(timeout=STOP_TIMEOUT_SECONDS)
    result = running.container.wait(timeout=STOP_TIMEOUT_SECONDS + 10)
    seconds = time.monotonic() - started
    record_metric("stop_seconds", round(seconds, 2), f"docker stop took {seconds:.2f} s (exit code {result['StatusCode']})")
    running.container.reload()
    state = running.container.attrs["State"]
    assert result["StatusCode"] == 0, f"exit code {result['StatusCode']} ({state}); logs:\n{running.logs()}"
    assert not state["OOMKilled"]
    assert seconds < GRACEFUL_STOP_BUDGET_SECONDS, f"stop took {seconds:.1f} s; logs:\n{running.logs()}"
