"""Best-of-n's exact estimator, checked against brute force over every subset and worked numbers."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from tasks.train.best_of_n import curve, expected_pick, peak_then_fall, pick_weights


def brute_force(proxy: list[float], values: list[float], n: int) -> float:
    """Mean over every n-subset of the value of its highest-proxy member (ties: the block's mean)."""
    picks = []
    for subset in combinations(range(len(proxy)), n):
        top = max(proxy[i] for i in subset)
        tied = [values[i] for i in subset if proxy[i] == top]
        picks.append(sum(tied) / len(tied))
    return sum(picks) / len(picks)


def test_pick_weights_worked_example():
    # 4 samples, n = 2: C(4, 2) = 6 subsets; rank i is the best of C(i, 1) = i of them.
    assert pick_weights(4, 2) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    # n = 1 is a uniform draw; n = N always keeps the top sample.
    assert pick_weights(4, 1) == pytest.approx([0.25] * 4)
    assert pick_weights(4, 4) == pytest.approx([0, 0, 0, 1])
    for n in range(1, 9):
        assert math.fsum(pick_weights(8, n)) == pytest.approx(1.0)


def test_pick_weights_refuses_impossible_n():
    with pytest.raises(ValueError, match="1 <= n"):
        pick_weights(4, 5)
    with pytest.raises(ValueError, match="1 <= n"):
        pick_weights(4, 0)


def test_expected_pick_worked_example():
    # The proxy ranks the samples 2 < 0 < 3 < 1; gold values in that order: 5, 1, 4, 0.
    proxy = [0.3, 0.9, 0.1, 0.5]
    gold = [1.0, 0.0, 5.0, 4.0]
    # n = 2: (0 * 5 + 1 * 1 + 2 * 4 + 3 * 0) / 6 = 1.5
    assert expected_pick(proxy, gold, 2) == pytest.approx(1.5)
    assert expected_pick(proxy, gold, 1) == pytest.approx(2.5)  # the pool's mean
    assert expected_pick(proxy, gold, 4) == pytest.approx(0.0)  # the proxy's favourite
    assert expected_pick(proxy, proxy, 2) == pytest.approx((0.3 + 2 * 0.5 + 3 * 0.9) / 6)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_expected_pick_equals_brute_force_with_ties(n):
    proxy = [0.2, 0.7, 0.7, -1.0, 0.7, 0.2, 1.5]
    gold = [3.0, -2.0, 4.0, 1.0, 0.5, -1.0, -3.0]
    assert expected_pick(proxy, gold, n) == pytest.approx(brute_force(proxy, gold, n))


def test_expected_pick_checks_lengths():
    with pytest.raises(ValueError, match="3 proxy scores but 2 values"):
        expected_pick([1.0, 2.0, 3.0], [1.0, 2.0], 1)


def test_curve_averages_pools_and_reports_kl_and_standard_error():
    pools = [([0.3, 0.9, 0.1, 0.5], [1.0, 0.0, 5.0, 4.0]), ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])]
    rows = curve(pools, [1, 2, 4])
    # Pool 1 golds: 2.5, 1.5, 0.0; pool 2 (proxy = gold): 2.5, (1*2 + 2*3 + 3*4)/6 = 10/3, 4.
    assert [row["gold"] for row in rows] == pytest.approx([2.5, (1.5 + 10 / 3) / 2, 2.0])
    assert rows[0]["gold_se"] == pytest.approx(0.0)
    # n = 4: golds 0 and 4, sample sd = sqrt(8), se = sqrt(8) / sqrt(2) = 2.
    assert rows[2]["gold_se"] == pytest.approx(2.0)
    assert rows[1]["kl"] == pytest.approx(math.log(2) - 0.5)
    assert rows[2]["proxy"] == pytest.approx((0.9 + 4.0) / 2)
    with pytest.raises(ValueError, match="no pools"):
        curve([], [1])


def row(n, gold, proxy, se=0.1):
    return {"n": n, "gold": gold, "proxy": proxy, "gold_se": se, "kl": 0.0}


def test_peak_then_fall_sees_overoptimisation():
    rows = [row(1, 0.0, 0.0), row(2, 0.5, 1.0), row(4, 0.2, 2.0)]
    verdict = peak_then_fall(rows)
    assert verdict["peak_n"] == 2 and verdict["drop"] == pytest.approx(0.3)
    assert verdict["falls"] and verdict["proxy_rises"] and verdict["overoptimised"]


def test_peak_then_fall_needs_a_drop_beyond_the_noise_and_a_rising_proxy():
    # A drop of 0.3 within 2 standard errors of 0.2 is noise.
    assert not peak_then_fall([row(1, 0.0, 0.0), row(2, 0.5, 1.0), row(4, 0.2, 2.0, se=0.2)])["falls"]
    # Gold still rising at the largest n: no peak before it.
    rising = peak_then_fall([row(1, 0.0, 0.0), row(2, 0.5, 1.0), row(4, 0.6, 2.0)])
    assert rising["peak_n"] == 4 and not rising["falls"] and not rising["overoptimised"]
    # Gold falls but so does the proxy: not over-optimisation of that proxy.
    flat = peak_then_fall([row(1, 0.0, 0.0), row(2, 0.5, 1.0), row(4, 0.2, 0.5)])
    assert flat["falls"] and not flat["proxy_rises"] and not flat["overoptimised"]
