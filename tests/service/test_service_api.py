from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from service_support import LiveServer, live_app, settings_for
from svc_postgres import PostgresServer

pytestmark = pytest.mark.xdist_group("service")


@pytest.fixture(scope="module")
def server(postgres: PostgresServer) -> Iterator[LiveServer]:
    db = postgres.create_database()
    settings = settings_for(db, ENVIRONMENT="staging", APP_VERSION="abc1234", ENV_COLOR="#d97706")
    with live_app(settings) as live:
        live.wait_ready()
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def create(client: httpx.Client, title: str = "a note", body: str = "text") -> dict:
    response = client.post("/api/notes", json={"title": title, "body": body})
    assert response.status_code == 201, response.text
    return response.json()


def field_errors(response: httpx.Response) -> set[str]:
    assert response.headers["content-type"] == "application/json"
    return {error["field"] for error in response.json()["fields"]}


def locations(response: httpx.Response) -> set[tuple[str, str]]:
    assert response.headers["content-type"] == "application/json"
    return {(error["field"], error["location"]) for error in response.json()["fields"]}


def test_root_is_json_by_default_and_names_the_environment(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "service": "notes",
        "environment": "staging",
        "version": "abc1234",
        "region": None,
        "availability_zone": None,
    }


def test_root_is_html_with_the_environment_colour_when_asked(client: httpx.Client) -> None:
    response = client.get("/", headers={"Accept": "text/html,application/xhtml+xml;q=0.9"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "background:#d97706" in response.text
    assert "staging" in response.text and "abc1234" in response.text
    assert response.headers["vary"] == "Accept"


def test_health_endpoints(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "reason": None}


def test_request_id_is_echoed_when_sane_and_generated_otherwise(client: httpx.Client) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "trace-42.abc"}).headers["x-request-id"] == "trace-42.abc"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"}).headers["x-request-id"]
    assert generated != "bad id\twith spaces" and len(generated) == 32
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_create_get_delete_note(client: httpx.Client) -> None:
    created = create(client, "groceries", "milk\neggs ✓")
    assert created["title"] == "groceries" and created["body"] == "milk\neggs ✓"
    note_id = created["id"]
    assert client.get(f"/api/notes/{note_id}").json() == created
    assert client.delete(f"/api/notes/{note_id}").status_code == 204
    assert client.get(f"/api/notes/{note_id}").status_code == 404
    assert client.delete(f"/api/notes/{note_id}").status_code == 404


def test_create_sets_location_and_body_defaults_to_empty(client: httpx.Client) -> None:
    response = client.post("/api/notes", json={"title": "only a title"})
    assert response.status_code == 201
    assert response.headers["location"] == f"/api/notes/{response.json()['id']}"
    assert response.json()["body"] == ""


