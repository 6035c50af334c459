"""toolship: run containerized tools next to the data.

The Python SDK's public surface; see :class:`toolship.Client`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
