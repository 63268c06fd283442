"""Statistics that can tell two models apart on the same problems. Pure Python.

- `wilson_interval`: a single proportion's 95% interval that does not collapse at 0% or 100% (the percentile
  bootstrap prints [1.000, 1.000] for 470/470 right, as if there were no uncertainty);
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
