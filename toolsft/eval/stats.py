"""The gate's statistics: intervals and one-sided tests that stay honest at 0/n and n/n.

Pure (numpy and the standard library): every function takes its counts, vectors and rng as
arguments. The gate asks one question per metric, "is the new run worse than the baseline?",
so every test here is one-sided and returns the p-value of "no worse" against "worse":
- `mcnemar_p`: exact McNemar on paired per-episode 0/1 outcomes (a binomial sign test on the
  discordant episodes);
- `sign_flip_p`: a paired randomization test (approximate randomization) for any statistic of
  summed per-episode vectors: micro-averages, means, corpus BLEU, counts;
- `newcombe_p`: two independent proportions, by inverting Newcombe's hybrid Wilson-score
  interval for their difference (used when the baseline kept no per-episode outcomes);
- `count_rate_p`: two independent counts over n episodes each (exact conditional test);
- `holm`: Holm's step-down adjustment, so the whole gate (not each metric) keeps its alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

Z95 = 1.959963984540054
_NORMAL = NormalDist()


def wilson_interval(hits: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; defined (and not collapsed) at 0/n and n/n."""
    if n <= 0:
        return (0.0, 1.0)
    p = min(max(hits / n, 0.0), 1.0)
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (summed in log space, so large n is fine)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        for i in range(k, n + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def mcnemar_p(worse: int, better: int) -> float:
    """Exact one-sided McNemar: `worse` episodes passed in the baseline and fail now, `better`
    the reverse. Under "no change" each discordant episode goes either way with chance 1/2."""
    return binom_sf(worse, worse + better, 0.5)


def count_rate_p(base_count: float, base_n: int, new_count: float, new_n: int) -> float:
    """One-sided exact test that the new run's count per episode is higher: given the total,
    the new run's share is Binomial(total, new_n / (base_n + new_n)) when the rates are equal."""
    k_b, k_n = round(base_count), round(new_count)
    return binom_sf(k_n, k_b + k_n, new_n / (base_n + new_n))


def newcombe_upper(p_new: float, n_new: float, p_base: float, n_base: float, z: float) -> float:
    """Upper end of Newcombe's hybrid score interval for p_new - p_base at normal quantile z."""
    _, hi_new = wilson_interval(p_new * n_new, n_new, z)
    lo_base, _ = wilson_interval(p_base * n_base, n_base, z)
    return (p_new - p_base) + math.hypot(hi_new - p_new, p_base - lo_base)


def newcombe_p(p_base: float, n_base: float, p_new: float, n_new: float) -> float:
    """One-sided p-value of "the new proportion is lower": the smallest alpha at which the
    Newcombe interval's upper end falls below 0, found by bisection on z (the bound grows with
    z). Works for non-integer hits too (a mean in [0, 1] has at most a Bernoulli's variance)."""
    if p_new >= p_base:
        return 1.0
    lo, hi = 0.0, 40.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if newcombe_upper(p_new, n_new, p_base, n_base, mid) < 0:
            lo = mid
        else:
            hi = mid
    return 1.0 - _NORMAL.cdf(lo)


def sign_flip_p(
    base: np.ndarray,
    new: np.ndarray,
    worse: Callable[[np.ndarray, np.ndarray], np.ndarray],
    rng: np.random.Generator,
    n_perm: int = 2000,
) -> float:
    """Paired randomization test. `base`, `new`: per-episode vectors (shape [episodes, d], zeros
    where a metric does not apply); `worse(base_sums, new_sums)`: how much worse the new run is
    (vectorised over leading axes). Under "no change" the two runs' outcomes of an episode are
    exchangeable, so each episode's pair is swapped with chance 1/2; the p-value is the share
    of swaps at least as bad as what was observed (ties and undefined values count as bad)."""
    b_sum, n_sum = base.sum(axis=0), new.sum(axis=0)
    observed = float(worse(b_sum[None, :], n_sum[None, :])[0])
    if not observed > 0:
        return 1.0
    diff = new - base
    flips = rng.integers(0, 2, size=(n_perm, len(base))).astype(float)
    moved = flips @ diff
    stat = worse(b_sum[None, :] + moved, n_sum[None, :] - moved)
    extreme = np.isnan(stat) | (stat >= observed - 1e-12)
    return float((1 + np.count_nonzero(extreme)) / (n_perm + 1))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: reject where adjusted p < alpha keeps the chance of
    any false rejection among all of them at most alpha, whatever their dependence."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
