"""A conditioned run's tiers inside the trainer (recipe ``alphas``): one KL coefficient per row (``tier_beta``), each
tier's advantages rescaled to the rollout's spread (``tier_balance``, TRL rule), and a sampler that keeps a problem's
tiers in one rollout (``paired_tiers``). The prompt side -- how an alpha is written -- is `frugalthink.tasks.conditioning`.
"""

from __future__ import annotations

import torch

from frugalthink.rl import update_rule as U
from frugalthink.tasks.conditioning import row_betas
from frugalthink.util.errors import UserError


def check_recipe(recipe) -> None:
    """A recipe's tier fields (``alphas``, ``efforts``, ``tier_beta``, ``paired_tiers``, ``tier_balance``);
    ``tier_beta`` keys, text in a saved JSON config, become numbers."""
    bad = [a for a in recipe.alphas if not 0.0 <= a < 1.0]
    if bad:
        raise UserError(f"alphas: every alpha must lie in [0, 1), got {', '.join(f'{a:g}' for a in bad)}")
    if recipe.alphas and recipe.reward != "efficiency":
        raise UserError(f"alphas: alpha-conditioned training needs reward: efficiency, not {recipe.reward!r}")
    if recipe.efforts and not recipe.alphas:
        raise UserError("efforts: named efforts need an alpha-conditioned recipe (alphas: [...])")
    bad = {k: v for k, v in recipe.efforts.items() if v not in recipe.alphas}
    if bad:
        raise UserError(f"efforts: {bad} not among the trained alphas {recipe.alphas}; a named effort must be a tier "
                        "the model was trained on")
    if recipe.tier_beta:
        try:  # keys come back as strings from the saved JSON config
            recipe.tier_beta = {float(k): float(v) for k, v in recipe.tier_beta.items()}
        except (TypeError, ValueError):
            raise UserError(f"tier_beta: expected a mapping alpha -> beta, got {recipe.tier_beta!r}") from None
        if not recipe.alphas:
            raise UserError("tier_beta: a KL coefficient per tier needs an alpha-conditioned recipe (alphas: [...])")
        unknown = sorted(a for a in recipe.tier_beta if a not in recipe.alphas)
        if unknown:
            raise UserError(f"tier_beta: {', '.join(f'{a:g}' for a in unknown)} not among the trained alphas "
                            f"{recipe.alphas}")
        if any(b < 0 for b in recipe.tier_beta.values()):
            raise UserError(f"tier_beta: every beta must be >= 0, got {recipe.tier_beta}")
        if recipe.beta <= 0:
            raise UserError("tier_beta: needs beta > 0 (the reference model is loaded only then); "
                            "a tier without a KL term can say 0 in tier_beta")
        if recipe.update_rule == "drpo":
            raise UserError("tier_beta: update_rule drpo has a KL term of its own (drpo_options)")
    if recipe.paired_tiers:
        if not recipe.alphas:
            raise UserError("paired_tiers: pairs the tiers of an alpha-conditioned recipe (alphas: [...])")
        if recipe.prompts_per_rollout % len(recipe.alphas):
            raise UserError(f"paired_tiers: prompts_per_rollout ({recipe.prompts_per_rollout}) must be a multiple of "
                            f"the number of alphas ({len(recipe.alphas)}), so that a rollout holds whole problems")
    if recipe.tier_balance and not (recipe.alphas or recipe.budget_tiers):
        raise UserError("tier_balance: balances the tiers of an alpha-conditioned or budget-tier recipe (alphas: "
                        "[...] or budget_tiers: [...])")
    if recipe.tier_balance and recipe.update_rule != "trl":
        raise UserError(f"tier_balance: needs update_rule trl, not {recipe.update_rule!r}")


