"""The checker of a history: records in, a verdict with counts and every violation found out.

What it holds the servers to:

- Exactly once: every acknowledged message reaches every subscriber that covered its position,
  once. A subscriber covers a topic from its first `subscribed` on (the offsets after the one that
  frame gave) for as long as each resubscription answers `recovered: true`. A `recovered: false`
  (or a resubscription without `since`) is a gap the server reported: the window closes at the
  last message the subscriber had, and opens again after the position the new `subscribed` gave.
  Messages in a gap are excused and counted apart; a message missing inside a window is lost.
- One order: within an epoch each subscriber gets a topic's messages in increasing offsets, a
  message has one offset wherever it is seen, an offset holds one message, and an epoch left is
  never returned to. Together: every subscriber sees the same order.
- No message answered `broker_unavailable` (and never tried otherwise) is delivered.
- A message retried with its id after an unknown outcome is delivered at most once to anyone.
- An `ack` carries the offset the subscribers see the message at.

Copies of one id in two epochs with a reported gap between them are excused: a new epoch is a new
log (a memory broker's restarted process), which cannot know what the old one had.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Final

import attrs

from benchmarks.history.records import (
    CONNECTION_LOST,
    NO_ANSWER,
    Acked,
    Delivered,
    Failed,
    Record,
    Sent,
    Subscribed,
)

# Answers after which a publish may or may not have happened.
UNKNOWN_CODES: Final = frozenset({"publish_timeout", CONNECTION_LOST, NO_ANSWER})
UNAVAILABLE: Final = "broker_unavailable"
# How many violations of each kind a verdict spells out; the counts are always whole.
EXAMPLES: Final = 10

Position = tuple[str, int]


@attrs.frozen(kw_only=True)
class Counts:
    """What the history holds, and what went wrong in it."""

    # Distinct message ids sent, and `pub` frames sent for them.
    published: int
    attempts: int
    # Ids acknowledged; ids refused with broker_unavailable on every attempt; ids of unknown outcome.
    acked: int
    refused: int
    unknown: int
    # Ids sent more than once.
    retried: int
    # `message` frames received, and (acked message, covering subscriber) pairs.
    delivered: int
    expected: int
    # Expected deliveries missing; deliveries of an id the subscriber had; deliveries out of order
    # or at a position another copy of the message or another message has.
    lost: int
    duplicated: int
    reordered: int
    # Ids refused with broker_unavailable that were delivered; retried ids some subscriber got twice.
    unavailable_delivered: int
    retried_duplicated: int
    # Acks whose offset is not the one subscribers saw; deliveries of ids nobody sent.
    ack_mismatches: int
    phantoms: int
    # Reported gaps (recovered: false), the deliveries they excuse, repeats across a new epoch.
    gaps: int
    excused: int
    excused_repeats: int


@attrs.frozen
class Verdict:
    counts: Counts
    # One line per violation (at most EXAMPLES of each kind).
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        c = self.counts
        return not (
            c.lost or c.duplicated or c.reordered or c.unavailable_delivered or c.ack_mismatches or c.phantoms
        )


@attrs.define
class _Publish:
    """Everything one id's publisher saw."""

    topic: str
    first_sent: float
    attempts: int = 0
    answers: list[str] = attrs.Factory(list)
    acks: list[Acked] = attrs.Factory(list)

    @property
    def acked(self) -> bool:
        return bool(self.acks)

    @property
    def unknown(self) -> bool:
        return not self.acks and (
            len(self.answers) < self.attempts or any(code in UNKNOWN_CODES for code in self.answers)
        )

    @property
    def unavailable(self) -> bool:
        return not self.acked and not self.unknown and UNAVAILABLE in self.answers


@attrs.define
class _View:
    """One subscriber's view of one topic: its coverage windows and what it got, in order."""

    first_subscribed: float
    # The window open now: its epoch and the lowest offset it covers.
    open: Position | None = None
    # Closed windows: epoch, lowest and highest offset covered.
    closed: list[tuple[str, int, int]] = attrs.Factory(list)
    # The last message taken in order, and every epoch seen, in the order seen.
    last: Position | None = None
    epochs: list[str] = attrs.Factory(list)
    # Each id received: the epoch it came in, and how many gaps there had been by then.
    seen: dict[str, tuple[str | None, int]] = attrs.Factory(dict)
    gaps: int = 0

    def covers(self, position: Position) -> bool:
        epoch, offset = position
        if self.open is not None and self.open[0] == epoch and offset >= self.open[1]:
            return True
        return any(e == epoch and low <= offset <= high for e, low, high in self.closed)

    def close_window(self) -> None:
        """End the open window at the last message taken in it."""
        if self.open is None:
            return
        epoch, low = self.open
        if self.last is not None and self.last[0] == epoch and self.last[1] >= low:
            self.closed.append((epoch, low, self.last[1]))
        self.open = None


