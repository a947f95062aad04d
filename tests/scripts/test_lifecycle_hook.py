import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
SMOKE_DIR = ROOT / "smoke"
# The Lambda asset root is smoke/, so the handler imports smoke_test as a top-level module
if str(SMOKE_DIR) not in sys.path:
    sys.path.insert(0, str(SMOKE_DIR))
import lifecycle_hook  # noqa: E402

_spec = importlib.util.spec_from_file_location("scripts_live_service", Path(__file__).with_name("live_service.py"))
live = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = live
_spec.loader.exec_module(live)

ENVIRONMENT = "staging"
REVISION = "arn:aws:ecs:eu-west-1:123456789012:service-revision/prod-cluster/web/4242"
EVENT = {
    "executionDetails": {
        "testTrafficWeights": {REVISION: 100},
        "productionTrafficWeights": {},
        "serviceArn": "arn:aws:ecs:eu-west-1:123456789012:service/prod-cluster/web",
        "targetServiceRevisionArn": REVISION,
    },
    "executionId": "exec-1",
    "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
    "resourceArn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod-cluster/web/abc",
}


@pytest.fixture(scope="module")
def service_url():
    with live.running_service(environment=ENVIRONMENT, version="v1") as url:
        yield url


@pytest.fixture
def hook_env(monkeypatch):
    for name in ("TEST_URL", "EXPECTED_ENVIRONMENT", "EXPECTED_VERSION", "HOST_HEADER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("READY_WAIT_SECONDS", "1")
    monkeypatch.setenv("SMOKE_TIMEOUT_SECONDS", "2")
    return monkeypatch


def invoke(event=EVENT, **kwargs):
    lines = []
    result = lifecycle_hook.handler(event, None, log=lines.append, **kwargs)
    assert len(lines) == 1, lines
    return result, json.loads(lines[0])


def test_succeeds_when_the_green_tasks_pass_the_smoke_test(service_url, hook_env):
    hook_env.setenv("TEST_URL", service_url)
    hook_env.setenv("EXPECTED_ENVIRONMENT", ENVIRONMENT)
    result, record = invoke()
    assert result == {"hookStatus": "SUCCEEDED"}
    assert record["level"] == "INFO" and record["failed"] == [] and record["checks"] == 5
    assert record["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert record["targetServiceRevisionArn"] == REVISION


def test_fails_when_the_test_listener_serves_another_environment(service_url, hook_env):
    hook_env.setenv("TEST_URL", service_url)
    hook_env.setenv("EXPECTED_ENVIRONMENT", "prod")
    result, record = invoke()
    assert result == {"hookStatus": "FAILED"}
    assert record["level"] == "ERROR"
    assert record["failed"][0] == {
        "check": "environment",
        "detail": "GET /: environment is 'staging', expected 'prod' (is this URL the right environment's?)",
    }


def test_fails_when_nothing_answers_and_keeps_credentials_out_of_the_log(hook_env):
    hook_env.setenv("TEST_URL", f"http://hook-user:hook-pass@127.0.0.1:{live.free_port()}")
    hook_env.setenv("EXPECTED_ENVIRONMENT", ENVIRONMENT)
    result, record = invoke()
    assert result == {"hookStatus": "FAILED"}
    assert record["failed"][0]["check"] == "healthz"
    assert "no response" in record["failed"][0]["detail"]
    assert "hook-pass" not in json.dumps(record) and "hook-user" not in json.dumps(record)


def test_fails_without_a_test_url(hook_env):
    result, record = invoke()
    assert result == {"hookStatus": "FAILED"}
    assert record["error"] == "KeyError: 'TEST_URL'"


def test_an_unexpected_error_still_answers_failed(hook_env):
    hook_env.setenv("TEST_URL", "http://127.0.0.1:9")

    def broken_smoke(*args, **kwargs):
        raise RuntimeError("boom")

    result, record = invoke(smoke=broken_smoke)
    assert result == {"hookStatus": "FAILED"}
    assert record["error"] == "RuntimeError: boom"


def test_passes_the_environment_settings_to_the_smoke_test(hook_env):
    hook_env.setenv("TEST_URL", "http://test-listener.internal:8443")
    hook_env.setenv("EXPECTED_ENVIRONMENT", "prod")
    hook_env.setenv("EXPECTED_VERSION", "abc123")
    hook_env.setenv("HOST_HEADER", "app.example.com")
    seen = {}

    def recording_smoke(base_url, **kwargs):
        seen.update(kwargs, base_url=base_url)
        return [lifecycle_hook.CheckResult("healthz", True, "200")]

    result, _ = invoke(smoke=recording_smoke)
    assert result == {"hookStatus": "SUCCEEDED"}
    assert seen == {
        "base_url": "http://test-listener.internal:8443",
        "expect_environment": "prod",
        "expect_version": "abc123",
        "timeout": 2.0,
        "ready_wait": 1.0,
        "host_header": "app.example.com",
    }


class LambdaContext:
    def __init__(self, remaining_seconds):
        self.remaining_ms = remaining_seconds * 1000

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


@pytest.mark.parametrize(("remaining", "expected_wait"), [(60, 30.0), (35, 15.0), (10, 0.0)])
def test_readiness_wait_fits_in_the_lambda_time_left(hook_env, remaining, expected_wait):
    hook_env.setenv("TEST_URL", "http://127.0.0.1:9")
    hook_env.setenv("READY_WAIT_SECONDS", "30")
    seen = {}

    def recording_smoke(base_url, **kwargs):
        seen.update(kwargs)
        return [lifecycle_hook.CheckResult("healthz", True, "200")]

    lines = []
    lifecycle_hook.handler(EVENT, LambdaContext(remaining), smoke=recording_smoke, log=lines.append)
    assert seen["ready_wait"] == expected_wait
