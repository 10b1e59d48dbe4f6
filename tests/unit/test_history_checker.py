"""The history checker on hand-made histories: each violation found and counted, gaps excused."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.history import records
from benchmarks.history.checker import Verdict, check, summary
from benchmarks.history.records import (
    CONNECTION_LOST,
    Acked,
    Connected,
    Delivered,
    Failed,
    Fault,
    Record,
    Sent,
    Subscribed,
)

TOPIC = "room"
EPOCH = "e1"


class Script:
    """Builds a history one event at a time, each a second after the one before."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._clock = 0.0

    def _at(self) -> float:
        self._clock += 1.0
        return self._clock

    def sub(self, client: str, offset: int = -1, recovered: bool | None = None, epoch: str = EPOCH) -> None:
        self.records.append(Subscribed(client, self._at(), TOPIC, epoch, offset, recovered))

    def sent(self, client: str, id_: str, attempt: int = 1) -> None:
        self.records.append(Sent(client, self._at(), TOPIC, id_, attempt))

    def acked(self, client: str, id_: str, offset: int, epoch: str = EPOCH) -> None:
        self.records.append(Acked(client, self._at(), TOPIC, id_, epoch, offset))

    def failed(self, client: str, id_: str, code: str) -> None:
        self.records.append(Failed(client, self._at(), TOPIC, id_, code))

    def got(self, client: str, id_: str, offset: int, epoch: str = EPOCH) -> None:
        self.records.append(Delivered(client, self._at(), TOPIC, id_, epoch, offset))

    def publish(self, sender: str, id_: str, offset: int, *receivers: str, epoch: str = EPOCH) -> None:
        """`sender` publishes `id_`, acked at `offset`; each of `receivers` gets it."""
        self.sent(sender, id_)
        self.acked(sender, id_, offset, epoch)
        for receiver in receivers:
            self.got(receiver, id_, offset, epoch)

    def check(self) -> Verdict:
        return check(self.records)


def subscribed_pair() -> Script:
    """a and b subscribed to an empty topic."""
    script = Script()
    script.sub("a")
    script.sub("b")
    return script


def kinds(verdict: Verdict) -> set[str]:
    return {line.partition(":")[0] for line in verdict.violations}


def test_a_clean_history_passes_with_its_counts() -> None:
    script = subscribed_pair()
    for offset in range(3):
        script.publish("a", f"m{offset}", offset, "a", "b")
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    counts = verdict.counts
    assert (counts.published, counts.acked, counts.delivered, counts.expected) == (3, 3, 6, 6)
    assert (counts.lost, counts.duplicated, counts.reordered, counts.gaps) == (0, 0, 0, 0)
    assert verdict.violations == ()


def test_an_acked_message_a_subscriber_never_got_is_lost() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a", "b")
    script.publish("a", "m1", 1, "a")
    script.publish("a", "m2", 2, "a", "b")
    verdict = script.check()
    assert not verdict.ok
    assert verdict.counts.lost == 1
    assert verdict.violations == (f"lost: b never got m1 ({TOPIC} at ('{EPOCH}', 1))",)


def test_a_message_a_subscriber_got_twice_is_duplicated() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a", "b")
    script.got("b", "m0", 0)
    verdict = script.check()
    assert (verdict.ok, verdict.counts.duplicated, verdict.counts.reordered) == (False, 1, 0)
    assert kinds(verdict) == {"duplicated"}


def test_messages_out_of_offset_order_are_reordered() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a")
    script.publish("a", "m1", 1, "a", "b")
    script.got("b", "m0", 0)
    verdict = script.check()
    assert (verdict.ok, verdict.counts.reordered, verdict.counts.lost) == (False, 1, 0)
    assert kinds(verdict) == {"reordered"}


