"""Smoke test of a deployed service: health, readiness, environment content and an API round trip.

Standard library only, so the same file runs in CodeBuild, in the lifecycle-hook Lambda and on a laptop:
    python smoke/smoke_test.py --base-url URL [--expect-environment NAME] [--expect-version V]
                               [--timeout S] [--ready-wait S] [--host-header H]
Exit codes: 0 every check passed, 1 a check failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 5.0
DEFAULT_READY_WAIT = 30.0
MAX_BACKOFF = 2.0
# what a load balancer answers while no healthy target is registered yet (or one closed the connection)
NOT_READY_STATUSES = (502, 503, 504)
# The service answers 409 while an earlier request with the same Idempotency-Key is still running.
KEY_IN_USE = 409
CREATE_ATTEMPTS = 3
# The list is newest first; a few pages cover notes that concurrent writers added meanwhile
MAX_LIST_PAGES = 10
LIST_PAGE_SIZE = 100
NOTES = "/api/notes"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_ms: float = 0.0
    # the failure may pass on a later try (not answering yet, out of time, old tasks still behind the listener)
    retryable: bool = False


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "")


class CheckFailed(Exception):
    retryable = False


class WrongTarget(CheckFailed):
    """The URL answers, but not as the expected environment: write nothing there."""


class NotReady(CheckFailed):
    """Still answering 502/503/504 when the readiness wait ran out."""

    retryable = True


class WrongVersion(CheckFailed):
    """Another version answers: the new tasks are not (yet) the ones behind this URL."""

    retryable = True


class Unreachable(Exception):
    """No HTTP response at all: refused, reset, DNS failure or timeout."""


class OutOfTime(Exception):
    """The run's time budget is spent: the remaining checks are not started."""


