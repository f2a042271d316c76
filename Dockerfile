# The ledger's server image. Built from the source tree and installed editable, because the
# projection migrations live in migrations/ beside src/ (see projections.schema).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN pip install -e . && useradd --system --home /app ledger
USER ledger

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
# The schema is brought up to date first; PostgreSQL is refused to serve without it.
CMD ["sh", "-c", "ledger db upgrade && ledger serve --host 0.0.0.0 --port 8000"]