def test_one_message_at_two_offsets_breaks_the_one_order() -> None:
    """b sees m0 and m1 swapped: each in increasing offsets, but not at the offsets a saw."""
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a")
    script.publish("a", "m1", 1, "a")
    script.got("b", "m1", 0)
    script.got("b", "m0", 1)
    verdict = script.check()
    assert not verdict.ok
    assert verdict.counts.reordered == 4  # each id at two offsets, each offset with two ids
    assert kinds(verdict) == {"misplaced"}


def test_a_message_answered_broker_unavailable_must_never_be_delivered() -> None:
    script = subscribed_pair()
    script.sent("a", "refused-1")
    script.failed("a", "refused-1", "broker_unavailable")
    script.got("b", "refused-1", 0)
    verdict = script.check()
    assert (verdict.ok, verdict.counts.refused, verdict.counts.unavailable_delivered) == (False, 1, 1)
    assert kinds(verdict) == {"unavailable_delivered"}


def test_a_message_answered_broker_unavailable_and_not_delivered_passes() -> None:
    script = subscribed_pair()
    script.sent("a", "refused-1")
    script.failed("a", "refused-1", "broker_unavailable")
    script.publish("a", "m1", 0, "a", "b")
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    assert (verdict.counts.refused, verdict.counts.acked, verdict.counts.expected) == (1, 1, 2)


def retried_three_times(script: Script, id_: str = "x") -> None:
    """`id_`: a publish_timeout, then a connection lost before the answer, then an ack at offset 0."""
    script.sent("a", id_, 1)
    script.failed("a", id_, "publish_timeout")
    script.sent("a", id_, 2)
    script.failed("a", id_, CONNECTION_LOST)
    script.sent("a", id_, 3)
    script.acked("a", id_, 0)


def test_an_unknown_outcome_retried_with_its_id_and_delivered_once_passes() -> None:
    script = subscribed_pair()
    retried_three_times(script)
    script.got("a", "x", 0)
    script.got("b", "x", 0)
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    counts = verdict.counts
    assert (counts.published, counts.attempts, counts.retried, counts.acked) == (1, 3, 1, 1)


def test_an_unknown_outcome_retried_twice_and_delivered_twice_is_found() -> None:
    script = subscribed_pair()
    retried_three_times(script)
    script.got("a", "x", 0)
    script.got("b", "x", 0)
    script.got("b", "x", 0)
    verdict = script.check()
    assert not verdict.ok
    counts = verdict.counts
    assert (counts.retried_duplicated, counts.duplicated) == (1, 1)
    assert kinds(verdict) == {"duplicated", "retried_duplicated"}


def test_an_unknown_outcome_never_acked_may_be_delivered_once_or_not_at_all() -> None:
    script = subscribed_pair()
    for id_ in ("lost-answer", "timed-out"):
        script.sent("a", id_)
    script.failed("a", "lost-answer", CONNECTION_LOST)
    script.failed("a", "timed-out", "publish_timeout")
    script.got("a", "timed-out", 4)
    script.got("b", "timed-out", 4)
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    assert (verdict.counts.unknown, verdict.counts.expected, verdict.counts.delivered) == (2, 0, 2)


def test_recovered_false_excuses_what_the_gap_hid_and_the_window_goes_on_after_it() -> None:
    """A memory broker's restart: b gets recovered false in a new epoch; m1 is excused, m2 is due."""
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a", "b")
    script.publish("a", "m1", 1, "a")
    script.sub("a", -1, recovered=False, epoch="e2")
    script.sub("b", -1, recovered=False, epoch="e2")
    script.publish("a", "m2", 0, "a", "b", epoch="e2")
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    counts = verdict.counts
    assert (counts.gaps, counts.excused, counts.expected, counts.lost) == (2, 1, 5, 0)


def test_after_a_gap_a_message_past_the_new_position_is_still_due() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a", "b")
    script.sub("b", 0, recovered=False, epoch="e2")
    script.publish("a", "m1", 1, "a", epoch="e2")
    verdict = script.check()
    assert verdict.counts.lost == 1
    assert kinds(verdict) == {"lost"}


