"""Requests/s and latency under wrk: our `GET /` and one database-backed endpoint (`python -m service`, one
worker, real PostgreSQL 18), beside a minimal FastAPI endpoint under the same uvicorn flags."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psutil

from bench.stats import summary

REPO = Path(__file__).resolve().parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python")
LUA = Path(__file__).resolve().parent / "wrk_report.lua"
CONNECTIONS = 64
THREADS = 1
WARMUP_SECONDS = 3
NOTES = 100
APP_SECRET = "bench-signing-key-0123456789abcdef0123456789"
AIM_RPS_FRACTION = 0.6
AIM_P99_MS = 20.0


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, capture_output=True, timeout=600, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, check=False)
            subprocess.run(install, capture_output=True, timeout=600, check=False)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and could not be installed (apt-get install -y wrk, as root)")
    return found


def _svc_postgres() -> ModuleType:
    # The service tests' PostgreSQL helper has no pytest dependency; load it by path, tests/ is not a package.
    path = REPO / "tests" / "service" / "svc_postgres.py"
    spec = importlib.util.spec_from_file_location("bench_svc_postgres", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def _wait(predicate: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        try:
            if predicate():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=10)


def _memory(pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs)
    uss = sum(p.memory_full_info().uss for p in procs)
    return {"rss_mib": round(rss / 2**20, 1), "uss_mib": round(uss / 2**20, 1), "processes": len(procs)}


def _wrk(wrk: str, url: str, seconds: int, *, connections: int = CONNECTIONS) -> dict[str, Any]:
    command = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    data = json.loads(lines[-1])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    return data


def run(*, repetitions: int, seconds: int) -> dict[str, Any]:
    wrk = ensure_wrk()
    pg = _svc_postgres()
    workdir = Path(tempfile.mkdtemp(prefix="bench-service-"))
    server = None
    started: list[subprocess.Popen[bytes]] = []
    try:
        server = pg.PostgresServer(workdir / "data")
        database = server.create_database()
        service_port, minimal_port = pg.free_port(), pg.free_port()
        service_env = {
            **os.environ,
            **database.env(),
            "ENVIRONMENT": "bench",
            "APP_SECRET": APP_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(service_port),
            "WORKERS": "1",
        }
        # stdout to a file: the request log lines and EMF metrics are written as in production, not discarded.
        service = _start([PYTHON, "-m", "service"], service_env, workdir / "service.log")
        started.append(service)
        minimal = _start([PYTHON, "-m", "bench.minimal_api", str(minimal_port)], dict(os.environ), workdir / "min.log")
        started.append(minimal)
        service_url, minimal_url = f"http://127.0.0.1:{service_port}", f"http://127.0.0.1:{minimal_port}"
        with httpx.Client(timeout=5) as http:
            _wait(lambda: http.get(f"{service_url}/readyz").status_code == 200, timeout=60, what="/readyz",
                  process=service)
            _wait(lambda: http.get(f"{minimal_url}/").status_code == 200, timeout=30, what="minimal app",
                  process=minimal)
            for i in range(NOTES):
                body = {"title": f"bench note {i}", "body": f"body {uuid.uuid4().hex}"}
                http.post(f"{service_url}/api/notes", json=body).raise_for_status()
            page = http.get(f"{service_url}/api/notes", params={"limit": 20}).json()
            assert len(page["items"]) == 20, page
        memory_idle = {"service": _memory(service.pid), "minimal": _memory(minimal.pid)}
        targets = {
            "service_root": f"{service_url}/",
            "service_notes": f"{service_url}/api/notes?limit=20",
            "minimal_root": f"{minimal_url}/",
        }
        for url in targets.values():
            _wrk(wrk, url, WARMUP_SECONDS)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        # Interleaved, so slow drift of the machine (other load, thermal) affects every target alike.
        for _ in range(repetitions):
            for name, url in targets.items():
                data = _wrk(wrk, url, seconds)
                runs[name].append(data)
                p = data["latency_us"]
                print(
                    f"[service] {name}: {data['rps']:.0f} req/s p50 {p['p50'] / 1000:.2f} ms "
                    f"p99 {p['p99'] / 1000:.2f} ms errors {data['errors']}",
                    flush=True,
                )
        memory_loaded = {"service": _memory(service.pid), "minimal": _memory(minimal.pid)}
        log_bytes = (workdir / "service.log").stat().st_size
    finally:
        for process in started:
            _stop(process)
        if server is not None:
            try:
                server.stop()
            except Exception as exc:  # noqa: BLE001 - cleanup continues; the error is reported
                print(f"[service] stopping PostgreSQL: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)

    result: dict[str, Any] = {
        "repetitions": repetitions,
        "seconds_per_run": seconds,
        "connections": CONNECTIONS,
        "threads": THREADS,
        "workers": 1,
        "notes_in_database": NOTES,
        "targets": {name: "/" + url.split("/", 3)[-1] for name, url in targets.items()},
        "memory_idle": memory_idle,
        "memory_after_load": memory_loaded,
        "service_log_bytes": log_bytes,
    }
    for name, samples in runs.items():
        result[name] = {
            "rps": summary([s["rps"] for s in samples], digits=0),
            "p50_ms": summary([s["latency_us"]["p50"] / 1000 for s in samples]),
            "p99_ms": summary([s["latency_us"]["p99"] / 1000 for s in samples]),
            "max_ms": summary([s["latency_us"]["max"] / 1000 for s in samples]),
            "errors": [s["errors"] for s in samples],
        }
    fraction = result["service_root"]["rps"]["median"] / result["minimal_root"]["rps"]["median"]
    result["root_vs_minimal_rps"] = round(fraction, 3)
    p99 = result["service_root"]["p99_ms"]["median"]
    result["aims"] = [
        {"text": f"`/` ≥ {AIM_RPS_FRACTION:.0%} of the minimal endpoint's requests/s", "met": fraction >= AIM_RPS_FRACTION},
        {"text": f"`/` p99 ≤ {AIM_P99_MS:.0f} ms at {CONNECTIONS} connections, one worker", "met": p99 <= AIM_P99_MS},
    ]
    return result
