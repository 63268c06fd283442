"""Rewards as pure functions over plain lists (no torch): the method's length-penalised reward and its helpers.

Lengths are completion tokens (prompt excluded, EOS included), counted from the generated ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence

EPS = 1e-7


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _group_indices(groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    out: dict[Hashable, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        out[g].append(i)
    return out


def _check_lengths(correct, lengths, groups) -> None:
    if not len(correct) == len(lengths) == len(groups):
        raise ValueError(f"correct, lengths and groups differ in size: {len(correct)}, {len(lengths)}, {len(groups)}")


def efficiency_rewards(
    correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable], alpha: float
) -> list[float]:
    r"""Length-penalised correctness reward of Arora & Zanette, "Training Language Models to Reason Efficiently"
    (2025, arXiv:2502.04463), eq. (4):

    .. math::
        r(x, y) = \mathbb{1}[y \text{ correct}] \left(1 - \alpha\, \sigma\!\left(\frac{\mathrm{len}(y) -
        \mathrm{mean}(x)}{\mathrm{std}(x) + 10^{-7}}\right)\right)

    where ``mean(x)`` and ``std(x)`` (population std) are over the lengths of the *correct* completions among the
    samples of the same prompt ``x``. Wrong completions get 0. One correct sample, or equal lengths, gives
    ``1 - alpha/2``; a shorter correct completion always scores higher than a longer correct one; any correct
    completion beats any wrong one (``alpha < 1``); ``alpha = 0`` is plain correctness.

    Args:
        correct: whether each completion is correct (truncated completions must be passed as wrong).
        lengths: completion token counts (prompt excluded).
        groups: one hashable prompt id per completion; a group's members may sit anywhere in the lists.
        alpha: penalty strength in ``[0, 1)``.

    >>> [round(r, 4) for r in efficiency_rewards([True, True, False], [10, 20, 5], ["q", "q", "q"], 0.2)]
    [0.9462, 0.8538, 0.0]
    """
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    _check_lengths(correct, lengths, groups)
    rewards = [0.0] * len(correct)
    for members in _group_indices(groups).values():
        ok = [i for i in members if correct[i]]
        if not ok:
            continue
        lens = [float(lengths[i]) for i in ok]
        mean = sum(lens) / len(lens)
        std = math.sqrt(sum((x - mean) ** 2 for x in lens) / len(lens))
        for i in ok:
            rewards[i] = 1.0 - alpha * sigmoid((lengths[i] - mean) / (std + EPS))
    return rewards


def group_std_normalize(rewards: Sequence[float], groups: Sequence[Hashable], eps: float = 1e-4) -> list[float]:
    """Divide each group's rewards by the group's (population) std: the GRPO-style ablation.

    With the RLOO baseline the advantage is linear in the rewards, ``A_i = k/(k-1) (r_i - mean_g)``, so scaling the
    rewards of a group by ``1/std_g`` gives exactly GRPO's per-group std-normalised advantage (up to the constant
    ``k/(k-1)``). The paper's point: this rescales away ``alpha``'s small reward differences among correct
    answers, so ``alpha`` loses its control over length.
    """
    out = list(map(float, rewards))
    for members in _group_indices(groups).values():
        vals = [out[i] for i in members]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
        for i in members:
            out[i] = out[i] / (std + eps)
    return out
