"""The generate stage's settings: the one place their defaults and ranges are written.

The pipeline config's ``generate`` section, the ``generate`` flow's parameter and the
``charter generate`` options are all this model, and the backends' ``SamplingSettings``
takes its defaults from it, so a default changed here changes everywhere at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GenerateSettings(BaseModel):
    """How many responses per prompt, how they are sampled, and how prompts are batched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=4, ge=1, description="Samples per prompt.")
    temperature: float = Field(default=0.8, ge=0, description="Sampling temperature (0: greedy).")
    top_p: float = Field(default=0.95, gt=0, le=1, description="Nucleus sampling: the probability mass kept.")
    max_tokens: int = Field(default=128, ge=1, description="New tokens per response, at most.")
    seed: int = Field(default=0, description="Base seed; every prompt is seeded from it and its id.")
    batch_size: int = Field(
        default=8, ge=1, description="Prompts per Prefect task (the unit a rerun resumes from)."
    )

    def sampling_values(self) -> dict[str, int | float]:
        """The values that cross the backend protocol (batching changes no sample)."""
        return self.model_dump(exclude={"batch_size"})
