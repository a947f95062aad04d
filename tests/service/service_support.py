from __future__ import annotations

import logging.config
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from svc_postgres import Database, PostgresServer, free_port

from service.app import create_app
from service.db import Database as ServiceDatabase
from service.faults import FaultInjector
from service.logs import OUTPUT, log_config
from service.serve import server_config
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
APP_SECRET = "test-signing-key-0123456789abcdef0123456789"


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def postgres_directory() -> Iterator[Path]:
    # Not under pytest's tmp_path: pytest resets its root to mode 0700 whenever a worker starts, which locks
    # out the unprivileged user PostgreSQL runs as when the tests run as root.
    directory = Path(tempfile.mkdtemp(prefix="service-tests-pg-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_directory() as directory:
        server = PostgresServer(directory / "data")
        yield server
        server.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    # A server of its own: these tests stop, freeze and start it, which must not disturb the shared one.
    with postgres_directory() as directory:
        server = PostgresServer(directory / "data")
        yield server
        if server.is_running():
            server.resume()
            server.stop()


@pytest.fixture(scope="session", autouse=True)
def json_logging() -> Iterator[None]:
    # The same logging configuration uvicorn applies in production, for the in-process servers.
    logging.config.dictConfig(log_config())
    yield


@pytest.fixture
def database(postgres: PostgresServer) -> Database:
    return postgres.create_database()


def service_env(db: Database | None = None, **overrides: str) -> dict[str, str]:
    env = {"ENVIRONMENT": "test", "APP_SECRET": APP_SECRET, "HOST": "127.0.0.1"}
    if db is not None:
        env.update(db.env())
    env.update(overrides)
    return env


def settings_for(db: Database | None = None, **overrides: str) -> Settings:
    return Settings.from_env(service_env(db, **overrides))


class LogCapture:
    """Collects the service's stdout lines (in-process servers write through service.logs.OUTPUT)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._lines.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        return None

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)


@pytest.fixture
def captured_output() -> Iterator[LogCapture]:
    capture = LogCapture()
    previous = OUTPUT.stream
    OUTPUT.stream = capture  # type: ignore[assignment]
    yield capture
    OUTPUT.stream = previous


class LiveServer:
    """The app under uvicorn in a background thread, on 127.0.0.1 and a free port, configured as in production."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = app.state.service.settings
        config = server_config(settings, app, host="127.0.0.1", port=self.port, workers=1, log_config=None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        wait_until(lambda: self.server.started or not self._thread.is_alive(), timeout=15, what="server start")
        assert self.server.started, "server failed to start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "server did not stop"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 15), **kwargs)

    def wait_ready(self, timeout: float = 15) -> None:
        with self.client() as client:
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=timeout, what="readiness")


@contextmanager
def live_app(
    settings: Settings, *, database: ServiceDatabase | None = None, faults: FaultInjector | None = None
) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings, database=database, faults=faults)) as server:
        yield server


class ServiceProcess:
    """`python -m service` as production runs it; stdout lines are collected by a reader thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = int(env.get("PORT") or free_port())
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_healthy(self, timeout: float = 20) -> float:
        """Seconds from process start to the first 200 from /healthz."""

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"service exited early: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=timeout, interval=0.02, what="/healthz")
        return time.monotonic() - self.started_at

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)


@pytest.fixture
def service_process() -> Iterator[Callable[[dict[str, str]], ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(env: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