def test_a_hole_before_the_gap_is_lost_not_excused() -> None:
    """b missed m0 but had m1 when the gap came: the gap excuses only what followed m1."""
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a")
    script.publish("a", "m1", 1, "a", "b")
    script.sub("b", 5, recovered=False)
    verdict = script.check()
    assert (verdict.counts.lost, verdict.counts.gaps) == (1, 1)
    assert verdict.violations == (f"lost: b never got m0 ({TOPIC} at ('{EPOCH}', 0))",)


def test_recovered_true_keeps_the_window_open() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a", "b")
    script.publish("a", "m1", 1, "a")  # while b is away
    script.sub("b", 1, recovered=True)
    script.got("b", "m1", 1)
    script.publish("a", "m2", 2, "a")  # b should have had it too
    verdict = script.check()
    assert (verdict.counts.lost, verdict.counts.gaps, verdict.counts.expected) == (1, 0, 6)
    assert verdict.violations == (f"lost: b never got m2 ({TOPIC} at ('{EPOCH}', 2))",)


def test_a_subscriber_is_due_only_what_comes_after_its_subscription() -> None:
    script = Script()
    script.sub("a")
    script.publish("a", "m0", 0, "a")
    script.sub("late", 0)
    script.publish("a", "m1", 1, "a", "late")
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    assert (verdict.counts.expected, verdict.counts.excused) == (3, 0)


def test_an_ack_at_another_offset_than_the_subscribers_saw_is_found() -> None:
    script = subscribed_pair()
    script.sent("a", "m0")
    script.acked("a", "m0", 7)
    script.got("a", "m0", 0)
    script.got("b", "m0", 0)
    verdict = script.check()
    assert (verdict.ok, verdict.counts.ack_mismatches, verdict.counts.lost) == (False, 1, 0)


def test_a_delivery_nobody_sent_is_found() -> None:
    script = subscribed_pair()
    script.got("b", "ghost", 0)
    verdict = script.check()
    assert (verdict.ok, verdict.counts.phantoms) == (False, 1)


def test_a_repeat_in_a_new_epoch_after_a_gap_is_excused_but_not_within_one() -> None:
    """A memory server killed after fanning m0 out, before its ack: the retry is a new log's message."""
    script = subscribed_pair()
    script.sent("a", "m0", 1)
    script.got("b", "m0", 0)
    script.failed("a", "m0", CONNECTION_LOST)
    script.sub("a", -1, recovered=False, epoch="e2")
    script.sub("b", 0, recovered=False, epoch="e2")
    script.sent("a", "m0", 2)
    script.acked("a", "m0", 0, epoch="e2")
    script.got("a", "m0", 0, epoch="e2")
    script.got("b", "m0", 0, epoch="e2")
    verdict = script.check()
    assert verdict.ok, summary(verdict)
    assert (verdict.counts.excused_repeats, verdict.counts.duplicated) == (1, 0)


def test_the_summary_names_every_count_and_the_violations() -> None:
    script = subscribed_pair()
    script.publish("a", "m0", 0, "a")
    text = summary(script.check())
    for phrase in ("published 1", "acked 1", "delivered 1", "lost 1", "duplicated 0", "reordered 0"):
        assert phrase in text
    assert "verdict: VIOLATIONS" in text
    assert "lost: b never got m0" in text


@pytest.mark.parametrize(
    "record",
    [
        Sent("a", 1.5, TOPIC, "m0", 2),
        Acked("a", 2.0, TOPIC, "m0", None, None),
        Subscribed("b", 3.0, TOPIC, EPOCH, -1, None),
        Connected("b", 3.5, "s1"),
        Fault("", 4.0, "sigkill", "s1"),
    ],
)
def test_records_round_trip_through_json_lines(record: Record, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    records.write([record, record], path)
    assert list(records.read(path)) == [record, record]
