"""What flows return: frozen dataclasses, so callers read named fields instead of string keys.

Each stage's flow module defines its own result on these bases; a field a caller misspells
fails at once (an ``AttributeError``, and a type checker's complaint) instead of a ``KeyError``
deep in a summary line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class FlowResult:
    """A flow run that wrote to the store: its run id (the lineage id of its rows) and what it added."""

    run_id: str
    rows_added: dict[str, int]

    def added(self, table: str) -> int:
        return self.rows_added.get(table, 0)


@dataclass(frozen=True, kw_only=True)
class BatchedResult(FlowResult):
    """A flow run that works in batches, skipping those a previous run already stored."""

    batches: int
    batches_skipped: int


@dataclass(frozen=True, kw_only=True)
class CheckpointResult:
    """A training flow's checkpoint: where it is, whether it was already there, and its lineage."""

    path: str
    reused: bool
    # The checkpoint's lineage record (``charter-lineage.json``): run, base model, set, metrics...
    lineage: dict[str, Any]
    # Store rows the flow run added beside the checkpoint (a reward model's ``reward_scores``).
    rows_added: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, trained: dict[str, Any]) -> CheckpointResult:
        """From what the training tasks return: the lineage record plus ``path`` and ``reused``."""
        lineage = {key: value for key, value in trained.items() if key not in ("path", "reused")}
        return cls(path=trained["path"], reused=trained["reused"], lineage=lineage)

    @property
    def run_id(self) -> str:
        """The run that trained the checkpoint (an earlier one when it was reused)."""
        return self.lineage["run_id"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.lineage["metrics"]
