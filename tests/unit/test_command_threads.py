"""The command threads: blocking calls off the event loop, answered on it."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from api.commands import CommandThreads

REQUEST_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("request_name")


@pytest.fixture
def commands() -> Iterator[CommandThreads]:
    threads = CommandThreads(threads=3)
    threads.start()
    yield threads
    threads.stop()


def test_a_call_runs_off_the_event_loop_and_answers_on_it(commands: CommandThreads) -> None:
    """The call runs on another thread; its result comes back to the awaiting task."""

    async def main() -> tuple[str, str]:
        return threading.current_thread().name, await commands.run(
            lambda: threading.current_thread().name
        )

    loop_thread, call_thread = asyncio.run(main())

    assert call_thread.startswith("commands-")
    assert call_thread != loop_thread


def test_a_calls_error_is_raised_to_its_caller(commands: CommandThreads) -> None:
    """A refusal raised by the command reaches the route that awaited it, as itself."""

    def refuse() -> None:
        raise ValueError("5.5 is frozen")

    async def main() -> None:
        await commands.run(refuse)

    with pytest.raises(ValueError, match=r"5\.5 is frozen"):
        asyncio.run(main())


def test_a_call_sees_the_context_of_the_task_that_made_it(commands: CommandThreads) -> None:
    """Context variables set by the request (a correlation id, say) are visible to the call."""

    async def main() -> str:
        REQUEST_NAME.set("plan 5.6")
        return await commands.run(REQUEST_NAME.get)

    assert asyncio.run(main()) == "plan 5.6"


def test_many_concurrent_calls_each_get_their_own_answer(commands: CommandThreads) -> None:
    """Two hundred calls from one loop, more than the threads, are all answered correctly."""

    def slow_square(n: int) -> int:
        time.sleep(0.001)
        return n * n

    async def main() -> list[int]:
        return await asyncio.gather(*(commands.run(lambda n=n: slow_square(n)) for n in range(200)))

    assert asyncio.run(main()) == [n * n for n in range(200)]


def test_stopping_finishes_what_is_queued_then_ends_the_threads() -> None:
    """``stop`` lets queued calls run, then every thread ends."""
    before = set(threading.enumerate())
    threads = CommandThreads(threads=2)
    threads.start()
    started = set(threading.enumerate()) - before
    done: list[int] = []

    async def main() -> None:
        calls = [threads.run(lambda n=n: done.append(n)) for n in range(20)]
        await asyncio.gather(*calls)

    asyncio.run(main())
    threads.stop()

    assert sorted(done) == list(range(20))
    assert len(started) == 2
    assert not any(thread.is_alive() for thread in started)


def test_a_quick_calls_answer_does_not_wait_for_a_slow_call_after_it() -> None:
    """On a single thread, a quick call queued before a slow one is answered at once.

    (A request waiting on another's answer, as a repeated Idempotency-Key does, would
    otherwise hold that answer back for as long as it waits.)
    """
    threads = CommandThreads(threads=1)
    threads.start()

    async def main() -> float:
        started = time.monotonic()
        quick = asyncio.ensure_future(threads.run(lambda: "quick"))
        slow = asyncio.ensure_future(threads.run(lambda: time.sleep(1.0)))
        await quick
        answered_after = time.monotonic() - started
        await slow
        return answered_after

    try:
        assert asyncio.run(main()) < 0.5
    finally:
        threads.stop()
