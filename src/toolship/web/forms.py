"""What the UI's two task forms share: their fields, errors beside them, the answer to a post.

A form posts through htmx (``hx-post``, the CSRF token in the header base.html
sets) and works without JavaScript too (a plain POST with the hidden ``csrf``
field).  A refused post answers 400 with the form again, each error beside its
field (``aria-invalid``, ``aria-describedby``) and the rest above the button; a
created task answers htmx with ``HX-Redirect`` and a plain POST with a 303, both
to the task's page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

__all__ = ["Field", "created", "is_htmx", "slugs"]


@dataclass
class Field:
    """One labelled control: ``id="field-{slug}"``, its error ``id="error-{slug}"``."""

    slug: str
    name: str  # the form's key
    label: str
    hint: str = ""
    required: bool = False
    widget: str = "text"  # text, textarea or select
    inputmode: str | None = None  # numeric, decimal, url
    placeholder: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)  # select: (value, text)
    value: str = ""
    error: str | None = None

    def fail(self, message: str) -> None:
        """Add ``message`` to this field's errors (one field may break several rules)."""
        self.error = message if self.error is None else f"{self.error}; {message}"


def slugs(names: list[str]) -> list[str]:
    """A unique HTML id part for each name, in order: ``Input Directory`` → ``Input-Directory``."""
    seen: set[str] = set()
    found = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "field"
        slug, n = base, 1
        while slug in seen:
            n += 1
            slug = f"{base}-{n}"
        seen.add(slug)
        found.append(slug)
    return found


def is_htmx(request: Request) -> bool:
    return "hx-request" in request.headers


def created(request: Request, task_id: str) -> Response:
    """The answer to a post that created a task: go to the task's page."""
    target = f"/ui/tasks/{task_id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
