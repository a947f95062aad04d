"""Production entry point: `python -m service` (the container's command)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from service.serve import serve
from service.settings import ConfigError, Settings


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal; end quietly with a status instead.
    signal.signal(signal.SIGTERM, _exit_with(0))
    signal.signal(signal.SIGINT, _exit_with(130))
    serve(settings)
    return 0


def _exit_with(status: int) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(status)

    return handler


if __name__ == "__main__":
    sys.exit(main())
