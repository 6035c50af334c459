"""Parsing and printing of durations and sizes as users type them (``30m``, ``2G``), and of
amounts of money."""

from __future__ import annotations

import math
import re

__all__ = ["format_amount", "format_bytes", "format_duration", "parse_duration", "parse_size_gb"]

MAX_DURATION = 10 * 365 * 86400.0  # seconds; also keeps out inf from 400-digit numbers
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_GB = {"b": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``1h30m``, ``2d``; ValueError otherwise."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 30m, 1h30m")
    if total <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    if total > MAX_DURATION:
        raise ValueError(f"duration {text!r} is longer than 10 years; give a shorter one")
    return total


def parse_size_gb(text: str) -> float:
    """GiB from ``512M``, ``2G``, ``2GiB``, ``1.5T``; a bare number means GiB."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; write e.g. 512M, 2G, 1.5T")
    unit = (m.group(2) or "g")[0].lower()
    value = float(m.group(1)) * _SIZE_GB[unit]
    if value <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return value


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:g}s" if float(seconds).is_integer() else f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s" if sec else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_amount(value: float) -> str:
    """Three significant digits, at least two decimals, never an exponent.

    Tasks of seconds cost millionths: ``0.0000160`` reads as a price, ``1.6e-05`` does not.
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"
