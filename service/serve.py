"""Runs the app under uvicorn the way production needs it: uvloop/httptools, our JSON logs, graceful drain."""

from __future__ import annotations

import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from service.logs import log_config
from service.settings import Settings

# Longer than the ALB's idle timeout (60 s), so the load balancer never reuses a connection we are closing.
KEEP_ALIVE_SECONDS = 75
STARTUP_FAILURE = 3


class DrainingMultiprocess(Multiprocess):
    def terminate_all(self) -> None:
        # The parent holds its own copy of the listening socket; close it first, or the kernel keeps queueing
        # new connections that no draining worker will ever accept (they would be reset at exit).
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def serve(settings: Settings) -> None:
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=log_config(),
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    if config.workers > 1:
        DrainingMultiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
