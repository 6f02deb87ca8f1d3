"""The stress route's settings: how ``charter stress derive`` makes variants of a prompt set.

(How a stress set is evaluated is part of the evaluate stage's settings,
:class:`tasks.evaluate.settings.EvaluateSettings`: ``stress`` and ``stress_per_type``.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Transform = Literal["pressure", "authority", "merge", "typos", "language"]
TRANSFORMS: tuple[Transform, ...] = ("pressure", "authority", "merge", "typos", "language")


class DeriveSettings(BaseModel):
    """Which deterministic transforms make variants of every prompt, and their seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transforms: tuple[Transform, ...] = Field(
        default=TRANSFORMS,
        min_length=1,
        description="Transforms, each making one variant of every prompt (comma-separated or repeated).",
    )
    seed: int = Field(default=0, description="Seeds each prompt's choices (phrases, partners, typos).")
    typo_rate: float = Field(
        default=0.2, gt=0, le=1, description="Share of words of 4+ letters that get one typo."
    )

    @field_validator("transforms", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """``pressure,typos`` (the command line's form) as well as a list, each name once."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            names = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
            return tuple(dict.fromkeys(names))
        return value
