"""Fuzz every operation from the OpenAPI document: no 5xx, and every response matches the document."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from service_support import LiveServer, live_app, settings_for
from schemathesis.config import SchemathesisConfig
from svc_postgres import PostgresServer

from service.app import create_app

pytestmark = pytest.mark.xdist_group("service")

FUZZ_CONFIG = {
    "seed": 20261127,
    "generation": {"max-examples": 100, "database": "none", "deterministic": True},
    "operations": [
        {
            # A cursor is opaque and signed: the schema gives its pattern and length, not which strings we issued,
            # so a schema-valid but forged cursor is the 422 the document declares for it.
            "include-name": "GET /api/notes",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}},
        },
        {
            # Likewise an Idempotency-Key is any visible ASCII string, but one already used with another body is
            # rightly a 422: generated examples reuse short keys.
            "include-name": "POST /api/notes",
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "422"]}},
        },
    ],
}
# The document is built in-process so the tests can be collected; the last test proves the server serves the same one.
DOCUMENT = create_app(settings_for(DB_HOST="127.0.0.1", DB_USER="unused", DB_NAME="unused")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(FUZZ_CONFIG))


@pytest.fixture(scope="module")
def fuzzed_server(postgres: PostgresServer) -> Iterator[LiveServer]:
    with live_app(settings_for(postgres.create_database())) as live:
        live.wait_ready()
        yield live


@schema.parametrize()
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, fuzzed_server: LiveServer) -> None:
    case.call_and_validate(base_url=fuzzed_server.url, timeout=10)


def test_fuzzed_document_is_the_served_one(fuzzed_server: LiveServer) -> None:
    assert httpx.get(f"{fuzzed_server.url}/openapi.json", timeout=10).json() == DOCUMENT
