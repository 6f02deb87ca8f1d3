"""The impact stage's settings: the one place their defaults and ranges are written.

``charter constitution impact`` takes its batch size from :class:`ImpactSettings`; the pipeline
config's optional ``impact`` section is :class:`ImpactStageSettings`, which adds the constitution
to measure against. The judge and the merge policy are not here: an impact run judges with the
settings the labels were made with (the pipeline's ``label.judge`` and ``judge_model``, or the
command's judge options) and merges under the pipeline's (or the command's) policy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ImpactSettings(BaseModel):
    """How the labels to judge again are batched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(
        default=16, ge=1, description="Pairs per re-judge task (the unit a rerun resumes from)."
    )


class ImpactStageSettings(ImpactSettings):
    """The pipeline's impact stage: the config's constitution (NEW) measured against ``against`` (OLD)."""

    # Optional in the type, required by the check below: that check runs only once every key is
    # valid, so a misspelt key in the section is reported alone, at its own line.
    against: str | None = Field(
        default=None, description="The constitution YAML the stored labels were made under (OLD)."
    )

    @model_validator(mode="after")
    def _against_given(self) -> ImpactStageSettings:
        if self.against is None:
            raise ValueError("the impact section needs against: the constitution the labels were made under")
        return self

    @property
    def old_constitution(self) -> str:
        assert self.against is not None  # checked when the config loaded
        return self.against
