"""The reward as TRL calls it: grade a rollout with the one grader, gather it over processes, score each prompt group
with the recipe's reward (`frugalthink.rl.rewards.REWARDS`), and the per-rollout statistics logged every step."""

from __future__ import annotations

import statistics
from collections import defaultdict

from frugalthink.eval.summary import percentile
from frugalthink.peers import rewards as P
from frugalthink.rl import rewards as R
from frugalthink.tasks.base import Problem


def _gather_lists(*lists):
    """Concatenate per-rank lists across processes (same order on every rank); return them and this rank's offset."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return (*lists, 0)
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(zip(*lists, strict=True)))
    rank = dist.get_rank()
    offset = sum(len(g) for g in gathered[:rank])
    flat = [row for g in gathered for row in g]
    return (*[[row[k] for row in flat] for k in range(len(lists))], offset)


# Grader reasons of a completion without a final answer (Laser scores these -1, a wrong answer -0.5).
UNFORMED = ("truncated", "unfinished_thinking", "no_answer", "empty_box")


class LengthReward:
    """TRL reward function: grade with the one grader, then the recipe's reward (ours or a peer's) per prompt group.

    Groups are formed by position, as TRL's sampler lays them out: the gathered batch holds each prompt's k samples
    consecutively, so sample i belongs to group i // k (problem ids may repeat in a user's data). A group can sit
    on several ranks, so the statistics are computed after gathering (correct, length) from every rank; each rank
    returns its slice. Completions are decoded from their ids with `frugalthink.tasks.prompts.decode_completion`, the
    decoding evaluation uses, and graded with the prompt's thinking state. Truncated completions (no EOS) are wrong.
    """

    def __init__(self, task, alpha: float, eos_token_ids, group_std: bool = False, reward: str = "efficiency",
                 options: dict | None = None, tokenizer=None, num_generations: int = 8, monitor=None) -> None:
        self.task, self.alpha, self.group_std, self.monitor = task, alpha, group_std, monitor
        self.tokenizer, self.k = tokenizer, num_generations
        self.kind, self.options = reward, dict(options or {})
        self.__name__ = reward
        self.eos = set(eos_token_ids)
        self.spec = R.REWARDS[reward]

    def __call__(self, prompts, completions, completion_ids, answer, problem_id, **kwargs) -> list[float]:
        from frugalthink.tasks.prompts import decode_completion, opens_thinking

        truncated = [not ids or ids[-1] not in self.eos for ids in completion_ids]
        if self.tokenizer is not None:
            texts = [decode_completion(self.tokenizer, ids, self.eos) for ids in completion_ids]
        else:
            texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        problems = [Problem(id=str(pid), question="", answer=str(a)) for pid, a in zip(problem_id, answer, strict=True)]
        grades = self.task.grade(texts, problems, truncated, thinking_open=[opens_thinking(str(p)) for p in prompts])
        correct = [g.correct for g in grades]
        formed = [g.reason not in UNFORMED for g in grades]
        lengths = [len(ids) for ids in completion_ids]
        targets = list(kwargs.get("target") or [0] * len(lengths))
        alphas = list(kwargs.get("alpha") or [self.alpha] * len(lengths))
        tiers = kwargs.get("tier")  # a budget-tier run's tier of each row (`frugalthink.rl.budgets`), and its top tier
        tops = [bool(t) for t in kwargs.get("top") or [False] * len(lengths)]
        repeated = ([P.repeats_itself(list(ids)) for ids in completion_ids] if self.spec.needs_repetition
                    else [False] * len(lengths))
        all_correct, all_lengths, all_trunc, all_targets, all_alphas, all_formed, all_rep, all_tiers, all_top, offset = (
            _gather_lists(correct, lengths, truncated, targets, alphas, formed, repeated,
                          list(tiers) if tiers is not None else [None] * len(lengths), tops))
        if len(all_correct) % self.k:
            raise ValueError(f"{len(all_correct)} completions do not form groups of num_generations={self.k}")
        all_groups = [i // self.k for i in range(len(all_correct))]
        rewards = self.rewards(all_correct, all_lengths, all_groups, all_targets, all_alphas, all_formed, all_rep,
                               all_top)
        if self.group_std:
            rewards = R.group_std_normalize(rewards, all_groups)
        log_metric = kwargs.get("log_metric")
        if log_metric:
            for name, value in batch_metrics(all_correct, all_lengths, all_groups, all_trunc).items():
                log_metric(name, value)
            budgets = [0 if top else t for t, top in zip(all_targets, all_top, strict=True)]
            by_tier = (tier_metrics(all_correct, all_lengths, all_tiers, budgets, all_trunc) if tiers is not None
                       else tier_metrics(all_correct, all_lengths, all_alphas))
            for name, value in by_tier.items():
                log_metric(name, value)
        return rewards[offset : offset + len(completions)]

    def rewards(self, correct, lengths, groups, targets, alphas=None, formed=None, repeated=None,
                top=None) -> list[float]:
        """The reward of every sample; with per-sample ``alphas`` (a conditioned run, constant within a group) each
        alpha's groups are scored with that alpha. ``formed``: the sample has a final answer (default: correct);
        ``repeated``: it loops (`rewards.repeats_itself`; default: none does); ``top``: a budget-tier run's top-tier
        rows (no budget)."""
        alphas = alphas or [self.alpha] * len(correct)
        batch = R.RewardBatch(correct, lengths, groups, targets, formed or (), repeated or (), top=top or ())
        options = self.options
        if self.monitor is not None:  # Laser-D/DE: this moment's targets; a band without one: the longest response
            options = {**options, "bucket_targets": self.monitor.bucket_targets(fallback=max(lengths))}
        out = [0.0] * len(correct)
        for a in sorted(set(alphas)):
            idx = [i for i, x in enumerate(alphas) if x == a]
            for i, r in zip(idx, self.spec.compute(batch.part(idx, a), options), strict=True):
                out[i] = r
        return out


def l1_targets(problem_ids: list[str], low: int, high: int, seed: int) -> list[int]:
    """L1's per-prompt token budget, uniform in [low, high], fixed by the prompt id and seed (resumable)."""
    import random

    return [random.Random(f"l1-{seed}-{pid}").randint(low, high) for pid in problem_ids]


