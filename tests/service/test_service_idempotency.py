"""POST /api/notes with an Idempotency-Key: a retry gets the original response and creates nothing, whether it
comes after the first request or at the same moment; another body under the same key is refused; keys expire."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from service_support import LiveServer, live_app, settings_for, wait_until
from svc_postgres import Database, PostgresServer

from service import notes_store

pytestmark = pytest.mark.xdist_group("service")


@pytest.fixture(scope="module")
def served(postgres: PostgresServer) -> Iterator[tuple[LiveServer, Database]]:
    db = postgres.create_database()
    with live_app(settings_for(db)) as live:
        live.wait_ready()
        yield live, db


@pytest.fixture
def client(served: tuple[LiveServer, Database]) -> Iterator[httpx.Client]:
    with served[0].client(timeout=30) as client:
        yield client


def rows(db: Database, title: str) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM notes WHERE title = %s", (title,)).fetchone()
    return int(row[0]) if row else 0


def post(client: httpx.Client, key: str, title: str, body: str = "") -> httpx.Response:
    return client.post("/api/notes", json={"title": title, "body": body}, headers={"Idempotency-Key": key})


def test_a_sequential_retry_gets_the_original_response_and_creates_nothing(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    key, title = str(uuid.uuid4()), f"retried {uuid.uuid4()}"
    first = post(client, key, title, "body")
    second = post(client, key, title, "body")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"] == f"/api/notes/{first.json()['id']}"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert rows(served[1], title) == 1


def test_the_same_note_in_other_spelling_or_a_quoted_key_is_the_same_request(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    key, title = f"k-{uuid.uuid4()}", f"spelled {uuid.uuid4()}"
    first = post(client, key, title)
    respelled = client.post(
        "/api/notes",
        content=f'{{ "body" : "",  "title" : "{title}" }}',
        # The structured-field string form of the same key.
        headers={"Idempotency-Key": f'"{key}"', "Content-Type": "application/json"},
    )
    assert respelled.status_code == 201
    assert respelled.json()["id"] == first.json()["id"]
    assert rows(served[1], title) == 1


def test_fifty_concurrent_identical_posts_create_one_note(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    key, title = str(uuid.uuid4()), f"concurrent {uuid.uuid4()}"
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: post(client, key, title), range(50)))
    created = [r for r in responses if r.status_code == 201]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_progress) == 50, {r.status_code for r in responses}
    assert len({r.json()["id"] for r in created}) == 1
    assert sum(1 for r in created if "idempotent-replayed" not in r.headers) == 1
    assert all(r.headers["retry-after"] == "1" for r in in_progress)
    assert rows(served[1], title) == 1
    # Those told to retry get the one note when they do.
    assert post(client, key, title).json()["id"] == created[0].json()["id"]


def test_a_retry_while_the_first_request_is_still_running_is_told_to_come_back(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    key, title = str(uuid.uuid4()), f"in flight {uuid.uuid4()}"
    # draft-ietf-httpapi-idempotency-key-header: "If the request is retried, while the original request is still
    # being processed, the resource server SHOULD reply with an HTTP 409 status code".
    with served[1].connect() as admin:
        # What the first request holds while it runs.
        admin.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (notes_store.IDEMPOTENCY_LOCK_NAMESPACE, key))
        busy = post(client, key, title)
        admin.execute("SELECT pg_advisory_unlock_all()")
    assert busy.status_code == 409
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"] == "idempotency_key_in_use"
    assert [(f["field"], f["location"]) for f in busy.json()["fields"]] == [("Idempotency-Key", "header")]
    assert rows(served[1], title) == 0
    assert post(client, key, title).status_code == 201
    assert rows(served[1], title) == 1


def test_fifty_concurrent_posts_without_a_key_are_fifty_notes(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    title = f"no key {uuid.uuid4()}"
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda _: client.post("/api/notes", json={"title": title}).status_code, range(50)))
    assert statuses == [201] * 50
    assert rows(served[1], title) == 50


def test_the_same_key_with_another_body_is_refused_and_stores_nothing(
    client: httpx.Client, served: tuple[LiveServer, Database]
) -> None:
    key, title = str(uuid.uuid4()), f"original {uuid.uuid4()}"
    assert post(client, key, title).status_code == 201
    # draft-ietf-httpapi-idempotency-key-header: "If there is an attempt to reuse an idempotency key with a
    # different request payload, the resource server SHOULD reply with a HTTP 422 status code".
    reused = post(client, key, f"{title} changed")
    assert reused.status_code == 422
    assert reused.json()["error"] == "validation_failed"
    assert reused.json()["fields"] == [
        {"field": "Idempotency-Key", "location": "header", "message": "key already used with another request body"}
    ]
    assert rows(served[1], f"{title} changed") == 0
    assert post(client, key, title).headers["idempotent-replayed"] == "true"


def test_the_original_response_is_replayed_even_after_the_note_was_deleted(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    created = post(client, key, "deleted later").json()
    assert client.delete(f"/api/notes/{created['id']}").status_code == 204
    replayed = post(client, key, "deleted later")
    assert replayed.status_code == 201 and replayed.json() == created


@pytest.mark.parametrize("bad", ["", "has space", "x" * 256, "tab\tkey"])
def test_malformed_keys_are_422_naming_the_header(client: httpx.Client, bad: str) -> None:
    response = client.post("/api/notes", json={"title": "bad key"}, headers={"Idempotency-Key": bad})
    assert response.status_code == 422, response.text
    assert {(f["field"], f["location"]) for f in response.json()["fields"]} == {("Idempotency-Key", "header")}


def test_the_header_is_documented_in_the_openapi_document(client: httpx.Client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/notes"]["post"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert parameter["in"] == "header" and not parameter.get("required", False)
    assert "retry" in parameter["description"]
    assert set(operation["responses"]["201"]["headers"]) == {"Location", "Idempotent-Replayed"}
    assert "Idempotency-Key" in operation["responses"]["422"]["description"]


def test_keys_expire_after_their_time_and_are_swept(postgres: PostgresServer) -> None:
    db = postgres.create_database()
    key, title = str(uuid.uuid4()), f"expiring {uuid.uuid4()}"
    with live_app(settings_for(db, IDEMPOTENCY_KEY_TTL_SECONDS="1")) as live, live.client() as client:
        live.wait_ready()
        first = post(client, key, title)

        def expired() -> bool:
            with db.connect() as conn:
                row = conn.execute(
                    "SELECT expires_at <= clock_timestamp() FROM idempotency_keys WHERE key = %s", (key,)
                ).fetchone()
                return bool(row and row[0])

        wait_until(expired, timeout=10, what="the key to expire")
        second = post(client, key, title)
        assert first.status_code == second.status_code == 201
        assert second.json()["id"] != first.json()["id"]
        assert "idempotent-replayed" not in second.headers
    assert rows(db, title) == 2

    wait_until(expired, timeout=10, what="the key to expire again")

    async def sweep() -> int:
        async with await psycopg.AsyncConnection.connect(db.server.admin_conninfo(db.name), autocommit=True) as conn:
            return await notes_store.delete_expired_keys(conn)

    assert asyncio.run(sweep()) >= 1
    with db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,)).fetchone() == (0,)
