"""The critique stage's settings: the one place their defaults and ranges are written.

The pipeline config's ``critique`` section, the ``critique`` flow's parameter and the
options of ``charter critique`` and ``charter export sft|revisions`` (which must repeat a
critique run's settings to find its chains) are all this model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tasks.critique.chains import RoundSettings, load_few_shot


class CritiqueSettings(BaseModel):
    """A critique run's settings as plain data: flow parameters, and what ``export`` must repeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(default=1, ge=1, description="Critique -> revision rounds per generation.")
    critique_tokens: int = Field(default=96, ge=1, description="New tokens per critique, at most.")
    revision_tokens: int = Field(default=160, ge=1, description="New tokens per revision, at most.")
    temperature: float = Field(
        default=0.7, ge=0, description="Sampling temperature of critiques and revisions."
    )
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling: the probability mass kept.")
    seed: int = Field(default=0, description="Seeds the principle draw and the sampling of every round.")
    few_shot_path: str | None = Field(
        default=None, description="JSONL of worked critique/revision dialogues shown first."
    )
    batch_size: int = Field(
        default=8, ge=1, description="Generations per Prefect task (the unit a rerun resumes from)."
    )

    def config(self) -> RoundSettings:
        """The working config (a few-shot file path becomes its validated examples; batching is no part)."""
        values = self.model_dump(exclude={"few_shot_path", "batch_size"})
        few_shot = load_few_shot(self.few_shot_path) if self.few_shot_path else ()
        return RoundSettings(**values, few_shot=few_shot)
