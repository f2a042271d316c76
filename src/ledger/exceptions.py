"""Every error the ledger raises on purpose.

The HTTP layer maps each family to a status code: ``InvalidCommand`` to 422,
``NotFound`` to 404, ``RuleViolation`` and ``ConcurrencyConflict`` to 409.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose; nothing was recorded."""

    code = "ledger-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidCommand(LedgerError):
    """The command itself is malformed: a missing reason, a bad id, counts that don't add up."""

    code = "invalid-command"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class NotFound(LedgerError):
    """The command names a train, feature or gate the ledger does not know."""

    code = "not-found"


class RuleViolation(LedgerError):
    """A well-formed command refused because of the current state of the ledger."""

    code = "rule-violation"


class GateCriteriaUnmet(RuleViolation):
    """A gate was decided ``passed`` while some of its exit criteria are unmet."""

    code = "gate-criteria-unmet"

    def __init__(self, detail: str, unmet: Sequence[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.unmet = list(unmet)


class ConcurrencyConflict(LedgerError):
    """Other writers kept changing the same streams; the command gave up after its retries."""

    code = "concurrency-conflict"


class ConfigurationError(LedgerError):
    """The ledger's configuration (database URL, settings) cannot be used."""

    code = "configuration-error"


class IntegrityViolation(LedgerError):
    """The stored log does not match its hash chain: an event was altered or removed."""

    code = "integrity-violation"
