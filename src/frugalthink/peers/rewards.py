"""The peers' length rewards, pure functions over plain lists (no torch), for the side-by-side comparison
(docs/comparison.md). Same style as ours (`frugalthink.rl.rewards`): plain lists in, one reward per completion out;
``groups`` = prompt id per completion. Length scales (tokens) are arguments: the papers tuned them for
thousands-of-token traces, the embedded default thinks in tens of tokens, so recipes/tiny/peers/*.yaml rescale them
(each recipe says how)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from frugalthink.util.groups import check_lengths, correct_z_scores, group_indices


def kimi_length_rewards(
    correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable], weight: float = 1.0
) -> list[float]:
    r"""Kimi k1.5 length reward (Kimi Team, "Kimi k1.5: Scaling Reinforcement Learning with LLMs", 2025,
    arXiv:2501.12599, sec. 2.3.3), added to the 0/1 correctness reward:

    .. math::
        \lambda_i = 0.5 - \frac{\mathrm{len}_i - \mathrm{min\_len}}{\mathrm{max\_len} - \mathrm{min\_len}},\qquad
        r_i = \mathbb{1}[\text{correct}_i] + w \cdot
        \begin{cases}\lambda_i & \text{correct}\\ \min(0, \lambda_i) & \text{wrong}\end{cases}

    ``min_len``/``max_len`` are over *all* k samples of the prompt (right and wrong). When they are equal the length
    term is 0. The shortest sample of a group gets +0.5w, the longest -0.5w; a wrong answer is never rewarded for
    being short, only punished for being long.

    >>> [round(r, 3) for r in kimi_length_rewards([True, True, False], [10, 30, 20], ["q"] * 3)]
    [1.5, 0.5, 0.0]
    """
    check_lengths(correct, lengths, groups)
    rewards = [0.0] * len(correct)
    for members in group_indices(groups).values():
        lo = min(lengths[i] for i in members)
        hi = max(lengths[i] for i in members)
        for i in members:
            lam = 0.0 if hi == lo else 0.5 - (lengths[i] - lo) / (hi - lo)
            rewards[i] = (1.0 + weight * lam) if correct[i] else weight * min(0.0, lam)
    return rewards


def l1_max_rewards(
    correct: Sequence[bool], lengths: Sequence[int], targets: Sequence[int], alpha: float, delta: float = 0.5
) -> list[float]:
    r"""L1-Max / LCPO-Max (Aggarwal & Welleck, "L1: Controlling How Long A Reasoning Model Thinks With
    Reinforcement Learning", 2025, arXiv:2503.04697, eq. 3):

    .. math::
        r_i = \mathbb{1}[\text{correct}_i] \cdot \mathrm{clip}\big(\alpha\,(n_{\text{gold},i} - n_i) + \delta,
        0, 1\big)

    ``n_gold`` is the token budget written in the prompt ("think for at most n_gold tokens"). At the budget a correct
    answer earns ``delta`` (0.5); every token under it adds ``alpha``, every token over it takes ``alpha`` away.
    The paper uses ``alpha = 0.0003`` for budgets of 100..4000 tokens. No group statistics: each sample stands alone.

    >>> [round(r, 3) for r in l1_max_rewards([True, True, False], [40, 80, 40], [64, 64, 64], alpha=1 / 64)]
    [0.875, 0.25, 0.0]
    """
    if not len(correct) == len(lengths) == len(targets):
        raise ValueError(f"correct, lengths and targets differ in size: {len(correct)}, {len(lengths)}, {len(targets)}")
    return [min(1.0, max(0.0, alpha * (t - n) + delta)) if ok else 0.0
            for ok, n, t in zip(correct, lengths, targets, strict=True)]


def shorter_better_rewards(
    correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable], alpha: float = 2.0, beta: float = 0.001
) -> list[float]:
    r"""ShorterBetter (Yi, Wang & Li, "ShorterBetter: Guiding Reasoning Models to Find Optimal Inference Length for
    Efficient Reasoning", 2025, arXiv:2504.21370):

    .. math::
        r_i = \alpha\,\mathbb{1}[\text{correct}_i] - \beta\,\lvert \mathrm{len}_i - \ell^{SOL} \rvert

    with the *sample optimal length* ``SOL`` = the length of the shortest correct sample of the prompt, or the mean
    length of all its samples when none is correct. Unlike ours, the penalty is absolute (not normalised by the
    group's spread) and applies to wrong answers too. Paper: ``alpha`` 1 or 2, ``beta = 0.001`` (per token).

    >>> [round(r, 3) for r in shorter_better_rewards([True, True, False], [10, 30, 20], ["q"] * 3, 2.0, 0.01)]
    [2.0, 1.8, -0.1]
    """
    check_lengths(correct, lengths, groups)
    rewards = [0.0] * len(correct)
    for members in group_indices(groups).values():
        ok = [lengths[i] for i in members if correct[i]]
        sol = min(ok) if ok else sum(lengths[i] for i in members) / len(members)
        for i in members:
            rewards[i] = alpha * float(bool(correct[i])) - beta * abs(lengths[i] - sol)
    return rewards


def grpo_lead_rewards(
    correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable], alpha: float = 0.1
) -> list[float]:
    r"""GRPO-LEAD's length-dependent accuracy reward with its explicit penalty for wrong answers (Zhang & Zuo,
    "GRPO-LEAD: A Difficulty-Aware Reinforcement Learning Approach for Concise Mathematical Reasoning in Language
    Models", 2025, arXiv:2504.09696, sec. 3):

    .. math::
        r_i = \begin{cases} \exp(-\alpha\, z_i), & \text{correct},\quad z_i = \frac{\mathrm{len}_i -
        \mu_{\text{correct}}}{\sigma_{\text{correct}} + \epsilon} \\ -1, & \text{wrong} \end{cases}

    ``mu``/``sigma`` (population std) over the correct samples of the prompt, as in ours; but the shaping is
    exponential in ``z`` (unbounded above for very short answers) and wrong answers score -1, not 0. The paper's
    third part, difficulty-aware advantage reweighting, is not a reward and is not included.

    >>> [round(r, 4) for r in grpo_lead_rewards([True, True, False], [10, 30, 20], ["q"] * 3, 0.1)]
    [1.1052, 0.9048, -1.0]
    """
    return [-1.0 if z is None else math.exp(-alpha * z) for z in correct_z_scores(correct, lengths, groups)]


def cosine_rewards(
    correct: Sequence[bool], lengths: Sequence[int], max_len: int, min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5, min_value_correct: float = 0.5, max_value_correct: float = 1.0,
) -> list[float]:
    r"""Cosine length-scaled reward (Yeo et al., "Demystifying Long Chain-of-Thought Reasoning in LLMs", 2025,
    arXiv:2502.03373, app. C.1), the formula of TRL's ``trl.rewards.get_cosine_scaled_reward`` with its defaults:

    .. math::
        r_i = v_{\min} + \tfrac12 (v_{\max} - v_{\min}) \big(1 + \cos(\pi \min(\mathrm{len}_i / L_{\max}, 1))\big)

    correct: ``(v_min, v_max) = (0.5, 1.0)``, shorter is better; wrong: ``(-0.5, -1.0)``, shorter is punished more.
    TRL's callable grades with its own math-verify call; here correctness comes from our one grader and this
    function applies TRL's schedule (tests check it against TRL's callable sample by sample).

    >>> [round(r, 3) for r in cosine_rewards([True, False], [50, 50], max_len=100)]
    [0.75, -0.75]
    """
    if len(correct) != len(lengths):
        raise ValueError(f"correct and lengths differ in size: {len(correct)}, {len(lengths)}")
    out = []
    for ok, n in zip(correct, lengths, strict=True):
        lo, hi = (min_value_correct, max_value_correct) if ok else (max_value_wrong, min_value_wrong)
        out.append(lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * min(n / max_len, 1.0))))
    return out


def dapo_overlong_penalty(lengths: Sequence[int], max_len: int, cache: int) -> list[float]:
    r"""DAPO's soft overlong punishment (Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale", 2025, arXiv:2503.14476, eq. 13); same as TRL's ``trl.rewards.get_soft_overlong_punishment``, which is
    what training calls:

    .. math::
        p_i = \begin{cases} 0 & n_i \le L_{\max} - L_c \\ \frac{(L_{\max} - L_c) - n_i}{L_c} & L_{\max} - L_c < n_i
        \le L_{\max} \\ -1 & n_i > L_{\max} \end{cases}

    DAPO adds it to a +1 / -1 correctness reward (`dapo_rewards`). It only discourages running into the length cap;
    below ``L_max - L_c`` it is silent, so it is not meant to shorten reasoning that is already under the cap.

    >>> dapo_overlong_penalty([70, 90, 120], max_len=100, cache=20)
    [0.0, -0.5, -1.0]
    """
    if not 0 < cache <= max_len:
        raise ValueError(f"need 0 < cache <= max_len, got cache={cache}, max_len={max_len}")
    soft = max_len - cache
    return [0.0 if n <= soft else ((soft - n) / cache if n <= max_len else -1.0) for n in lengths]


def dapo_rewards(correct: Sequence[bool], lengths: Sequence[int], max_len: int, cache: int) -> list[float]:
    """DAPO's rule-based reward: +1 correct, -1 wrong, plus `dapo_overlong_penalty`.

    >>> dapo_rewards([True, False, True], [70, 90, 95], max_len=100, cache=20)
    [1.0, -1.5, 0.25]
    """
    pen = dapo_overlong_penalty(lengths, max_len, cache)
    return [(1.0 if ok else -1.0) + p for ok, p in zip(correct, pen, strict=True)]


def truncation_rewards(correct: Sequence[bool], lengths: Sequence[int], limit: int) -> list[float]:
    r"""DLER's truncation penalty (Liu et al., "DLER: Doing Length pEnalty Right", NVIDIA, 2025; NVlabs/DLER):

    .. math::
        r_i = \mathbb{1}[y_i \text{ correct}] \cdot \mathbb{1}[n_i \le L]

    the plain correctness reward with every response longer than the limit ``L`` scored 0 (DLER trains R1-Distill
    with ``L = 4000`` tokens). DLER's point is that this simplest penalty matches or beats shaped ones once the
    optimisation is right: batch-wise advantage normalisation (recipe ``batch_normalize``), a higher upper clip
    (``epsilon_high: 0.28``) and dynamic sampling (groups whose rewards are all equal dropped and refilled).
    Unlike ours it does not compare a sample with its own group: below ``L`` length is free.

    >>> truncation_rewards([True, True, False, True], [10, 50, 5, 51], limit=50)
    [1.0, 1.0, 0.0, 0.0]
    """
    if limit < 1:
        raise ValueError(f"limit must be a positive token count, got {limit}")
    return [1.0 if ok and n <= limit else 0.0 for ok, n in zip(correct, lengths, strict=True)]


LASER_BUCKETS = ("low", "medium", "high")  # group accuracy < 1/3, in [1/3, 2/3), >= 2/3


def laser_base_score(correct: bool, formed: bool) -> float:
    """Laser's score before the length term: +1 correct, -0.5 wrong with a final answer, -1 without one (no boxed
    answer, unfinished thinking, truncated)."""
    return 1.0 if correct else (-0.5 if formed else -1.0)


def laser_rewards(correct: Sequence[bool], lengths: Sequence[int], formed: Sequence[bool], targets: Sequence[int],
                  bonus: float = 0.5) -> list[float]:
    r"""LASER, the step length reward of Liu et al., "Learn to Reason Efficiently with Adaptive Length-based Reward
    Shaping" (ICLR 2026, arXiv:2505.15612; hkust-nlp/Laser, ``length_penalty.py``):

    .. math::
        r_i = s_i + \alpha\, \mathbb{1}[y_i \text{ correct}]\, \mathbb{1}[n_i \le L_T]

    with the base score ``s`` of `laser_base_score` and ``alpha = 0.5``: a correct answer within the target length
    ``L_T`` scores 1.5, a longer correct one 1.0, a wrong one -0.5 or -1. ``targets`` is ``L_T`` per sample (one
    value for Laser; per difficulty bucket for Laser-D, `laser_d_rewards`).

    >>> laser_rewards([True, True, False, False], [10, 30, 5, 50], [True, True, True, False], [20] * 4)
    [1.5, 1.0, -0.5, -1.0]
    """
    check_lengths(correct, lengths, formed)
    return [laser_base_score(ok, f) + (bonus if ok and n <= t else 0.0)
            for ok, n, f, t in zip(correct, lengths, formed, targets, strict=True)]


def laser_bucket(accuracy: float) -> str:
    """Laser-D's difficulty of a training group from its own accuracy over the k samples."""
    return "high" if accuracy >= 2 / 3 else ("medium" if accuracy >= 1 / 3 else "low")


def laser_d_rewards(correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable],
                    formed: Sequence[bool], bucket_targets: dict[str, int], bonus: float = 0.5) -> list[float]:
    """LASER-D: `laser_rewards` with the target length of each group's difficulty bucket (`laser_bucket` of the
    group's accuracy), ``bucket_targets`` kept up to date during training by `frugalthink.peers.laser.LaserMonitor`.

    >>> laser_d_rewards([True, True, True, False], [30, 30, 30, 9], ["a", "a", "a", "b"], [True] * 4,
    ...                 {"low": 100, "medium": 50, "high": 20})   # group a: accuracy 1 -> high -> 20 tokens
    [1.0, 1.0, 1.0, -0.5]
    """
    check_lengths(correct, lengths, groups)
    return laser_rewards(correct, lengths, formed, _bucket_targets(correct, groups, bucket_targets), bonus)


