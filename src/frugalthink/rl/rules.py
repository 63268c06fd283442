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
    over all tokens of the rollout on all processes, per-token PPO clip averaged per sequence."""

    def own_kl(self, trainer) -> bool:
        return True

    def scored(self, trainer, batch: dict, inputs: list[dict], old: torch.Tensor, rewards: torch.Tensor,
               beta: float) -> dict:
        row_beta = trainer.tiers.row_betas(trainer, inputs, beta) if trainer.tiers.beta else beta
        return self.returns(trainer, batch, old, trainer._ref_logps(batch) if beta else None, rewards, row_beta)

    def returns(self, trainer, batch: dict, old: torch.Tensor, ref: torch.Tensor | None, rewards: torch.Tensor,
                beta: float | torch.Tensor) -> dict:
        """Put the official per-token returns (RLOO advantage at the last token, k1 KL per token, gamma 1) and the
        sampling policy's per-token log-probs into ``batch``. ``rewards`` (N_all,) are the combined rewards of every
        process, gathered in rank order; ``beta`` one coefficient or one per local row."""
        mask = batch["completion_mask"]
        if ref is not None:
            trainer._log_kl(old, ref, mask)
        rank, n = trainer.accelerator.process_index, mask.size(0)
        seq_adv = U.rloo_advantages(rewards, trainer.num_generations)[rank * n : (rank + 1) * n]
        batch["returns"] = U.token_returns(seq_adv.to(old.dtype), old, ref, mask, beta)
        batch["old_per_token_logps"] = old
        return batch

    def finish(self, trainer, batch: dict, rewards: list[float] | None) -> dict:
        batch["advantages"] = U.whiten(batch.pop("returns"), batch["completion_mask"], trainer._all_reduce_sum)
        return batch

    def advantages(self, trainer, batch: dict, old: torch.Tensor, ref: torch.Tensor | None,
                   rewards_per_func: torch.Tensor, beta: float) -> dict:
        """`returns`, whitened over every token of the rollout on all processes: the official advantages."""
        batch = self.returns(trainer, batch, old, ref, trainer._combined_rewards(rewards_per_func), beta)
        return self.finish(trainer, batch, None)

    def loss(self, trainer, model, inputs: dict) -> torch.Tensor | None:
        if "old_per_token_logps" not in inputs:
            return None
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            model, torch.cat([prompt_ids, completion_ids], dim=1), torch.cat([prompt_mask, mask], dim=1),
            completion_ids.size(1), compute_entropy=True)
        loss, clip = U.ppo_token_loss(logps, inputs["old_per_token_logps"], inputs["advantages"], mask,
                                      trainer.epsilon_low, trainer.epsilon_high)
        accelerator = trainer.accelerator
        metrics = trainer._metrics["train" if trainer.model.training else "eval"]
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
