"""Rewards as pure functions over plain lists (no torch): the method's length-penalised reward and the registry of
every reward a recipe can name.

Lengths are completion tokens (prompt excluded, EOS included), counted from the generated ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from frugalthink.peers import rewards as P
from frugalthink.util.groups import check_sizes, correct_z_scores, group_indices, mean_std


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)



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
    return [0.0 if z is None else 1.0 - alpha * sigmoid(z) for z in correct_z_scores(correct, lengths, groups)]


def group_std_normalize(rewards: Sequence[float], groups: Sequence[Hashable], eps: float = 1e-4) -> list[float]:
    """Divide each group's rewards by the group's (population) std: the GRPO-style ablation.

    With the RLOO baseline the advantage is linear in the rewards, ``A_i = k/(k-1) (r_i - mean_g)``, so scaling the
    rewards of a group by ``1/std_g`` gives exactly GRPO's per-group std-normalised advantage (up to the constant
    ``k/(k-1)``). The paper's point: this rescales away ``alpha``'s small reward differences among correct
    answers, so ``alpha`` loses its control over length.
    """
    out = list(map(float, rewards))
    for members in group_indices(groups).values():
        _, std = mean_std([out[i] for i in members])
        for i in members:
            out[i] = out[i] / (std + eps)
    return out


def _tops(top: Sequence[bool] | None, n: int) -> list[bool]:
    return [False] * n if not top else list(top)


def in_budget(correct: Sequence[bool], lengths: Sequence[int], budgets: Sequence[int],
              top: Sequence[bool] | None = None) -> list[bool]:
    """Correct and inside the sample's token budget (``top``: the top tier, which has none).

    >>> in_budget([True, True, True, False], [30, 31, 90, 10], [30, 30, 60, 30], [False, False, True, False])
    [True, False, True, False]
    """
    check_sizes(correct=correct, lengths=lengths, budgets=budgets)
    tops = _tops(top, len(correct))
    return [bool(ok) and (t or n <= b) for ok, n, b, t in zip(correct, lengths, budgets, tops, strict=True)]


def budget_cutoff_rewards(correct: Sequence[bool], lengths: Sequence[int], budgets: Sequence[int],
                          top: Sequence[bool] | None = None) -> list[float]:
    """A budget tier's cutoff reward, ``1[correct and len <= B]`` (the top tier: correctness alone).

    >>> budget_cutoff_rewards([True, True, False, True], [30, 31, 10, 500], [30, 30, 30, 60], [0, 0, 0, 1])
    [1.0, 0.0, 0.0, 1.0]
    """
    return [1.0 if ok else 0.0 for ok in in_budget(correct, lengths, budgets, top)]


def budget_l1_rewards(correct: Sequence[bool], lengths: Sequence[int], budgets: Sequence[int], slope: float,
                      delta: float = 0.5, top: Sequence[bool] | None = None) -> list[float]:
    """L1-Max's soft budget reward per tier, ``1[correct] clip(slope (B - len) + delta, 0, 1)``
    (`frugalthink.peers.rewards.l1_max_rewards` with B as the target); the top tier: correctness alone.

    >>> budget_l1_rewards([True, True, True, False], [40, 80, 999, 40], [64, 64, 64, 64], 1 / 64, top=[0, 0, 1, 0])
    [0.875, 0.25, 1.0, 0.0]
    """
    check_sizes(correct=correct, lengths=lengths, budgets=budgets)
    soft = P.l1_max_rewards(correct, lengths, budgets, slope, delta)
    return [(1.0 if ok else 0.0) if t else r
            for ok, t, r in zip(correct, _tops(top, len(correct)), soft, strict=True)]


def budget_efficiency_rewards(correct: Sequence[bool], lengths: Sequence[int], groups: Sequence[Hashable],
                              budgets: Sequence[int], alpha: float, top: Sequence[bool] | None = None) -> list[float]:
    """The paper's reward among a tier's own samples inside its budget: `efficiency_rewards` with the samples over
    their budget B counted as wrong (mean and std over the in-budget correct ones of the group); the top tier gets
    correctness alone. Groups are (prompt, tier) rows, so a group has one budget.

    >>> [round(r, 4) for r in budget_efficiency_rewards([True, True, True, True], [10, 20, 40, 99], [0, 0, 0, 1],
    ...                                                   [30, 30, 30, 60], 0.2, [0, 0, 0, 1])]
    [0.9462, 0.8538, 0.0, 1.0]
    """
    inside = in_budget(correct, lengths, budgets, top)
    penalised = efficiency_rewards(inside, lengths, groups, alpha)
    return [(1.0 if ok else 0.0) if t else r
            for ok, t, r in zip(inside, _tops(top, len(correct)), penalised, strict=True)]


def budget_shares(targets: Sequence[int], top: Sequence[bool] | None, share: float) -> list[float]:
    """``share`` x each tier's budget, the top tier's target (L(x)) as it is (it has no budget): where `pull_up`
    pulls each tier (option ``margin``, so that the pull's optimum sits inside the budget) and the length a budget
    reward pays inside (option ``fit``, a margin kept for the few tokens sampling adds at evaluation; rollouts are
    still capped at the budget).

    >>> budget_shares([60, 40, 100], [False, False, True], 0.8)
    [48.0, 32.0, 100.0]
    """
    return [float(t) if up else share * t for t, up in zip(targets, _tops(top, len(targets)), strict=True)]


def pull_up(rewards: Sequence[float], lengths: Sequence[int], targets: Sequence[float], under: float) -> list[float]:
    """Two-sided tier targets: a sample shorter than its tier's target T keeps ``max(0, 1 - under (1 - len / T))``
    of its reward (all of it at T or above; with ``under`` 2 nothing at half the target), so a tier is pulled up
    toward its target as its budget holds it under; ``under`` 0 leaves the rewards as they are.

    >>> pull_up([1.0, 1.0, 1.0, 0.0], [30, 60, 90, 10], [60, 60, 60, 60], 0.5)
    [0.75, 1.0, 1.0, 0.0]
    >>> pull_up([1.0, 1.0], [20, 45], [60, 60], 2.0)
    [0.0, 0.5]
    """
    check_sizes(rewards=rewards, lengths=lengths, targets=targets)
    if not under:
        return list(map(float, rewards))
    return [r * max(0.0, 1.0 - under * max(0.0, 1.0 - n / t)) if t > 0 else float(r)
            for r, n, t in zip(rewards, lengths, targets, strict=True)]


def _pulled(rewards: list[float], b: RewardBatch, o: dict) -> list[float]:
    """A budget reward with its two-sided pull (options ``under`` and ``margin``)."""
    return pull_up(rewards, b.lengths, budget_shares(b.targets, b.top, o["margin"]), o["under"])


def _paid(b: RewardBatch, o: dict) -> list[float]:
    return budget_shares(b.targets, b.top, o["fit"])


# The budget rewards' shared options: ``under`` the pull toward each tier's target (`pull_up`; 0 = one-sided),
# ``margin`` that target as a share of the budget, ``fit`` the share of the budget a sample is paid inside.
BUDGET_DEFAULTS = {"under": 0.0, "margin": 1.0, "fit": 1.0}


# --------------------------------------------------------------------------------------------------------------
# The registry: every reward a recipe can name (ours and the peers', `frugalthink.peers.rewards`), with the papers'
# default options. A reward is called with one `RewardBatch` -- the gathered rollout, or one alpha's part of it --
# and its options; `frugalthink.rl.reward_fn.LengthReward` is the only caller during training.
# --------------------------------------------------------------------------------------------------------------
# Laser-D's options (and Laser-DE's): the bonus and the monitor's settings, the paper's values; the grid defaults to
# 16 steps up to the run's cap (frugalthink.peers.laser.default_grid)
LASER_D_DEFAULTS = {"bonus": 0.5, "monitor_prompts": 500, "monitor_every": 20, "monitor_samples": 8,
                    "monitor_temperature": 0.6, "grid": None, "expected_correct": 1}


@dataclass(frozen=True)
class RewardBatch:
    """What a reward sees of a rollout, one entry per completion: ``correct``, ``lengths`` (completion tokens),
    ``groups`` (the prompt group of each, positions // k in training), ``targets`` (a per-sample token budget: L1's,
    or a budget tier's target length, its budget B(x) below the top tier),
    ``formed`` (the sample ended with a parsable final answer, right or wrong), ``repeated`` (`repeats_itself`,
    filled only for rewards with ``needs_repetition``), ``alpha``, our penalty strength, and ``top`` (a budget-tier
    run's top-tier rows, which have no budget). Fields left out default to: targets 0, formed = correct, repeated and
    top False."""

    correct: Sequence[bool]
    lengths: Sequence[int]
    groups: Sequence[Hashable]
    targets: Sequence[int] = ()
    formed: Sequence[bool] = ()
    repeated: Sequence[bool] = ()
    alpha: float = 0.0
    top: Sequence[bool] = ()

    def __post_init__(self) -> None:
        n = len(self.correct)
        for name, fill in (("targets", 0), ("formed", None), ("repeated", False), ("top", False)):
            value = getattr(self, name)
            if not value:
                object.__setattr__(self, name, list(self.correct) if fill is None else [fill] * n)
        check_sizes(correct=self.correct, lengths=self.lengths, groups=self.groups, targets=self.targets,
                    formed=self.formed, repeated=self.repeated, top=self.top)

    def part(self, idx: Sequence[int], alpha: float) -> RewardBatch:
        """The samples at ``idx`` (whole groups), scored at ``alpha``."""
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return RewardBatch(pick(self.correct), pick(self.lengths), pick(self.groups), pick(self.targets),
                           pick(self.formed), pick(self.repeated), alpha, pick(self.top))


@dataclass(frozen=True)
class RewardSpec:
    """``compute(batch: RewardBatch, options: dict) -> rewards``; ``defaults``: the paper's options; ``from_cap``:
    options whose default (None) is that fraction of the run's generation cap, as the paper sets it against its own
    cap; ``needs_repetition``: the reward reads ``batch.repeated``."""

    compute: Callable[[RewardBatch, dict], list[float]]
    defaults: dict
    from_cap: dict = field(default_factory=dict)
    needs_repetition: bool = False


REWARDS: dict[str, RewardSpec] = {
    "efficiency": RewardSpec(lambda b, o: efficiency_rewards(b.correct, b.lengths, b.groups, b.alpha), {}),
    "kimi": RewardSpec(lambda b, o: P.kimi_length_rewards(b.correct, b.lengths, b.groups, o["weight"]),
                       {"weight": 1.0}),
    "l1_max": RewardSpec(lambda b, o: P.l1_max_rewards(b.correct, b.lengths, b.targets, o["alpha"], o["delta"]),
                         {"alpha": 0.0003, "delta": 0.5, "targets": [100, 4000]}),
    "shorter_better": RewardSpec(
        lambda b, o: P.shorter_better_rewards(b.correct, b.lengths, b.groups, o["alpha"], o["beta"]),
        {"alpha": 2.0, "beta": 0.001}),
    "grpo_lead": RewardSpec(lambda b, o: P.grpo_lead_rewards(b.correct, b.lengths, b.groups, o["alpha"]),
                            {"alpha": 0.1}),
    "cosine": RewardSpec(lambda b, o: P.cosine_rewards(b.correct, b.lengths, **o),
                         {"max_len": None, "min_value_wrong": -1.0, "max_value_wrong": -0.5,
                          "min_value_correct": 0.5, "max_value_correct": 1.0}, {"max_len": 1.0}),
    "dapo": RewardSpec(lambda b, o: P.dapo_rewards(b.correct, b.lengths, o["max_len"], o["cache"]),
                       {"max_len": None, "cache": None}, {"max_len": 1.0}),
    "correctness": RewardSpec(lambda b, o: [1.0 if ok else 0.0 for ok in b.correct], {}),  # DRPO's
    "dler": RewardSpec(lambda b, o: P.truncation_rewards(b.correct, b.lengths, o["limit"]), {"limit": None},
                       {"limit": 1.0}),
    "laser": RewardSpec(lambda b, o: P.laser_rewards(b.correct, b.lengths, b.formed, [o["target"]] * len(b.correct),
                                                     o["bonus"]),
                        {"target": None, "bonus": 0.5}, {"target": 0.25}),  # Laser: 4,096 of a 16k cap
    # bucket_targets: filled in during training by the monitor (frugalthink.peers.laser); its options set the monitor
    "laser_d": RewardSpec(lambda b, o: P.laser_d_rewards(b.correct, b.lengths, b.groups, b.formed,
                                                         o["bucket_targets"], o["bonus"]),
                          LASER_D_DEFAULTS),
    # Laser-DE: Laser-D's monitor and options, plus the exploration bonus for long wrong answers that do not loop
    "laser_de": RewardSpec(lambda b, o: P.laser_de_rewards(b.correct, b.lengths, b.groups, b.formed,
                                                           o["bucket_targets"], b.repeated, o["bonus"]),
                           LASER_D_DEFAULTS, needs_repetition=True),
    # One model, every tier (recipe budget_tiers, frugalthink.rl.budgets): targets are each row's target length, its
    # budget B(x) below the top tier; slope: L1-Max's alpha, per token (the paper's 0.0003 for budgets of 100-4000)
    # the top tier's rows (top) have no budget; under, margin, fit: BUDGET_DEFAULTS
    "budget_cutoff": RewardSpec(lambda b, o: _pulled(budget_cutoff_rewards(b.correct, b.lengths, _paid(b, o), b.top),
                                                     b, o), BUDGET_DEFAULTS),
    "budget_l1": RewardSpec(lambda b, o: _pulled(budget_l1_rewards(b.correct, b.lengths, _paid(b, o), o["slope"],
                                                                   o["delta"], b.top), b, o),
                            {"slope": 0.01, "delta": 0.5, **BUDGET_DEFAULTS}),
    "budget_efficiency": RewardSpec(
        lambda b, o: _pulled(budget_efficiency_rewards(b.correct, b.lengths, b.groups, _paid(b, o), b.alpha, b.top),
                             b, o), BUDGET_DEFAULTS),
}
# the rewards whose targets Laser-D's monitor sets during training (frugalthink.peers.laser)
MONITORED = ("laser_d", "laser_de")
# the rewards of a budget-tier run, which read a row's budget from ``targets``
BUDGET_REWARDS = ("budget_cutoff", "budget_l1", "budget_efficiency")


def resolve_options(reward: str, options: dict, cap: int) -> dict:
    """A reward's options with the papers' defaults filled in; those that default to a share of the generation cap
    (``from_cap``) taken from ``cap``, and DAPO's cache as a fifth of its length (4,096 of 20,480 there).

    >>> resolve_options("dapo", {}, 100)
    {'max_len': 100, 'cache': 20}
    """
    opts = {**REWARDS[reward].defaults, **options}
    for name, share in REWARDS[reward].from_cap.items():
        if opts.get(name) is None:
            opts[name] = max(1, int(cap * share))
    if reward == "dapo" and opts.get("cache") is None:
        opts["cache"] = max(1, opts["max_len"] // 5)
    return opts

def check_recipe(recipe) -> None:
    """A recipe's ``reward`` and ``reward_options``: a registered reward and options it takes."""
    from frugalthink.util.errors import UserError

    if recipe.reward not in REWARDS:
        raise UserError(f"reward: unknown {recipe.reward!r} (one of {', '.join(REWARDS)})")
    defaults = REWARDS[recipe.reward].defaults
    unknown = set(recipe.reward_options) - set(defaults)
    if unknown:
        raise UserError(f"reward_options: {', '.join(sorted(unknown))} not an option of reward {recipe.reward!r} "
                        f"(options: {', '.join(defaults) or 'none'})")
    if recipe.reward in BUDGET_REWARDS:
        opts = recipe.resolved_reward_options()
        if opts["under"] < 0:
            raise UserError(f"reward_options.under must be >= 0 (0: one-sided budgets), got {opts['under']}")
        if not 0 < opts["margin"] <= 1:
            raise UserError(f"reward_options.margin must be in (0, 1] (the pull's target as a share of the budget), "
                            f"got {opts['margin']}")
        if not 0 < opts["fit"] <= 1:
            raise UserError(f"reward_options.fit must be in (0, 1] (the share of the budget a sample is paid inside), "
                            f"got {opts['fit']}")
        if opts["under"] and opts["margin"] > opts["fit"]:
            raise UserError(f"reward_options: margin ({opts['margin']}) above fit ({opts['fit']}) leaves no length "
                            f"that keeps its whole reward")
    if recipe.reward == "l1_max":
        lo, hi = recipe.resolved_reward_options()["targets"]
        if not 0 < lo <= hi:
            raise UserError(f"reward_options.targets must be [low, high] with 0 < low <= high, got {[lo, hi]}")
