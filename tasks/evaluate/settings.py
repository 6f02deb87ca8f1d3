"""The evaluate stage's settings: the one place their defaults and ranges are written.

The pipeline config's ``evaluate`` section, the evaluate flow's parameter and the options of
``charter eval`` are this model; a scoreboard records it with the inputs it was made from
(:class:`tasks.evaluate.evaluation.EvaluationSettings`), so the same evaluation asked again
is found and reused. :class:`PreferenceEvalSettings` are the options of ``charter eval
--preferences`` (:mod:`tasks.evaluate.preferences`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


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


class PreferenceEvalSettings(BaseModel):
    """How ``charter eval --preferences`` reads a held-out preference file or set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int | None = Field(
        default=None,
        ge=1,
        description="Evaluate at most N pairs: those with the lowest pair ids (the same N whatever "
        "the file's order).",
    )
    allow_overlap: bool = Field(
        default=False,
        description="Evaluate pairs a checkpoint's training preference set holds too (counted, included).",
    )
    label_format: str | None = Field(
        default=None,
        description="The file's format: charter, hh-rlhf, trl, ... (default: told by the first line's keys).",
    )

    @field_validator("label_format")
    @classmethod
    def _known_format(cls, fmt: str | None) -> str | None:
        from tasks.ingest.human_labels import FORMATS  # the parsers: imported when a format is named

        if fmt is not None and fmt not in FORMATS:
            raise ValueError(f"unknown label format {fmt!r}; formats: {', '.join(FORMATS)}")
        return fmt


class CompareSettings(PreferenceEvalSettings, EvaluateSettings):
    """How candidate policies race each other (``charter compare``): the evaluation's settings,
    applied to every candidate and base alike, and how its held-out preference file is read."""
