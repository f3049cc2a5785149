# syntax=docker/dockerfile:1
# connector: `python -m calsync_connector`. Build from the repository root:
#   docker build -f deploy/docker/connector.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv \
    && useradd --system --create-home --home-dir /home/calsync --uid 10001 calsync

WORKDIR /app

# Dependencies first (cached until uv.lock or a pyproject.toml changes).
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/connector/pyproject.toml services/connector/
COPY services/sync-worker/pyproject.toml services/sync-worker/
COPY services/availability/pyproject.toml services/availability/
COPY emulators/msgraph/pyproject.toml emulators/msgraph/
RUN uv sync --frozen --no-dev --package calsync-connector --no-install-workspace

# Then the workspace sources, installed into the same environment.
COPY libs/ libs/
COPY services/ services/
COPY emulators/ emulators/
RUN uv sync --frozen --no-dev --package calsync-connector

ENV PATH="/app/.venv/bin:$PATH"
ENV CONNECTOR_HTTP__HOST=0.0.0.0
USER calsync
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2).status == 200 else 1)"
CMD ["python", "-m", "calsync_connector"]
