"""The Jira and QTest mapping rules: one TOML file (``LEDGER_INTEGRATIONS_FILE``) or defaults.

```toml
[jira]            # see integrations.jira.JiraMapping
[qtest]           # see integrations.qtest.QTestMapping
```

Every setting has a default, so no file is needed; a file names only what it changes.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integrations.jira import JiraMapping
from integrations.qtest import QTestClient, QTestMapping
from integrations.receiving import WebhookSecrets
from ledger.config import Settings
from ledger.exceptions import ConfigurationError


class IntegrationsConfig(BaseModel):
    """How Jira versions, labels, QTest releases and cycles become trains and cycles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    jira: JiraMapping = Field(default_factory=JiraMapping)
    qtest: QTestMapping = Field(default_factory=QTestMapping)

    @classmethod
    def load(cls, path: Path | None) -> IntegrationsConfig:
        """The file's rules over the defaults; a missing or wrong file is refused by name."""
        if path is None:
            return cls()
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigurationError(
                f"cannot read LEDGER_INTEGRATIONS_FILE {path}: {error.strerror}"
            ) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigurationError(f"{path} is not valid TOML: {error}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
                for item in error.errors()
            )
            raise ConfigurationError(f"{path}: {problems}") from None


def webhook_secrets(settings: Settings) -> WebhookSecrets:
    """Each integration's secret; an empty one counts as none."""
    jira, qtest = settings.jira_webhook_secret, settings.qtest_webhook_secret
    return WebhookSecrets(
        jira=jira.get_secret_value() or None if jira else None,
        qtest=qtest.get_secret_value() or None if qtest else None,
    )


def qtest_client(settings: Settings) -> QTestClient | None:
    """A client of the configured QTest REST API, if one is configured."""
    if not settings.qtest_base_url:
        return None
    token = settings.qtest_token.get_secret_value() if settings.qtest_token else ""
    return QTestClient(settings.qtest_base_url, token)
