"""DRPO, Decoupled Reward Policy Optimization (arXiv:2510.04474; code Optimization-AI/DRPO, ``core_algos.py``
``compute_policy_loss_drpo``): the loss as pure torch functions, then `DrpoRule`, what the trainer calls.

DRPO keeps the length signal away from the wrong answers: within a question's group only the *correct* answers
share a positive weight, larger for shorter ones, and a correct answer never gets pushed down for being long:

    s_i   = mean over o_i's tokens of log pi(o_i,t | ...)                      (the current policy, with gradient)
    w_i   = softmax over the group's correct answers of (1 - |o_i| / L) / lambda
    J_q   = sum_{i correct} w_i s_i  -  tau * log sum_{j wrong} exp(s_j / tau)
    loss  = -(1/Q) sum_q J_q  +  [max(beta_kl (KL - delta), 0)]_detached * KL
    KL    = token mean of (old - logp) over the batch                          (against the sampling policy)

Groups whose answers are all right or all wrong contribute nothing but are counted in Q (the number of questions
in the batch), as in the published code. Defaults of the paper's 1.5B script: lambda 0.1, tau 10, delta 1e-4,
beta_kl 1e3, L = the generation cap; rewards are plain 0/1 correctness; no reference model, no ratio clipping.
"""

from __future__ import annotations

import torch

from frugalthink.util.errors import UserError

DEFAULTS = {"lambda": 0.1, "tau": 10.0, "kl_delta": 1e-4, "kl_beta": 1e3}


def positive_weights(correct: torch.Tensor, lengths: torch.Tensor, groups: torch.Tensor, max_len: int,
                     lam: float = 0.1) -> torch.Tensor:
    """``w_i`` for correct samples (softmax within the group's correct ones), 0 for wrong ones."""
    weights = torch.zeros_like(lengths, dtype=torch.float32)
    score = (1.0 - lengths.float() / max_len) / lam
    for g in groups.unique():
        pos = (groups == g) & correct
        if pos.any():
            weights[pos] = torch.softmax(score[pos], dim=0)
    return weights


def process_inputs(rewards: list[float], lengths: torch.Tensor, rank: int, k: int, max_len: int,
                   lam: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(correct, group, weight) of the rows one process holds: its slice of the rollout's ``rewards`` (gathered in
    rank order; ``len(lengths)`` rows per process, whole groups of ``k``), correct = reward > 0.5 (DRPO's rewards
    are 0/1), and `positive_weights` within each of its groups.

    >>> process_inputs([0, 1, 1, 1], torch.tensor([5, 9]), rank=1, k=2, max_len=10)[2]
    tensor([0.9820, 0.0180])
    """
    n = len(lengths)
    if n % k:
        raise ValueError(f"{n} rows per process do not form whole groups of {k}")
    mine = rewards[rank * n : (rank + 1) * n]
    if len(mine) != n:
        raise ValueError(f"rank {rank}: {len(rewards)} gathered rewards hold no slice of {n} rows")
    device = lengths.device
    correct = torch.tensor([r > 0.5 for r in mine], device=device)
    groups = torch.arange(n, device=device) // k
    return correct, groups, positive_weights(correct, lengths, groups, max_len, lam)


def drpo_objective(seq_logp: torch.Tensor, correct: torch.Tensor, weights: torch.Tensor, groups: torch.Tensor,
                   tau: float = 10.0) -> torch.Tensor:
    """``-(1/Q) sum_q J_q`` over the groups present (``Q`` counts every group, mixed or not)."""
    total = seq_logp.sum() * 0.0  # keeps the graph when every group is one-sided (a zero gradient, not an error)
    ids = groups.unique()
    for g in ids:
        member = groups == g
        pos, neg = member & correct, member & ~correct
        if not pos.any() or not neg.any():
            continue  # all right or all wrong: no signal
        j = (weights[pos] * seq_logp[pos]).sum() - tau * torch.logsumexp(seq_logp[neg] / tau, dim=0)
        total = total + j
    return -total / len(ids)


def kl_hinge(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor, delta: float = 1e-4,
             beta: float = 1e3, all_reduce_sum=None, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``[max(beta (KL - delta), 0)]_detached * KL`` with KL the token mean of (old - logp) over the micro-batch of
    every process (``all_reduce_sum`` sums a tensor across the ``world`` processes; None: this one), as DRPO's code
    computes it on the gathered micro-batch. Each process's term carries its own tokens' share of the gradient,
    scaled so that the mean over processes (DDP's gradient) is the gradient of the gathered term. Returns (term, KL).
    """
    mask = mask.to(logps.dtype)
    local = ((old_logps - logps) * mask).sum()
    if all_reduce_sum is None or world == 1:
        kl = local / mask.sum().clamp(min=1)
        coef = torch.clamp(beta * (kl.detach() - delta), min=0.0)
        return coef * kl, kl.detach()
    total, count = all_reduce_sum(torch.stack([local.detach(), mask.sum()]))
    kl = total / count.clamp(min=1)
    coef = torch.clamp(beta * (kl - delta), min=0.0)
    return coef * local * world / count.clamp(min=1), kl


def drpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor, correct: torch.Tensor,
              weights: torch.Tensor, groups: torch.Tensor, options: dict | None = None, all_reduce_sum=None,
              world: int = 1) -> tuple[torch.Tensor, dict]:
    """The whole DRPO loss of one batch of completions: objective + KL hinge; per-token ``logps`` (B, T)."""
    o = {**DEFAULTS, **(options or {})}
    m = mask.to(logps.dtype)
    seq_logp = (logps * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
    objective = drpo_objective(seq_logp, correct, weights, groups, o["tau"])
    hinge, kl = kl_hinge(logps, old_logps, mask, o["kl_delta"], o["kl_beta"], all_reduce_sum, world)
    return objective + hinge, {"kl": kl}


def check_recipe(recipe) -> None:
    """A recipe's DRPO fields: ``drpo_options``, and under ``update_rule: drpo`` the settings DRPO needs."""
    unknown = set(recipe.drpo_options) - set(DEFAULTS)
    if unknown:
        raise UserError(f"drpo_options: {', '.join(sorted(unknown))} unknown (options: {', '.join(DEFAULTS)})")
    if recipe.update_rule != "drpo":
        return
    if recipe.prompts_per_rollout % recipe.num_processes:
        raise UserError(f"update_rule drpo: each process must hold whole prompt groups: prompts_per_rollout "
                        f"({recipe.prompts_per_rollout}) must be a multiple of num_processes ({recipe.num_processes})")
    if recipe.per_device_batch_size % recipe.num_generations:
        raise UserError(f"update_rule drpo: a question's samples share one loss term, so each micro-batch must "
                        f"hold whole groups: prompts_per_rollout * num_generations / (updates_per_rollout * "
                        f"gradient_accumulation_steps * num_processes) = {recipe.per_device_batch_size} is not a "
                        f"multiple of num_generations ({recipe.num_generations})")
    if recipe.beta:
        raise UserError(f"update_rule drpo: beta must be 0 (DRPO has no reference model; its KL hinge is "
                        f"against the sampling policy), got {recipe.beta}")
    if recipe.dynamic_sampling:
        raise UserError("update_rule drpo: dynamic_sampling must be off (DRPO drops one-sided groups itself)")


class DrpoRule:
    """DRPO's update rule in the trainer (recipe ``update_rule: drpo``): no reference model and no whitening; a
    rollout is split into micro-batches in order (each holds whole groups); each micro-batch's loss is `drpo_loss`.
    The calls are those of `frugalthink.rl.rules` (``scored``, ``finish``, ``loss``) plus ``prepare_inputs``."""

    def __init__(self, options: dict | None = None) -> None:
        self.options = dict(options or {})

    def own_kl(self, trainer) -> bool:
        return False

    def scored(self, trainer, batch: dict, inputs: list[dict], old: torch.Tensor, rewards: torch.Tensor,
               beta: float) -> dict:
        batch["old_per_token_logps"] = old
        return batch

    def finish(self, trainer, batch: dict, rewards: list[float]) -> dict:
        """DRPO's per-sample inputs: correct = reward > 0.5 (DRPO's rewards are 0/1), the group of each sample, and
        the length weights of the correct ones. Each micro-batch of each process holds whole groups, and its loss is
        the mean over its questions; with equal question counts everywhere, the average over micro-batches and
        processes is the mean over the step's questions, as on one process."""
        lam = {**DEFAULTS, **self.options}["lambda"]
        correct, groups, weights = process_inputs(rewards, batch["completion_mask"].sum(dim=1),
                                                  trainer.accelerator.process_index, trainer.num_generations,
                                                  trainer.max_completion_length, lam)
        batch.update(drpo_correct=correct, drpo_group=groups, drpo_weight=weights)
        return batch

    def prepare_inputs(self, trainer, generation_batch):
        """TRL's buffering of a rollout over its micro-batches, split in order instead of after a row shuffle (as
        DRPO's published code splits its mini-batches), so that each micro-batch holds whole groups."""
        from trl.trainer.utils import split_tensor_dict

        steps = trainer.args.steps_per_generation
        if trainer._step % (steps * trainer.num_iterations) == 0 or trainer._buffered_inputs is None:
            trainer._buffered_inputs = split_tensor_dict(trainer._generate_and_score_completions(generation_batch),
                                                         steps)
        return trainer._buffered_inputs[trainer._step % steps]

    def loss(self, trainer, model, inputs: dict) -> torch.Tensor | None:
        if "drpo_weight" not in inputs:
            return None
        logps, entropies = trainer.policy_logps(model, inputs)
        mask = inputs["completion_mask"]
        loss, info = drpo_loss(logps, inputs["old_per_token_logps"], mask, inputs["drpo_correct"],
                               inputs["drpo_weight"], inputs["drpo_group"], self.options, trainer._all_reduce_sum,
                               trainer.accelerator.num_processes)
        metrics = trainer._metrics["train"]
        n = mask.sum().clamp(min=1)
        metrics["entropy"].append((entropies * mask).sum().item() / n.item())
        metrics["kl"].append(info["kl"].item())
        return loss
