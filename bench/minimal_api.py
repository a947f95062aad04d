"""The service baseline: one FastAPI endpoint returning a small JSON, no middleware, under the same uvicorn flags
as service/serve.py (`python -m bench.minimal_api PORT`)."""

from __future__ import annotations

import sys

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"service": "minimal", "status": "ok"}

    return app


def main(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        "bench.minimal_api:create_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        server_header=False,
        timeout_keep_alive=75,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
