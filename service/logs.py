"""JSON log lines on stdout (one object per line), shared by Python logging and the metrics writer."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


class LineWriter:
    """Writes whole lines to stdout, never interleaved, each flushed (awslogs reads a pipe)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self._pending: list[str] = []
        atexit.register(self.flush)

    def write(self, line: str) -> None:
        with self._lock:
            self._pending.append(line)
            self._flush_locked()

    def write_soon(self, line: str) -> None:
        """Written at the end of this event-loop iteration, in one write with the other lines finished in it.

        For the per-request line: under load many requests finish per iteration, and one write (and flush)
        for all of them keeps logging off the per-request cost.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write(line)
            return
        with self._lock:
            self._pending.append(line)
            if len(self._pending) == 1:
                loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            stream = self.stream or sys.stdout
            stream.write("\n".join(self._pending) + "\n")
            stream.flush()
            self._pending.clear()


OUTPUT = LineWriter()


class JsonLineHandler(logging.Handler):
    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp=True,
                # uvicorn adds an ANSI-coloured copy of some messages; one copy is enough.
                reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            )
        )
        self.addFilter(_enrich)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            OUTPUT.write(self.format(record))
        except Exception:
            self.handleError(record)


def _enrich(record: logging.LogRecord) -> bool:
    if not hasattr(record, "request_id"):
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
    # psycopg's pool reports failed (re)connections itself; tag them for the db_error metric filter.
    if record.levelno >= logging.WARNING and record.name.startswith("psycopg") and not hasattr(record, "event"):
        record.event = "db_error"
    return True


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig document; uvicorn applies it in every worker process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": {"()": JsonLineHandler}},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            # We log one line per request ourselves; uvicorn's own loggers go through the same JSON handler.
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "botocore": {"level": "WARNING"},
            "psycopg": {"level": "WARNING"},
        },
    }
