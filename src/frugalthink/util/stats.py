"""Statistics that can tell two models apart on the same problems. Pure Python.

- `wilson_interval`: a single proportion's 95% interval that does not collapse at 0% or 100% (the percentile
  bootstrap prints [1.000, 1.000] for 470/470 right, as if there were no uncertainty);
- `clustered_mean_interval`: pass@1 averaged over samples with a 95% interval clustered by problem (the problems,
  not the samples, are the independent units; `t_quantile_975` its Student t quantile);
- `mcnemar_exact`: two models' accuracy on the same (problem, sample) pairs -- the exact two-sided binomial test on
  the discordant pairs;
- `paired_bootstrap`: the mean difference of a paired quantity (tokens) with a percentile interval and a two-sided
  p-value from resampling the pairs; `seeded_paired_bootstrap` the same for two methods with several training seeds
  each, resampling the seeds too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def wilson_interval(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (``successes`` may be fractional: a mean accuracy over
    several samples per problem times the number of problems).

    >>> [round(x, 3) for x in wilson_interval(470, 470)]
    [0.992, 1.0]
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` >= 1 degrees of freedom (the half-width factor of a two-sided
    95% interval), by bisection on the exact finite-series CDF for integer ``df`` (Abramowitz & Stegun 26.7.3-4).

    >>> [round(t_quantile_975(df), 3) for df in (1, 2, 10, 29)]   # the printed tables: 12.706 4.303 2.228 2.045
    [12.706, 4.303, 2.228, 2.045]
    """
    if df < 1:
        raise ValueError(f"t quantile needs df >= 1, got {df}")

    def central(t: float) -> float:  # P(|T| <= t)
        theta = math.atan(t / math.sqrt(df))
        c2, term = math.cos(theta) ** 2, 1.0
        if df % 2 == 0:
            total = 1.0
            for k in range(1, df // 2):  # 1 + 1/2 c^2 + 1*3/(2*4) c^4 + ...
                term *= c2 * (2 * k - 1) / (2 * k)
                total += term
            return math.sin(theta) * total
        if df == 1:
            return 2 * theta / math.pi
        total = math.cos(theta)
        term = math.cos(theta)
        for k in range(1, (df - 1) // 2):  # cos + 2/3 cos^3 + 2*4/(3*5) cos^5 + ...
            term *= c2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * total)

    lo, hi = 0.0, 1.0
    while central(hi) < 0.95:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if central(mid) < 0.95 else (lo, mid)
    return (lo + hi) / 2


def clustered_mean_interval(cluster_means: Sequence[float]) -> tuple[float, tuple[float, float] | None]:
    """The mean of per-cluster means and its 95% interval clustered by cluster: each cluster (a problem) is one unit,
    its value the mean of its samples (the fraction of them that are right), and the interval is Student's t over
    the clusters, ``mean +- t(0.975, n - 1) * sd / sqrt(n)`` with the sample standard deviation of the cluster means,
    clipped to [0, 1]. Samples of one problem are not independent (an easy problem is right in most of them), so
    this interval does not shrink as samples per problem grow, as it should not: with 30 AIME problems it stays as
    wide as the spread between problems allows. The mean is pass@1 averaged over samples.

    None for the interval with fewer than 2 clusters (no spread between problems to measure). It collapses to a point
    when every cluster has the same mean (e.g. every sample of every problem right); Wilson's interval
    (`wilson_interval`) does not.

    Hand-computed: cluster means 0.5, 0.5, 0.75, 0.25 -> mean 0.5; squared deviations 0, 0, 1/16, 1/16 -> variance
    (1/8) / 3 = 1/24, standard error sqrt(1/24 / 4) = 0.10206; t(0.975, 3) = 3.18245; half-width 0.32481:

    >>> mean, (lo, hi) = clustered_mean_interval([0.5, 0.5, 0.75, 0.25])
    >>> mean, round(lo, 4), round(hi, 4)
    (0.5, 0.1752, 0.8248)
    """
    n = len(cluster_means)
    if n == 0:
        raise ValueError("no clusters")
    mean = sum(cluster_means) / n
    if n < 2:
        return mean, None
    var = sum((m - mean) ** 2 for m in cluster_means) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(var / n)
    return mean, (max(0.0, mean - half), min(1.0, mean + half))


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """Exact McNemar test: ``a[i]``, ``b[i]`` are the two models' verdicts on the same item.

    Returns the discordant counts (``a_only``: a right, b wrong; ``b_only``) and the two-sided p-value
    ``min(1, 2 * P[Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)])``.

    >>> mcnemar_exact([True] * 10 + [False] * 2, [False] * 10 + [True] * 2)["p"] < 0.05
    True
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} vs {len(b)} paired verdicts")
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = a_only + b_only
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p": 1.0}
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"a_only": a_only, "b_only": b_only, "p": min(1.0, 2 * tail)}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of ``b - a`` over pairs, its 95% percentile interval, and a two-sided bootstrap p-value for "no
    difference" (twice the share of resampled means on the other side of 0, floored at 1/resamples)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need equal, non-empty paired lists, got {len(a)} and {len(b)}")
    return seeded_paired_bootstrap([a], [b], resamples, seed)


def seeded_paired_bootstrap(a_runs: Sequence[Sequence[float]], b_runs: Sequence[Sequence[float]],
                            resamples: int = 2000, seed: int = 0) -> dict:
    """`paired_bootstrap` for two methods trained with several seeds each: ``a_runs[s][i]`` is method a's value on
    item i in its training seed s (every run on the same items, in the same order).

    The difference is mean over b's runs and the items minus the same for a. Each resample draws each method's runs
    with replacement (the seeds of the two methods are not paired with each other) and then the items (paired across
    every run), so the interval holds the spread between training seeds as well as between problems; with one run
    a side it is the paired bootstrap over items.

    >>> a, b = [[0, 0, 1, 1]], [[1, 1, 2, 2], [0, 0, 1, 1]]   # b's second seed is a again
    >>> r = seeded_paired_bootstrap(a, b)
    >>> r["mean_diff"], r["ci95"]
    (0.5, [0.0, 1.0])
    """
    n = len(a_runs[0]) if a_runs else 0
    if not b_runs or not n or any(len(r) != n for r in [*a_runs, *b_runs]):
        raise ValueError(f"need non-empty runs of equal length, got {[len(r) for r in a_runs]} and "
                         f"{[len(r) for r in b_runs]}")
    rng = random.Random(seed)
    per_pick: dict[tuple, list[float]] = {}

    def diffs(pa: tuple, pb: tuple) -> list[float]:
        if (pa, pb) not in per_pick:
            per_pick[pa, pb] = [sum(b_runs[j][i] for j in pb) / len(pb) - sum(a_runs[j][i] for j in pa) / len(pa)
                                for i in range(n)]
        return per_pick[pa, pb]

    def pick(runs) -> tuple:  # one run: nothing drawn (the plain paired bootstrap's random stream)
        return (0,) if len(runs) == 1 else tuple(sorted(rng.randrange(len(runs)) for _ in runs))

    full = diffs(tuple(range(len(a_runs))), tuple(range(len(b_runs))))
    mean = sum(full) / n
    means = []
    for _ in range(resamples):
        d = diffs(pick(a_runs), pick(b_runs))
        means.append(sum(d[rng.randrange(n)] for _ in range(n)) / n)
    means.sort()
    lo, hi = means[int(0.025 * (resamples - 1))], means[int(0.975 * (resamples - 1))]
    if mean == 0 or (lo == hi and all(d == full[0] for d in full)):
        p = 1.0 if mean == 0 else 1.0 / resamples
    else:
        other_side = sum(1 for m in means if (m <= 0 if mean > 0 else m >= 0))
        p = min(1.0, max(2 * other_side / resamples, 1.0 / resamples))
    return {"mean_diff": mean, "ci95": [lo, hi], "p": p}


def paired_records(a: Sequence[dict], b: Sequence[dict]) -> list[tuple[dict, dict]]:
    """Records of two evaluations matched on (problem_id, sample); refuses runs with no item in common."""
    index = {(str(r["problem_id"]), r["sample"]): r for r in b}
    pairs = [(r, index[(str(r["problem_id"]), r["sample"])]) for r in a
             if (str(r["problem_id"]), r["sample"]) in index]
    if not pairs:
        raise ValueError("the two evaluations share no (problem, sample)")
    return pairs


AES_WEIGHTS = (1.0, 3.0, 5.0)  # O1-Pruner's alpha (length), beta (accuracy gained), gamma (accuracy lost)


def aes(accuracy: float, tokens: float, base_accuracy: float, base_tokens: float,
        weights: tuple[float, float, float] = AES_WEIGHTS) -> float | None:
    """Accuracy-Efficiency Score of O1-Pruner (Luo et al., 2025, arXiv:2501.12570, sec. 5.1), as the length-reduction
    papers report it:

        dL = (L_base - L) / L_base,  dA = (A - A_base) / A_base
        AES = alpha * dL + beta * |dA|   if dA >= 0
              alpha * dL - gamma * |dA|  otherwise

    with alpha = 1, beta = 3, gamma = 5 (a lost point of accuracy weighs more than a gained one). 0 for the base;
    None when the base has no accuracy or no tokens to be relative to.

    >>> round(aes(0.9, 50, 1.0, 100), 3)   # half the tokens, 10% of the accuracy lost: 0.5 - 5 * 0.1
    0.0
    """
    if not base_accuracy or not base_tokens:
        return None
    alpha, beta, gamma = weights
    d_len = (base_tokens - tokens) / base_tokens
    d_acc = (accuracy - base_accuracy) / base_accuracy
    return alpha * d_len + (beta * abs(d_acc) if d_acc >= 0 else -gamma * abs(d_acc))


def format_aes(value: float | None) -> str:
    return "" if value is None else f"{value:+.3f}"
