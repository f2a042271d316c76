"""The base of every ledger aggregate: metadata on every event and the hash chain."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, Self

from eventsourcing.domain import Aggregate, CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import get_topic

from ledger.chain import GENESIS, event_digest
from ledger.metadata import EventMeta


class LedgerAggregate(Aggregate):
    """An aggregate whose events carry ``meta`` and extend the stream's hash chain.

    The chain fields are filled in where the library constructs events
    (``trigger_event`` and ``_create``), so command methods never see them.
    """

    chain_head: str = GENESIS
    latest_occurred_at: datetime | None = None
    """The latest business time of any event in the stream, whatever order they came in."""

    class Event(Aggregate.Event):
        meta: EventMeta
        prev_hash: str
        digest: str

        def mutate(self, aggregate: Any) -> Any:
            mutated = super().mutate(aggregate)
            if mutated is not None:
                mutated.chain_head = self.digest
                latest = mutated.latest_occurred_at
                if latest is None or self.meta.occurred_at > latest:
                    mutated.latest_occurred_at = self.meta.occurred_at
            return mutated

        @property
        def recorded_at(self) -> Any:
            return self.timestamp

    class Created(Event, Aggregate.Created):
        pass

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """A copy that shares the immutable values and copies only their containers.

        The library copies a cached aggregate for every command; aggregates keep their
        values in frozen dataclasses inside lists and dicts, so one level is enough.
        """
        clone = object.__new__(type(self))
        for name, value in self.__dict__.items():
            if isinstance(value, list | dict):
                value = value.copy()
            clone.__dict__[name] = value
        return clone

    @classmethod
    def _create(
        cls,
        event_class: type[CanInitAggregate[Any]],
        *,
        id: Any = None,
        **kwargs: Any,
    ) -> Self:
        kwargs = dict(kwargs)
        if id is None:
            id_params = inspect.signature(cls.create_id).parameters
            id = cls.create_id(**{k: v for k, v in kwargs.items() if k in id_params})
        kwargs.setdefault("timestamp", event_class.create_timestamp())
        kwargs["originator_topic"] = get_topic(cls)
        kwargs["prev_hash"] = GENESIS
        kwargs["digest"] = event_digest(get_topic(event_class), id, cls.INITIAL_VERSION, kwargs)
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: type[CanMutateAggregate[Any]], **kwargs: Any) -> None:
        kwargs = dict(kwargs)
        kwargs.setdefault("timestamp", event_class.create_timestamp())
        kwargs["prev_hash"] = self.chain_head
        kwargs["digest"] = event_digest(get_topic(event_class), self.id, self.version + 1, kwargs)
        super().trigger_event(event_class, **kwargs)
