"""The policy update of the official code (Arora & Zanette 2025; OpenRLHF 0.5.4 RLOO), as pure torch functions.

Given a rollout of B completions (k per prompt, consecutive), their scalar rewards r (the length-penalised
correctness of `frugalthink.rl.rewards`), the per-token log-probs of the policy that sampled them (``old``) and of the
frozen reference (``ref``), and the completion mask M (B, T) (1 on generated tokens including EOS, 0 on padding):

1. RLOO baseline on the scalar reward:       a_i = r_i - mean_{j != i, same prompt} r_j
2. per-token reward (k1 KL in the reward):   rho_{i,t} = -beta * (old_{i,t} - ref_{i,t}) + a_i * [t = last_i]
3. return = advantage, gamma = 1:            A_{i,t} = sum_{s >= t} rho_{i,s}
4. whitening over every token of the rollout (all processes): A <- (A - mean) / sqrt(max(var, 1e-8)),
   mean and population variance over the masked tokens
5. PPO clip per token, then a mean over each sequence's tokens and a mean over sequences:
   L = mean_i [ (1/|M_i|) sum_t -min(q_{i,t} A_{i,t}, clip(q_{i,t}, 1-eps_low, 1+eps_high) A_{i,t}) ],
   q = exp(logp - old)

TRL's `RLOOTrainer` instead uses one ratio per sequence (summed log-probs), the KL summed into the scalar reward,
and no whitening; `frugalthink.rl.trainer` selects between the two with the recipe's ``update_rule``.

The peers' published setups (verl's options, named as verl names them) change steps 1, 4 and 5 of the official rule:
GRPO advantages ``(r_i - mean_g) / (std_g + 1e-6)`` (`grpo_advantages`) or batch-normalised ones, without
whitening; the KL as a k3 loss term (`k3_kl`, ``kl_loss_coef``); an entropy bonus (``entropy_coeff``); the loss
aggregated as a token mean over the micro-batch (``loss_agg_mode: token-mean``, `aggregate`); one ratio per sequence
(``ratio_level: sequence``). `ppo_loss` puts them together.
Only torch is imported here: every function is testable on CPU against a hand computation (tests/rl/test_update_rule.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def rloo_advantages(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Leave-one-out advantages of scalar rewards (N,), grouped by position (rows ``i*k .. i*k+k-1`` are one prompt).

    >>> rloo_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2).tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    if rewards.numel() % k:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {k}")
    grouped = rewards.view(-1, k)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)
    return (grouped - baseline).view(-1)


def grpo_advantages(rewards: torch.Tensor, k: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's advantages as verl computes them: ``(r_i - mean_g) / (std_g + eps)`` over each group of ``k`` consecutive
    rewards, ``std_g`` the sample standard deviation (n - 1); a flat group gets 0.

    >>> [round(x, 4) for x in grpo_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2).tolist()]
    [0.7071, -0.7071, 0.0, 0.0]
    """
    if rewards.numel() % k:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {k}")
    grouped = rewards.view(-1, k)
    mean, std = grouped.mean(dim=1, keepdim=True), grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(-1)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(policy || reference) per token, ``exp(ref - logp) - (ref - logp) - 1`` (Schulman's
    low-variance estimator; verl's ``low_var_kl``), clamped to [-10, 10] as verl does. Never negative, 0 where the
    two agree.

    >>> [round(x, 4) for x in k3_kl(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.0])).tolist()]
    [0.0, 0.7183]
    """
    d = ref_logps - logps
    return (torch.exp(d) - d - 1).clamp(min=-10, max=10)


LOSS_AGG_MODES = ("seq-mean-token-mean", "token-mean")


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "seq-mean-token-mean") -> torch.Tensor:
    """A per-token loss (B, T) to a scalar: ``seq-mean-token-mean`` (each sequence's token mean, then the mean over
    sequences: every completion counts alike; the official rule) or ``token-mean`` (the mean over every token of
    the micro-batch: a long completion counts by its tokens; verl's default, Laser's and DLER's).

    >>> v, m = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    >>> aggregate(v, m).item(), aggregate(v, m, "token-mean").item()
    (2.5, 1.75)
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        return (values * mask).sum() / mask.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        return ((values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    raise ValueError(f"loss_agg_mode must be one of {LOSS_AGG_MODES}, got {mode!r}")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a right-padded (B, T) mask (0 for an all-zero row)."""
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(mask)
    return (positions * mask.long()).max(dim=1).values


def token_returns(advantages: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                  mask: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """Per-token returns (B, T): the sequence advantage at the last token, minus beta times the k1 KL of every
    later-or-equal token (steps 2-3 of the module docstring). Zero on padding. ``beta``: one coefficient, or one
    per row (B,) (an alpha-conditioned run's ``tier_beta``)."""
    mask = mask.to(old_logps.dtype)
    rewards = torch.zeros_like(old_logps)
    if isinstance(beta, torch.Tensor):
        beta = beta.to(old_logps.dtype).view(-1, 1)
    if ref_logps is not None:
        rewards = -beta * (old_logps - ref_logps) * mask
    rewards = rewards.scatter_add(1, last_token_index(mask).unsqueeze(1), advantages.to(rewards.dtype).unsqueeze(1))
    returns = rewards.flip(1).cumsum(1).flip(1)
    return returns * mask


def kl_penalised_rloo(rewards: torch.Tensor, kl: torch.Tensor, beta: float | torch.Tensor, k: int) -> torch.Tensor:
    """TRL's RLOO with the KL in the reward: leave-one-out advantages of ``r_i - beta_i * KL_i``, KL_i the summed
    k1 KL of sequence i; ``beta`` one coefficient or one per row (N,).

    >>> kl_penalised_rloo(torch.tensor([1.0, 1.0]), torch.tensor([10.0, 0.0]), torch.tensor([0.1, 0.1]), 2).tolist()
    [-1.0, 1.0]
    """
    return rloo_advantages(rewards - beta * kl, k)


def batch_normalize(advantages: torch.Tensor) -> torch.Tensor:
    """TRL's ``normalize_advantages`` over a rollout's sequences: ``(A - mean) / (std + 1e-4)`` (DLER's batch-wise
    normalisation), for the rollouts the trainer assembles itself.

    >>> [round(x, 4) for x in batch_normalize(torch.tensor([1.0, 3.0])).tolist()]
    [-0.7071, 0.7071]
    """
    return (advantages - advantages.mean()) / (advantages.std() + 1e-4)


def tier_balanced(advantages: torch.Tensor, tiers: torch.Tensor) -> torch.Tensor:
    """An alpha-conditioned rollout's advantages with each tier's rescaled to the spread of the whole rollout:
    ``A_t <- A_t * std(A) / std(A_t)`` for the rows of tier t (sample std), so that a tier whose rewards barely
    differ (the correctness-only alpha = 0 tier, mostly all-right groups) moves the shared weights as much as a tier
    whose length penalty spreads its rewards. No shift: leave-one-out advantages are already centred per group. A
    tier with one row or no spread is left as it is.

    >>> [round(x, 4) for x in tier_balanced(torch.tensor([1.0, -1.0, 0.1, -0.1]), torch.tensor([0, 0, 1, 1])).tolist()]
    [0.5802, -0.5802, 0.5802, -0.5802]
    """
    out = advantages.clone()
    total = advantages.std()
    for tier in tiers.unique():
        rows = tiers == tier
        spread = advantages[rows].std() if rows.sum() > 1 else advantages.new_zeros(())
        if spread > 0:
            out[rows] = advantages[rows] * (total / spread)
    return out


def whiten(values: torch.Tensor, mask: torch.Tensor,
           all_reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``(values - mean) / sqrt(max(var, 1e-8))`` with the mean and population variance over the masked entries of
    every process (``all_reduce_sum`` sums a tensor across processes; None = this process only). Zero on padding."""
    reduce = all_reduce_sum or (lambda t: t)
    mask = mask.to(values.dtype)
    stats = reduce(torch.stack([(values * mask).sum(), mask.sum()]))
    mean = stats[0] / stats[1]
    var = reduce(((values - mean) ** 2 * mask).sum()) / stats[1]
    return (values - mean) * torch.rsqrt(var.clamp(min=1e-8)) * mask


def ppo_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                   eps_low: float = 0.2, eps_high: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token clipped surrogate (step 5): a token mean per sequence, then a mean over sequences.

    Returns the loss and, for logging, the fractions of masked tokens clipped below / above.
    """
    eps_high = eps_low if eps_high is None else eps_high
    mask = mask.to(logps.dtype)
    ratio = torch.exp(logps - old_logps)
    surrogate = torch.min(ratio * advantages, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages)
    per_sequence = (-surrogate * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    n = mask.sum().clamp(min=1)
    with torch.no_grad():
        low = (((ratio < 1 - eps_low) & (advantages < 0)).to(mask.dtype) * mask).sum() / n
        high = (((ratio > 1 + eps_high) & (advantages > 0)).to(mask.dtype) * mask).sum() / n
    return per_sequence.mean(), {"clip_low": low, "clip_high": high}


def ppo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
             eps_low: float = 0.2, eps_high: float | None = None, ratio_level: str = "token",
             loss_agg_mode: str = "seq-mean-token-mean") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate with a choice of ratio and aggregation. ``ratio_level="token"``: ``q_t = exp(logp_t -
    old_t)``, clipped per token (PPO, the official rule, verl); ``"sequence"``: one ratio per completion, ``q =
    exp(sum_t (logp_t - old_t))`` (TRL's RLOO), clipped once and applied to every token's advantage. The default
    pair is `ppo_token_loss` exactly.
    """
    if ratio_level == "token" and loss_agg_mode == "seq-mean-token-mean":
        return ppo_token_loss(logps, old_logps, advantages, mask, eps_low, eps_high)
    if ratio_level not in ("token", "sequence"):
        raise ValueError(f"ratio_level must be token or sequence, got {ratio_level!r}")
    eps_high = eps_low if eps_high is None else eps_high
    m = mask.to(logps.dtype)
    if ratio_level == "token":
        ratio = torch.exp(logps - old_logps)
    else:
        ratio = torch.exp(((logps - old_logps) * m).sum(dim=1, keepdim=True)).expand_as(logps)
    surrogate = torch.min(ratio * advantages, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages)
    loss = aggregate(-surrogate, mask, loss_agg_mode)
    n = m.sum().clamp(min=1)
    with torch.no_grad():
        low = (((ratio < 1 - eps_low) & (advantages < 0)).to(m.dtype) * m).sum() / n
        high = (((ratio > 1 + eps_high) & (advantages > 0)).to(m.dtype) * m).sum() / n
    return loss, {"clip_low": low, "clip_high": high}