def _bucket_targets(correct: Sequence[bool], groups: Sequence[Hashable], bucket_targets: dict[str, int]) -> list[int]:
    """Each sample's target length: that of its group's difficulty bucket (`laser_bucket` of the group's accuracy)."""
    targets = [0] * len(correct)
    for members in group_indices(groups).values():
        t = bucket_targets[laser_bucket(sum(correct[i] for i in members) / len(members))]
        for i in members:
            targets[i] = t
    return targets


def repeats_itself(ids: Sequence[int]) -> bool:
    """Laser-DE's repetition check on a completion's token ids: hkust-nlp/Laser
    ``detect_token_ngram_repetition_optimized_reversed`` (``verl/utils/reward_score/compute_unique_tokens.py``) with
    its defaults, written here from its rules. It takes token ids, as this does, and returns where the repetition
    starts or the length when there is none; ``compute_length_reward_larse_de`` calls a completion a loop when that
    is short of the length, which is this True. The rules, for a completion of L tokens:

    * L <= 8: never a loop.
    * n-grams, n = 2 below 30 tokens, 3 below 100, else 4, scanned from the end backwards; an n-gram of one token
      repeated is skipped only when n > 2 (a bigram such as (5, 5) counts). An n-gram seen ``threshold`` times or
      more (2 below 200 tokens, else 3) is a loop when *any* two successive occurrences are less than L // 3 apart
      (not only the latest two).
    * Otherwise any span of 2n tokens that occurs twice (overlaps and one token repeated included) is a loop; the
      published 4n-token minimum for this check holds at every L past 8.

    (Laser-DE passes it a torch tensor, whose elements hash by identity, so there its n-grams hardly ever match;
    this is the rule as written for a list of ids.)

    >>> repeats_itself([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])     # all distinct
    False
    >>> repeats_itself([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 9, 10])       # (1, 2) twice, 8 apart: not within 12 // 3
    False
    >>> repeats_itself([1, 2, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12])     # (1, 2) twice, 2 apart
    True
    >>> repeats_itself([5, 5, 5, 1, 2, 3, 4, 6, 7, 8, 9, 10])       # bigram (5, 5) twice, 1 apart
    True
    >>> loop = [1, 2, 3, 4]                                         # 210 tokens: at 0, 100 and 104, 4 apart
    >>> repeats_itself(loop + list(range(1000, 1096)) + loop * 2 + list(range(2000, 2102)))
    True
    """
    n_tokens = len(ids)
    if n_tokens <= 8:
        return False
    n = 2 if n_tokens < 30 else (3 if n_tokens < 100 else 4)
    threshold = 2 if n_tokens < 200 else 3
    window = n_tokens // 3
    last: dict[tuple, int] = {}  # where each n-gram was last seen (scanning backwards: its previous occurrence)
    count: dict[tuple, int] = {}
    close: set[tuple] = set()  # n-grams with two successive occurrences less than ``window`` apart
    for start in range(n_tokens - n, -1, -1):
        gram = tuple(ids[start : start + n])
        if n > 2 and len(set(gram)) == 1:
            continue
        if gram in last and last[gram] - start < window:
            close.add(gram)
        last[gram] = start
        count[gram] = count.get(gram, 0) + 1
        if gram in close and count[gram] >= threshold:
            return True
    spans: set[tuple] = set()
    for start in range(n_tokens - 2 * n + 1):
        span = tuple(ids[start : start + 2 * n])
        if span in spans:
            return True
        spans.add(span)
    return False


