"""The label stage's settings: which pairs, how the judge reads them, how they are batched.

This model is the pipeline config's ``label`` section; ``charter label`` takes its batch size
from it and its pair and judge options from :class:`~tasks.label.pairs.PairSettings` and
:class:`~tasks.label.judge.JudgeSettings`, the models the label flow is given.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tasks.label.judge import JudgeSettings
from tasks.label.pairs import PairMode, PairSettings


class LabelSettings(BaseModel):
    """A label stage: one label flow run per pair mode, all with the same judge settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ``all`` pairs the pipeline's responses, ``human`` judges the pairs people labelled (what
    # the audit's AI-human agreement is measured on).
    pairs: list[PairMode] = Field(default=["all", "human"], description="One label run per pairing mode.")
    per_prompt: int | None = PairSettings.model_fields["per_prompt"]
    judge: JudgeSettings = JudgeSettings()
    batch_size: int = Field(
        default=16, ge=1, description="Pairs per Prefect task (the unit a rerun resumes from)."
    )

    def pair_settings(self, mode: PairMode) -> PairSettings:
        """The pairs of one mode; the judge's seed also seeds the pair sample, as in ``charter label``."""
        return PairSettings(mode=mode, per_prompt=self.per_prompt, seed=self.judge.seed)
