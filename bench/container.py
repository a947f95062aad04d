"""The service image: its size, what it adds to the base image, and cold start to the first `/healthz` 200."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import httpx
from docker.errors import NotFound

from bench.stats import summary
from tools.local_image import BASE_IMAGE, build_local_image

REPO = Path(__file__).resolve().parent.parent
IMAGE_TAG = "delivery-service:bench"
LABEL = "delivery.bench"
ENSURE_TIMEOUT_SECONDS = 1800
BUILD_TIMEOUT_SECONDS = 900
HEALTHY_TIMEOUT_SECONDS = 30.0


def _ensure_engine() -> None:
    out = subprocess.run(
        ["bash", "scripts/container-engine.sh", "ensure"],
        cwd=REPO, capture_output=True, text=True, timeout=ENSURE_TIMEOUT_SECONDS, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"scripts/container-engine.sh ensure failed:\n{out.stderr[-3000:]}")


def _build(client: docker.DockerClient) -> tuple[str, float, bool]:
    built = build_local_image(client, tag=IMAGE_TAG, timeout=BUILD_TIMEOUT_SECONDS)
    return built.image_id, built.seconds, built.cold


def _environment() -> dict[str, str]:
    # As the container tests: no database is reachable; `/healthz` needs none.
    return {
        "ENVIRONMENT": "bench",
        "APP_VERSION": "bench",
        "DB_NAME": "app",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "9",
        "DB_USER": "app",
        "DB_PASSWORD": "not-a-real-password",
        "APP_SECRET": "bench-signing-key-0123456789abcdef0123456789",
    }


def _cold_start(client: docker.DockerClient, image_id: str) -> dict[str, float]:
    container = None
    try:
        started = time.monotonic()
        container = client.containers.run(
            image_id,
            detach=True,
            name=f"delivery-bench-{uuid.uuid4().hex[:8]}",
            environment=_environment(),
            ports={"8080/tcp": ("127.0.0.1", None)},
            read_only=True,
            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={LABEL: "1"},
        )
        created = time.monotonic()
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = started + HEALTHY_TIMEOUT_SECONDS
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                try:
                    if http.get(url).status_code == 200:
                        healthy = time.monotonic()
                        stats = container.stats(stream=False)
                        rss = stats.get("memory_stats", {}).get("usage")
                        return {
                            "to_healthy": healthy - started,
                            "run_call": created - started,
                            "memory_usage_mib": round(rss / 2**20, 1) if rss else None,
                        }
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise RuntimeError(f"/healthz did not answer within {HEALTHY_TIMEOUT_SECONDS} s: {container.logs()[-2000:]!r}")
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except NotFound:
                pass


def run(*, repetitions: int) -> dict[str, Any]:
    _ensure_engine()
    client = docker.from_env(timeout=300)
    try:
        base = client.images.get(BASE_IMAGE)
        image_id, build_seconds, cold_build = _build(client)
        # The pipeline's Docker asset action builds without a layer cache: measure that too (report/model.py).
        cold = build_local_image(client, tag=IMAGE_TAG, timeout=BUILD_TIMEOUT_SECONDS, nocache=True)
        image_id = cold.image_id
        image = client.images.get(image_id)
        _cold_start(client, image_id)  # unmeasured: the first run also pages the image's files in
        samples = []
        for _ in range(repetitions):
            samples.append(_cold_start(client, image_id))
            print(f"[container] cold start to /healthz 200: {samples[-1]['to_healthy']:.2f} s", flush=True)
        size, base_size = image.attrs["Size"], base.attrs["Size"]
        layers = [
            {"size_mib": round(h["Size"] / 2**20, 2), "created_by": h["CreatedBy"][-120:]}
            for h in image.history()
            if h.get("Size")
        ]
    finally:
        for leftover in client.containers.list(all=True, filters={"label": LABEL}):
            leftover.remove(force=True)
        client.close()
    return {
        "repetitions": repetitions,
        "image": IMAGE_TAG,
        "base_image": BASE_IMAGE,
        "build_seconds": round(build_seconds, 1),
        "build_was_cold": cold_build,
        "build_no_cache_seconds": round(cold.seconds, 1),
        "size_mib": round(size / 2**20, 1),
        "base_size_mib": round(base_size / 2**20, 1),
        "added_mib": round((size - base_size) / 2**20, 1),
        "layers_with_content": layers,
        "cold_start_seconds": summary([s["to_healthy"] for s in samples]),
        "run_call_seconds": summary([s["run_call"] for s in samples]),
        "memory_usage_at_healthy_mib": summary(
            [s["memory_usage_mib"] for s in samples if s["memory_usage_mib"] is not None], digits=1
        ),
        "note": "cold start = docker run (create + start) until the first /healthz 200, image already local",
    }
