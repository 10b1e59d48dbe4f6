"""Timestamps on the wire: RFC 3339 in UTC with milliseconds, as `ts` fields carry them."""

from __future__ import annotations

from datetime import UTC, datetime

# A `message` frame is made for every message read from the bus, and the frames of one second
# share their text up to the milliseconds: it is formatted once per second and kept (one tuple,
# replaced whole), and the milliseconds' text is looked up. A third of the cost of isoformat.
_last_second: tuple[tuple[int, ...], str] = ((), "")
_MILLISECONDS = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-28T03:55:13.123Z."""
    global _last_second
    if moment.tzinfo is not UTC:  # converting costs as much as formatting: only when needed
        moment = moment.astimezone(UTC)
    second = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    last, prefix = _last_second
    if second != last:
        prefix = moment.isoformat(timespec="seconds").removesuffix("+00:00")
        _last_second = (second, prefix)
    return prefix + _MILLISECONDS[moment.microsecond // 1000]


def parse_timestamp(text: str) -> datetime:
    """Inverse of format_timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
