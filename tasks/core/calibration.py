"""Calibration of probabilistic predictions: reliability tables and expected calibration error.

The functions take any binary event: ``probabilities[i]`` is the predicted probability that
event ``i`` happens and ``outcomes[i]`` whether it did. Bin ``k`` of ``bins`` covers
``[k / bins, (k + 1) / bins)``, the last bin including 1.0; only non-empty bins are listed.

For a reward model's P(chosen better) the event is "the chosen response is the better one",
with the hard outcome ``target >= 0.5``. A preference set names the winner "chosen", though,
so nearly every outcome is 1, and binning P(chosen better) against it would call a model that
says 0.7 and is right 70% of the time badly calibrated (every bin's accuracy would be 1).
:func:`top_label` therefore turns each pair into the event "the side the model favours is the
better one", with confidence ``max(p, 1 - p)``: the usual classifier calibration, bins 0.5-1.0,
and the same convention as the audit's ``calibration`` view of the AI judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def top_label(p_chosen: Sequence[float], outcomes: Sequence[bool]) -> tuple[list[float], list[bool]]:
    """P(chosen better) and hard outcomes -> (confidence in the favoured side, whether it was right).

    A prediction of exactly 0.5 favours neither side, so it is counted as favouring the rejected
    response, which is a miss when the chosen one is better (as accuracy counts p > 0.5 as a hit).
    """
    _check(p_chosen, outcomes)
    confidences = [max(p, 1.0 - p) for p in p_chosen]
    correct = [(p > 0.5) == bool(outcome) for p, outcome in zip(p_chosen, outcomes, strict=True)]
    return confidences, correct


def reliability_table(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> list[dict[str, Any]]:
    """One row per non-empty bin: ``bin`` (its index), ``count``, ``mean_confidence`` (the mean
    predicted probability) and ``accuracy`` (the share of outcomes that happened)."""
    _check(probabilities, outcomes)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    grouped: dict[int, list[tuple[float, bool]]] = {}
    for probability, outcome in zip(probabilities, outcomes, strict=True):
        grouped.setdefault(min(int(probability * bins), bins - 1), []).append((probability, bool(outcome)))
    return [
        {
            "bin": index,
            "count": len(rows),
            "mean_confidence": sum(p for p, _ in rows) / len(rows),
            "accuracy": sum(o for _, o in rows) / len(rows),
        }
        for index, rows in sorted(grouped.items())
    ]


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> float:
    """The count-weighted mean of |mean_confidence - accuracy| over the bins (0: calibrated)."""
    table = reliability_table(probabilities, outcomes, bins)
    if not table:
        raise ValueError("no predictions to measure calibration on")
    total = sum(row["count"] for row in table)
    return sum(row["count"] * abs(row["mean_confidence"] - row["accuracy"]) for row in table) / total


def _check(probabilities: Sequence[float], outcomes: Sequence[bool]) -> None:
    if len(probabilities) != len(outcomes):
        raise ValueError(f"{len(probabilities)} probabilities but {len(outcomes)} outcomes")
    outside = [p for p in probabilities if not 0.0 <= p <= 1.0]
    if outside:
        raise ValueError(f"probabilities must lie in [0, 1]; got {outside[0]}")
