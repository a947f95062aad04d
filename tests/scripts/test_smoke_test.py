import importlib.util
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("scripts")

ROOT = Path(__file__).resolve().parents[2]
SMOKE_DIR = ROOT / "smoke"
SCRIPT = SMOKE_DIR / "smoke_test.py"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


smoke = _load("smoke_test_under_test", SCRIPT)
live = _load("scripts_live_service", Path(__file__).with_name("live_service.py"))

ENVIRONMENT = "smoke"
VERSION = "0123abcd"


@pytest.fixture(scope="module")
def service_url():
    with live.running_service(environment=ENVIRONMENT, version=VERSION) as url:
        yield url


def run_cli(*args, timeout=90):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    return result, time.monotonic() - started


def test_passes_against_the_real_service(service_url):
    result, _ = run_cli("--base-url", service_url, "--expect-environment", ENVIRONMENT, "--expect-version", VERSION)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    passed = [line for line in lines if line.startswith("PASS")]
    assert [line.split()[1] for line in passed] == ["healthz", "readyz", "environment", "notes", "validation"]
    assert "smoke: PASSED all 5 checks against " + service_url in result.stdout
    assert "environment=smoke version=0123abcd" in result.stdout
    assert "422, names 'title'" in result.stdout


def test_run_smoke_returns_check_results_for_reuse(service_url):
    results = smoke.run_smoke(service_url, expect_environment=ENVIRONMENT, timeout=5)
    assert [r.name for r in results] == ["healthz", "readyz", "environment", "notes round trip", "validation error"]
    assert all(isinstance(r, smoke.CheckResult) and r.ok for r in results), results


def test_fails_against_the_wrong_environment_and_writes_nothing_there(service_url):
    result, _ = run_cli("--base-url", service_url, "--expect-environment", "prod")
    assert result.returncode == 1
    assert "FAIL  environment" in result.stdout
    assert "environment is 'smoke', expected 'prod'" in result.stderr
    assert "notes round trip: not run: wrong environment" in result.stderr
    assert result.stderr.startswith("smoke: FAILED 3 of 5 checks against " + service_url)


def test_fails_on_a_wrong_version(service_url):
    result, _ = run_cli("--base-url", service_url, "--expect-version", "not-this-one")
    assert result.returncode == 1
    assert "version is '0123abcd', expected 'not-this-one'" in result.stderr


def test_fails_fast_and_clearly_where_nothing_listens():
    url = f"http://secret-user:secret-pass@127.0.0.1:{live.free_port()}"
    result, elapsed = run_cli("--base-url", url, "--ready-wait", "1", "--timeout", "1")
    assert result.returncode == 1
    assert "FAIL  healthz" in result.stdout
    assert "no response from http://127.0.0.1:" in result.stderr
    assert "not run: the service did not answer" in result.stderr
    assert elapsed < 20
    # credentials in the URL never reach the log
    assert "secret" not in result.stdout + result.stderr


def test_rejects_a_url_without_scheme():
    result, _ = run_cli("--base-url", "127.0.0.1:8080")
    assert result.returncode == 2
    assert "--base-url must be an http(s) URL" in result.stderr


def test_runs_with_the_standard_library_only():
    # -S: no site-packages, as in a bare CodeBuild image or the Lambda runtime without layers
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import smoke_test, lifecycle_hook; print('ok')"],
        cwd=SMOKE_DIR, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


class ScriptedClient:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def request(self, method, path, body=None, **kwargs):
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return smoke.Response(outcome, {"content-type": "application/json"}, b"{}")


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_readiness_retries_with_bounded_backoff_until_ready():
    clock = FakeClock()
    client = ScriptedClient(smoke.Unreachable("refused"), 503, 503, 503, 200)
    resp, attempts = smoke.wait_for(client, "/readyz", retry_statuses=(503,), deadline=30, clock=clock,
                                    sleep=clock.sleep)
    assert resp.status == 200 and attempts == 5
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0]


