"""Which metric windows a request reads: hours for short spans, days for long histories."""

from __future__ import annotations

import pytest

from app.domain.windows import MAX_WINDOW_DAYS, MAX_WINDOW_HOURS, window


def test_default_is_the_24_hours_up_to_the_last_seen() -> None:
    found = window({}, "2026-11-27T10")
    assert found.bucket == "hour"
    assert found.hours[0] == "2026-11-26T11" and found.hours[-1] == "2026-11-27T10"
    assert len(found.hours) == 24


def test_a_span_longer_than_the_hourly_limit_reads_days() -> None:
    found = window({"from": "2025-01-01T05", "to": "2025-03-01T02"}, "2025-03-01T02")
    assert found.bucket == "day"
    # Whole days, from the first day's midnight to the last day's last hour.
    assert found.hours[0] == "2025-01-01T00" and found.hours[-1] == "2025-03-01T23"
    assert len(found.hours) == 60 * 24


def test_days_may_be_given_as_dates() -> None:
    found = window({"from": "2026-11-01", "to": "2026-11-03", "bucket": "day"}, "x")
    assert found == ("day", [f"2026-11-0{d}T{h:02d}" for d in (1, 2, 3) for h in range(24)])


def test_limits_and_bad_values_are_clear_errors() -> None:
    too_long = {"from": "2026-01-01T00", "to": "2026-03-01T00", "bucket": "hour"}
    with pytest.raises(ValueError, match=f"at most {MAX_WINDOW_HOURS} hours.*bucket=day"):
        window(too_long, "x")
    with pytest.raises(ValueError, match=f"at most {MAX_WINDOW_DAYS} days"):
        window({"from": "2020-01-01", "to": "2026-01-01"}, "x")
    with pytest.raises(ValueError, match="bucket must be"):
        window({"bucket": "week"}, "2026-11-27T10")
    with pytest.raises(ValueError, match="after 'to'"):
        window({"from": "2026-11-28", "to": "2026-11-27"}, "x")
    with pytest.raises(ValueError, match="must look like"):
        window({"to": "yesterday"}, "x")
