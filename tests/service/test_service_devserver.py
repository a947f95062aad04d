"""`make run`: tools/devserver.py serves the service on an embedded PostgreSQL and stops both on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_support import REPO, postgres_directory, wait_until
from svc_postgres import free_port

pytestmark = pytest.mark.xdist_group("service")


def test_devserver_serves_locally_and_stops_service_and_database() -> None:
    with postgres_directory() as directory:
        run_devserver(directory / "pgdata")


def run_devserver(pgdata: Path) -> None:
    port = free_port()
    # Same entry point as `make run`, with the data directory moved out of the repository's .local/.
    code = f"import pathlib, sys, tools.devserver as d; d.PGDATA = pathlib.Path({str(pgdata)!r}); sys.exit(d.main())"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60, interval=0.2, what="devserver ready")
        assert httpx.get(f"{url}/").json()["environment"] == "local"
        assert httpx.post(f"{url}/api/notes", json={"title": "local"}).status_code == 201
        assert (pgdata / "postmaster.pid").exists()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert not (pgdata / "postmaster.pid").exists(), "PostgreSQL still running after the devserver stopped"
