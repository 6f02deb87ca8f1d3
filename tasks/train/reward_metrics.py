"""What a reward model (or an ensemble of them) is measured by on held-out pairs.

:class:`PreferenceRecord` is one pair as training reads it; :func:`pair_metrics` turns the
model's P(chosen better) on held-out pairs into accuracy, calibration and accuracy by group.
Importable without torch: an ensemble computes its probabilities elsewhere and is measured
by the same function as a single model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.core.calibration import expected_calibration_error, reliability_table, top_label
from tasks.core.conversation import messages_problem
from tasks.core.hashing import content_id

NO_GROUP = "(none)"
# A tie's target is 0.5 (tasks.merge.policy); the slack absorbs float noise in averaged soft labels.
TIE_SLACK = 1e-9


class PreferenceRecord(BaseModel):
    """One pair as training reads it; other keys of a ``preferences`` row are ignored."""

    model_config = ConfigDict(extra="ignore")

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str
    target: float = Field(ge=0, le=1)
    weight: float = Field(ge=0)
    family: str | None = None
    decided_by: str | None = None
    pair_id: str | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        # The preferences table stores the conversation as JSON text; exports keep it as a list.
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("prompt")
    @classmethod
    def _conversation(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        problem = messages_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def split_key(self) -> str:
        """The pair's id, or a hash of its texts that ignores which response is chosen."""
        if self.pair_id:
            return self.pair_id
        return content_id(
            "pair_texts", {"prompt": self.prompt, "responses": sorted([self.chosen, self.rejected])}
        )


def decisive(pairs: Sequence[PreferenceRecord]) -> list[int]:
    """Indices of the pairs with a better response (a tie's target 0.5 has none)."""
    return [i for i, p in enumerate(pairs) if abs(p.target - 0.5) > TIE_SLACK]


def pair_metrics(pairs: Sequence[PreferenceRecord], p_chosen: Sequence[float], loss: float) -> dict[str, Any]:
    """``pairs``, ``decisive_pairs``, ``loss`` (as given), ``accuracy`` (P(chosen better) > 0.5
    against the hard outcome, decisive pairs only, unweighted), ``ece`` and ``reliability``
    (top-label calibration), and accuracy per ``family`` and per ``decided_by``."""
    kept = decisive(pairs)
    confidences, correct = top_label([p_chosen[i] for i in kept], [pairs[i].target > 0.5 for i in kept])
    hits = dict(zip(kept, correct, strict=True))

    def accuracy_by(key: Callable[[PreferenceRecord], str | None]) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[bool]] = {}
        for index, hit in hits.items():
            groups.setdefault(key(pairs[index]) or NO_GROUP, []).append(hit)
        return {name: {"pairs": len(g), "accuracy": sum(g) / len(g)} for name, g in sorted(groups.items())}

    return {
        "pairs": len(pairs),
        "decisive_pairs": len(kept),
        "loss": loss,
        "accuracy": sum(correct) / len(correct) if correct else None,
        "ece": expected_calibration_error(confidences, correct) if correct else None,
        "reliability": reliability_table(confidences, correct),
        "accuracy_by_family": accuracy_by(lambda p: p.family),
        "accuracy_by_decided_by": accuracy_by(lambda p: p.decided_by),
    }
