"""The arithmetic of soft preference labels: from option log-probabilities to P(A is better).

A judge sees a pair twice, once with A as option (A) and once with A as option (B). Each
order gives the normalised probability of the option that is A; the label is the mean of
the two (RLAIF: averaging cancels the judge's position bias), and the two orders agree when
they prefer the same response. Chain-of-thought probabilities are near 0 or 1 and badly
calibrated, so they are clamped into a band (Constitutional AI used 0.4-0.6).
"""

from __future__ import annotations

import math


def option_probability(logprob_chosen: float, logprob_other: float) -> float:
    """P(option) among two options: exp(l1) / (exp(l1) + exp(l2)), computed without overflow."""
    if math.isinf(logprob_chosen) and math.isinf(logprob_other):
        return 0.5
    return 1.0 / (1.0 + math.exp(logprob_other - logprob_chosen))


def p_a_from_orders(
    first_order: dict[str, float], second_order: dict[str, float], labels: tuple[str, str] = ("A", "B")
) -> tuple[float, float]:
    """(P(A better) with A shown first, P(A better) with A shown second) from the option log-probs.

    In the first order A is the first option label; in the second order A is shown as the
    second option label, so its probability is that label's.
    """
    first, second = labels
    p_a_first = option_probability(first_order[first], first_order[second])
    p_a_second = option_probability(second_order[second], second_order[first])
    return p_a_first, p_a_second


def preference(p_a: float) -> str:
    """'a', 'b', or 'tie' at exactly one half."""
    return "a" if p_a > 0.5 else "b" if p_a < 0.5 else "tie"


def order_average(p_a_first: float, p_a_second: float) -> float:
    return (p_a_first + p_a_second) / 2


def orders_agree(p_a_first: float, p_a_second: float) -> bool:
    """Both orders prefer the same response (or both are exactly undecided)."""
    return preference(p_a_first) == preference(p_a_second)


def clamp(p: float, low: float, high: float) -> float:
    if not 0 <= low <= 0.5 <= high <= 1:
        raise ValueError(f"clamp band [{low}, {high}] must contain 0.5 and lie within [0, 1]")
    return min(high, max(low, p))
