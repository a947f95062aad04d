"""What the built image is: non-root, no compilers or caches, small on top of its base, cacheable."""

from __future__ import annotations

from typing import Any

import docker
import pytest

pytestmark = pytest.mark.xdist_group("docker")

APP_UID = 10001


def _run(client: docker.DockerClient, image: Any, command: list[str], **kwargs: Any) -> str:
    output = client.containers.run(image.id, command, remove=True, network_disabled=True, **kwargs)
    return output.decode().strip()


def test_image_config_is_production_shaped(image: Any) -> None:
    config = image.attrs["Config"]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Cmd"] == ["python", "-m", "service"]
    assert config["StopSignal"] == "SIGTERM"
    assert set(config["ExposedPorts"]) == {"8080/tcp"}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_runs_as_the_numeric_non_root_user(docker_client: docker.DockerClient, image: Any) -> None:
    assert _run(docker_client, image, ["id", "-u"]) == str(APP_UID)
    assert _run(docker_client, image, ["id", "-g"]) == str(APP_UID)


def test_service_code_is_not_writable_by_the_service(docker_client: docker.DockerClient, image: Any) -> None:
    script = "for p in /app/service /opt/venv; do if [ -w \"$p\" ]; then echo \"$p\"; fi; done"
    assert _run(docker_client, image, ["sh", "-c", script]) == ""


def test_has_no_compiler(docker_client: docker.DockerClient, image: Any) -> None:
    script = "for c in gcc cc c++ g++ clang make; do command -v \"$c\"; done; true"
    assert _run(docker_client, image, ["sh", "-c", script]) == ""


def test_has_no_pip_cache_and_no_pip_in_the_runtime_venv(docker_client: docker.DockerClient, image: Any) -> None:
    caches = _run(
        docker_client,
        image,
        ["sh", "-c", "find / -xdev -type d \\( -path '*/.cache/pip' -o -name 'pip-unpack-*' \\) -print"],
        user="0",
    )
    assert caches == ""
    check = "import importlib.util as u; print(u.find_spec('pip') is None, u.find_spec('service.settings') is not None)"
    assert _run(docker_client, image, ["python", "-c", check], working_dir="/app") == "True True"


def test_sizes_and_cached_rebuild(image: Any, base_image: Any, rebuild: Any, record_metric: Any) -> None:
    size_mb = image.attrs["Size"] / 1e6
    added_mb = (image.attrs["Size"] - base_image.attrs["Size"]) / 1e6
    record_metric("image_size_mb", round(size_mb, 1), f"image size {size_mb:.1f} MB")
    record_metric("image_added_mb", round(added_mb, 1), f"added on top of the base image: {added_mb:.1f} MB")
    # Nothing in the build defeats the layer cache: building again is fast and yields the same image.
    image_id, seconds = rebuild()
    record_metric("rebuild_seconds", round(seconds, 2), f"cached rebuild took {seconds:.2f} s")
    assert image_id == image.id, "building again without changes gave another image (did service/ change meanwhile?)"
    assert seconds < 60
