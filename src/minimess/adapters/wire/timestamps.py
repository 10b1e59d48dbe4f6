"""Timestamps on the wire: RFC 3339 in UTC with milliseconds, as `ts` fields carry them."""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: 2026-11-28T03:55:13.123Z."""
    if moment.tzinfo is not UTC:  # converting costs as much as formatting: only when needed
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def parse_timestamp(text: str) -> datetime:
    """Inverse of format_timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
