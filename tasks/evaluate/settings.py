"""The evaluate stage's settings: the one place their defaults and ranges are written.

The pipeline config's ``evaluate`` section, the evaluate flow's parameter and the options of
``charter eval`` are this model; a scoreboard records it with the inputs it was made from
(:class:`tasks.evaluate.evaluation.EvaluationSettings`), so the same evaluation asked again
is found and reused.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluateSettings(BaseModel):
    """How a tuned model is compared with its base on held-out prompts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_family: int = Field(default=2, ge=1, description="Held-out prompts per family.")
    max_tokens: int = Field(default=64, ge=1, description="New tokens per sampled response, at most.")
    judge: bool = Field(default=True, description="AI-judge win rate (both orders).")
    seed: int = Field(default=0, description="Seeds the sampling of both models.")
    stress: str | None = Field(
        default=None,
        description="A stress set (JSONL, never trained on) both models also answer, per stress type.",
    )
    stress_per_type: int | None = Field(
        default=None, ge=1, description="The first N stress prompts of each stress type (default: all)."
    )
