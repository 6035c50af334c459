"""The web UI under /ui: server-rendered Jinja2 pages, htmx and its SSE extension.

:func:`install` adds it to the API's app (``toolship serve`` and the embedded
server do).  Pages: tasks (list, one task, its live log), batches, services (a
form from a service's typed ports) and a form for a raw task; see docs/ui.md.
Static files (htmx, the style sheet) come from the package: no CDN, no build step.
"""

from __future__ import annotations

from toolship.web.app import install

__all__ = ["install"]
