"""How one executor runs: containers through the podman/docker CLI, or a plain host process."""

from __future__ import annotations

from toolship.runtime.base import ExecSpec, IdMap, Mount, Runtime, get_runtime, known_runtimes

__all__ = ["ExecSpec", "IdMap", "Mount", "Runtime", "get_runtime", "known_runtimes"]
