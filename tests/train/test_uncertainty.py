"""The uncertainty meter's arithmetic, with numbers worked by hand."""

from __future__ import annotations

import math

import pytest

from tasks.train.uncertainty import (
    aggregate,
    best_of_n_kl,
    bootstrap_sample,
    means_and_stds,
    pair_probabilities,
    quantile,
    uncertainty_bins,
)

# Three members scoring two responses: response 0 gets 1, 2, 3; response 1 gets 4, 4, 4.
MEMBERS = [[1.0, 4.0], [2.0, 4.0], [3.0, 4.0]]
STD_0 = math.sqrt(2 / 3)  # deviations -1, 0, 1: mean square 2/3 (population, not sample)


def test_mean_and_population_spread_per_response() -> None:
    means, stds = means_and_stds(MEMBERS)
    assert means == [2.0, 4.0]
    assert stds == pytest.approx([STD_0, 0.0])


def test_mean_min_and_uncertainty_weighted_aggregates() -> None:
    assert aggregate(MEMBERS, "mean") == [2.0, 4.0]
    assert aggregate(MEMBERS, "min") == [1.0, 4.0]
    # uwo: mean - 0.5 * std; the certain response keeps its mean.
    assert aggregate(MEMBERS, "uwo", penalty=0.5) == pytest.approx([2.0 - 0.5 * STD_0, 4.0])
    # The conservative aggregates rank the certain response above the uncertain one by more.
    assert aggregate(MEMBERS, "uwo", penalty=3.0)[0] < aggregate(MEMBERS, "mean")[0]


def test_one_member_is_its_own_mean_min_and_uwo() -> None:
    single = [[0.3, -1.2]]
    for how in ("mean", "min", "uwo"):
        assert aggregate(single, how, penalty=5.0) == [0.3, -1.2]


def test_aggregate_refuses_ragged_members_a_negative_penalty_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="different numbers"):
        aggregate([[1.0], [1.0, 2.0]], "mean")
    with pytest.raises(ValueError, match="at least 0"):
        aggregate(MEMBERS, "uwo", penalty=-1)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(MEMBERS, "max")  # type: ignore[arg-type]


def test_pair_probability_averages_each_members_bradley_terry_probability() -> None:
    # Member margins 0 and ln 3: sigmoid gives 0.5 and 0.75; mean 0.625, spread 0.125.
    chosen = [[1.0], [math.log(3)]]
    rejected = [[1.0], [0.0]]
    p, spread = pair_probabilities(chosen, rejected)
    assert p == pytest.approx([0.625])
    assert spread == pytest.approx([0.125])


def test_bootstrap_draws_with_replacement_and_repeats_for_a_seed() -> None:
    sample = bootstrap_sample(1000, seed=7)
    assert len(sample) == 1000
    assert sample == bootstrap_sample(1000, seed=7)
    assert sample != bootstrap_sample(1000, seed=8)
    # About 1 - 1/e of the items are drawn at least once.
    assert 0.60 < len(set(sample)) / 1000 < 0.67
    assert all(0 <= i < 1000 for i in sample)


def test_quantile_interpolates_like_numpy() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 1.0) == 4.0
    assert quantile(values, 0.5) == 2.5
    assert quantile(values, 0.9) == pytest.approx(3.7)  # position 2.7: 3 + 0.7 * (4 - 3)


def test_quintiles_of_uncertainty_give_equal_bins_lowest_first() -> None:
    # 12 items: bins of 3, 3, 2, 2, 2 (the first 12 % 5 = 2 bins take one more).
    uncertainty = [0.12, 0.01, 0.05, 0.09, 0.02, 0.11, 0.03, 0.08, 0.04, 0.10, 0.06, 0.07]
    correct = [u < 0.06 for u in uncertainty]  # right while the ensemble agrees, wrong after
    rows = uncertainty_bins(uncertainty, correct)
    assert [r["pairs"] for r in rows] == [3, 3, 2, 2, 2]
    assert [r["uncertainty_min"] for r in rows] == [0.01, 0.04, 0.07, 0.09, 0.11]
    assert [r["uncertainty_max"] for r in rows] == [0.03, 0.06, 0.08, 0.10, 0.12]
    assert [r["accuracy"] for r in rows] == pytest.approx([1.0, 2 / 3, 0.0, 0.0, 0.0])
    assert rows[0]["mean_uncertainty"] == pytest.approx(0.02)


def test_fewer_items_than_bins_give_a_bin_each() -> None:
    rows = uncertainty_bins([0.2, 0.1], [True, False])
    assert [(r["bin"], r["pairs"], r["accuracy"]) for r in rows] == [(1, 1, 0.0), (2, 1, 1.0)]


def test_best_of_n_kl() -> None:
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64)
    with pytest.raises(ValueError):
        best_of_n_kl(0)
