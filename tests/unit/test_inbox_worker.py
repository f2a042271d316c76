"""The inbox worker maps a steady stream as it comes, and waits for a burst to pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from integrations.processor import InboxProcessor, InboxWorker, Round


class CountingProcessor:
    """An in-memory stand-in for ``InboxProcessor``: it counts rounds and has nothing due."""

    def __init__(self) -> None:
        self.rounds: list[float] = []
        self.round_ran = threading.Event()

    def process_due(self) -> Round:
        self.rounds.append(time.monotonic())
        self.round_ran.set()
        return Round()

    def close(self) -> None:
        pass


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InboxWorker, CountingProcessor]]:
    monkeypatch.setattr(InboxWorker, "POLL_SECONDS", 30.0)  # rounds come from wakes alone
    monkeypatch.setattr(InboxWorker, "MAX_YIELD_SECONDS", 3.0)
    processor = CountingProcessor()
    started = InboxWorker(cast(InboxProcessor, cast(Any, processor)))
    started.start()
    assert processor.round_ran.wait(5), "the worker's first round never ran"
    yield started, processor
    started.stop(timeout=5)


def next_round_after_waking(worker: InboxWorker, processor: CountingProcessor, new: int) -> float:
    """Seconds from waking the worker with ``new`` stored deliveries to its next round."""
    processor.round_ran.clear()
    woken = time.monotonic()
    worker.wake(new)
    assert processor.round_ran.wait(10), "the worker never ran a round"
    return processor.rounds[-1] - woken


def test_a_steady_trickle_of_deliveries_is_mapped_at_once(
    worker: tuple[InboxWorker, CountingProcessor],
) -> None:
    """Deliveries below the burst rate wake a round without waiting."""
    started, processor = worker

    delays = [next_round_after_waking(started, processor, new=3) for _ in range(5)]

    assert max(delays) < 0.5


def test_a_burst_is_stored_first_and_mapped_once_it_passes(
    worker: tuple[InboxWorker, CountingProcessor],
) -> None:
    """A burst's deliveries wait to be mapped until a second without one has gone by."""
    started, processor = worker

    delay = next_round_after_waking(started, processor, new=InboxWorker.BURST_PER_SECOND)

    assert 0.9 < delay < InboxWorker.MAX_YIELD_SECONDS


def test_an_endless_burst_still_gets_a_round_every_few_seconds(
    worker: tuple[InboxWorker, CountingProcessor],
) -> None:
    """While deliveries keep pouring in, a round still runs within ``MAX_YIELD_SECONDS``."""
    started, processor = worker
    pouring = threading.Event()

    def pour() -> None:
        while not pouring.wait(0.1):
            started.wake(InboxWorker.BURST_PER_SECOND)

    pourer = threading.Thread(target=pour, daemon=True)
    processor.round_ran.clear()
    began = time.monotonic()
    pourer.start()
    try:
        assert processor.round_ran.wait(InboxWorker.MAX_YIELD_SECONDS + 2)
    finally:
        pouring.set()
        pourer.join()

    waited = processor.rounds[-1] - began
    assert InboxWorker.MAX_YIELD_SECONDS - 0.5 < waited < InboxWorker.MAX_YIELD_SECONDS + 1