def safe_url(url: str) -> str:
    """The URL without user info or query, fit to print."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # a redirect (to a login page, say) is an answer to check, not to follow
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        host_header: str | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.host_header = host_header
        self.deadline = deadline
        self.clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        accept: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Response:
        timeout = self.timeout
        if self.deadline is not None:
            left = self.deadline - self.clock()
            if left <= 0:
                raise OutOfTime(f"{method} {path}: the time budget is spent")
            # a request never outlives the budget, so the caller always gets to answer
            timeout = min(timeout, left)
        data = None
        sent = {"Accept": accept, "User-Agent": "delivery-smoke-test/1", **(headers or {})}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        if self.host_header:
            sent["Host"] = self.host_header
        req = urllib.request.Request(self.base_url + path, data=data, headers=sent, method=method)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise Unreachable(f"{method} {path}: no response from {safe_url(self.base_url)} ({reason})") from None


def _excerpt(resp: Response, limit: int = 200) -> str:
    text = resp.body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def expect_status(resp: Response, expected: int | tuple[int, ...], what: str) -> None:
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if resp.status not in allowed:
        want = " or ".join(str(s) for s in allowed)
        raise CheckFailed(f"{what}: expected HTTP {want}, got {resp.status}: {_excerpt(resp)}")


def expect_json_object(resp: Response, what: str) -> dict[str, Any]:
    if not resp.is_json:
        raise CheckFailed(f"{what}: expected a JSON response, got content-type {resp.headers.get('content-type')!r}")
    try:
        data = resp.json()
    except ValueError:
        raise CheckFailed(f"{what}: the body is not valid JSON: {_excerpt(resp)}") from None
    if not isinstance(data, dict):
        raise CheckFailed(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def wait_for(
    client: Client,
    path: str,
    *,
    retry_statuses: tuple[int, ...],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[Response, int]:
    """GET path until it answers something other than a retryable status or the deadline passes."""
    delay = 0.25
    attempts = 0
    while True:
        attempts += 1
        try:
            resp = client.request("GET", path)
            if resp.status not in retry_statuses:
                return resp, attempts
            last: Response | Exception = resp
        except Unreachable as err:
            last = err
        remaining = deadline - clock()
        if remaining <= 0:
            if isinstance(last, Exception):
                raise last
            return last, attempts
        sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_BACKOFF)


class Smoke:
    def __init__(
        self,
        client: Client,
        *,
        expect_environment: str | None,
        expect_version: str | None,
        ready_wait: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.expect_environment = expect_environment
        self.expect_version = expect_version
        self.ready_wait = ready_wait
        # one readiness budget for /healthz and /readyz together keeps the whole run bounded
        self.ready_deadline = clock() + ready_wait
        self.clock = clock
        self.sleep = sleep
        # one key and one note per run: a retried POST is a replay (same note), never a second note; the service
        # answers the same key with another body 422, so the two are made together
        self.idempotency_key = str(uuid.uuid4())
        self.marker = f"smoke-{uuid.uuid4().hex[:12]}"

    def _ready(self, path: str) -> str:
        # through a load balancer, "no healthy target yet" is a 502/503/504, not a refused connection
        resp, attempts = wait_for(
            self.client,
            path,
            retry_statuses=NOT_READY_STATUSES,
            deadline=self.ready_deadline,
            clock=self.clock,
            sleep=self.sleep,
        )
        what = f"GET {path} (after {attempts} attempt(s) within {self.ready_wait:g}s)"
        if resp.status in NOT_READY_STATUSES:
            raise NotReady(f"{what}: still HTTP {resp.status}: {_excerpt(resp)}")
        expect_status(resp, 200, what)
        return f"200 after {attempts} attempt(s)" if attempts > 1 else "200"

    def healthz(self) -> str:
        return self._ready("/healthz")

    def readyz(self) -> str:
        return self._ready("/readyz")

    def root(self) -> str:
        resp = self.client.request("GET", "/")
        expect_status(resp, 200, "GET /")
        data = expect_json_object(resp, "GET /")
        environment = data.get("environment")
        if not isinstance(environment, str) or not environment:
            raise CheckFailed(f"GET /: no 'environment' field in {sorted(data)}")
        if self.expect_environment is not None and environment != self.expect_environment:
            raise WrongTarget(
                f"GET /: environment is {environment!r}, expected {self.expect_environment!r} "
                "(is this URL the right environment's?)"
            )
        version = data.get("version")
        if self.expect_version is not None and version != self.expect_version:
            raise WrongVersion(f"GET /: version is {version!r}, expected {self.expect_version!r}")
        return f"environment={environment} version={version}"

    def notes_round_trip(self) -> str:
        payload = {"title": self.marker, "body": "created by the smoke test; deleted at its end"}
        resp = self._create(payload)
        expect_status(resp, 201, f"POST {NOTES}")
        created = expect_json_object(resp, f"POST {NOTES}")
        note_id = created.get("id")
        if note_id in (None, ""):
            raise CheckFailed(f"POST {NOTES}: the created note has no 'id': {sorted(created)}")
        item = f"{NOTES}/{urllib.parse.quote(str(note_id), safe='')}"
        deleted = False
        try:
            resp = self.client.request("GET", item)
            expect_status(resp, 200, f"GET {NOTES}/{{id}}")
            fetched = expect_json_object(resp, f"GET {NOTES}/{{id}}")
            for key, value in payload.items():
                if fetched.get(key) != value:
                    raise CheckFailed(f"GET {NOTES}/{{id}}: {key!r} is {fetched.get(key)!r}, expected {value!r}")
            if not self._listed(note_id):
                raise CheckFailed(f"GET {NOTES}: the new note {note_id} is not in the list")
            resp = self.client.request("DELETE", item)
            expect_status(resp, (200, 204), f"DELETE {NOTES}/{{id}}")
            deleted = True
            resp = self.client.request("GET", item)
            expect_status(resp, 404, f"GET {NOTES}/{{id}} after delete")
            return f"created, read, listed, deleted note {note_id}"
        finally:
            if not deleted:
                self._cleanup(item)

    def _create(self, payload: dict[str, Any]) -> Response:
        headers = {"Idempotency-Key": self.idempotency_key}
        for _ in range(CREATE_ATTEMPTS - 1):
            try:
                resp = self.client.request("POST", NOTES, payload, headers=headers)
                if resp.status not in (*NOT_READY_STATUSES, KEY_IN_USE):
                    return resp
            except Unreachable:
                pass
            # the earlier attempt may have created the note (or still be creating it): the same key replays it
            self.sleep(1.0)
        return self.client.request("POST", NOTES, payload, headers=headers)

    def _listed(self, note_id: Any) -> bool:
        cursor = None
        for _ in range(MAX_LIST_PAGES):
            params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            resp = self.client.request("GET", f"{NOTES}?{urllib.parse.urlencode(params)}")
            expect_status(resp, 200, f"GET {NOTES}")
            page = expect_json_object(resp, f"GET {NOTES}")
            items = page.get("items")
            if not isinstance(items, list):
                raise CheckFailed(f"GET {NOTES}: expected an 'items' list, got keys {sorted(page)}")
            if any(isinstance(n, dict) and n.get("id") == note_id for n in items):
                return True
            cursor = page.get("next_cursor")
            if not cursor:
                return False
        return False

    def _cleanup(self, item: str) -> None:
        try:
            self.client.request("DELETE", item)
        except Unreachable:
            pass

    def validation_error(self) -> str:
        resp = self.client.request("POST", NOTES, {"title": "", "body": "smoke test: invalid on purpose"})
        if not 400 <= resp.status < 500:
            raise CheckFailed(f"POST {NOTES} with an empty title: expected a 4xx, got {resp.status}: {_excerpt(resp)}")
        data = expect_json_object(resp, f"POST {NOTES} with an empty title")
        fields = data.get("fields")
        named = [
            f.get("field")
            for f in fields if isinstance(f, dict) and str(f.get("field", "")).split(".")[-1] == "title"
        ] if isinstance(fields, list) else []
        if not named:
            raise CheckFailed(
                f"POST {NOTES} with an empty title: the error's 'fields' do not name 'title': {_excerpt(resp)}"
            )
        return f"{resp.status}, names 'title'"


def run_smoke(
    base_url: str,
    *,
    expect_environment: str | None = None,
    expect_version: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    ready_wait: float = DEFAULT_READY_WAIT,
    host_header: str | None = None,
    budget: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    report: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Runs every check in order; an unreachable or wrong target fails the remaining checks without running them.

    `budget` bounds the whole run in seconds: no request outlives it, and checks it leaves no time for are not run
    (and marked retryable).
    """
    deadline = None if budget is None else clock() + budget
    smoke = Smoke(
        Client(base_url, timeout=timeout, host_header=host_header, deadline=deadline, clock=clock),
        expect_environment=expect_environment,
        expect_version=expect_version,
        ready_wait=ready_wait,
        clock=clock,
        sleep=sleep,
    )
    checks = [
        ("healthz", smoke.healthz),
        ("readyz", smoke.readyz),
        ("environment", smoke.root),
        ("notes round trip", smoke.notes_round_trip),
        ("validation error", smoke.validation_error),
    ]
    results: list[CheckResult] = []
    stop: str | None = None
    stop_retryable = False
    for name, check in checks:
        started = clock()
        if stop:
            result = CheckResult(name, False, f"not run: {stop}", retryable=stop_retryable)
        else:
            try:
                result = CheckResult(name, True, check())
            except WrongTarget as err:
                stop = "wrong environment"
                result = CheckResult(name, False, str(err))
            except CheckFailed as err:
                result = CheckResult(name, False, str(err), retryable=err.retryable)
                if isinstance(err, NotReady):
                    stop, stop_retryable = "the service is not ready", True
                elif isinstance(err, WrongVersion):
                    stop, stop_retryable = "another version answers", True
            except Unreachable as err:
                stop, stop_retryable = "the service did not answer", True
                result = CheckResult(name, False, str(err), retryable=True)
            except OutOfTime as err:
                stop, stop_retryable = "out of time", True
                result = CheckResult(name, False, f"not finished: {err}", retryable=True)
            except Exception as err:  # a broken response must fail the check, not crash the run
                result = CheckResult(name, False, f"{type(err).__name__}: {err}")
        result = CheckResult(
            result.name, result.ok, result.detail, round((clock() - started) * 1000, 1), result.retryable
        )
        results.append(result)
        if report:
            report(result)
    return results