def laser_de_rewards(correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable],
                     formed: Sequence[bool], bucket_targets: dict[str, int], repeated: Sequence[bool],
                     bonus: float = 0.5) -> list[float]:
    """LASER-DE: `laser_d_rewards` plus exploration (hkust-nlp/Laser ``compute_length_reward_larse_de``): a wrong
    answer that has a final answer, runs past its bucket's target and does not repeat itself (`repeats_itself`)
    gets the bonus too (-0.5 + 0.5 = 0): a long attempt that failed is not pushed down like a short wrong guess.

    >>> laser_de_rewards([True, True, True, False, False, False], [10, 30, 30, 50, 50, 5], ["a"] * 3 + ["b"] * 3,
    ...                  [True] * 6, {"low": 20, "medium": 20, "high": 20}, [False, False, False, False, True, False])
    [1.5, 1.0, 1.0, 0.0, -0.5, -0.5]
    """
    check_lengths(correct, lengths, groups)
    check_lengths(correct, lengths, repeated)
    targets = _bucket_targets(correct, groups, bucket_targets)
    base = laser_rewards(correct, lengths, formed, targets, bonus)  # Laser-D's reward
    return [r + (bonus if not ok and f and n > t and not rep else 0.0)
            for r, ok, f, n, t, rep in zip(base, correct, formed, lengths, targets, repeated, strict=True)]
