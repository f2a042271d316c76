"""The feature aggregate: its customers and its journey through trains (SPEC §3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.aggregate import LedgerAggregate
from ledger.exceptions import RuleViolation
from ledger.metadata import EventMeta
from ledger.values import IN_SCOPE_STATUSES, ScopeStatus, feature_stream_id


@dataclass(frozen=True)
class CustomerDemand:
    customer: str
    weight: float
    note: str | None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Milestone:
    train: str
    milestone: str
    note: str | None
    occurred_at: datetime


class Feature(LedgerAggregate):
    """A feature asked for by customers, in scope of at most one open train at a time."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return feature_stream_id(key)

    class Registered(LedgerAggregate.Created):
        key: str
        title: str
        owner: str | None
        architect: str | None

    @event(Registered)
    def __init__(
        self, key: str, title: str, owner: str | None, architect: str | None, meta: EventMeta
    ) -> None:
        self.key = key
        self.registered_at = meta.occurred_at
        self.title = title
        self.owner = owner
        self.architect = architect
        self.customers: dict[str, CustomerDemand] = {}
        self.train: str | None = None
        self.classification: str | None = None
        self.status: str | None = None
        self.status_at: datetime | None = None
        self.milestones: list[Milestone] = []

    # ---------------------------------------------------------------- customers

    class CustomerDemandRecorded(LedgerAggregate.Event):
        customer: str
        weight: float
        note: str | None

    def record_customer_demand(
        self, customer: str, weight: float, note: str | None, meta: EventMeta
    ) -> None:
        self.check_occurred_after_registration(meta)
        self._record_customer_demand(customer=customer, weight=weight, note=note, meta=meta)

    @event(CustomerDemandRecorded)
    def _record_customer_demand(
        self, customer: str, weight: float, note: str | None, meta: EventMeta
    ) -> None:
        known = self.customers.get(customer)
        # The demand stated last in business time counts, whatever order it was recorded in.
        if known is None or known.occurred_at is None or meta.occurred_at >= known.occurred_at:
            self.customers[customer] = CustomerDemand(customer, weight, note, meta.occurred_at)

    @property
    def customer_weight(self) -> float:
        return sum(demand.weight for demand in self.customers.values())

    # ----------------------------------------------------- scope in its trains

    class ProposedForTrain(LedgerAggregate.Event):
        train: str
        classification: str

    class CommittedToTrain(LedgerAggregate.Event):
        train: str
        reason: str | None
        requested_by: str | None

    class StretchedInTrain(LedgerAggregate.Event):
        train: str
        reason: str
        requested_by: str | None

    class DroppedFromTrain(LedgerAggregate.Event):
        train: str
        reason: str
        requested_by: str | None

    class MovedBetweenTrains(LedgerAggregate.Event):
        from_train: str
        to_train: str
        status: str
        reason: str
        requested_by: str | None

    class AddedToTrain(LedgerAggregate.Event):
        train: str
        classification: str
        reason: str
        requested_by: str | None
        exception: bool

    class DeliveredInTrain(LedgerAggregate.Event):
        train: str

    def propose_for(self, train: str, classification: str, meta: EventMeta) -> None:
        self.check_occurred_after_registration(meta)
        self._propose_for(train=train, classification=classification, meta=meta)

    @event(ProposedForTrain)
    def _propose_for(self, train: str, classification: str, meta: EventMeta) -> None:
        self._place(meta, train=train, classification=classification, status=ScopeStatus.PROPOSED)

    def commit_to(
        self, train: str, reason: str | None, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(train)
        self._commit_to(train=train, reason=reason, requested_by=requested_by, meta=meta)

    @event(CommittedToTrain)
    def _commit_to(
        self, train: str, reason: str | None, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._place(meta, status=ScopeStatus.COMMITTED)

    def stretch_in(
        self, train: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(train)
        self._stretch_in(train=train, reason=reason, requested_by=requested_by, meta=meta)

    @event(StretchedInTrain)
    def _stretch_in(
        self, train: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._place(meta, status=ScopeStatus.STRETCHED)

    def drop_from(self, train: str, reason: str, requested_by: str | None, meta: EventMeta) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(train)
        self._drop_from(train=train, reason=reason, requested_by=requested_by, meta=meta)

    @event(DroppedFromTrain)
    def _drop_from(
        self, train: str, reason: str, requested_by: str | None, meta: EventMeta
    ) -> None:
        self._place(meta, status=ScopeStatus.DROPPED)

    def move(
        self,
        from_train: str,
        to_train: str,
        status: str,
        reason: str,
        requested_by: str | None,
        meta: EventMeta,
    ) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(from_train)
        self._move(
            from_train=from_train,
            to_train=to_train,
            status=status,
            reason=reason,
            requested_by=requested_by,
            meta=meta,
        )

    @event(MovedBetweenTrains)
    def _move(
        self,
        from_train: str,
        to_train: str,
        status: str,
        reason: str,
        requested_by: str | None,
        meta: EventMeta,
    ) -> None:
        self._place(meta, train=to_train, status=status)

    def add_to(
        self,
        train: str,
        classification: str,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self.check_occurred_after_registration(meta)
        self._add_to(
            train=train,
            classification=classification,
            reason=reason,
            requested_by=requested_by,
            exception=exception,
            meta=meta,
        )

    @event(AddedToTrain)
    def _add_to(
        self,
        train: str,
        classification: str,
        reason: str,
        requested_by: str | None,
        exception: bool,
        meta: EventMeta,
    ) -> None:
        self._place(meta, train=train, classification=classification, status=ScopeStatus.COMMITTED)

    def deliver_in(self, train: str, meta: EventMeta) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(train)
        self._deliver_in(train=train, meta=meta)

    @event(DeliveredInTrain)
    def _deliver_in(self, train: str, meta: EventMeta) -> None:
        self._place(meta, status=ScopeStatus.DELIVERED)

    # --------------------------------------------------------------- milestones

    class MilestoneDelivered(LedgerAggregate.Event):
        train: str
        milestone: str
        note: str | None

    def deliver_milestone(
        self, train: str, milestone: str, note: str | None, meta: EventMeta
    ) -> None:
        self.check_occurred_after_registration(meta)
        self.check_in(train)
        if any(m.train == train and m.milestone == milestone for m in self.milestones):
            raise RuleViolation(
                f"milestone {milestone!r} of {self.key} in {train} was already delivered"
            )
        self._deliver_milestone(train=train, milestone=milestone, note=note, meta=meta)

    @event(MilestoneDelivered)
    def _deliver_milestone(
        self, train: str, milestone: str, note: str | None, meta: EventMeta
    ) -> None:
        milestones = [*self.milestones, Milestone(train, milestone, note, meta.occurred_at)]
        self.milestones = sorted(milestones, key=lambda known: known.occurred_at)

    # ------------------------------------------------------------------- guards

    def _place(
        self,
        meta: EventMeta,
        *,
        status: str,
        train: str | None = None,
        classification: str | None = None,
    ) -> None:
        """Where the feature stands after a scope event, unless a later-occurring one is known."""
        if self.status_at is not None and meta.occurred_at < self.status_at:
            return
        self.status = status
        self.status_at = meta.occurred_at
        if train is not None:
            self.train = train
        if classification is not None:
            self.classification = classification

    @property
    def in_scope(self) -> bool:
        return self.status in IN_SCOPE_STATUSES

    def check_occurred_after_registration(self, meta: EventMeta) -> None:
        if meta.occurred_at < self.registered_at:
            raise RuleViolation(
                f"an event of {self.key} cannot occur at {meta.occurred_at.isoformat()}, "
                f"before the feature was registered ({self.registered_at.isoformat()})"
            )

    def check_in(self, train: str) -> None:
        if self.train != train or not self.in_scope:
            where = f"{self.status} in {self.train}" if self.train else "in no train"
            raise RuleViolation(f"{self.key} is not in scope of {train} (it is {where})")

    def check_free_for(self, train: str, current_train_is_open: bool) -> None:
        """A feature joins a train only when it is in no other open train's scope."""
        if self.in_scope and self.train != train and current_train_is_open:
            raise RuleViolation(
                f"{self.key} is already in scope of open train {self.train}; "
                "move it with a 'move' decision instead"
            )

    def as_dict(self) -> dict[str, Any]:
        """The feature's current state as plain values."""
        return {
            "feature": self.key,
            "title": self.title,
            "owner": self.owner,
            "architect": self.architect,
            "train": self.train,
            "classification": self.classification,
            "status": self.status,
            "customers": [asdict(demand) for demand in self.customers.values()],
            "customer_weight": self.customer_weight,
            "milestones": [asdict(m) for m in self.milestones],
            "version": self.version,
        }
