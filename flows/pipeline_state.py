"""What the pipeline's stages hand each other: the state later stages read, and what a stage did."""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.results import BatchedResult
from tasks.generate.selection import Selection
from tasks.merge.preference_sets import read_set
from tasks.orchestration.pipeline_config import PipelineSettings
from tasks.report.report import StageRecord
from tasks.store.store import Store
from tasks.train.lineage import latest_checkpoint


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did, for the report: rows added, units skipped as already done, a summary."""

    rows_added: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    detail: str = ""

    @classmethod
    def of(cls, result: BatchedResult, detail: str = "") -> StageOutcome:
        return cls(dict(result.rows_added), result.batches_skipped, detail)

    def record(self, stage: str, seconds: float) -> StageRecord:
        return StageRecord(
            name=stage,
            seconds=round(seconds, 2),
            rows_added=self.rows_added,
            skipped=self.skipped,
            detail=self.detail,
        )


class PipelineState:
    """What later stages need from earlier ones (or, when those did not run, from the store)."""

    def __init__(self, config: PipelineSettings):
        self.config = config
        self.selection: Selection | None = None  # None: select all, the config's families and limit
        self.set_id: str | None = None
        self.reward_checkpoint: str | None = None
        self.sft_checkpoint: str | None = None
        # Every policy the train stage made, in its order (one, or a race's candidates).
        self.policy_checkpoints: list[str] = []

    @property
    def policy_checkpoint(self) -> str | None:
        """The policy the report and a single evaluation look at: the last one trained."""
        return self.policy_checkpoints[-1] if self.policy_checkpoints else self.sft_checkpoint

    @property
    def store(self) -> str:
        return self.config.store

    @property
    def nothing_selected(self) -> bool:
        """The selection took no prompt (the set is exhausted): generate, critique and label skip."""
        return self.selection is not None and self.selection.exhausted

    def latest_set(self) -> str:
        return self.set_id or read_set(Store.existing(self.store), None)[0]

    def latest(self, kinds: tuple[str, ...]) -> str | None:
        found = latest_checkpoint(self.store, kinds)
        return str(found) if found else None
