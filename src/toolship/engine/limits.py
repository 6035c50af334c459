"""What one task may cost the server to accept, store and show — pure.

Every limit is a setting (``[limits]``) and every refusal a 400 naming it, so a
client knows what to change and an operator what to raise.  Also refused here:
text that cannot be stored or passed on (a lone UTF-16 surrogate anywhere, a NUL
in what becomes a process's argument or environment), which would otherwise fail
later as a 500 or a SYSTEM_ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

from toolship.config import LimitSettings
from toolship.errors import InvalidRequest
from toolship.models import Input, Output, Task

__all__ = ["bad_text", "check_count", "check_limits", "check_text"]


def check_count(items: Sized | None, limit: int, what: str, setting: str) -> None:
    count = len(items) if items is not None else 0
    if count > limit:
        raise InvalidRequest(
            f"{what}: {count} given, at most {limit} accepted here (limits.{setting}); "
            "split the work into several tasks (or a batch), or ask the operator to raise it"
        )


def _check_length(text: str | None, limit: int, what: str, setting: str) -> None:
    if text is not None and len(text) > limit:
        raise InvalidRequest(
            f"{what} is {len(text)} characters long, at most {limit} are accepted here "
            f"(limits.{setting}); shorten it, or ask the operator to raise the limit"
        )


def check_limits(task: Task, limits: LimitSettings) -> None:
    """Counts and lengths of one task, each against its limit."""
    check_count(task.executors, limits.max_executors, "executors", "max_executors")
    check_count(task.inputs, limits.max_inputs, "inputs", "max_inputs")
    check_count(task.outputs, limits.max_outputs, "outputs", "max_outputs")
    check_count(task.volumes, limits.max_volumes, "volumes", "max_volumes")
    check_count(task.tags, limits.max_tags, "tags", "max_tags")
    _check_length(task.name, limits.max_name_length, "name", "max_name_length")
    _check_length(
        task.description, limits.max_description_length, "description", "max_description_length"
    )
    for key, value in (task.tags or {}).items():
        _check_length(key, limits.max_tag_key_length, "a tag key", "max_tag_key_length")
        _check_length(
            value, limits.max_tag_value_length, f"tags[{key[:40]!r}]", "max_tag_value_length"
        )
    for i, ex in enumerate(task.executors):
        where = f"executors[{i}]"
        check_count(ex.command, limits.max_command_words, f"{where}.command", "max_command_words")
        check_count(ex.env, limits.max_env, f"{where}.env", "max_env")
        for j, word in enumerate(ex.command):
            _no_nul(word, f"{where}.command[{j}]")
        for key, value in (ex.env or {}).items():
            _no_nul(value, f"{where}.env[{key!r}]")
    for i, inp in enumerate(task.inputs or []):
        _check_item(inp, f"inputs[{i}]", limits)
    for i, out in enumerate(task.outputs or []):
        _check_item(out, f"outputs[{i}]", limits)


def _check_item(item: Input | Output, where: str, limits: LimitSettings) -> None:
    _check_length(item.name, limits.max_name_length, f"{where}.name", "max_name_length")
    _check_length(
        item.description,
        limits.max_description_length,
        f"{where}.description",
        "max_description_length",
    )
    if item.url is not None:
        _no_nul(item.url, f"{where}.url")


def _no_nul(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidRequest(
            f"{where} contains a NUL character, which no program argument, environment "
            "value or URL can hold; remove it"
        )


def _strings(obj: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield where, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _strings(key, f"{where} (a key)")
            yield from _strings(value, f"{where}.{key}" if where else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _strings(value, f"{where}[{i}]")


def bad_text(doc: Any) -> str | None:
    """Where in a JSON document a string holds a lone surrogate (no UTF-8 for it), if anywhere."""
    for where, text in _strings(doc, ""):
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return where or "the request"
    return None


def check_text(doc: Any) -> None:
    where = bad_text(doc)
    if where is not None:
        raise InvalidRequest(
            f"{where}: the text holds a lone UTF-16 surrogate (such as \\ud800), which is not "
            "a character and cannot be stored; send valid Unicode"
        )
