"""Credentials come from the RDS secret (moto stands in for Secrets Manager); rotating them fails no request."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from service_support import LiveServer, live_app, settings_for
from moto import mock_aws
from svc_postgres import Database, PostgresServer

from service.credentials import SecretsManagerCredentials
from service.db import Database as ServiceDatabase

pytestmark = pytest.mark.xdist_group("service")

REGION = "eu-west-1"


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def secret_settings(db: Database, arn: str) -> Any:
    return settings_for(DB_SECRET_ARN=arn, DB_NAME=db.name)


class Traffic:
    """Writers and readers hammering the API until stopped; every status is kept."""

    def __init__(self, server: LiveServer, *, workers: int = 4) -> None:
        self._server = server
        self._stop = threading.Event()
        self.statuses: list[int] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        with self._server.client(timeout=20) as client:
            while not self._stop.is_set():
                created = client.post("/api/notes", json={"title": "during rotation"})
                listed = client.get("/api/notes", params={"limit": 5})
                fetched = client.get(f"/api/notes/{created.json()['id']}") if created.status_code == 201 else created
                self.statuses += [created.status_code, listed.status_code, fetched.status_code]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads)


def app_backends_started_after(db: Database, moment: float) -> tuple[int, int]:
    with db.server.admin() as admin:
        rows = admin.execute(
            "SELECT extract(epoch FROM backend_start) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'service'",
            (db.name,),
        ).fetchall()
    return sum(1 for (start,) in rows if float(start) > moment), len(rows)


def test_rotation_while_requests_flow_fails_no_request(postgres: PostgresServer, secrets: Any) -> None:
    db = postgres.create_database()
    arn = secrets.create_secret(Name="service/rds", SecretString=db.secret_string())["ARN"]
    credentials = SecretsManagerCredentials(secret_arn=arn, client=secrets)
    # Connections live one second here, so new ones are opened throughout both rotations.
    database = ServiceDatabase(credentials=credentials, dbname=db.name, max_size=4, max_lifetime=1.0)
    with live_app(secret_settings(db, arn), database=database) as server:
        server.wait_ready()
        with Traffic(server) as traffic:
            time.sleep(1.0)

            # 1. As the RDS rotation function does it: new password staged as AWSPENDING, set in the
            #    database, and only then promoted to AWSCURRENT; new connections in between need AWSPENDING.
            second = uuid.uuid4().hex
            pending = secrets.put_secret_value(
                SecretId=arn, SecretString=db.secret_string(second), VersionStages=["AWSPENDING"]
            )["VersionId"]
            postgres.set_password(db.user, second)
            time.sleep(2.0)
            current = next(
                v["VersionId"]
                for v in secrets.list_secret_version_ids(SecretId=arn)["Versions"]
                if "AWSCURRENT" in v["VersionStages"]
            )
            secrets.update_secret_version_stage(
                SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=pending, RemoveFromVersionId=current
            )
            time.sleep(1.0)

            # 2. Database and secret changed back to back, with no AWSPENDING stage to help.
            third = uuid.uuid4().hex
            postgres.set_password(db.user, third)
            secrets.put_secret_value(SecretId=arn, SecretString=db.secret_string(third))
            rotated_at = time.time()
            time.sleep(2.5)
            fresh, total = app_backends_started_after(db, rotated_at)

    assert len(traffic.statuses) > 60, "too little traffic to prove anything"
    failures = [status for status in traffic.statuses if status not in (200, 201)]
    assert failures == [], f"{len(failures)} failed requests out of {len(traffic.statuses)}"
    # Connections opened after the last change can only have used the newest password.
    assert fresh >= 1 and total >= 1


def test_service_reads_its_credentials_from_the_secret_by_arn(postgres: PostgresServer, secrets: Any) -> None:
    db = postgres.create_database()
    arn = secrets.create_secret(Name="service/rds-plain", SecretString=db.secret_string())["ARN"]
    assert f":{REGION}:" in arn
    # No client is injected: the production wiring builds one for the secret's region.
    with live_app(secret_settings(db, arn)) as server, server.client() as client:
        server.wait_ready()
        assert client.post("/api/notes", json={"title": "via the secret"}).status_code == 201


def test_a_malformed_secret_keeps_the_service_unready(postgres: PostgresServer, secrets: Any) -> None:
    db = postgres.create_database()
    arn = secrets.create_secret(Name="service/rds-broken", SecretString='{"username": "x"}')["ARN"]
    with live_app(secret_settings(db, arn)) as server, server.client() as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
