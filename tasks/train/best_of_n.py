"""Best-of-n selection measured without resampling: what the over-optimisation curves are made of.

Best-of-n draws n responses from the policy and keeps the one a reward model (the proxy)
scores highest. With a pool of N >= n samples of one prompt, every n-subset of the pool is
an equally likely draw, so the expected value of any figure (the gold score, the proxy's own
score) of the pick is an exact weighted mean over the pool, with no subset drawn at all
(Nakano et al. 2021, WebGPT appendix; Gao et al. 2023 use the same estimator): the sample of
rank i (i samples score lower) is the pick of a subset exactly when the subset holds it and
n - 1 of the i below it, so its weight is C(i, n - 1) / C(N, n). It is unbiased for best-of-n
from the policy and uses the whole pool at every n, where averaging over disjoint subsets
would use N / n draws.

Ties in the proxy are broken at random by the picker: tied samples share their block's
weights, i.e. each gets the mean of the block's values. Plain Python: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

from tasks.train.uncertainty import best_of_n_kl


def pick_weights(count: int, n: int) -> list[float]:
    """P(the sample of rank i, 0 = lowest, is the best of a uniformly drawn n-subset of ``count``)."""
    if not 1 <= n <= count:
        raise ValueError(f"best-of-{n} needs 1 <= n <= the pool's {count} samples")
    total = comb(count, n)
    return [comb(rank, n - 1) / total for rank in range(count)]


def _tie_averaged(proxy: Sequence[float], values: Sequence[float]) -> list[float]:
    """``values`` in ascending proxy order, each tied block replaced by its mean."""
    order = sorted(range(len(proxy)), key=lambda i: proxy[i])
    ranked: list[float] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and proxy[order[end + 1]] == proxy[order[start]]:
            end += 1
        block = [values[i] for i in order[start : end + 1]]
        ranked.extend([sum(block) / len(block)] * len(block))
        start = end + 1
    return ranked


def expected_pick(proxy: Sequence[float], values: Sequence[float], n: int) -> float:
    """The expected ``values`` entry of the sample that best-of-n by ``proxy`` keeps from the pool."""
    if len(proxy) != len(values):
        raise ValueError(f"{len(proxy)} proxy scores but {len(values)} values")
    weights = pick_weights(len(proxy), n)
    return sum(w * v for w, v in zip(weights, _tie_averaged(proxy, values), strict=True))


def curve(
    pools: Sequence[tuple[Sequence[float], Sequence[float]]], ns: Sequence[int]
) -> list[dict[str, float]]:
    """Per n: the best-of-n pick's proxy and gold score averaged over pools (one per prompt:
    (proxy scores, gold scores) of its samples), with ``gold_se``, the standard error of the
    gold mean over pools, and ``kl``, :func:`best_of_n_kl`."""
    if not pools:
        raise ValueError("no pools of samples")
    rows = []
    for n in ns:
        golds = [expected_pick(proxy, gold, n) for proxy, gold in pools]
        proxies = [expected_pick(proxy, proxy, n) for proxy, _ in pools]
        mean = sum(golds) / len(golds)
        variance = sum((g - mean) ** 2 for g in golds) / max(len(golds) - 1, 1)
        rows.append(
            {
                "n": n,
                "kl": best_of_n_kl(n),
                "proxy": sum(proxies) / len(proxies),
                "gold": mean,
                "gold_se": (variance / len(golds)) ** 0.5,
            }
        )
    return rows


def peak_then_fall(rows: Sequence[dict[str, float]], margin: float = 2.0) -> dict[str, float | bool]:
    """Does the gold score peak at some n and then fall while the proxy still rises?

    ``falls`` is true when gold at the largest n sits more than ``margin`` standard errors
    (that n's ``gold_se``) below the peak, and ``proxy_rises`` when the proxy at the largest n
    is above the proxy at the peak's n: the two together are over-optimisation.
    """
    if not rows:
        raise ValueError("no rows")
    peak = max(rows, key=lambda row: row["gold"])
    last = rows[-1]
    drop = peak["gold"] - last["gold"]
    falls = peak is not last and drop > margin * last["gold_se"]
    proxy_rises = last["proxy"] > peak["proxy"]
    return {
        "peak_n": peak["n"],
        "peak_gold": peak["gold"],
        "last_n": last["n"],
        "last_gold": last["gold"],
        "drop": drop,
        "falls": falls,
        "proxy_rises": proxy_rises,
        "overoptimised": falls and proxy_rises,
    }
