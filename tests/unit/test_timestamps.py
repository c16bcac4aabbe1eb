"""One timestamp format everywhere: fixed width, so string order is time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from parley.core.timestamps import format_timestamp, utc_now

FIXED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def test_zero_microseconds_keep_their_fraction() -> None:
    assert format_timestamp(datetime(2026, 11, 27, 2, 30, 13, tzinfo=UTC)) == "2026-11-27T02:30:13.000000Z"


def test_microseconds_are_written_in_full() -> None:
    value = datetime(2026, 11, 27, 2, 30, 13, 655523, tzinfo=UTC)
    assert format_timestamp(value) == "2026-11-27T02:30:13.655523Z"


def test_other_offsets_are_converted_to_utc_and_naive_values_taken_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        format_timestamp(datetime(2026, 1, 1, 2, 0, 0, 5, tzinfo=plus_two)) == "2026-01-01T00:00:00.000005Z"
    )
    assert format_timestamp(datetime(2026, 1, 1, 0, 0, 0)) == "2026-01-01T00:00:00.000000Z"


def test_string_order_is_time_order() -> None:
    base = datetime(2026, 11, 27, 2, 30, 13, tzinfo=UTC)
    times = [base + timedelta(microseconds=n) for n in (0, 1, 999_999, 1_000_000, 1_000_001)]
    texts = [format_timestamp(t) for t in times]
    assert sorted(texts) == texts
    assert all(FIXED.match(t) for t in texts)


def test_formatted_values_parse_back_to_the_same_instant() -> None:
    value = datetime(2026, 11, 27, 2, 30, 13, tzinfo=UTC)
    assert datetime.fromisoformat(format_timestamp(value)) == value
    assert FIXED.match(utc_now())
