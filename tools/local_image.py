"""Builds the service image from the local base image, the way the container tests and `make bench` both need."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "local/python-base"


class ImageBuildError(RuntimeError):
    """The build failed, timed out or reported no image; the message ends with the build's last output."""


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    seconds: float
    cold: bool  # the dependency layer was built, not taken from the cache


def build_local_image(client: docker.DockerClient, *, tag: str, timeout: float, nocache: bool = False) -> BuiltImage:
    started = time.monotonic()
    # The SDK always uses the classic builder, and pull=False: nothing is ever fetched from a registry.
    stream = client.api.build(
        path=str(ROOT),
        dockerfile="Dockerfile",
        tag=tag,
        buildargs={"BASE_IMAGE": BASE_IMAGE},
        pull=False,
        rm=True,
        forcerm=True,
        nocache=nocache,
        decode=True,
        timeout=timeout,
    )
    log: list[str] = []
    image_id = None
    for chunk in stream:
        if "error" in chunk:
            failure = chunk["error"].strip()
            raise ImageBuildError(f"docker build failed: {failure}\n--- last build output ---\n{_tail(log)}")
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
        if time.monotonic() - started > timeout:
            raise ImageBuildError(f"docker build took longer than {timeout:.0f} s\n{_tail(log)}")
    if not image_id:
        raise ImageBuildError(f"docker build reported no image id:\n{_tail(log)}")
    # pip prints this only when it really installed the dependencies.
    return BuiltImage(image_id, time.monotonic() - started, "Successfully installed" in "".join(log))


def _tail(log: list[str]) -> str:
    return "".join(log[-40:])
