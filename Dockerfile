# The ledger's server image, in two stages: the first builds the wheel from the source
# tree; the second installs only that wheel (the migrations ride inside it), so the image
# holds no source tree and runs as an unprivileged user.
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && useradd --system --create-home --uid 10001 ledger
USER ledger
WORKDIR /home/ledger

EXPOSE 8000
# Liveness only: /readyz (database and projections) is for the orchestrator's readiness.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# The schema is brought up to date first (PostgreSQL refuses to serve without it); exec
# hands the container's signals to the server, so `docker stop` shuts it down cleanly.
CMD ["sh", "-c", "ledger db upgrade && exec ledger serve --host 0.0.0.0 --port 8000"]
