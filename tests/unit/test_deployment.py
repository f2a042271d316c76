"""The files a user deploys with: docker-compose.yml and the Dockerfile it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_the_ledger_reaches_the_compose_postgres_with_its_credentials() -> None:
    """LEDGER_DATABASE_URL names the postgres service, its user, password and database."""
    services = compose()["services"]
    postgres = services["postgres"]["environment"]

    url = urlsplit(services["ledger"]["environment"]["LEDGER_DATABASE_URL"])

    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"
    assert url.port == 5432
    assert (url.username, url.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert url.path == "/" + postgres["POSTGRES_DB"]


def test_the_ledger_starts_once_postgres_is_healthy_and_both_report_health() -> None:
    """Both services have health checks, and the ledger waits for PostgreSQL's."""
    services = compose()["services"]

    assert services["ledger"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["ledger"]["healthcheck"]["test"])


def test_the_database_lives_in_a_named_volume() -> None:
    """PostgreSQL's data directory is a declared, named volume, so it outlives containers."""
    document = compose()
    volume, _, mount = document["services"]["postgres"]["volumes"][0].partition(":")

    assert volume in document["volumes"]
    assert mount == "/var/lib/postgresql/data"


def test_the_image_carries_the_migrations_and_upgrades_before_serving() -> None:
    """The image installs the source tree editable with migrations/, and runs db upgrade first."""
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "COPY migrations ./migrations" in dockerfile
    assert "pip install -e ." in dockerfile
    assert "ledger db upgrade && ledger serve --host 0.0.0.0" in dockerfile
