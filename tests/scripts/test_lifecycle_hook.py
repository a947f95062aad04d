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


def invoke(event=EVENT, context=None, **kwargs):
    lines = []
    result = lifecycle_hook.handler(event, context, log=lines.append, **kwargs)
    assert len(lines) == 1, lines
    return result, json.loads(lines[0])


class LambdaContext:
    def __init__(self, remaining_seconds):
        self.remaining_ms = remaining_seconds * 1000

    def get_remaining_time_in_millis(self):
        return self.remaining_ms


class Recorder:
    """A stand-in smoke test that records its arguments and returns fixed results."""

    def __init__(self, *results):
        self.results = list(results) or [lifecycle_hook.CheckResult("healthz", True, "200")]
        self.calls = []

    def __call__(self, base_url, **kwargs):
        self.calls.append({"base_url": base_url, **kwargs})
        return self.results


NOT_READY = lifecycle_hook.CheckResult("healthz", False, "GET /healthz: still HTTP 503", retryable=True)
BROKEN = lifecycle_hook.CheckResult("notes round trip", False, "POST /api/notes: expected HTTP 201, got 500")


def test_succeeds_when_the_green_tasks_pass_the_smoke_test(service_url, hook_env, aws_calls):
    hook_env.setenv("TEST_URL", service_url)
    hook_env.setenv("EXPECTED_ENVIRONMENT", ENVIRONMENT)
    hook_env.setenv("EXPECTED_VERSION", "v1")
    result, record = invoke(context=LambdaContext(90))
    assert result == {"hookStatus": "SUCCEEDED"}
    assert record["level"] == "INFO" and record["failed"] == [] and record["checks"] == 5
    assert record["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert record["targetServiceRevisionArn"] == REVISION
    assert record["expected_version"] == "v1"
    # the hook calls no AWS API: it needs no permissions beyond its logs and network interfaces
    assert aws_calls == []


def test_the_old_version_behind_the_test_listener_is_tried_again_not_passed(service_url, hook_env):
    hook_env.setenv("TEST_URL", service_url)
    hook_env.setenv("EXPECTED_ENVIRONMENT", ENVIRONMENT)
    hook_env.setenv("EXPECTED_VERSION", "v2")
    result, record = invoke(context=LambdaContext(90), now=lambda: 1000.0)
    # ECS: "IN_PROGRESS - Amazon ECS invokes the function again after a delay"
    assert result == {
        "hookStatus": "IN_PROGRESS",
        "callBackDelay": lifecycle_hook.CALLBACK_DELAY_SECONDS,
        "hookDetails": {"firstInvokedAt": 1000.0, "attempt": 1},
    }
    assert record["failed"][0] == {"check": "environment", "detail": "GET /: version is 'v1', expected 'v2'"}
    assert record["level"] == "WARNING"


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


def test_nothing_answering_yet_is_tried_again_and_keeps_credentials_out_of_the_log(hook_env):
    hook_env.setenv("TEST_URL", f"http://hook-user:hook-pass@127.0.0.1:{live.free_port()}")
    hook_env.setenv("EXPECTED_ENVIRONMENT", ENVIRONMENT)
    result, record = invoke(now=lambda: 1000.0)
    assert result["hookStatus"] == "IN_PROGRESS"
    assert record["failed"][0]["check"] == "healthz"
    assert "no response" in record["failed"][0]["detail"]
    assert "hook-pass" not in json.dumps(record) and "hook-user" not in json.dumps(record)


def test_the_first_invocation_time_travels_in_hook_details_and_bounds_the_retries(hook_env):
    hook_env.setenv("TEST_URL", "http://test-listener.internal:8443")
    smoke = Recorder(NOT_READY)
    # ECS: "Return hookDetails alongside the IN_PROGRESS hook status. Amazon ECS passes this data back to your
    # function on the next invocation" (at the top level of the event)
    again = {**EVENT, "hookDetails": {"firstInvokedAt": 1000.0, "attempt": 3}}
    result, record = invoke(again, context=LambdaContext(90), smoke=smoke, now=lambda: 1100.0)
    assert result["hookDetails"] == {"firstInvokedAt": 1000.0, "attempt": 4}
    assert record["attempt"] == 4
    late = 1000.0 + lifecycle_hook.DEFAULT_HOOK_DEADLINE_SECONDS - 10
    result, record = invoke(again, context=LambdaContext(90), smoke=smoke, now=lambda: late)
    assert result == {"hookStatus": "FAILED"}


def test_a_real_failure_fails_at_once(hook_env):
    hook_env.setenv("TEST_URL", "http://test-listener.internal:8443")
    result, record = invoke(smoke=Recorder(lifecycle_hook.CheckResult("healthz", True, "200"), BROKEN))
    assert result == {"hookStatus": "FAILED"}
    assert record["failed"] == [{"check": "notes round trip", "detail": BROKEN.detail}]


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
    smoke = Recorder()
    result, _ = invoke(context=LambdaContext(90), smoke=smoke)
    assert result == {"hookStatus": "SUCCEEDED"}
    assert smoke.calls == [{
        "base_url": "http://test-listener.internal:8443",
        "expect_environment": "prod",
        "expect_version": "abc123",
        "timeout": 2.0,
        "ready_wait": 1.0,
        "host_header": "app.example.com",
        "budget": 90 - lifecycle_hook.RESERVED_SECONDS,
    }]


@pytest.mark.parametrize(
    ("remaining", "expected_wait", "expected_budget"),
    [(90, 30.0, 85.0), (40, 15.0, 35.0)],
)
def test_the_run_fits_in_the_lambda_time_left(hook_env, remaining, expected_wait, expected_budget):
    hook_env.setenv("TEST_URL", "http://127.0.0.1:9")
    hook_env.setenv("READY_WAIT_SECONDS", "30")
    smoke = Recorder()
    invoke(context=LambdaContext(remaining), smoke=smoke)
    # a hook that times out gives ECS no hookStatus, and ECS "rolls back the deployment"
    assert smoke.calls[0]["ready_wait"] == expected_wait
    assert smoke.calls[0]["budget"] == expected_budget


def test_too_little_time_for_a_run_asks_to_be_called_again(hook_env):
    hook_env.setenv("TEST_URL", "http://127.0.0.1:9")
    smoke = Recorder()
    result, record = invoke(context=LambdaContext(20), smoke=smoke, now=lambda: 1000.0)
    assert smoke.calls == []
    assert result["hookStatus"] == "IN_PROGRESS"
    assert record["error"] == "only 15s left for a smoke test run"
