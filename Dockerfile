# syntax=docker/dockerfile:1
# Qactuar in a container: `qactuar serve` as the entrypoint, a non-root user, apps/ and the run-time
# state on volumes.  Pin the base image by digest in your own build pipeline
# (FROM python:3.11.11-slim-bookworm@sha256:...); the tag below names an exact Python release.
# See docs/scaling.md for running many of these behind a load balancer.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qactuar ./qactuar
COPY qactuar_tui ./qactuar_tui
RUN pip wheel --wheel-dir /wheels ".[fast]"

FROM python:3.11.11-slim-bookworm
# The wheel built above, by version (keep in step with qactuar/_version.py; a test checks).
ARG QACTUAR_VERSION=0.3.0
# git: `qactuar deploy` clones apps with it.  Debian's security updates arrive with image rebuilds,
# so the package is not pinned to a version that the archive will drop.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 qactuar \
    && useradd --system --uid 10001 --gid qactuar --home-dir /srv/qactuar --shell /usr/sbin/nologin qactuar
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "qactuar[fast]==${QACTUAR_VERSION}" \
    && rm -rf /wheels
WORKDIR /srv/qactuar
COPY --chown=qactuar:qactuar apps/hello ./apps/hello
COPY --chown=qactuar:qactuar apps/echo ./apps/echo
COPY deploy/qactuar.container.toml /etc/qactuar/qactuar.toml
RUN mkdir -p /srv/qactuar/state && chown qactuar:qactuar /srv/qactuar /srv/qactuar/state \
    && chmod 0700 /srv/qactuar/state
ENV QACTUAR_CONFIG=/etc/qactuar/qactuar.toml PYTHONUNBUFFERED=1
VOLUME ["/srv/qactuar/apps", "/srv/qactuar/state"]
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz/live', timeout=2)"]
ENTRYPOINT ["qactuar", "serve"]
