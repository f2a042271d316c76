"""Idempotent integrations: a ``source_ref`` is claimed once, with the events it recorded."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.aggregate import LedgerAggregate
from ledger.metadata import EventMeta
from ledger.values import source_reference_stream_id


class SourceReference(LedgerAggregate):
    """The claim on one ``source_ref``; saved atomically with the events it names.

    A second command with the same reference collides on this stream's first version,
    so it can never record twice, even when both run at once.
    """

    @staticmethod
    def create_id(source_ref: str) -> UUID:
        return source_reference_stream_id(source_ref)

    class Claimed(LedgerAggregate.Created):
        source_ref: str
        command: str
        subject: str
        recorded: list[dict[str, Any]]

    @event(Claimed)
    def __init__(
        self,
        source_ref: str,
        command: str,
        subject: str,
        recorded: list[dict[str, Any]],
        meta: EventMeta,
    ) -> None:
        self.source_ref = source_ref
        self.command = command
        self.subject = subject
        self.recorded = recorded
