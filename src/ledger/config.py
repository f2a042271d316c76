"""Settings, in one place, read from ``LEDGER_*`` environment variables and a ``.env`` file."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlsplit

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.exceptions import ConfigurationError
from ledger.readiness import DEFAULT_QA_TARGET

APPLICATION_NAME = "Ledger"
ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


def default_database_url() -> str:
    """The embedded default: a SQLite file in the user's data directory."""
    return f"sqlite:///{Path(user_data_dir('release-ledger')) / 'ledger.sqlite3'}"


class Settings(BaseSettings):
    """Everything the ledger reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_file=".env", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    qa_target: float = Field(default=DEFAULT_QA_TARGET, gt=0, le=100)
    aggregate_cache_size: int = Field(default=1000, ge=0)
    # Integrations (SPEC §6): their own credentials, never a person's token. Without a
    # secret a webhook is taken unsigned, which suits a laptop and nothing else.
    jira_webhook_secret: SecretStr | None = None
    qtest_webhook_secret: SecretStr | None = None
    qtest_base_url: str | None = None
    qtest_token: SecretStr | None = None
    integrations_file: Path | None = None
    # Each server process maps webhook deliveries too, unless `ledger inbox run` does it
    # in a process of its own (which leaves the servers' cores to receiving).
    inbox_worker: bool = True
    # Behind a reverse proxy (SPEC §12): the prefix the proxy serves the ledger under, and
    # the proxies whose X-Forwarded-For and -Proto are believed. None by default: any
    # client could otherwise claim another address, or https.
    root_path: str = ""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("root_path")
    @classmethod
    def _check_root_path(cls, value: str) -> str:
        return normalise_root_path(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_trusted_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: list[str]) -> list[str]:
        return normalise_trusted_proxies(value)


def normalise_root_path(value: str) -> str:
    """``/ledger`` for ``/ledger/``; empty for none. A prefix is a path: no host, no query."""
    path = value.strip().rstrip("/")
    if path and not ROOT_PATH.fullmatch(path):
        raise ValueError(
            f"{value!r} is not a path prefix like /ledger "
            "(segments of letters, digits, '.', '_', '~' or '-')"
        )
    return path


def normalise_trusted_proxies(proxies: list[str]) -> list[str]:
    """Each proxy as an address or a network (``10.0.0.5``, ``10.0.0.0/8``), or ``*`` alone.

    The server would quietly take a malformed entry as a name no client ever has, and
    trust no one; here it is refused instead.
    """
    if "*" in proxies:
        if len(proxies) > 1:
            raise ValueError("'*' trusts every client; it cannot be listed with others")
        return proxies
    normalised = []
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(f"{proxy!r} is not an IP address or network") from None
        normalised.append(str(network.network_address if network.num_addresses == 1 else network))
    return normalised


@dataclass(frozen=True)
class Database:
    """Where the events live, parsed from one URL, as the event store library wants it."""

    url: str
    backend: str
    env: dict[str, str]
    location: str

    @classmethod
    def from_url(cls, url: str) -> Database:
        """``postgresql://user:password@host:port/db``, ``sqlite:///path`` or ``memory://``."""
        parts = urlsplit(url)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme in ("postgresql", "postgres"):
            return cls._postgres(url)
        if scheme == "sqlite":
            # As in SQLAlchemy: sqlite:///relative/file, sqlite:////absolute/file.
            prefix = "sqlite:///"
            path = unquote(url[len(prefix) :]) if url.startswith(prefix) else ""
            return cls._sqlite(url, path.split("?", 1)[0])
        if scheme == "memory":
            return cls(url, "memory", {"PERSISTENCE_MODULE": "eventsourcing.popo"}, "memory")
        raise ConfigurationError(
            f"LEDGER_DATABASE_URL must start with postgresql://, sqlite:/// or memory://, "
            f"not {url.split('://', 1)[0]!r}"
        )

    @classmethod
    def _postgres(cls, url: str) -> Database:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ConfigurationError(f"the PostgreSQL URL names no database: {cls._mask(url)}")
        host = query.get("host") or parts.hostname or "127.0.0.1"
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "ledger.event_log:PostgresLedgerRecorder",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": host,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            # The ledger creates the tables itself, under a lock (see PostgresEventLog).
            "CREATE_TABLE": "no",
        }
        location = f"{host}:{parts.port or 5432}/{dbname}"
        return cls(cls._mask(url), "postgresql", env, location)

    @classmethod
    def _sqlite(cls, url: str, path: str) -> Database:
        if not path:
            raise ConfigurationError("the SQLite URL names no file: use sqlite:///path/to/file")
        file = Path(path).expanduser()
        file.parent.mkdir(parents=True, exist_ok=True)
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(file)}
        return cls(url, "sqlite", env, str(file))

    @staticmethod
    def _mask(url: str) -> str:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        return url.replace(f":{parts.password}@", ":***@", 1)

    def describe(self) -> str:
        """One line for people: which backend, and where."""
        names = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "memory": "in-memory"}
        return f"{names[self.backend]} event store at {self.location}"
