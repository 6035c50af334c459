"""Exact reruns on the wire, and how a rerun's outputs compare with the original's — pure.

A rerun is a new task that runs each executor's recorded image digest on inputs
checked against their recorded sha256; :func:`compare` compares the two tasks'
output files by container path, from the sha256 each attempt recorded
(``provenance.rerun`` reads them from the attempts).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RERUN_OF",
    "OutputPlace",
    "RerunInfo",
    "RerunRequest",
    "Verification",
    "compare",
]

# The tag that links a rerun to its original.
RERUN_OF = "toolship.rerun_of"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RerunRequest(_Wire):
    """``POST /api/v1/tasks/{id}/rerun``: where the outputs go, and whether inputs may differ.

    By default each output goes to a ``rerun-XXXXXXXX/`` folder beside the original's
    (the original's results are never overwritten); ``out_prefix`` puts every output
    under one URL instead (by the last segment of its original URL), and ``outputs``
    names the URL of single outputs by container path.
    """

    allow_changed_inputs: bool = Field(
        default=False, description="Run on the inputs' current bytes, whatever they are"
    )
    out_prefix: str | None = Field(default=None, description="URL folder for every output")
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Output URL by the output's container path"
    )


class OutputPlace(_Wire):
    path: str
    url: str


class RerunInfo(_Wire):
    """The rerun as created: its id, the original, where its outputs go."""

    id: str
    rerun_of: str
    outputs: list[OutputPlace] = Field(default_factory=list)
    inputs_checked: int = Field(
        default=0, description="Input files the worker checks against the original's sha256"
    )


class Verification(_Wire):
    """A rerun's output files against the original's, by container path."""

    task: str
    against: str
    identical: list[str] = Field(default_factory=list)
    differing: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="The original's, not made")
    added: list[str] = Field(default_factory=list, description="Made, not in the original")

    @property
    def all_identical(self) -> bool:
        return not (self.differing or self.missing or self.added)


def compare(
    task: str, ours: Mapping[str, str], against: str, theirs: Mapping[str, str]
) -> Verification:
    """Two tasks' output files (container path -> sha256 hex, "" when none was recorded),
    compared: a file without a hash never matches."""
    return Verification(
        task=task,
        against=against,
        identical=sorted(p for p in theirs if p in ours and ours[p] and ours[p] == theirs[p]),
        differing=sorted(p for p in theirs if p in ours and (not ours[p] or ours[p] != theirs[p])),
        missing=sorted(theirs.keys() - ours.keys()),
        added=sorted(ours.keys() - theirs.keys()),
    )