def format_result(result: CheckResult) -> str:
    return f"{'PASS' if result.ok else 'FAIL'}  {result.name:<18} {result.duration_ms:8.0f} ms  {result.detail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke_test.py", description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="http(s)://host[:port] of the service or its load balancer")
    parser.add_argument("--expect-environment", help="fail unless GET / reports this environment")
    parser.add_argument("--expect-version", help="fail unless GET / reports this version")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request (default 5)")
    parser.add_argument(
        "--ready-wait",
        type=float,
        default=DEFAULT_READY_WAIT,
        help="seconds to wait, in all, for /healthz and /readyz to answer 200 (default 30)",
    )
    parser.add_argument("--host-header", help="Host header to send, for host-based listener rules")
    args = parser.parse_args(argv)
    parts = urllib.parse.urlsplit(args.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        parser.error(f"--base-url must be an http(s) URL, got {safe_url(args.base_url)!r}")
    if args.timeout <= 0 or args.ready_wait < 0:
        parser.error("--timeout must be positive and --ready-wait not negative")

    target = safe_url(args.base_url)
    print(f"smoke: {target} (expect environment={args.expect_environment or 'any'}"
          f"{', version=' + args.expect_version if args.expect_version else ''})", flush=True)
    results = run_smoke(
        args.base_url,
        expect_environment=args.expect_environment,
        expect_version=args.expect_version,
        timeout=args.timeout,
        ready_wait=args.ready_wait,
        host_header=args.host_header,
        report=lambda r: print(format_result(r), flush=True),
    )
    failed = [r for r in results if not r.ok]
    if failed:
        print(
            f"smoke: FAILED {len(failed)} of {len(results)} checks against {target}: "
            + "; ".join(f"{r.name}: {r.detail}" for r in failed),
            file=sys.stderr,
            flush=True,
        )
        return 1
    print(f"smoke: PASSED all {len(results)} checks against {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
