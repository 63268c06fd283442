"""The update rules as the trainer runs them (recipe ``update_rule``); the math is `frugalthink.rl.update_rule`.

A rule is called at three points of a rollout by `frugalthink.rl.trainer.FrugalRLOOTrainer`:
``scored`` after each round of TRL's generation and scoring (the batch, the sampling policy's per-token log-probs,
the combined rewards of every process), ``finish`` once the rollout is complete (after dynamic sampling's rounds),
and ``loss`` per micro-batch (None: TRL's own loss). ``own_kl``: the rule (not TRL) puts the KL term in, so TRL's
rollout runs with beta 0. DRPO's rule lives with the rest of DRPO, in `frugalthink.peers.drpo`.
"""

from __future__ import annotations

import torch

from frugalthink.peers.drpo import DrpoRule
from frugalthink.rl import update_rule as U


class OfficialRule:
    """The paper's code: RLOO on the scalar reward, k1 KL per token in the reward, returns with gamma 1, whitening
    over all tokens of the rollout on all processes, per-token PPO clip averaged per sequence.

    Options for the peers' published setups (recipe fields of the same names; the defaults are the paper's rule):
    ``advantage`` ``rloo`` or ``grpo`` (group mean and std, no whitening); batch-normalised advantages when the
    trainer's ``normalize_advantages`` is on (DLER; no whitening); ``kl_loss_coef``: the k3 KL to the reference as a
    loss term; ``entropy_coeff``: an entropy bonus; ``loss_agg_mode`` and ``ratio_level`` (`update_rule.ppo_loss`).
    """

    def __init__(self, advantage: str = "rloo", kl_loss_coef: float = 0.0, entropy_coeff: float = 0.0,
                 loss_agg_mode: str = "seq-mean-token-mean", ratio_level: str = "token") -> None:
        if advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {ADVANTAGES}, got {advantage!r}")
        self.advantage, self.kl_loss_coef, self.entropy_coeff = advantage, kl_loss_coef, entropy_coeff
        self.loss_agg_mode, self.ratio_level = loss_agg_mode, ratio_level

    def own_kl(self, trainer) -> bool:
        return True

    def needs_reference(self, beta: float) -> bool:
        return bool(beta or self.kl_loss_coef)

    def scored(self, trainer, batch: dict, inputs: list[dict], old: torch.Tensor, rewards: torch.Tensor,
               beta: float) -> dict:
        row_beta = trainer.tiers.row_betas(trainer, inputs, beta) if trainer.tiers.beta else beta
        ref = trainer._ref_logps(batch) if self.needs_reference(beta) else None
        if self.kl_loss_coef:
            batch["ref_per_token_logps"] = ref
        return self.returns(trainer, batch, old, ref if beta else None, rewards, row_beta)

    def returns(self, trainer, batch: dict, old: torch.Tensor, ref: torch.Tensor | None, rewards: torch.Tensor,
                beta: float | torch.Tensor) -> dict:
        """Put the official per-token returns (RLOO advantage at the last token, k1 KL per token, gamma 1) and the
        sampling policy's per-token log-probs into ``batch``. ``rewards`` (N_all,) are the combined rewards of every
        process, gathered in rank order; ``beta`` one coefficient or one per local row. With ``advantage: grpo``
        GRPO's advantage takes RLOO's place."""
        mask = batch["completion_mask"]
        if ref is not None:
            trainer._log_kl(old, ref, mask)
        rank, n = trainer.accelerator.process_index, mask.size(0)
        group = U.rloo_advantages if self.advantage == "rloo" else U.grpo_advantages
        seq_adv = group(rewards, trainer.num_generations)[rank * n : (rank + 1) * n]
        if trainer.normalize_advantages:  # normalised over the whole rollout once it is complete (`finish`)
            batch["sequence_advantages"] = seq_adv.to(old.dtype)
        batch["returns"] = U.token_returns(seq_adv.to(old.dtype), old, ref, mask, beta)
        batch["old_per_token_logps"] = old
        return batch

    def finish(self, trainer, batch: dict, rewards: list[float] | None) -> dict:
        """The advantages of the complete rollout: the returns whitened over all its tokens (the paper's rule);
        with batch normalisation, each sequence's advantage normalised over the rollout's sequences on every process
        and given to all its tokens; with GRPO the returns as they are."""
        returns = batch.pop("returns")
        if self.advantage == "rloo" and not trainer.normalize_advantages:
            batch["advantages"] = U.whiten(returns, batch["completion_mask"], trainer._all_reduce_sum)
        elif trainer.normalize_advantages:
            seq = batch.pop("sequence_advantages")
            everyone = trainer.accelerator.gather(seq) if trainer.accelerator.num_processes > 1 else seq
            rank, n = trainer.accelerator.process_index, seq.size(0)
            normalized = U.batch_normalize(everyone)[rank * n : (rank + 1) * n]
            batch["advantages"] = U.token_returns(normalized, returns, None, batch["completion_mask"], 0.0)
        else:
            batch["advantages"] = returns
        return batch

    def advantages(self, trainer, batch: dict, old: torch.Tensor, ref: torch.Tensor | None,
                   rewards_per_func: torch.Tensor, beta: float) -> dict:
        """`returns`, then `finish`: the official advantages, whitened over every token of the rollout."""
        batch = self.returns(trainer, batch, old, ref, trainer._combined_rewards(rewards_per_func), beta)
        return self.finish(trainer, batch, None)

    def loss(self, trainer, model, inputs: dict) -> torch.Tensor | None:
        if "old_per_token_logps" not in inputs:
            return None
        logps, entropies = trainer.policy_logps(model, inputs)
        mask = inputs["completion_mask"]
        loss, clip = U.ppo_loss(logps, inputs["old_per_token_logps"], inputs["advantages"], mask,
                                trainer.epsilon_low, trainer.epsilon_high, self.ratio_level, self.loss_agg_mode)
        accelerator = trainer.accelerator
        metrics = trainer._metrics["train" if trainer.model.training else "eval"]
        if self.entropy_coeff:  # verl: policy loss - entropy_coeff * entropy, aggregated as the loss is
            loss = loss - self.entropy_coeff * U.aggregate(entropies, mask, self.loss_agg_mode)
        if self.kl_loss_coef:  # verl: + kl_loss_coef * k3 KL to the reference, aggregated as the loss is
            kl = U.aggregate(U.k3_kl(logps, inputs["ref_per_token_logps"]), mask, self.loss_agg_mode)
            loss = loss + self.kl_loss_coef * kl
            metrics["kl"].append(accelerator.reduce(kl.detach(), reduction="mean").item())
        n = mask.sum().clamp(min=1)
        metrics["entropy"].append(accelerator.reduce((entropies * mask).sum() / n, reduction="mean").item())
        low = accelerator.reduce(clip["clip_low"], reduction="mean").item()
        high = accelerator.reduce(clip["clip_high"], reduction="mean").item()
        metrics["clip_ratio/low_mean"].append(low)
        metrics["clip_ratio/high_mean"].append(high)
        metrics["clip_ratio/region_mean"].append(low + high)
        return loss


