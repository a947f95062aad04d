"""Runs the app under uvicorn the way production needs it: uvloop/httptools, our JSON logs, read deadlines,
graceful drain."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from service.logs import log_config
from service.protocol import ServiceConfig
from service.settings import Settings

STARTUP_FAILURE = 3


class DrainingMultiprocess(Multiprocess):
    def terminate_all(self) -> None:
        # The parent holds its own copy of the listening socket; close it first, or the kernel keeps queueing
        # new connections that no draining worker will ever accept (they would be reset at exit).
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def server_config(settings: Settings, app: Any = "service.app:create_app", **overrides: Any) -> ServiceConfig:
    """The uvicorn configuration of production; the tests run in-process servers with it too."""
    options: dict[str, Any] = {
        "factory": isinstance(app, str),
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "lifespan": "on",
        "access_log": False,
        "log_config": log_config(),
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "header_timeout": settings.request_header_timeout,
        "body_timeout": settings.request_body_timeout,
    }
    return ServiceConfig(app, **{**options, **overrides})


def serve(settings: Settings) -> None:
    config = server_config(settings)
    if config.workers > 1:
        DrainingMultiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
