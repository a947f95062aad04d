"""Readiness follows the database: 503 while it is down, ready again by itself when it returns."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from service_support import LogCapture, live_app, settings_for, wait_until
from svc_postgres import Database, PostgresServer

pytestmark = pytest.mark.xdist_group("service")


def test_readiness_and_api_follow_the_database_down_and_back(
    own_postgres: PostgresServer, captured_output: LogCapture
) -> None:
    db = own_postgres.create_database()
    with live_app(settings_for(db)) as server, server.client(timeout=20) as client:
        server.wait_ready()
        note = client.post("/api/notes", json={"title": "before the outage"}).json()

        own_postgres.stop()
        wait_until(lambda: client.get("/readyz").status_code == 503, timeout=15, what="readyz 503")
        unready = client.get("/readyz")
        assert unready.json()["status"] == "not_ready"
        assert "database unreachable" in unready.json()["reason"]
        assert client.get("/healthz").status_code == 200
        failed = client.get(f"/api/notes/{note['id']}")
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"] == "database_unavailable"
        assert client.get("/").status_code == 200

        own_postgres.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, what="recovery")
        assert client.get(f"/api/notes/{note['id']}").json()["title"] == "before the outage"
        assert client.post("/api/notes", json={"title": "after the outage"}).status_code == 201

    db_errors = [line for line in captured_output.lines() if '"event": "db_error"' in line]
    assert db_errors, "database failures must be logged with event=db_error"


def test_service_starts_while_the_database_is_down_and_migrates_when_it_comes(own_postgres: PostgresServer) -> None:
    db = own_postgres.create_database()
    own_postgres.stop()
    with live_app(settings_for(db)) as server, server.client() as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "not migrated" in response.json()["reason"]

        own_postgres.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30, what="migration after start")
        assert client.get("/api/notes").json() == {"items": [], "next_cursor": None}


def test_wrong_credentials_keep_the_service_unready_not_crashed(postgres: PostgresServer) -> None:
    db = postgres.create_database()
    settings = settings_for(db, DB_PASSWORD="not-the-password")
    with live_app(settings) as server, server.client() as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/notes").status_code == 503


def blocked_on_lock(db: Database) -> int:
    # A fresh connection each time: inside a transaction pg_stat_activity is a frozen snapshot.
    with db.connect() as monitor:
        row = monitor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s", (db.name,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_readyz_answers_within_its_timeout_when_the_pool_is_exhausted(postgres: PostgresServer) -> None:
    db = postgres.create_database()
    # The lock stands in for slow requests: they must outlast the readiness check, not meet the statement timeout.
    with live_app(settings_for(db, DB_TIMEOUT_MS="30000")) as server, db.connect() as admin:
        server.wait_ready()
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")
        # Ten slow requests hold every pooled connection (max_size=10); readiness must still answer in time.
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            futures = [pool.submit(httpx.get, f"{server.url}/api/notes", timeout=30) for _ in range(10)]
            wait_until(lambda: blocked_on_lock(db) == 10, timeout=15, what="ten blocked requests")
            response = httpx.get(f"{server.url}/readyz", timeout=10)
            assert response.status_code == 503
            assert response.elapsed.total_seconds() < 5
            admin.execute("ROLLBACK")
            assert [f.result().status_code for f in futures] == [200] * 10
