"""Prompt groups over plain lists: which samples share a prompt, and their mean and spread (no torch)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence

# The spread's guard in z-scores of lengths, (len - mean) / (std + EPS), as in the paper's code.
EPS = 1e-7


def group_indices(groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Each group's positions, in order of first appearance.

    >>> dict(group_indices(["a", "b", "a"]))
    {'a': [0, 2], 'b': [1]}
    """
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        out[g].append(i)
    return out


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation.

    >>> mean_std([1.0, 3.0])
    (2.0, 1.0)
    """
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))


def check_lengths(correct, lengths, groups) -> None:
    """Refuse per-sample lists of different sizes (correct, lengths and a third list, usually the groups)."""
    if not len(correct) == len(lengths) == len(groups):
        raise ValueError(f"correct, lengths and groups differ in size: {len(correct)}, {len(lengths)}, {len(groups)}")


def check_sizes(**lists) -> None:
    """Refuse named per-sample lists of different sizes, naming each size."""
    sizes = {name: len(xs) for name, xs in lists.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("per-sample lists differ in size: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


def correct_z_scores(correct, lengths, groups) -> list[float | None]:
    """Each correct sample's length as a z-score among the correct samples of its group, ``(len - mean) / (std +
    EPS)`` with the population std; None for a wrong sample. One correct sample, or equal lengths, give 0.

    >>> correct_z_scores([True, True, False], [10, 20, 5], ["q", "q", "q"])
    [-0.99999998..., 0.99999998..., None]
    """
    check_lengths(correct, lengths, groups)
    z: list[float | None] = [None] * len(correct)
    for members in group_indices(groups).values():
        ok = [i for i in members if correct[i]]
        if not ok:
            continue
        mean, std = mean_std([float(lengths[i]) for i in ok])
        for i in ok:
            z[i] = (lengths[i] - mean) / (std + EPS)
    return z