class Tiers:
    """The trainer's tier settings: ``beta`` (alpha -> KL coefficient), ``balance`` and ``block`` (consecutive
    dataset rows that stay in one rollout: the number of alphas under ``paired_tiers``, else 1)."""

    def __init__(self, beta: dict[float, float] | None = None, balance: bool = False, block: int = 1) -> None:
        self.beta, self.balance, self.block = dict(beta or {}), balance, block

    def own_kl(self) -> bool:
        """Under the TRL rule, whether the trainer computes the KL-penalised advantages itself (one beta per row or
        balanced tiers) instead of TRL."""
        return bool(self.beta or self.balance)

    def row_betas(self, trainer, inputs: list[dict], beta: float) -> torch.Tensor:
        """This process's rows' KL coefficients: their tier's ``tier_beta`` entry, else the recipe's ``beta``."""
        return torch.tensor(row_betas([x.get("alpha") for x in inputs], self.beta, beta),
                            device=trainer.accelerator.device)

    def row_alphas(self, trainer, inputs: list[dict]) -> torch.Tensor:
        """This process's rows' tiers: their alphas, or a budget-tier run's tiers (`frugalthink.rl.budgets`)."""
        return torch.tensor([float(x["tier"] if "tier" in x else x["alpha"]) for x in inputs],
                            device=trainer.accelerator.device)

    def trl_advantages(self, trainer, batch: dict, old: torch.Tensor, ref: torch.Tensor, rewards: torch.Tensor,
                       row_beta: torch.Tensor, normalize: bool, row_alpha: torch.Tensor | None = None) -> dict:
        """TRL's advantages (`update_rule.kl_penalised_rloo`) with one KL coefficient per row: the summed k1 KL of
        every sequence and its row's beta are gathered from all processes in rank order, as ``rewards`` are. With
        ``row_alpha`` (a recipe's ``tier_balance``) each tier's advantages are rescaled by `update_rule.tier_balanced`
        over the whole rollout."""
        mask = batch["completion_mask"]
        trainer._log_kl(old, ref, mask)
        kl = ((old - ref) * mask).sum(dim=1)
        accelerator = trainer.accelerator
        if accelerator.num_processes > 1:
            kl, row_beta = accelerator.gather(kl), accelerator.gather(row_beta)
            row_alpha = None if row_alpha is None else accelerator.gather(row_alpha)
        adv = U.kl_penalised_rloo(rewards.to(kl.dtype), kl, row_beta.to(kl.dtype), trainer.num_generations)
        if row_alpha is not None:
            adv = U.tier_balanced(adv, row_alpha)
        if normalize:  # TRL's normalize_advantages, over the whole rollout
            adv = U.batch_normalize(adv)
        rank, n = accelerator.process_index, mask.size(0)
        batch["advantages"] = adv[rank * n : (rank + 1) * n]
        return batch

    def sampler(self, sampler):
        """TRL's sampler, or, with paired tiers, the same sampler over blocks of a problem's tiers."""
        return sampler if self.block == 1 else BlockRepeatSampler(sampler, self.block)


class BlockRepeatSampler:
    """TRL's `RepeatSampler` over blocks of ``block`` consecutive dataset rows (a problem's tiers under
    ``paired_tiers``): the blocks are shuffled instead of the rows, so that a rollout of ``batch_size`` prompts holds
    whole blocks; each prompt is then repeated as TRL repeats it (k samples, reused over the rollout's updates)."""

    def __init__(self, repeat: object, block: int) -> None:
        if repeat.batch_size % block:
            raise ValueError(f"{repeat.batch_size} prompts per rollout do not hold whole blocks of {block}")
        self.repeat, self.block = repeat, block

    def __len__(self) -> int:
        return len(self.repeat)

    def __iter__(self):
        r = self.repeat
        blocks = r.num_samples // self.block
        order = torch.randperm(blocks, generator=r.generator).tolist() if r.shuffle else range(blocks)
        rows = [b * self.block + j for b in order for j in range(self.block)]
        for start in range(0, len(rows) - r.batch_size + 1, r.batch_size):
            chunk = rows[start : start + r.batch_size]
            for _ in range(r.repeat_count):
                for index in chunk:
                    yield from [index] * r.mini_repeat_count
