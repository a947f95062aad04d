# The service image: `service/` and its pinned runtime dependencies, nothing else (see .dockerignore).
#
# BASE_IMAGE defaults to the public ECR mirror of the official Python image, which avoids Docker Hub's rate
# limits in CodeBuild. Pin it by digest too (…:3.11.16-slim-bookworm@sha256:<index digest>) once you can
# resolve the digest, e.g. with `docker buildx imagetools inspect <image>`.
# The container tests build with --build-arg BASE_IMAGE=local/python-base (Debian bookworm's Python 3.11, made
# by scripts/container-engine.sh without any registry); both bases have the same Python minor version.
ARG BASE_IMAGE=public.ecr.aws/docker/library/python:3.11.16-slim-bookworm

FROM ${BASE_IMAGE} AS builder
WORKDIR /build
COPY service/requirements.txt ./
# Wheels only: no compiler in any stage, and the same artefacts on every build. pip and setuptools are only
# needed to install, so they do not go into the runtime venv.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        --requirement requirements.txt \
    && /opt/venv/bin/python -m pip uninstall --yes --disable-pip-version-check pip setuptools

FROM ${BASE_IMAGE}
# A numeric user without useradd: minimal bases may lack the passwd package.
RUN echo 'app:x:10001:10001:app:/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
    && echo 'app:x:10001:' >>/etc/group
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Owned by root and read-only for the service user.
COPY service/ service/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
