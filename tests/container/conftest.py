"""A real Docker engine, the service image built once per session, and containers started from it.

The engine is the one `docker.from_env()` finds (DOCKER_HOST, else unix:///var/run/docker.sock), which
`scripts/container-engine.sh ensure` starts as root together with the local base image. Without an engine the
tests skip on a developer machine and fail when CI is set: CI must never hide a missing engine.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import requests
from docker.errors import APIError, DockerException, NotFound

from tools.local_image import BASE_IMAGE, ImageBuildError, build_local_image

ROOT = Path(__file__).resolve().parents[2]
# One name per test run (xdist's workers share their run's uid): two runs on one engine never build, rebuild-check
# or remove each other's image.
RUN_ID = (os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex)[:12]
IMAGE_TAG = f"delivery-service:ctest-{RUN_ID}"
ENSURE = "bash scripts/container-engine.sh ensure"
BUILD_TIMEOUT_SECONDS = 900
HEALTHY_TIMEOUT_SECONDS = 30.0
API_TIMEOUT_SECONDS = 120
METRICS_FILE = ROOT / "build" / "container-metrics.json"

_metrics: dict[str, Any] = {}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by all xdist workers of this run (the base temp dir when there is one process)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def _locked(path: Path, timeout: float = 60.0) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    with path.open("w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"waited {timeout:.0f} s for {path.name}, held by another test worker")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(
            f"{reason}. CI is set, so the container tests must run: `make test` starts the engine with `{ENSURE}`"
            " as root; see its log lines above.",
            pytrace=False,
        )
    pytest.skip(f"{reason}; container tests need root once: sudo {ENSURE}")


def record(name: str, value: Any, line: str) -> None:
    """Keep a measurement for the end-of-run summary and build/container-metrics.json, and print it."""
    _metrics[name] = value
    print(f"[container] {line}")


@pytest.fixture(scope="session")
def record_metric() -> Callable[[str, Any, str], None]:
    return record


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=API_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, requests.RequestException, OSError) as exc:
        _unavailable(f"no Docker engine answers at {host} ({type(exc).__name__}: {exc})")
    try:
        client.images.get(BASE_IMAGE)
    except NotFound:
        _unavailable(f"the engine at {host} has no {BASE_IMAGE} image")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> Any:
    return docker_client.images.get(BASE_IMAGE)


def _build(client: docker.DockerClient) -> tuple[str, float, bool]:
    """Build the image like the pipeline does, but from the local base; returns (image id, seconds, cold)."""
    try:
        built = build_local_image(client, tag=IMAGE_TAG, timeout=BUILD_TIMEOUT_SECONDS)
    except ImageBuildError as error:
        pytest.fail(str(error))
    return built.image_id, built.seconds, built.cold


def _count_users(run_dir: Path, change: int) -> int:
    users = run_dir / "container-image-users"
    count = (int(users.read_text()) if users.exists() else 0) + change
    users.write_text(str(count))
    return count


@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient, run_dir: Path) -> Iterator[Any]:
    # Workers that need the image take turns: one builds, the others then get it from the layer cache, so
    # the build runs once however xdist distributes these tests.
    lock = run_dir / "container-image-build.lock"
    with _locked(lock, timeout=BUILD_TIMEOUT_SECONDS + 60):
        image_id, seconds, cold = _build(docker_client)
        _count_users(run_dir, +1)
    if cold:
        record("build_cold_seconds", round(seconds, 1), f"image build took {seconds:.1f} s (cold: pip ran)")
    else:
        record("build_cached_seconds", round(seconds, 2), f"image build took {seconds:.2f} s (all layers cached)")
    yield docker_client.images.get(image_id)
    # The last worker of this run to finish with the image removes this run's tag; noprune keeps the parent
    # layers, so the next run still builds from the layer cache.
    with _locked(lock, timeout=BUILD_TIMEOUT_SECONDS + 60):
        if _count_users(run_dir, -1) == 0:
            try:
                docker_client.images.remove(IMAGE_TAG, noprune=True)
            except APIError:
                pass  # already gone, or a container still uses it: a leftover tag costs nothing


@pytest.fixture(scope="session")
def rebuild(docker_client: docker.DockerClient, image: Any) -> Callable[[], tuple[str, float]]:
    def run() -> tuple[str, float]:
        image_id, seconds, _ = _build(docker_client)
        return image_id, seconds

    return run


def service_environment(**overrides: str) -> dict[str, str]:
    # What docs/contracts.md requires, with a database address where nothing listens: `/` and `/healthz`
    # must work without a database.
    env = {
        "ENVIRONMENT": "container-test",
        "APP_VERSION": f"ctest-{uuid.uuid4().hex[:12]}",
        "ENV_COLOR": "#12ab34",
        "DB_NAME": "app",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "9",
        "DB_USER": "app",
        "DB_PASSWORD": "not-a-real-password",
        "APP_SECRET": "container-test-signing-key-0123456789abcdef",
    }
    env.update(overrides)
    return env


@dataclass
class RunningService:
    container: Any
    base_url: str
    environment: dict[str, str]
    start_seconds: float

    def logs(self) -> str:
        return self.container.logs().decode("utf-8", "replace")


def _published_url(container: Any) -> str:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get("8080/tcp") or []
    assert bindings, f"port 8080/tcp is not published: {container.attrs['NetworkSettings']['Ports']}"
    return f"http://127.0.0.1:{bindings[0]['HostPort']}"


def wait_healthy(container: Any, base_url: str, started: float) -> float:
    deadline = started + HEALTHY_TIMEOUT_SECONDS
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                response = http.get(f"{base_url}/healthz")
                if response.status_code == 200:
                    return time.monotonic() - started
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}"
            container.reload()
            if container.status not in ("created", "running"):
                logs = container.logs().decode("utf-8", "replace")
                pytest.fail(f"the container exited ({container.attrs['State']}) before /healthz answered:\n{logs}")
            time.sleep(0.05)
    logs = container.logs().decode("utf-8", "replace")
    pytest.fail(f"/healthz did not answer 200 within {HEALTHY_TIMEOUT_SECONDS} s (last: {last}); logs:\n{logs}")


@pytest.fixture(scope="session")
def start_service(docker_client: docker.DockerClient, image: Any) -> Iterator[Callable[..., RunningService]]:
    started_containers: list[Any] = []

    def start(**env_overrides: str) -> RunningService:
        environment = service_environment(**env_overrides)
        started = time.monotonic()
        # Run as ECS would at its strictest: read-only root filesystem, no capabilities, no privilege gain.
        container = docker_client.containers.run(
            image.id,
            detach=True,
            name=f"delivery-ctest-{RUN_ID}-{uuid.uuid4().hex[:8]}",
            environment=environment,
            ports={"8080/tcp": ("127.0.0.1", None)},
            read_only=True,
            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={"delivery.container-test": "1", "delivery.test-run": RUN_ID},
        )
        started_containers.append(container)
        base_url = _published_url(container)
        seconds = wait_healthy(container, base_url, started)
        return RunningService(container=container, base_url=base_url, environment=environment, start_seconds=seconds)

    yield start
    for container in started_containers:
        try:
            container.remove(force=True)
        except NotFound:
            pass


@pytest.fixture(scope="session")
def service(start_service: Callable[..., RunningService]) -> RunningService:
    running = start_service()
    record(
        "cold_start_seconds",
        round(running.start_seconds, 2),
        f"cold start (container create + start) to first /healthz 200: {running.start_seconds:.2f} s",
    )
    return running


@pytest.fixture(scope="session", autouse=True)
def _write_metrics(run_dir: Path) -> Iterator[None]:
    yield
    if not _metrics:
        return
    shared = run_dir / "container-metrics.json"
    with _locked(run_dir / "container-metrics.lock"):
        merged = json.loads(shared.read_text()) if shared.exists() else {}
        merged.update(_metrics)
        shared.write_text(json.dumps(merged))
        METRICS_FILE.parent.mkdir(exist_ok=True)
        METRICS_FILE.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Shown when this conftest runs in the reporting process (no xdist); with xdist see -rP or the JSON file.
    if _metrics:
        terminalreporter.section("container measurements")
        for name, value in sorted(_metrics.items()):
            terminalreporter.write_line(f"{name}: {value}")
