"""A connection's answers: in the order of the frames they answer, whatever order the bus answers
in, within a window bounded in frames and bytes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import attrs
import pytest

from minimess.adapters.websocket_server.answers import Answers
from minimess.app.publishing import Publishing
from minimess.domain.errors import PublishTimeout
from minimess.domain.model import Message, Position, Topic, Uid
from minimess.domain.ports import Acknowledgement
from tests.timeouts import scaled

NOW = datetime(2026, 11, 29, 19, 0, tzinfo=UTC)


class Given:
    """What the answers pushed, in order, as the names of the frames they answer."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.failures: list[BaseException] = []
        self._changed = asyncio.Event()

    def answer(self, name: str) -> None:
        self.names.append(name)
        self._changed.set()

    def failed(self, error: BaseException) -> None:
        self.failures.append(error)
        self._changed.set()

    async def count(self, count: int) -> list[str]:
        """The names given, once there are `count`; fails after a timeout."""
        async with asyncio.timeout(scaled(5)):
            while len(self.names) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.names


def publishing() -> tuple[Publishing, Acknowledgement]:
    """A publish waiting for the bus, and the acknowledgement that answers it."""
    acknowledgement: Acknowledgement = asyncio.get_running_loop().create_future()
    message = Message.create(Topic("news"), Uid("alice"), "body", NOW)
    return Publishing(
        message, acknowledgement, lambda m, position: attrs.evolve(m, position=position)
    ), acknowledgement


def owe(answers: Answers, given: Given, name: str, size: int = 10) -> Acknowledgement:
    """A publish called `name` in the window; its acknowledgement."""
    pending, acknowledgement = publishing()
    answers.owe(pending, lambda: given.answer(name), size)
    return acknowledgement


def acknowledge(acknowledgement: Acknowledgement, offset: int = 0) -> None:
    acknowledgement.set_result(Position("e", offset))


@pytest.fixture
def given() -> Given:
    return Given()


async def test_publishes_answered_by_the_bus_in_reverse_are_answered_in_the_order_read(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    acknowledgements = [owe(answers, given, f"p{n}") for n in range(4)]
    for acknowledgement in reversed(acknowledgements[1:]):
        acknowledge(acknowledgement)
    # The later ones are answered by the bus, but wait for the first.
    # One turn of the loop runs the callbacks that set_result scheduled.
    await asyncio.sleep(0)
    assert given.names == []
    assert answers.owed == 4
    acknowledge(acknowledgements[0])
    assert await given.count(4) == ["p0", "p1", "p2", "p3"]
    assert answers.owed == 0


async def test_a_ready_answer_goes_at_once_unless_a_publish_before_it_is_owed(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    answers.give(lambda: given.answer("first error"), 10)
    assert given.names == ["first error"]
    first = owe(answers, given, "p1")
    answers.give(lambda: given.answer("error after p1"), 10)
    second = owe(answers, given, "p2")
    assert given.names == ["first error"]
    acknowledge(second)
    acknowledge(first)
    assert await given.count(4) == ["first error", "p1", "error after p1", "p2"]


async def test_a_publish_answered_already_with_nothing_owed_is_answered_at_once(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    pending, acknowledgement = publishing()
    acknowledge(acknowledgement)
    answers.owe(pending, lambda: given.answer("p0"), 10)
    assert given.names == ["p0"]
    assert answers.owed == 0


async def test_a_full_window_has_room_again_once_its_first_publish_is_answered(given: Given) -> None:
    answers = Answers(3, 10_000, given.failed)
    acknowledgements = [owe(answers, given, f"p{n}") for n in range(3)]
    assert not answers.has_room()
    waiting = asyncio.create_task(answers.room())
    # The third answered by the bus frees nothing: the first still holds the window.
    acknowledge(acknowledgements[2])
    await asyncio.sleep(0)
    assert not waiting.done()
    acknowledge(acknowledgements[0])
    async with asyncio.timeout(scaled(5)):
        await waiting
    assert answers.has_room()
    assert given.names == ["p0"]


async def test_the_window_is_bounded_in_bytes_the_frame_crossing_the_bound_taken(given: Given) -> None:
    answers = Answers(100, 1000, given.failed)
    owe(answers, given, "small", 600)
    assert answers.has_room()
    owe(answers, given, "crossing", 600)
    assert not answers.has_room()


async def test_settled_waits_for_what_was_owed_when_called_not_for_what_comes_after(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    before = owe(answers, given, "before")
    settled = asyncio.create_task(answers.settled())
    owe(answers, given, "after")
    acknowledge(before)
    async with asyncio.timeout(scaled(5)):
        await settled
    assert given.names == ["before"]
    assert answers.owed == 1


async def test_an_error_from_the_bus_is_the_publish_outcome_in_its_turn(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    outcomes: list[str] = []
    pending, acknowledgement = publishing()

    def answer() -> None:
        try:
            pending.outcome()
        except PublishTimeout as error:
            outcomes.append(str(error))
        given.answer("p0")

    answers.owe(pending, answer, 10)
    acknowledgement.set_exception(PublishTimeout("no answer in time"))
    await given.count(1)
    assert outcomes == ["no answer in time"]


async def test_an_answer_that_raises_is_reported_and_the_next_ones_are_still_given(given: Given) -> None:
    answers = Answers(10, 10_000, given.failed)
    broken, broken_acknowledgement = publishing()

    def raising() -> None:
        raise RuntimeError("bug")

    first = owe(answers, given, "p0")
    answers.owe(broken, raising, 10)
    acknowledge(broken_acknowledgement)
    answers.give(lambda: given.answer("after"), 10)
    acknowledge(first)
    assert await given.count(2) == ["p0", "after"]
    assert [str(error) for error in given.failures] == ["bug"]


async def test_closed_the_window_answers_nothing_more_and_frees_its_waiters(given: Given) -> None:
    answers = Answers(1, 10_000, given.failed)
    acknowledgement = owe(answers, given, "p0")
    room = asyncio.create_task(answers.room())
    settled = asyncio.create_task(answers.settled())
    answers.close()
    async with asyncio.timeout(scaled(5)):
        await asyncio.gather(room, settled)
    acknowledgement.set_exception(PublishTimeout("too late"))
    await asyncio.sleep(0)
    assert given.names == []
    assert answers.owed == 0
    # The abandoned publish's error was taken: nothing to report as never retrieved.
    assert not acknowledgement._log_traceback  # noqa: SLF001 - what asyncio reports at collection
