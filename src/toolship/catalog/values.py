"""What a run's values become: parameters coerced to their kind, the command template filled.

Shared by :mod:`toolship.catalog.labels` (a default must fit its parameter, a placeholder
must name something) and :mod:`toolship.catalog.lower` (a run's values) — pure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from toolship.services import Parameter, ParamKind

__all__ = [
    "coerce",
    "describe_kind",
    "fill",
    "parse_bool",
    "parse_int",
    "parse_real",
    "placeholders",
]

# {{ and }} are literal braces; {NAME} a placeholder; any other brace is a mistake.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def placeholders(arg: str) -> list[str]:
    """The ``{NAME}`` placeholders of one argument of a command template."""
    names = []
    for m in _TOKEN.finditer(arg):
        if m.group(0) in ("{", "}"):
            raise ValueError(
                f"{arg!r} has an unpaired brace; write {{{{ and }}}} for a literal brace"
            )
        if m.group(1) is not None:
            names.append(m.group(1))
    return names


def fill(arg: str, values: Mapping[str, str | None]) -> str | None:
    """``arg`` with its placeholders replaced; None when one of them has no value."""
    missing = False

    def one(m: re.Match[str]) -> str:
        nonlocal missing
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = values.get(m.group(1) or "")
        if value is None:
            missing = True
            return ""
        return value

    text = _TOKEN.sub(one, arg)
    return None if missing else text


def coerce(param: Parameter, value: object) -> str | int | float | bool:
    """``value`` (a JSON value, or the text a user typed) as ``param``'s kind; ValueError."""
    kind = param.kind
    if kind is ParamKind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return parse_bool(value)
    elif kind is ParamKind.INT and not isinstance(value, bool | float):
        number = parse_int(value)
        if number is not None and _within(param, number):
            return number
    elif kind is ParamKind.FLOAT and not isinstance(value, bool):
        real = parse_real(value)
        if real is not None and _within(param, real):
            return real
    elif kind is ParamKind.CHOICE and isinstance(value, str | int | float):
        if str(value) in param.choices:
            return str(value)
    elif kind is ParamKind.STRING and isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"{_show(value)} is not {describe_kind(param)}")


def describe_kind(param: Parameter) -> str:
    """What a parameter takes, in words: ``an int from 1 to 1000``."""
    if param.kind is ParamKind.BOOL:
        return "a bool (true/false, yes/no, 1/0)"
    if param.kind is ParamKind.CHOICE:
        return "one of " + ", ".join(param.choices)
    if param.kind is ParamKind.STRING:
        return "a string"
    text = "an int" if param.kind is ParamKind.INT else "a float"
    low, high = param.minimum, param.maximum
    if low is not None and high is not None:
        return f"{text} from {low:g} to {high:g}"
    if low is not None:
        return f"{text} of at least {low:g}"
    if high is not None:
        return f"{text} of at most {high:g}"
    return text


def _within(param: Parameter, value: float) -> bool:
    return (param.minimum is None or value >= param.minimum) and (
        param.maximum is None or value <= param.maximum
    )


def parse_int(value: object) -> int | None:
    """A whole number (a JSON int, or decimal digits of sane length); None otherwise."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,30}\s*", value):
        return int(value)
    return None


def parse_real(value: object) -> float | None:
    """A finite number (NaN and infinity are no value for a tool); None otherwise."""
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value)


def parse_bool(text: str) -> bool:
    """true/false, yes/no, 1/0 (any case); ValueError otherwise."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a bool; write true or false (yes/no, 1/0)")
