from __future__ import annotations

import pytest

from toolship.units import format_bytes, format_duration, parse_duration, parse_size_gb


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
