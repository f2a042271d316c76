"""The webhook inbox: every verified delivery, stored raw before anything else happens.

A delivery is acknowledged once its row is committed, so a crash after the 202 loses
nothing; mapping it to ledger commands happens later, from here. Its identity is unique
per integration, so a retried delivery is stored once. Workers take due deliveries with
a lease (``next_attempt_at`` moves past the lease), so a worker that dies mid-way leaves
them due again, and several server processes never take the same delivery at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, Row, func, select, tuple_, update

from projections.tables import insert_into, webhook_deliveries

MAX_DELIVERY_ID = 2**63 - 1
LEASE = timedelta(seconds=60)
"""How long a taken delivery is left to its worker before another may take it."""


class Integration(StrEnum):
    JIRA = "jira"
    QTEST = "qtest"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    IGNORED = "ignored"
    """Stored on purpose without an event: a kind of delivery the ledger does not map."""
    FAILED = "failed"
    """Could not be mapped (see its reason); ``retry`` maps it again."""


# On PostgreSQL a batch is five arrays, sent in binary: one statement text whatever the
# batch size, which psycopg parses once, and bodies copied rather than escaped. A multi-row
# VALUES differs with each size (its parse cost grew with the batch), and text arrays cost
# 60 µs per 2 KB body against 4 in binary.
_INSERT_ARRAYS = (
    f"INSERT INTO {webhook_deliveries.name} (integration, delivery_key, event_type, headers, "
    "body, received_at, status, attempts, next_attempt_at) "
    "SELECT integration, delivery_key, event_type, CAST(headers AS json), body, "
    "%(now)b, %(status)b, 0, %(now)b "
    "FROM unnest(%(integrations)b::text[], %(keys)b::text[], %(event_types)b::text[], "
    "%(headers)b::text[], %(bodies)b::bytea[]) "
    "AS arrival(integration, delivery_key, event_type, headers, body) "
    "ON CONFLICT (integration, delivery_key) DO NOTHING "
    "RETURNING id, integration, delivery_key"
)


def _insert_new(
    connection: Connection, arrivals: Sequence[Arrival], now: datetime
) -> list[tuple[int, str, str]]:
    """Insert the arrivals not stored before; (id, integration, key) of each inserted."""
    if connection.dialect.name == "postgresql":
        driver_connection: Any = connection.connection.driver_connection
        with driver_connection.cursor() as cursor:
            cursor.execute(
                _INSERT_ARRAYS,
                {
                    "now": now,
                    "status": str(DeliveryStatus.PENDING),
                    "integrations": [str(arrival.integration) for arrival in arrivals],
                    "keys": [arrival.delivery_key for arrival in arrivals],
                    "event_types": [arrival.event_type for arrival in arrivals],
                    "headers": [orjson.dumps(dict(a.headers)).decode() for a in arrivals],
                    "bodies": [arrival.body for arrival in arrivals],
                },
            )
            return [(row[0], row[1], row[2]) for row in cursor.fetchall()]
    table = webhook_deliveries
    rows = [
        {
            "integration": str(arrival.integration),
            "delivery_key": arrival.delivery_key,
            "event_type": arrival.event_type,
            "headers": dict(arrival.headers),
            "body": arrival.body,
            "received_at": now,
            "status": str(DeliveryStatus.PENDING),
            "attempts": 0,
            "next_attempt_at": now,
        }
        for arrival in arrivals
    ]
    inserted = connection.execute(
        insert_into(table, connection)
        .on_conflict_do_nothing(index_elements=["integration", "delivery_key"])
        .returning(table.c.id, table.c.integration, table.c.delivery_key),
        rows,
    )
    return [(row.id, row.integration, row.delivery_key) for row in inserted]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Delivery:
    """One stored webhook delivery and what became of it."""

    id: int
    integration: Integration
    delivery_key: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    status: DeliveryStatus
    reason: str | None
    attempts: int
    next_attempt_at: datetime
    processed_at: datetime | None
    positions: tuple[int, ...]

    @classmethod
    def from_row(cls, row: Row[Any]) -> Delivery:
        return cls(
            id=row.id,
            integration=Integration(row.integration),
            delivery_key=row.delivery_key,
            event_type=row.event_type,
            headers=dict(row.headers),
            body=bytes(row.body),
            received_at=row.received_at,
            status=DeliveryStatus(row.status),
            reason=row.reason,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            processed_at=row.processed_at,
            positions=tuple(row.positions or ()),
        )

    def payload(self) -> Any:
        """The body as JSON (the route stored only bodies that parse)."""
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Arrival:
    """A verified delivery about to be stored: who sent it, its identity, what it says."""

    integration: Integration
    delivery_key: str
    event_type: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Settlement:
    """What became of a delivery: applied, ignored or failed, with why and which events."""

    delivery_id: int
    status: DeliveryStatus
    reason: str | None = None
    positions: tuple[int, ...] = ()


class Inbox:
    """The ``webhook_deliveries`` table: store, take due, settle, find, reopen."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def receive(self, arrivals: Sequence[Arrival]) -> list[tuple[int, bool]]:
        """Store deliveries once, in one transaction: each one's id, and whether it is new.

        Of the same delivery arriving twice in one call, the first is the new one.
        """
        if not arrivals:
            return []
        now = utc_now()
        table = webhook_deliveries
        with self.engine.begin() as connection:
            inserted = _insert_new(connection, arrivals, now)
            new = {(integration, key): delivery for delivery, integration, key in inserted}
            wanted = {(str(item.integration), item.delivery_key) for item in arrivals}
            known = {}
            if missing := wanted - new.keys():
                known = {
                    (row.integration, row.delivery_key): row.id
                    for row in connection.execute(
                        select(table.c.id, table.c.integration, table.c.delivery_key).where(
                            tuple_(table.c.integration, table.c.delivery_key).in_(list(missing))
                        )
                    )
                }
        stored = []
        for arrival in arrivals:
            key = (str(arrival.integration), arrival.delivery_key)
            if key in new:
                stored.append((new.pop(key), True))
                known[key] = stored[-1][0]
            else:
                stored.append((known[key], False))
        return stored

    def take_due(
        self, integration: Integration, limit: int, *, in_order: bool = False
    ) -> list[Delivery]:
        """Lease up to ``limit`` due pending deliveries, oldest first.

        ``in_order`` takes none received after a pending delivery that is not due yet
        (waiting to retry, or leased by a worker that may have died): it goes first.
        """
        now = utc_now()
        table = webhook_deliveries
        pending = [
            table.c.status == str(DeliveryStatus.PENDING),
            table.c.integration == str(integration),
        ]
        conditions = [*pending, table.c.next_attempt_at <= now]
        if in_order:
            waiting = select(func.min(table.c.id)).where(*pending, table.c.next_attempt_at > now)
            conditions.append(
                table.c.id < func.coalesce(waiting.scalar_subquery(), MAX_DELIVERY_ID)
            )
        due = (
            select(table.c.id)
            .where(*conditions)
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id.in_(due.scalar_subquery()))
            .values(
                attempts=webhook_deliveries.c.attempts + 1,
                next_attempt_at=now + LEASE,
            )
            .returning(*webhook_deliveries.c)
        )
        with self.engine.begin() as connection:
            rows = connection.execute(statement).all()
        return sorted((Delivery.from_row(row) for row in rows), key=lambda item: item.id)

    def settle(
        self, settlements: Iterable[Settlement], connection: Connection | None = None
    ) -> None:
        """Record what became of deliveries (in ``connection``'s transaction if given)."""
        if connection is None:
            with self.engine.begin() as own:
                self.settle(settlements, own)
            return
        now = utc_now()
        for settlement in settlements:
            connection.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == settlement.delivery_id)
                .values(
                    status=str(settlement.status),
                    reason=settlement.reason,
                    positions=list(settlement.positions),
                    processed_at=now,
                )
            )

    def postpone(self, delivery_ids: Sequence[int], reason: str, delay: timedelta) -> None:
        """Leave deliveries pending, due again after ``delay``, saying why they wait."""
        if not delivery_ids:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id.in_(list(delivery_ids)))
                .values(reason=reason, next_attempt_at=utc_now() + delay)
            )

    def reopen(
        self,
        *,
        delivery_ids: Sequence[int] | None = None,
        statuses: Sequence[DeliveryStatus] = (DeliveryStatus.FAILED,),
        integration: Integration | None = None,
    ) -> int:
        """Make deliveries pending and due now, to be mapped again; how many were."""
        conditions: list[ColumnElement[bool]] = [
            webhook_deliveries.c.status.in_([str(status) for status in statuses])
        ]
        if delivery_ids is not None:
            conditions.append(webhook_deliveries.c.id.in_(list(delivery_ids)))
        if integration is not None:
            conditions.append(webhook_deliveries.c.integration == str(integration))
        with self.engine.begin() as connection:
            result = connection.execute(
                update(webhook_deliveries)
                .where(*conditions)
                .values(status=str(DeliveryStatus.PENDING), next_attempt_at=utc_now())
            )
        return result.rowcount

    def get(self, delivery_id: int) -> Delivery | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
            ).one_or_none()
        return None if row is None else Delivery.from_row(row)

    def find(
        self,
        *,
        status: DeliveryStatus | None = None,
        integration: Integration | None = None,
        event_type: str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries in the order received, after the cursor ``after`` (an id)."""
        statement = select(webhook_deliveries).order_by(webhook_deliveries.c.id).limit(limit)
        if status is not None:
            statement = statement.where(webhook_deliveries.c.status == str(status))
        if integration is not None:
            statement = statement.where(webhook_deliveries.c.integration == str(integration))
        if event_type is not None:
            statement = statement.where(webhook_deliveries.c.event_type == event_type)
        if after is not None:
            statement = statement.where(webhook_deliveries.c.id > after)
        with self.engine.connect() as connection:
            return [Delivery.from_row(row) for row in connection.execute(statement)]

    def counts(self) -> dict[str, int]:
        """Deliveries per status."""
        statement = select(webhook_deliveries.c.status, func.count()).group_by(
            webhook_deliveries.c.status
        )
        with self.engine.connect() as connection:
            found: dict[str, int] = {row[0]: row[1] for row in connection.execute(statement)}
        return {str(status): found.get(str(status), 0) for status in DeliveryStatus}
