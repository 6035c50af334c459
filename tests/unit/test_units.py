from __future__ import annotations

import pytest

from toolship.units import (
    format_amount,
    format_bytes,
    format_duration,
    parse_duration,
    parse_size_gb,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("2s", 2), ("30m", 1800), ("1h30m", 5400), ("500ms", 0.5)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "5x", "-3s", "0"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "gb"), [("2G", 2), ("512M", 0.5), ("1GiB", 1), ("1T", 1024), ("3", 3)]
)
def test_parse_size(text: str, gb: float) -> None:
    assert parse_size_gb(text) == gb


def test_formatting() -> None:
    assert format_duration(2) == "2s"
    assert format_duration(90) == "1m30s"
    assert format_bytes(2048) == "2.0 KiB"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0.0, "0"),
        (1.6e-05, "0.0000160"),  # a one-second task: no 1.6e-05 for a price
        (0.000108, "0.000108"),
        (0.0123456, "0.0123"),
        (12.345, "12.35"),  # cents at least
        (1234.5, "1234.50"),
    ],
)
def test_amounts_have_three_significant_digits_and_no_exponent(amount: float, text: str) -> None:
    assert format_amount(amount) == text