class TrlRule:
    """TRL's own update (sequence-level ratio, KL summed into the reward, no whitening); with tiers (one beta per
    row, balanced tiers) the trainer computes TRL's advantages itself (`frugalthink.rl.tiers.Tiers.trl_advantages`)."""

    def own_kl(self, trainer) -> bool:
        return trainer.tiers.own_kl()

    def scored(self, trainer, batch: dict, inputs: list[dict], old: torch.Tensor, rewards: torch.Tensor,
               beta: float) -> dict:
        if not trainer.tiers.own_kl():
            return batch
        tiers = trainer.tiers
        row_beta = tiers.row_betas(trainer, inputs, beta)
        row_alpha = tiers.row_alphas(trainer, inputs) if tiers.balance else None
        ref = trainer._ref_logps(batch) if beta else old  # beta 0: no KL term (no reference model)
        return tiers.trl_advantages(trainer, batch, old, ref, rewards, row_beta,
                                    normalize=trainer.normalize_advantages and trainer.dynamic is None,
                                    row_alpha=row_alpha)

    def finish(self, trainer, batch: dict, rewards: list[float] | None) -> dict:
        if trainer.dynamic is not None and trainer.normalize_advantages:  # TRL's normalisation, over the final rollout
            batch["advantages"] = U.batch_normalize(batch["advantages"])
        return batch

    def loss(self, trainer, model, inputs: dict) -> None:
        return None


RULES = {"official": OfficialRule, "trl": TrlRule, "drpo": DrpoRule}
ADVANTAGES = ("rloo", "grpo")
# Recipe fields that only the official rule reads (its options above), with the paper's values
OFFICIAL_OPTIONS = {"advantage": "rloo", "kl_loss_coef": 0.0, "entropy_coeff": 0.0,
                    "loss_agg_mode": "seq-mean-token-mean", "ratio_level": "token"}


def make_rule(name: str, drpo_options: dict | None = None, **options):
    """The rule object of an update rule's name: DRPO's with its options, the official one with ``options``."""
    if name == "drpo":
        return DrpoRule(drpo_options)
    return OfficialRule(**options) if name == "official" else RULES[name]()


def check_recipe(recipe) -> None:
    """A recipe's rule options: known values, set only under the rule that reads them, and the combinations the
    published setups do not use refused with the reason."""
    from frugalthink.util.errors import UserError

    if recipe.advantage not in ADVANTAGES:
        raise UserError(f"advantage: unknown {recipe.advantage!r} (one of {', '.join(ADVANTAGES)})")
    if recipe.loss_agg_mode not in U.LOSS_AGG_MODES:
        raise UserError(f"loss_agg_mode: unknown {recipe.loss_agg_mode!r} (one of {', '.join(U.LOSS_AGG_MODES)})")
    if recipe.ratio_level not in ("token", "sequence"):
        raise UserError(f"ratio_level: unknown {recipe.ratio_level!r} (token or sequence)")
    for name in ("kl_loss_coef", "entropy_coeff"):
        if getattr(recipe, name) < 0:
            raise UserError(f"{name} must be >= 0, got {getattr(recipe, name)}")
    changed = [k for k, v in OFFICIAL_OPTIONS.items() if getattr(recipe, k) != v]
    if changed and recipe.update_rule != "official":
        raise UserError(f"{', '.join(changed)}: options of update_rule official, not {recipe.update_rule!r}")
    if (recipe.advantage == "grpo" or recipe.batch_normalize) and recipe.beta and recipe.update_rule == "official":
        what = "advantage grpo" if recipe.advantage == "grpo" else "batch_normalize"
        raise UserError(f"{what}: the KL goes in as a loss there (kl_loss_coef), not in the reward; set beta: 0")
    if recipe.advantage == "grpo" and recipe.batch_normalize:
        raise UserError("advantage grpo normalises within each group already; batch_normalize is DLER's "
                        "alternative to it (use one)")
