"""Timestamps on the wire: RFC 3339 in UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minimess.adapters.wire.timestamps import format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 28, 3, 55, 13, 123456, tzinfo=UTC), "2026-11-28T03:55:13.123Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
        (
            datetime(2026, 1, 1, 5, 30, 0, 999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2026-01-01T00:00:00.000Z",
        ),
    ],
)
def test_a_timestamp_is_written_in_utc_with_milliseconds_truncated_and_a_z(
    moment: datetime, text: str
) -> None:
    assert format_timestamp(moment) == text


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
    )
)
@example(datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_parse_timestamp_reads_back_the_utc_instant_to_the_millisecond(moment: datetime) -> None:
    parsed = parse_timestamp(format_timestamp(moment))
    assert parsed == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert parsed.utcoffset() == timedelta(0)


def _as_isoformat_writes_it(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


@given(
    st.lists(
        st.one_of(
            # Moments within a few seconds of each other, so that many share their second's text...
            st.integers(min_value=0, max_value=3_000_000).map(
                lambda micros: datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC) + timedelta(microseconds=micros)
            ),
            # ...among any others, of any zone, that must not be given a kept second's text.
            st.datetimes(
                min_value=datetime(1, 1, 1, 14),
                max_value=datetime(9999, 12, 30),
                timezones=st.sampled_from(
                    [UTC, timezone(timedelta(hours=-3)), timezone(timedelta(hours=14))]
                ),
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
# The same second of the clock on another day, month or year.
@example([datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 2, 9, tzinfo=UTC)])
@example([datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 2, 1, 9, tzinfo=UTC)])
@example([datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2027, 1, 1, 9, tzinfo=UTC)])
# The same second of the minute in another minute or hour.
@example([datetime(2026, 1, 1, 9, 1, 7, tzinfo=UTC), datetime(2026, 1, 1, 9, 2, 7, tzinfo=UTC)])
@example([datetime(2026, 1, 1, 9, 1, 7, tzinfo=UTC), datetime(2026, 1, 1, 10, 1, 7, tzinfo=UTC)])
def test_the_kept_second_is_used_only_for_moments_in_that_second(moments: list[datetime]) -> None:
    """Formatted one after another, each moment reads as isoformat writes it, whatever came before."""
    assert [format_timestamp(moment) for moment in moments] == [_as_isoformat_writes_it(m) for m in moments]
