"""The uncertainty meter's arithmetic: what an ensemble of reward models says, and how sure it is.

An ensemble of K reward models (members trained with different seeds on bootstrap resamples
of the same pairs) gives every response K scores. Their mean is the estimate, their spread
(the standard deviation over members) says how much the estimate depends on which data and
which seed made the model: small where the members saw similar inputs, large where they had
to guess. Coste et al. (ICLR 2024, "Reward Model Ensembles Help Mitigate Overoptimization")
optimise against a conservative aggregate instead of the mean:

- ``mean``: the members' mean;
- ``min`` ("worst case"): the lowest member's score;
- ``uwo`` ("uncertainty-weighted optimisation"): mean - penalty * std.

Spreads are population standard deviations (divided by K, not K - 1), so one member gives
0, and the figures do not depend on a small-sample correction. Plain Python: no torch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal

Aggregation = Literal["mean", "min", "uwo"]
AGGREGATIONS: tuple[Aggregation, ...] = ("mean", "min", "uwo")


def _check_members(members: Sequence[Sequence[float]]) -> int:
    if not members:
        raise ValueError("an ensemble needs at least one member's scores")
    lengths = {len(scores) for scores in members}
    if len(lengths) != 1:
        raise ValueError(f"members scored different numbers of responses: {sorted(lengths)}")
    return lengths.pop()


def member_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def member_std(values: Sequence[float]) -> float:
    """Population standard deviation over the members (0 for one member)."""
    mean = member_mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def columns(members: Sequence[Sequence[float]]) -> list[tuple[float, ...]]:
    """Members x responses -> one tuple of the members' scores per response."""
    _check_members(members)
    return list(zip(*members, strict=True))


def means_and_stds(members: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Per response: the members' mean score and their spread."""
    per_response = columns(members)
    return [member_mean(c) for c in per_response], [member_std(c) for c in per_response]


def aggregate(members: Sequence[Sequence[float]], how: Aggregation, penalty: float = 1.0) -> list[float]:
    """One reward per response from the members' scores (``members[k][i]``: member k, response i)."""
    if penalty < 0:
        raise ValueError(f"the uncertainty penalty must be at least 0, not {penalty}")
    per_response = columns(members)
    if how == "mean":
        return [member_mean(c) for c in per_response]
    if how == "min":
        return [min(c) for c in per_response]
    if how == "uwo":
        return [member_mean(c) - penalty * member_std(c) for c in per_response]
    raise ValueError(f"unknown aggregation {how!r}: one of {', '.join(AGGREGATIONS)}")


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def pair_probabilities(
    chosen: Sequence[Sequence[float]], rejected: Sequence[Sequence[float]]
) -> tuple[list[float], list[float]]:
    """Per pair: P(chosen better) averaged over the members, and its spread over them.

    Each member k reads its own Bradley-Terry probability sigmoid(s_k(chosen) - s_k(rejected));
    averaging probabilities (not scores) keeps one over-confident member from deciding alone.
    """
    if len(chosen) != len(rejected):
        raise ValueError(f"{len(chosen)} members scored the chosen texts, {len(rejected)} the rejected")
    per_member = [
        [_sigmoid(c - r) for c, r in zip(cs, rs, strict=True)]
        for cs, rs in zip(chosen, rejected, strict=True)
    ]
    return means_and_stds(per_member)


def bootstrap_sample(count: int, seed: int) -> list[int]:
    """``count`` indices drawn with replacement from range(count), the same for the same seed.

    About 1 - 1/e (63%) of the distinct items land in a sample; the rest are drawn twice or more.
    """
    if count < 1:
        raise ValueError("nothing to resample")
    draw = random.Random(seed)
    return sorted(draw.randrange(count) for _ in range(count))


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (NumPy's default)."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], not {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def uncertainty_bins(
    uncertainties: Sequence[float], correct: Sequence[bool], bins: int = 5
) -> list[dict[str, Any]]:
    """Accuracy by uncertainty: items sorted by uncertainty, cut into ``bins`` groups of equal size
    (quintiles by default; the first ``len % bins`` groups take one item more), lowest first.

    Rows: ``bin`` (1 = most certain), ``pairs``, ``uncertainty_min``, ``uncertainty_max``,
    ``mean_uncertainty`` and ``accuracy``. A ranking that means something shows accuracy falling
    as the bins go up. Fewer items than bins give one bin per item.
    """
    if len(uncertainties) != len(correct):
        raise ValueError(f"{len(uncertainties)} uncertainties but {len(correct)} outcomes")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    order = sorted(range(len(uncertainties)), key=lambda i: (uncertainties[i], i))
    groups = min(bins, len(order))
    rows, start = [], 0
    for index in range(groups):
        size = len(order) // groups + (1 if index < len(order) % groups else 0)
        members = order[start : start + size]
        start += size
        spread = [uncertainties[i] for i in members]
        rows.append(
            {
                "bin": index + 1,
                "pairs": len(members),
                "uncertainty_min": min(spread),
                "uncertainty_max": max(spread),
                "mean_uncertainty": member_mean(spread),
                "accuracy": sum(bool(correct[i]) for i in members) / len(members),
            }
        )
    return rows


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base) as log n - (n - 1) / n: the analytic figure of Stiennon et al. (2020)
    and Gao et al. (2023), the x-axis of the over-optimisation curves; Beirami et al. (2024) show
    it bounds the true KL from above."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    return math.log(n) - (n - 1) / n