def batch_metrics(correct, lengths, groups, truncated) -> dict[str, float]:
    """Per-rollout statistics logged every step (computed on the gathered batch, identical on every rank).

    Lengths of correct and of wrong samples are reported apart (NaN when there are none): a shrinking correct
    length with a flat wrong length is the method working; both collapsing together is a run going wrong.
    """
    by_group: dict = defaultdict(list)
    for c, g in zip(correct, groups, strict=True):
        by_group[g].append(c)
    right = [n for n, c in zip(lengths, correct, strict=True) if c]
    wrong = [n for n, c in zip(lengths, correct, strict=True) if not c]
    nan = float("nan")
    return {
        "accuracy": sum(correct) / len(correct),
        "tokens_mean": statistics.fmean(lengths),
        "tokens_median": statistics.median(lengths),
        "tokens_correct_mean": statistics.fmean(right) if right else nan,
        "tokens_correct_p90": percentile(right, 90) if right else nan,
        "tokens_wrong_mean": statistics.fmean(wrong) if wrong else nan,
        "tokens_wrong_p90": percentile(wrong, 90) if wrong else nan,
        "frac_groups_all_correct": sum(all(v) for v in by_group.values()) / len(by_group),
        "frac_groups_all_wrong": sum(not any(v) for v in by_group.values()) / len(by_group),
        "truncated_frac": sum(truncated) / len(truncated),
        "generated_tokens": float(sum(lengths)),
    }


def tier_metrics(correct, lengths, alphas, budgets=None, truncated=None) -> dict[str, float]:
    """A conditioned run's accuracy and mean tokens per tier (``tier/<alpha>/accuracy``, ``.../tokens_mean``); empty
    for a run with one tier. The first thing to read in such a run: do the tiers' lengths come apart? With
    ``budgets`` (a budget-tier run: ``alphas`` are its tiers, a budget 0 none) also the share of samples over their
    budget (``.../over_budget``: longer, or stopped at it unfinished, with ``truncated``).

    >>> tier_metrics([True, False, True, True], [10, 20, 4, 6], [0.0, 0.0, 0.4, 0.4])
    {'tier/0/accuracy': 0.5, 'tier/0/tokens_mean': 15.0, 'tier/0.4/accuracy': 1.0, 'tier/0.4/tokens_mean': 5.0}
    >>> tier_metrics([True, True, True, True], [90, 20, 4, 6], [1.0, 1.0, 0.5, 0.5], [0, 0, 5, 5])["tier/0.5/over_budget"]
    0.5
    """
    tiers = sorted(set(alphas))
    if len(tiers) < 2:
        return {}
    out = {}
    for a in tiers:
        idx = [i for i, x in enumerate(alphas) if x == a]
        out[f"tier/{a:g}/accuracy"] = sum(correct[i] for i in idx) / len(idx)
        out[f"tier/{a:g}/tokens_mean"] = statistics.fmean(lengths[i] for i in idx)
        if budgets is not None:
            cut = truncated or [False] * len(lengths)
            out[f"tier/{a:g}/over_budget"] = sum(0 < budgets[i] and (budgets[i] < lengths[i] or cut[i] and budgets[i]
                                                                    <= lengths[i]) for i in idx) / len(idx)
    return out