def test_unknown_ids_are_404_with_a_json_error(client: httpx.Client) -> None:
    response = client.get(f"/api/notes/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_list_pages_through_every_note_once_newest_first(client: httpx.Client) -> None:
    ids = [create(client, f"page note {i}")["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/notes", params=params).json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in ids] == list(reversed(ids))


def test_forged_or_tampered_cursors_are_rejected_naming_the_field(client: httpx.Client, server: LiveServer) -> None:
    for i in range(3):
        create(client, f"cursor note {i}")
    cursor = client.get("/api/notes", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    payload, signature = cursor.split(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    for bad in (tampered, "not-a-cursor", payload + ".", "é.é", "." * 3, "a" * 512):
        response = client.get("/api/notes", params={"cursor": bad})
        assert response.status_code == 422, (bad, response.text)
        assert field_errors(response) == {"cursor"}


def test_cursor_signed_with_another_environments_key_is_rejected(
    postgres: PostgresServer, client: httpx.Client
) -> None:
    create(client, "one")
    create(client, "two")
    cursor = client.get("/api/notes", params={"limit": 1}).json()["next_cursor"]
    other = postgres.create_database()
    with live_app(settings_for(other, APP_SECRET="another-environment-key-0123456789abcdef")) as other_server:
        other_server.wait_ready()
        with other_server.client() as other_client:
            response = other_client.get("/api/notes", params={"cursor": cursor})
    assert response.status_code == 422
    assert field_errors(response) == {"cursor"}


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"title"}),
        ({"title": ""}, {"title"}),
        ({"title": "x" * 201}, {"title"}),
        ({"title": 12}, {"title"}),
        ({"title": None}, {"title"}),
        ({"title": ["a"]}, {"title"}),
        ({"title": "ok", "body": "y" * 4001}, {"body"}),
        ({"title": "ok", "body": 10**400}, {"body"}),
        ({"title": "nul\u0000byte"}, {"title"}),
        ({"title": "ok", "body": "nul\u0000"}, {"body"}),
        ({"title": "ok", "colour": "red"}, {"colour"}),
        ([], {"request_body"}),
        ("just a string", {"request_body"}),
        (10**1000, {"request_body"}),
    ],
)
def test_invalid_notes_get_422_naming_the_field(client: httpx.Client, payload: object, fields: set[str]) -> None:
    response = client.post("/api/notes", content=json.dumps(payload), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_failed"
    assert field_errors(response) == fields


def test_lone_surrogates_are_rejected_not_a_500(client: httpx.Client) -> None:
    response = client.post(
        "/api/notes", content=b'{"title": "bad \\ud800 text"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert field_errors(response) == {"title"}


@pytest.mark.parametrize("body", [b"{", b'{"title": "x",}', b"\xff\xfe", b"nul\x00", b'{"title": "x"} trailing'])
def test_malformed_json_is_400_naming_the_body(client: httpx.Client, body: bytes) -> None:
    response = client.post("/api/notes", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert locations(response) == {("request_body", "request")}


def test_errors_about_the_whole_body_are_told_apart_from_the_notes_body_field(client: httpx.Client) -> None:
    whole = client.post("/api/notes", content=b"[]", headers={"Content-Type": "application/json"})
    field = client.post("/api/notes", json={"title": "ok", "body": 12})
    assert whole.status_code == field.status_code == 422
    assert locations(whole) == {("request_body", "request")}
    assert locations(field) == {("body", "body")}


def test_a_post_without_a_body_is_422_asking_for_a_json_object(client: httpx.Client) -> None:
    for headers in ({}, {"Content-Type": "application/json"}):
        response = client.post("/api/notes", headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["fields"] == [
            {"field": "request_body", "location": "request", "message": "A JSON object is required"}
        ]


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("text/plain", "text/plain"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("multipart/form-data; boundary=x", "multipart/form-data"),
        ("application/xml", "application/xml"),
        ("json", "of this request"),
        ("<script>/x", "of this request"),
    ],
)
def test_non_json_content_type_is_415_naming_the_header(client: httpx.Client, content_type: str, named: str) -> None:
    response = client.post("/api/notes", content=b'{"title": "x"}', headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert response.json()["message"] == (
        f"Content-Type {named} is not supported: send JSON with Content-Type: application/json"
    )
    assert locations(response) == {("Content-Type", "header")}
    assert response.headers["accept-post"] == "application/json"


def test_a_body_without_content_type_is_415(client: httpx.Client) -> None:
    response = client.post("/api/notes", content=b'{"title": "x"}')
    assert "content-type" not in response.request.headers
    assert response.status_code == 415, response.text
    assert "no Content-Type" in response.json()["message"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON", "application/x+json"])
def test_json_media_types_are_accepted(client: httpx.Client, content_type: str) -> None:
    response = client.post("/api/notes", content=b'{"title": "typed"}', headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "9" * 400}, "limit"),
    ],
)
def test_bad_query_parameters_get_422_naming_them(client: httpx.Client, params: dict, field: str) -> None:
    response = client.get("/api/notes", params=params)
    assert response.status_code == 422
    assert field_errors(response) == {field}


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", "0" * 200, "%00"])
def test_bad_ids_get_422_naming_the_id(client: httpx.Client, bad_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/api/notes/{bad_id}")
        assert response.status_code == 422, response.text
        assert field_errors(response) == {"id"}


def test_oversized_body_is_413_before_it_is_read(client: httpx.Client, server: LiveServer) -> None:
    # Content-Length alone decides: the server answers without waiting for a body that never comes.
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n{"
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert '"error":"payload_too_large"' in head.replace(" ", "")


def test_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "x", "body": "'
        for _ in range(100):
            yield b"y" * 1024

    response = client.post("/api/notes", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_unknown_route_and_wrong_method_are_json_errors(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.patch(f"/api/notes/{uuid.uuid4()}")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) == {"GET", "DELETE"}


def test_openapi_declares_error_responses_with_their_schema(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    operations = document["paths"]
    expected = {
        ("/api/notes", "post"): {"201", "400", "408", "409", "413", "415", "422", "503"},
        ("/api/notes", "get"): {"200", "422", "503"},
        ("/api/notes/{id}", "get"): {"200", "404", "422", "503"},
        ("/api/notes/{id}", "delete"): {"204", "404", "422", "503"},
        ("/readyz", "get"): {"200", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = operations[path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status in statuses - {"200", "201", "204"}:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in ("ErrorBody", "Readiness")
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(operations["/"]["get"]["responses"]["200"]["content"]) == {"application/json", "text/html"}


def test_cursor_parameter_is_described_precisely_and_issued_cursors_match_it(client: httpx.Client) -> None:
    for i in range(2):
        create(client, f"described {i}")
    cursor = client.get("/api/notes", params={"limit": 1}).json()["next_cursor"]
    (parameter,) = [
        p for p in client.get("/openapi.json").json()["paths"]["/api/notes"]["get"]["parameters"] if p["name"] == "cursor"
    ]
    schema = parameter["schema"]
    assert schema["type"] == "string" and "anyOf" not in schema
    assert re.fullmatch(schema["pattern"].strip("^$"), cursor) and len(cursor) <= schema["maxLength"]
    assert "422" in parameter["description"]
    # Schema-valid but not issued by the API: the documented 422, not a 500.
    forged = "A" * 40 + "." + "B" * 22
    assert re.fullmatch(schema["pattern"].strip("^$"), forged)
    response = client.get("/api/notes", params={"cursor": forged})
    assert response.status_code == 422 and locations(response) == {("cursor", "query")}


def test_docs_page_is_self_contained_and_lists_every_operation(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    page = response.text
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method in operations:
            assert f'{method.upper()}</span><code>{html.escape(path)}</code>' in page, (method, path)
    assert "maximum <code>100</code>" not in page and "max <code>100</code>" in page
    assert 'href="openapi.json"' in page
    # Nothing loads from elsewhere: no script at all, no absolute URL, no protocol-relative one.
    assert "<script" not in page.lower()
    assert not re.search(r"(?i)(src|href)\s*=\s*[\"']?\s*(https?:|//|data:)", page)
    assert not re.search(r"(?i)https?://|url\(", page)
    assert client.get("/docs/oauth2-redirect").status_code == 404
