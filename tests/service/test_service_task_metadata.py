"""`GET /` shows where the task runs, from the ECS task metadata endpoint v4 (served here by a local stand-in)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from service_support import live_app, settings_for, wait_until
from svc_postgres import PostgresServer, free_port

pytestmark = pytest.mark.xdist_group("service")

TASK = {
    "Cluster": "arn:aws:ecs:eu-central-1:123456789012:cluster/delivery",
    "TaskARN": "arn:aws:ecs:eu-central-1:123456789012:task/delivery/0123456789abcdef",
    "AvailabilityZone": "eu-central-1b",
    "LaunchType": "FARGATE",
}


class MetadataEndpoint:
    def __init__(self) -> None:
        self.requests: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests.append(self.path)
                body = json.dumps(TASK).encode() if self.path == "/v4/abc/task" else b"{}"
                self.send_response(200 if self.path == "/v4/abc/task" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v4/abc"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MetadataEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metadata() -> Iterator[MetadataEndpoint]:
    with MetadataEndpoint() as endpoint:
        yield endpoint


def test_region_and_zone_come_from_task_metadata_fetched_once(
    postgres: PostgresServer, metadata: MetadataEndpoint
) -> None:
    settings = settings_for(postgres.create_database(), ECS_CONTAINER_METADATA_URI_V4=metadata.uri)
    with live_app(settings) as server, server.client() as client:
        info = wait_until(lambda: (body := client.get("/").json())["region"] and body, timeout=10, what="task metadata")
        assert info["region"] == "eu-central-1" and info["availability_zone"] == "eu-central-1b"
        html = client.get("/", headers={"Accept": "text/html"}).text
        assert "eu-central-1 / eu-central-1b" in html
        for _ in range(5):
            client.get("/")
    assert metadata.requests == ["/v4/abc/task"]


def test_unreachable_metadata_endpoint_leaves_placement_empty_without_errors(postgres: PostgresServer) -> None:
    settings = settings_for(
        postgres.create_database(), ECS_CONTAINER_METADATA_URI_V4=f"http://127.0.0.1:{free_port()}/v4/none"
    )
    with live_app(settings) as server, server.client() as client:
        response = client.get("/")
        assert response.status_code == 200
        assert response.json()["region"] is None and response.json()["availability_zone"] is None
        assert httpx.get(f"{server.url}/healthz").status_code == 200
