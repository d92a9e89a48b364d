"""Parsing and rendering of durations and timestamps (:mod:`airflow_backup_provider.core.models`)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_backup_provider.core import (
    format_duration_iso,
    parse_datetime,
    parse_duration,
)
from tests.unit.conftest import (
    LOGGER,
    UTC,
    warnings_of,
)

# --------------------------------------------------------------------------------------------------------------------
# 2. Durations and timestamps
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT9.8782791S", timedelta(seconds=9, microseconds=878279)),
        ("PT0S", timedelta(0)),
        ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("PT19M43S", timedelta(minutes=19, seconds=43)),
        ("PT1.5H", timedelta(hours=1, minutes=30)),
        ("P2D", timedelta(days=2)),
        ("00:20:23.0896697", timedelta(minutes=20, seconds=23, microseconds=89670)),
        ("1.02:03:04.5", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("00:00:00", timedelta(0)),
        (" PT5S ", timedelta(seconds=5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(text) == expected
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("text", ["garbage", "P", "PT", "P1W", "12:5", "-PT5S", "1:02:03:04"])
def test_parse_duration_garbage_is_none_with_warning(text: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(text) is None
    assert any(repr(text) in m for m in warnings_of(caplog))


@pytest.mark.parametrize("value", [None, "", 5, ["PT1S"]])
def test_parse_duration_non_strings_are_none_silently(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(value) is None
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=4.5), "PT4.5S"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(minutes=3), "PT3M"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4.5), "PT26H3M4.5S"),
        (None, None),
    ],
)
def test_format_duration_iso(value: timedelta | None, expected: str | None) -> None:
    assert format_duration_iso(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        timedelta(seconds=9, microseconds=878279),
        timedelta(minutes=20, seconds=23, microseconds=89670),
        timedelta(days=3, hours=4, minutes=5, seconds=6),
    ],
)
def test_format_duration_iso_round_trips(value: timedelta) -> None:
    text = format_duration_iso(value)
    assert text is not None
    assert text.startswith("PT")
    parsed = parse_duration(text)
    assert parsed is not None
    assert abs(parsed - value) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(microseconds=10), "PT0.00001S"),
        (timedelta(minutes=1, seconds=59, microseconds=999999), "PT1M59.999999S"),
    ],
    ids=["exponent", "sixty-seconds"],
)
def test_format_duration_iso_small_and_near_minute_values(value: timedelta, expected: str) -> None:
    assert format_duration_iso(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-08-03T05:31:07.014604Z", datetime(2017, 8, 3, 5, 31, 7, 14604, tzinfo=UTC)),
        ("2017-08-03T05:31:03.7553376Z", datetime(2017, 8, 3, 5, 31, 3, 755337, tzinfo=UTC)),
        ("2019-11-20T09:49:46Z", datetime(2019, 11, 20, 9, 49, 46, tzinfo=UTC)),
        ("2019-11-20T09:49:46.5z", datetime(2019, 11, 20, 9, 49, 46, 500000, tzinfo=UTC)),
        ("2019-11-20T09:49:46", datetime(2019, 11, 20, 9, 49, 46, tzinfo=UTC)),
        (
            "2019-11-20T09:49:46.1234567+05:30",
            datetime(2019, 11, 20, 9, 49, 46, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("2019-11-20T09:49:46-08:00", datetime(2019, 11, 20, 17, 49, 46, tzinfo=UTC)),
        ("2019-11-20T09:49:46.25-08:00", datetime(2019, 11, 20, 17, 49, 46, 250000, tzinfo=UTC)),
        ("2019-11-20", datetime(2019, 11, 20, tzinfo=UTC)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z", "2001-01-01T00:00:00Z"],
)
def test_parse_datetime_sentinels_are_none(text: str) -> None:
    assert parse_datetime(text) is None


def test_parse_datetime_near_sentinel_is_a_real_date() -> None:
    assert parse_datetime("2001-01-02T00:00:00Z") == datetime(2001, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize("value", ["garbage", "2019-13-45T00:00:00Z", "yesterday at noon"])
def test_parse_datetime_garbage_is_none_with_warning(value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_datetime(value) is None
    assert any(repr(value) in m for m in warnings_of(caplog))


@pytest.mark.parametrize("value", [None, "", 1_500_000_000, {"t": 1}])
def test_parse_datetime_non_strings_are_none(value: Any) -> None:
    assert parse_datetime(value) is None