class _Findings:
    """Violations by kind: counted whole, spelled out up to EXAMPLES each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lines: list[str] = []
        # Ids some subscriber got more than once (repeats in a new epoch aside).
        self.duplicated_ids: set[str] = set()

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= EXAMPLES:
            self.lines.append(f"{kind}: {text}")


def check(history: Iterable[Record]) -> Verdict:
    """Judge a history; records of one client must be in the order that client saw them."""
    records = sorted(history, key=lambda record: record.at)  # stable: equal times keep their order
    findings = _Findings()
    publishes = _publishes(records)
    views, deliveries = _walk(records, publishes, findings)
    positions = _positions(deliveries, publishes, findings)
    expected, excused = _coverage(publishes, positions, views, findings)
    retried = {id_ for id_, publish in publishes.items() if publish.attempts > 1}
    for id_, publish in publishes.items():
        if publish.unavailable and id_ in deliveries:
            receivers = sorted({client for client, _ in deliveries[id_]})
            findings.add(
                "unavailable_delivered", f"{id_} was answered {UNAVAILABLE}, delivered to {receivers}"
            )
    for id_ in sorted(retried & findings.duplicated_ids):
        findings.add("retried_duplicated", f"{id_}, sent {publishes[id_].attempts} times, delivered twice")
    counts = Counts(
        published=len(publishes),
        attempts=sum(publish.attempts for publish in publishes.values()),
        acked=sum(publish.acked for publish in publishes.values()),
        refused=sum(publish.unavailable for publish in publishes.values()),
        unknown=sum(publish.unknown for publish in publishes.values()),
        retried=len(retried),
        delivered=sum(isinstance(record, Delivered) for record in records),
        expected=expected,
        lost=findings.counts["lost"],
        duplicated=findings.counts["duplicated"],
        reordered=findings.counts["reordered"] + findings.counts["misplaced"],
        unavailable_delivered=findings.counts["unavailable_delivered"],
        retried_duplicated=findings.counts["retried_duplicated"],
        ack_mismatches=findings.counts["ack_mismatch"],
        phantoms=findings.counts["phantom"],
        gaps=sum(view.gaps for view in views.values()),
        excused=excused,
        excused_repeats=findings.counts["excused_repeat"],
    )
    lines = [line for line in findings.lines if not line.startswith("excused_repeat")]
    return Verdict(counts, tuple(lines))


def _publishes(records: list[Record]) -> dict[str, _Publish]:
    publishes: dict[str, _Publish] = {}
    for record in records:
        if isinstance(record, Sent):
            publish = publishes.setdefault(record.id, _Publish(record.topic, record.at))
            publish.attempts += 1
        elif isinstance(record, Acked) and record.id in publishes:
            publishes[record.id].acks.append(record)
            publishes[record.id].answers.append("ack")
        elif isinstance(record, Failed) and record.id in publishes:
            publishes[record.id].answers.append(record.code)
    return publishes


def _walk(
    records: list[Record], publishes: dict[str, _Publish], findings: _Findings
) -> tuple[dict[tuple[str, str], _View], dict[str, list[tuple[str, Position | None]]]]:
    """Follow every subscriber through its subscriptions and deliveries, checking their order."""
    views: dict[tuple[str, str], _View] = {}
    # Every delivery of an id: who got it, where.
    deliveries: dict[str, list[tuple[str, Position | None]]] = defaultdict(list)
    for record in records:
        if isinstance(record, Subscribed):
            _subscribed(views.setdefault((record.client, record.topic), _View(record.at)), record, findings)
        elif isinstance(record, Delivered):
            position = (
                None if record.epoch is None or record.offset is None else (record.epoch, record.offset)
            )
            deliveries[record.id].append((record.client, position))
            if record.id not in publishes:
                findings.add("phantom", f"{record.client} got {record.id}, which nobody sent")
            seen_by = views.get((record.client, record.topic))
            if seen_by is None:
                findings.add(
                    "reordered", f"{record.client} got {record.id} on {record.topic} before subscribing"
                )
                continue
            _delivered(seen_by, record, position, findings)
    return views, deliveries


def _subscribed(view: _View, record: Subscribed, findings: _Findings) -> None:
    where = f"{record.client} on {record.topic}"
    if record.epoch is None or record.offset is None:
        # Nothing to start a window from: a gap until a subscription with a position.
        view.close_window()
        view.gaps += 1
        return
    if record.epoch not in view.epochs:
        view.epochs.append(record.epoch)
    if view.open is None:
        # The first subscription, or the first with a position after a gap already counted.
        view.open = (record.epoch, record.offset + 1)
        return
    if record.recovered is True and view.open is not None:
        if view.open[0] != record.epoch:
            findings.add("reordered", f"{where}: recovered across epochs {view.open[0]} -> {record.epoch}")
        return
    # recovered false, or a resubscription that asked for nothing: what came meanwhile may be missing.
    view.close_window()
    view.gaps += 1
    view.open = (record.epoch, record.offset + 1)


def _delivered(view: _View, record: Delivered, position: Position | None, findings: _Findings) -> None:
    where = f"{record.client} on {record.topic}"
    earlier = view.seen.get(record.id)
    if earlier is not None:
        epoch, gaps = earlier
        if epoch != record.epoch and view.gaps > gaps:
            findings.add("excused_repeat", f"{where}: {record.id} again in a new epoch after a gap")
        else:
            findings.add("duplicated", f"{where}: {record.id} again at {position}")
            findings.duplicated_ids.add(record.id)
        return
    view.seen[record.id] = (record.epoch, view.gaps)
    if position is None:
        findings.add("reordered", f"{where}: {record.id} came without a position")
        return
    epoch, offset = position
    last = view.last
    if last is not None and last[0] == epoch and offset <= last[1]:
        findings.add("reordered", f"{where}: {record.id} at {offset} after {last[1]} in epoch {epoch}")
        return
    if last is not None and last[0] != epoch and epoch in view.epochs[: view.epochs.index(last[0])]:
        findings.add("reordered", f"{where}: {record.id} back in epoch {epoch} after {last[0]}")
        return
    if epoch not in view.epochs:
        view.epochs.append(epoch)
    view.last = position


def _positions(
    deliveries: dict[str, list[tuple[str, Position | None]]],
    publishes: dict[str, _Publish],
    findings: _Findings,
) -> dict[str, Position]:
    """The position of every id, as most of its deliveries (or else its ack) give it."""
    positions: dict[str, Position] = {}
    holders: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for id_, seen in deliveries.items():
        by_epoch: dict[str, Counter[int]] = defaultdict(Counter)
        for _, position in seen:
            if position is not None:
                by_epoch[position[0]][position[1]] += 1
        publish = publishes.get(id_)
        for epoch, offsets in by_epoch.items():
            if len(offsets) > 1:
                findings.add("misplaced", f"{id_} seen at offsets {sorted(offsets)} of epoch {epoch}")
            positions.setdefault(id_, (epoch, offsets.most_common(1)[0][0]))
            for offset in offsets:
                holders[(publish.topic if publish else "?", epoch, offset)].add(id_)
    for (topic, epoch, offset), ids in holders.items():
        if len(ids) > 1:
            findings.add("misplaced", f"{sorted(ids)} all at offset {offset} of {topic} in epoch {epoch}")
    for id_, publish in publishes.items():
        for ack in publish.acks:
            if ack.epoch is None or ack.offset is None:
                continue
            seen_offsets = {p[1] for _, p in deliveries.get(id_, ()) if p is not None and p[0] == ack.epoch}
            if seen_offsets and ack.offset not in seen_offsets:
                findings.add(
                    "ack_mismatch",
                    f"{ack.client} was acked {id_} at {ack.offset}, subscribers saw {sorted(seen_offsets)}",
                )
            positions.setdefault(id_, (ack.epoch, ack.offset))
    return positions


def _coverage(
    publishes: dict[str, _Publish],
    positions: dict[str, Position],
    views: dict[tuple[str, str], _View],
    findings: _Findings,
) -> tuple[int, int]:
    """Every acked message against every subscriber of its topic: (expected, excused) deliveries."""
    # Windows still open stay open to the end: the workload waits for the last deliveries first.
    by_topic: dict[str, list[tuple[str, _View]]] = defaultdict(list)
    for (client, topic), view in views.items():
        by_topic[topic].append((client, view))
    expected = excused = 0
    for id_, publish in publishes.items():
        if not publish.acked:
            continue
        position = positions.get(id_)
        if position is None:
            findings.add("lost", f"{id_} was acked without a position and delivered to nobody")
            continue
        acked_at = publish.acks[0].at
        for client, view in by_topic[publish.topic]:
            got = id_ in view.seen
            if view.covers(position):
                expected += 1
                if not got:
                    findings.add("lost", f"{client} never got {id_} ({publish.topic} at {position})")
            elif not got and view.first_subscribed < acked_at:
                excused += 1
    return expected, excused


def summary(verdict: Verdict) -> str:
    """The counts as a few lines of text, then the violations."""
    c = verdict.counts
    lines = [
        f"published {c.published} ids in {c.attempts} attempts ({c.retried} retried): acked {c.acked},"
        f" refused {c.refused} (broker_unavailable), unknown {c.unknown}",
        f"delivered {c.delivered} (expected {c.expected}): lost {c.lost}, duplicated {c.duplicated},"
        f" reordered {c.reordered}",
        f"broker_unavailable delivered {c.unavailable_delivered}, retried delivered twice"
        f" {c.retried_duplicated}, ack offsets differing {c.ack_mismatches}, never sent {c.phantoms}",
        f"gaps reported (recovered: false) {c.gaps}, deliveries they excuse {c.excused},"
        f" repeats in a new epoch {c.excused_repeats}",
        "verdict: " + ("OK" if verdict.ok else "VIOLATIONS"),
        *(f"  {line}" for line in verdict.violations),
    ]
    return "\n".join(lines)
