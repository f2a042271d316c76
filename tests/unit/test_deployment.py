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


def image_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), stage by stage."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in joined.splitlines():
        line = " ".join(line.split())
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_the_image_installs_only_the_wheel_built_in_a_stage_before() -> None:
    """The final stage copies the wheel from the build stage, never the source tree."""
    build, final = image_stages()

    assert any(line.startswith("RUN pip wheel") for line in build)
    copies = [line for line in final if line.startswith("COPY")]
    assert copies == ["COPY --from=wheel /wheels /tmp/wheels"]
    assert any("pip install /tmp/wheels/*.whl" in line for line in final)
    assert not any("pip install -e" in line for stage in (build, final) for line in stage)


def test_the_image_runs_as_a_user_with_a_healthcheck_and_upgrades_before_serving() -> None:
    """Non-root, a health check on /healthz, and db upgrade before serve."""
    final = image_stages()[-1]

    users = [line for line in final if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") and "/healthz" in line for line in final)
    assert "ledger db upgrade && exec ledger serve --host 0.0.0.0" in final[-1]


def test_the_build_context_holds_only_what_the_wheel_is_built_from() -> None:
    """.dockerignore keeps .venv, tests and databases out of the build context."""
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert ignored[ignored.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!src"]
