"""The service under database faults: PostgreSQL hung (SIGSTOP) and stopped, under a loopback load.

For each fault: `python -m service` (one worker) on its own embedded PostgreSQL 18, `wrk -c32` on a database-backed
endpoint during the outage, and two sequential probes (`GET /api/notes` and `GET /readyz`) that time every
response. Reported: the time from the fault to the first 503, the requests/s served during the outage, the longest
request while it lasted, and the time from the repair to the first 200 of a request sent after it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import service as svc
from bench.stats import summary

CONNECTIONS = 32
NOTES = 100
TARGET = "/api/notes?limit=20"
PROBE_TIMEOUT_SECONDS = 30.0
RECOVERY_DEADLINE_SECONDS = 60.0
FAULTS = ("hung", "stopped")
# The service's default DB_TIMEOUT_MS, in seconds: the bound every database call should respect.
BUDGET_SECONDS = 3.0


@dataclass
class Probe:
    """Sends one request after the other and keeps (start, end, status, retry-after) of each; status 0 = error."""

    url: str
    samples: list[tuple[float, float, int, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=PROBE_TIMEOUT_SECONDS) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(self.url)
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry_after = 0, None
                self.samples.append((started, time.monotonic(), status, retry_after))
                # A fast 503 must not turn the probe into a second load generator.
                time.sleep(0.02)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT_SECONDS + 5)

    def first(self, status: int, *, started_after: float = 0.0, ended_after: float = 0.0) -> float | None:
        ends = [
            end for start, end, s, _ in self.samples if s == status and start >= started_after and end >= ended_after
        ]
        return min(ends) if ends else None

    def longest(self, *, between: tuple[float, float]) -> float:
        low, high = between
        spans = [end - start for start, end, _, _ in self.samples if start < high and end > low]
        return max(spans, default=0.0)

    def retry_after(self, status: int) -> list[str | None]:
        return sorted({ra for _, _, s, ra in self.samples if s == status}, key=str)


def _one(fault: str, *, wrk: str, outage_seconds: float, load_seconds: int, workdir: Path) -> dict[str, Any]:
    pg = svc._svc_postgres()
    server = pg.PostgresServer(workdir / "data")
    process = None
    try:
        database = server.create_database()
        port = pg.free_port()
        env = {
            **os.environ,
            **database.env(),
            "ENVIRONMENT": "bench",
            "APP_SECRET": svc.APP_SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": "1",
        }
        process = svc._start([svc.PYTHON, "-m", "service"], env, workdir / f"service-{fault}.log")
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as http:
            svc._wait(lambda: http.get(f"{url}/readyz").status_code == 200, timeout=60, what="/readyz", process=process)
            for i in range(NOTES):
                http.post(f"{url}/api/notes", json={"title": f"fault note {i}", "body": uuid.uuid4().hex})
        steady = svc._wrk(wrk, f"{url}{TARGET}", 3, connections=CONNECTIONS)
        api, ready = Probe(f"{url}{TARGET}").start(), Probe(f"{url}/readyz").start()
        time.sleep(0.5)
        if fault == "hung":
            server.pause()
        else:
            server.stop()
        broken_at = time.monotonic()
        during: dict[str, Any] = {}
        outage = threading.Thread(
            target=lambda: during.update(svc._wrk(wrk, f"{url}{TARGET}", load_seconds, connections=CONNECTIONS))
        )
        outage.start()
        time.sleep(max(0.0, outage_seconds - (time.monotonic() - broken_at)))
        if fault == "hung":
            server.resume()
        else:
            server.start()
        repaired_at = time.monotonic()
        outage.join(timeout=load_seconds + 60)
        deadline = repaired_at + RECOVERY_DEADLINE_SECONDS
        while time.monotonic() < deadline and (
            api.first(200, started_after=repaired_at) is None or ready.first(200, started_after=repaired_at) is None
        ):
            time.sleep(0.05)
        api.stop()
        ready.stop()
    finally:
        if process is not None:
            svc._stop(process)
        try:
            if fault == "hung":
                server.resume()
            if server.is_running():
                server.stop()
        except Exception as exc:  # noqa: BLE001 - cleanup continues; the error is reported
            print(f"[faults] stopping PostgreSQL: {exc}", flush=True)

    def since(moment: float | None, origin: float) -> float | None:
        return None if moment is None else round(moment - origin, 3)

    result = {
        "steady_rps": round(steady["rps"], 1),
        "outage_rps": round(during.get("rps", 0.0), 1),
        "outage_non_2xx": during.get("errors", {}).get("status"),
        "outage_timeouts": during.get("errors", {}).get("timeout"),
        "outage_p99_ms": round(during.get("latency_us", {}).get("p99", 0) / 1000, 1),
        "api_first_503_s": since(api.first(503, ended_after=broken_at), broken_at),
        "readyz_first_503_s": since(ready.first(503, ended_after=broken_at), broken_at),
        "api_longest_request_s": round(api.longest(between=(broken_at, repaired_at)), 3),
        "readyz_longest_request_s": round(ready.longest(between=(broken_at, repaired_at)), 3),
        "api_recovered_s": since(api.first(200, started_after=repaired_at), repaired_at),
        "readyz_recovered_s": since(ready.first(200, started_after=repaired_at), repaired_at),
        "retry_after_on_503": api.retry_after(503),
    }
    print(f"[faults] {fault}: {result}", flush=True)
    return result


def run(*, repetitions: int, outage_seconds: float = 12.0) -> dict[str, Any]:
    wrk = svc.ensure_wrk()
    load_seconds = max(2, int(outage_seconds) - 2)
    runs: dict[str, list[dict[str, Any]]] = {fault: [] for fault in FAULTS}
    for _ in range(repetitions):
        for fault in FAULTS:
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-faults-{fault}-"))
            try:
                runs[fault].append(
                    _one(fault, wrk=wrk, outage_seconds=outage_seconds, load_seconds=load_seconds, workdir=workdir)
                )
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {
        "repetitions": repetitions,
        "connections": CONNECTIONS,
        "outage_seconds": outage_seconds,
        "load_seconds": load_seconds,
        "target": TARGET,
        "workers": 1,
    }
    return summarize(result, runs)


def summarize(result: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    for fault, samples in runs.items():
        section: dict[str, Any] = {"runs": samples}
        for key in samples[0]:
            values = [s[key] for s in samples]
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if numbers:
                section[key] = summary(numbers, digits=3)
            # "Never" (no 503 while the fault lasted, say) is a result too, not a gap in the data.
            if any(v is None for v in values):
                section[f"{key}_never"] = sum(v is None for v in values)
        result[fault] = section
    result["aims"] = _aims(result)
    return result


def _aims(result: dict[str, Any]) -> list[dict[str, Any]]:
    def median(fault: str, key: str) -> float | None:
        stat = result[fault].get(key)
        return stat["median"] if stat and not result[fault].get(f"{key}_never") else None

    longest = median("hung", "api_longest_request_s")
    first = median("stopped", "api_first_503_s")
    recovered = [median(fault, "api_recovered_s") for fault in FAULTS]
    rps = [(median(fault, "outage_rps"), median(fault, "steady_rps")) for fault in FAULTS]
    return [
        {
            "text": f"frozen database: no request longer than the {BUDGET_SECONDS:g} s database budget (+0.5 s)",
            "met": longest is not None and longest <= BUDGET_SECONDS + 0.5,
        },
        {"text": "stopped database: first 503 within 1 s", "met": first is not None and first <= 1.0},
        {
            "text": "outage: at least the steady requests/s (refusing is cheaper than serving)",
            "met": all(o is not None and s is not None and o >= s for o, s in rps),
        },
        {"text": "recovery within 1 s of the repair", "met": all(r is not None and r <= 1.0 for r in recovered)},
    ]