def test_readiness_gives_up_at_the_deadline_with_the_last_answer():
    clock = FakeClock()
    client = ScriptedClient(503)
    resp, attempts = smoke.wait_for(client, "/readyz", retry_statuses=(503,), deadline=5, clock=clock,
                                    sleep=clock.sleep)
    assert resp.status == 503
    assert clock.now == 5
    assert max(clock.sleeps) <= smoke.MAX_BACKOFF
    assert attempts == len(clock.sleeps) + 1


def test_safe_url_drops_credentials_and_query():
    assert smoke.safe_url("https://u:p@example.com:8443/base?token=abc") == "https://example.com:8443/base"


class Recording:
    """A client that answers from a script and keeps every request it was sent."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def request(self, method, path, body=None, *, headers=None, **kwargs):
        self.sent.append((method, path, body, dict(headers or {})))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        return smoke.Response(status, {"content-type": "application/json"}, json.dumps(payload).encode())


def make_smoke(client, clock=None):
    clock = clock or FakeClock()
    return smoke.Smoke(client, expect_environment=None, expect_version=None, ready_wait=30, clock=clock,
                       sleep=clock.sleep)


def test_healthz_through_a_load_balancer_waits_out_503_and_502():
    # an ALB answers 503 while its target group has no healthy target, 502 when a target closes the connection
    client = Recording((503, {}), (502, {}), (200, {"status": "ok"}))
    assert make_smoke(client).healthz() == "200 after 3 attempt(s)"


def test_still_503_when_the_readiness_wait_runs_out_is_a_retryable_failure():
    clock = FakeClock()
    runner = make_smoke(ScriptedClient(503), clock)
    with pytest.raises(smoke.NotReady) as raised:
        runner.healthz()
    assert raised.value.retryable
    assert "still HTTP 503" in str(raised.value)
    assert clock.now == 30


def test_the_note_is_created_with_one_idempotency_key_per_run_and_a_lost_answer_is_replayed():
    created = {"id": 7, "title": "t", "body": "b"}
    client = Recording(smoke.Unreachable("POST /api/notes: no response"), (201, created))
    runner = make_smoke(client)
    resp = runner._create({"title": "t", "body": "b"})
    assert resp.status == 201
    keys = [headers.get("Idempotency-Key") for method, _, _, headers in client.sent]
    assert [method for method, *_ in client.sent] == ["POST", "POST"]
    # the same key on the retry: the service answers a replay with the same note, never a second one
    assert keys[0] == keys[1] == runner.idempotency_key
    assert str(uuid.UUID(keys[0])) == keys[0]
    assert make_smoke(Recording()).idempotency_key != runner.idempotency_key


def test_a_retry_that_meets_the_first_request_still_running_waits_and_replays():
    # the service answers 409 (Retry-After: 1) while the first request with the key runs (docs/contracts.md)
    created = {"id": 7, "title": "t", "body": "b"}
    clock = FakeClock()
    client = Recording(smoke.Unreachable("POST /api/notes: no response"), (409, {}), (201, created))
    runner = make_smoke(client, clock)
    assert runner._create({"title": "t", "body": "b"}).status == 201
    assert len({headers["Idempotency-Key"] for *_, headers in client.sent}) == 1
    assert clock.sleeps == [1.0, 1.0]


def test_a_spent_budget_starts_no_request():
    clock = FakeClock()
    client = smoke.Client("http://127.0.0.1:9", timeout=5, deadline=10, clock=clock)
    clock.now = 10
    with pytest.raises(smoke.OutOfTime):
        client.request("GET", "/healthz")


def test_no_request_outlives_the_budget(monkeypatch):
    clock = FakeClock()
    client = smoke.Client("http://127.0.0.1:9", timeout=5, deadline=2.5, clock=clock)
    seen = {}

    def fake_open(req, timeout):
        seen["timeout"] = timeout
        raise OSError("refused")

    monkeypatch.setattr(client._opener, "open", fake_open)
    with pytest.raises(smoke.Unreachable):
        client.request("GET", "/healthz")
    assert seen["timeout"] == 2.5


def test_out_of_time_marks_the_remaining_checks_not_run_and_retryable(service_url):
    results = smoke.run_smoke(service_url, budget=0.0)
    assert [r.ok for r in results] == [False] * 5
    assert all(r.retryable for r in results)
    assert results[-1].detail == "not run: out of time"
