"""TRL's `RLOOTrainer` with our prompt path and a choice of update rule (recipe field ``update_rule``).

- Prompts: TRL tokenizes plain-text prompts with special tokens added, which doubles the BOS of templates that
  write ``{{bos_token}}`` themselves (R1-Distill). Here every prompt goes through `frugalthink.tasks.prompts.encode_prompt`,
  the function evaluation uses too, so training and evaluation see the same ids.
- ``update_rule="official"``: the update of the paper's code (`frugalthink.rl.update_rule`): RLOO on the scalar
  reward, k1 KL per token in the reward, returns with gamma 1, whitening over all tokens of the rollout on all
  processes, per-token PPO clip averaged per sequence. TRL's generation, reference model, optimizer, checkpoints and
  logging are kept; only advantage construction and the loss are replaced.
- ``update_rule="trl"``: TRL's own update (sequence-level ratio, KL summed into the reward, no whitening).
- ``generation_engine="fast"``: rollouts without vLLM are sampled by `frugalthink.generation.decoding.sample` on the unwrapped
  policy instead of ``generate`` (same distribution: softmax(logits / temperature), no top-k/top-p);
  ``"hf"`` keeps TRL's ``generate`` path.
- LoRA (TRL's ``peft_config``, recipe ``lora:``): the policy is a PEFT model and TRL builds no reference model; both
  rules take the reference log-probs from the policy with its adapters disabled (`_ref_logps`, as TRL does).
"""

from __future__ import annotations

import torch
from trl import RLOOTrainer

from frugalthink.rl import update_rule as U
from frugalthink.tasks.prompts import encode_prompt


class FrugalRLOOTrainer(RLOOTrainer):
    def __init__(self, *args, update_rule: str = "official", generation_engine: str = "fast",
                 dynamic_sampling: bool = False, max_sampling_rounds: int = 3, drpo_options: dict | None = None,
                 tier_beta: dict[float, float] | None = None, tier_balance: bool = False, tier_block: int = 1,
                 **kwargs) -> None:
        if update_rule not in U.UPDATE_RULES:
            raise ValueError(f"update_rule must be one of {U.UPDATE_RULES}, got {update_rule!r}")
        if generation_engine not in ("fast", "hf"):
            raise ValueError(f"generation_engine must be fast or hf, got {generation_engine!r}")
        self.update_rule, self.generation_engine = update_rule, generation_engine
        self.dynamic_sampling, self.max_sampling_rounds = dynamic_sampling, max_sampling_rounds
        self.drpo_options = dict(drpo_options or {})
        self.tier_beta = dict(tier_beta or {})  # alpha -> KL coefficient of a conditioned run's tiers
        if self.tier_beta and update_rule == "drpo":
            raise ValueError("tier_beta: update_rule 'drpo' has a KL term of its own")
        self.tier_balance = tier_balance  # each tier's advantages rescaled to the rollout's spread (TRL rule)
        if tier_balance and update_rule != "trl":
            raise ValueError(f"tier_balance: update_rule 'trl' only, not {update_rule!r}")
        self.tier_block = tier_block  # paired tiers: consecutive dataset rows that stay in one rollout
        self._refill_order: list[int] = []
        self._refill_epoch = 0
        self._capture: dict | None = None
        super().__init__(*args, **kwargs)
        # Each process holds whole groups of k (TRL lays a rollout out group by group, in rank order), so DRPO's
        # per-question terms and dynamic sampling's group choices need a per-process rollout of whole groups.
        local_rows = self.args.per_device_train_batch_size * self.args.steps_per_generation
        if update_rule == "drpo" and self.args.per_device_train_batch_size % self.num_generations:
            raise ValueError("update_rule 'drpo' needs each question's samples in one micro-batch on one process: "
                             f"{self.args.per_device_train_batch_size} rows per micro-batch do not hold whole groups "
                             f"of {self.num_generations}")
        if dynamic_sampling and local_rows % self.num_generations:
            raise ValueError(f"dynamic_sampling needs whole groups on each process: {local_rows} rollout rows per "
                             f"process do not split into groups of {self.num_generations}")
        if self.generation_engine == "fast" and not self.use_vllm:
            from frugalthink.generation.decoding import check_supported

            check_supported(self.model)
            g = self.generation_kwargs
            plain = (g.get("top_p") in (None, 1.0) and g.get("top_k") in (None, 0) and g.get("min_p") is None
                     and g.get("repetition_penalty") in (None, 1.0))
            if not plain:
                raise ValueError("generation_engine 'fast' samples from softmax(logits / temperature) only; "
                                 f"top_p={g.get('top_p')} top_k={g.get('top_k')} min_p={g.get('min_p')} "
                                 f"repetition_penalty={g.get('repetition_penalty')} need generation_engine 'hf'")

    # ------------------------------------------------------------------------------------------ fast rollouts
    def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
        if self.generation_engine != "fast" or self.use_vllm or self.use_transformers_continuous_batching:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields)
        from trl.models import unwrap_model_for_generation

        from frugalthink.generation.decoding import sample

        with unwrap_model_for_generation(
            self.model_wrapped, self.accelerator, gather_deepspeed3_params=self.args.ds3_gather_for_generation,
            generation_kwargs=self.generation_kwargs,
            gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
        ) as model, torch.no_grad(), self._dist.summon_full_params(self.model_wrapped, recurse=False):
            return sample(model, prompt_ids, self.max_completion_length, self.temperature, self.eos_token_ids,
                          self._tokenizer.pad_token_id)

    # ------------------------------------------------------------------------------------------ one prompt path
    def _tokenize_prompts(self, prompts: list):
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("FrugalRLOOTrainer expects prompts rendered to text by frugalthink.tasks.prompts.build_prompt")
        return [encode_prompt(self.processing_class, p) for p in prompts], None, {}

    # ------------------------------------------------------------------------------------------ official rule
    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        out = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if self._capture is not None and "old" not in self._capture:
            self._capture["old"] = out[0]
        return out

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._capture is not None:
            self._capture["rewards"] = rewards
        return rewards

    def _get_train_sampler(self, dataset=None):
        sampler = super()._get_train_sampler(dataset)
        if self.tier_block == 1:
            return sampler
        return BlockRepeatSampler(sampler, self.tier_block)

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        if self.update_rule == "drpo":  # DRPO drops flat groups itself; no dynamic sampling with it
            return self._drpo_batch(*self._score_round(inputs))
        if self.dynamic_sampling:
            batch = self._dynamic_batch(inputs)
        else:
            batch, _ = self._score_round(inputs)
        if self.update_rule == "official":
            batch["advantages"] = U.whiten(batch.pop("returns"), batch["completion_mask"], self._all_reduce_sum)
        elif self.dynamic_sampling and self.normalize_advantages:  # TRL's normalisation, over the final rollout
            batch["advantages"] = U.batch_normalize(batch["advantages"])
        return batch

    def _score_round(self, inputs) -> tuple[dict, list[float]]:
        """One round of TRL's rollout on ``inputs``; returns the batch and the round's gathered scalar rewards.

        Official rule: TRL's rollout runs with beta = 0 (its KL-in-reward off); the sampling policy's per-token
        log-probs and the rewards are kept, and the batch gets the official per-token returns (``returns``, whitened
        by the caller once the rollout is complete). With dynamic sampling TRL's batch normalisation is deferred
        to the caller too, since a rollout may be assembled from several rounds."""
        beta, norm = self.beta, self.normalize_advantages
        official = self.update_rule == "official"
        # TRL's KL-in-reward with one beta per row and / or tier-balanced advantages: the trainer's own advantages
        tiered = bool(self.tier_beta or self.tier_balance) and self.update_rule == "trl"
        self._capture = {}
        if official or tiered:
            self.beta = 0.0
        if self.dynamic_sampling:
            self.normalize_advantages = False
        try:
            batch = super()._generate_and_score_completions(inputs)
            captured = self._capture
        finally:
            self.beta, self.normalize_advantages, self._capture = beta, norm, None
        rewards = self._combined_rewards(captured["rewards"])
        row_beta = self._row_betas(inputs, beta) if self.tier_beta or tiered else beta
        if official:
            batch = self.official_returns(batch, captured["old"], self._ref_logps(batch) if beta else None,
                                          rewards, row_beta)
        elif tiered:
            row_alpha = self._row_alphas(inputs) if self.tier_balance else None
            ref = self._ref_logps(batch) if beta else captured["old"]  # beta 0: no KL term (no reference model)
            batch = self.tiered_trl_advantages(batch, captured["old"], ref, rewards, row_beta,
                                               normalize=norm and not self.dynamic_sampling, row_alpha=row_alpha)
        if self.update_rule == "drpo":
            batch["old_per_token_logps"] = captured["old"]
        return batch, rewards.tolist()

    def _row_betas(self, inputs: list[dict], beta: float) -> torch.Tensor:
        """This process's rows' KL coefficients: their tier's ``tier_beta`` entry, else the recipe's ``beta``."""
        from frugalthink.tasks.conditioning import row_betas

        return torch.tensor(row_betas([x.get("alpha") for x in inputs], self.tier_beta, beta),
                            device=self.accelerator.device)

    def _row_alphas(self, inputs: list[dict]) -> torch.Tensor:
        """This process's rows' alphas (their tiers)."""
        return torch.tensor([float(x["alpha"]) for x in inputs], device=self.accelerator.device)

    def tiered_trl_advantages(self, batch: dict, old: torch.Tensor, ref: torch.Tensor, rewards: torch.Tensor,
                              row_beta: torch.Tensor, normalize: bool, row_alpha: torch.Tensor | None = None) -> dict:
        """TRL's advantages (`update_rule.kl_penalised_rloo`) with one KL coefficient per row: the summed k1 KL of
        every sequence and its row's beta are gathered from all processes in rank order, as ``rewards`` are. With
        ``row_alpha`` (a recipe's ``tier_balance``) each tier's advantages are rescaled by `update_rule.tier_balanced`
        over the whole rollout."""
        mask = batch["completion_mask"]
        self._log_kl(old, ref, mask)
        kl = ((old - ref) * mask).sum(dim=1)
        if self.accelerator.num_processes > 1:
            kl, row_beta = self.accelerator.gather(kl), self.accelerator.gather(row_beta)
            row_alpha = None if row_alpha is None else self.accelerator.gather(row_alpha)
        adv = U.kl_penalised_rloo(rewards.to(kl.dtype), kl, row_beta.to(kl.dtype), self.num_generations)
        if row_alpha is not None:
            adv = U.tier_balanced(adv, row_alpha)
        if normalize:  # TRL's normalize_advantages, over the whole rollout
            adv = U.batch_normalize(adv)
        rank, n = self.accelerator.process_index, mask.size(0)
        batch["advantages"] = adv[rank * n : (rank + 1) * n]
        return batch

    def _log_kl(self, old: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> None:
        kl = ((old - ref) * mask).sum() / mask.sum().clamp(min=1)
        self._metrics["train"]["kl"].append(self.accelerator.reduce(kl, reduction="mean").item())

    def _ref_logps(self, batch: dict) -> torch.Tensor:
        """Per-token log-probs of the reference model (B, T): TRL's ``ref_model``, or, when the policy is a PEFT model
        (recipe ``lora:``, for which TRL builds no reference), the policy with its adapters disabled -- the base
        model -- as TRL computes its own KL then (a pretrained adapter's frozen copy "ref" when there is one)."""
        from accelerate.utils import is_peft_model
        from trl.models.utils import disable_gradient_checkpointing
        from trl.trainer.utils import use_adapter

        mask = batch["completion_mask"]
        args = (torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
                torch.cat([batch["prompt_mask"], mask], dim=1), mask.size(1))
        size = self.args.per_device_train_batch_size
        if self.ref_model is not None:
            with torch.no_grad():
                return super()._get_per_token_logps_and_entropies(self.ref_model, *args, batch_size=size)[0]
        policy = self.accelerator.unwrap_model(self.model)
        if not is_peft_model(policy):
            raise ValueError("the KL term needs a reference model: TRL builds one when beta > 0, or the policy is a "
                             "PEFT model whose adapters can be disabled")
        with (torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
              use_adapter(policy, adapter_name="ref" if "ref" in policy.peft_config else None)):
            return super()._get_per_token_logps_and_entropies(self.model, *args, batch_size=size)[0]

    def _combined_rewards(self, rewards_per_func: torch.Tensor) -> torch.Tensor:
        """As TRL combines them: weighted sum over reward functions, optional clipping; frugalthink's rewards are
        never None, so no sample is unscorable here."""
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        if self.reward_clip_range:
            rewards = rewards.clamp(min=self.reward_clip_range[0], max=self.reward_clip_range[1])
        return rewards

    def official_returns(self, batch: dict, old: torch.Tensor, ref: torch.Tensor | None, rewards: torch.Tensor,
                         beta: float | torch.Tensor) -> dict:
        """Put the official per-token returns (RLOO advantage at the last token, k1 KL per token, gamma 1) and the
        sampling policy's per-token log-probs into ``batch``. ``rewards`` (N_all,) are the combined rewards of every
        process, gathered in rank order; ``beta`` one coefficient or one per local row."""
        mask = batch["completion_mask"]
        if ref is not None:
            self._log_kl(old, ref, mask)
        rank, n = self.accelerator.process_index, mask.size(0)
        seq_adv = U.rloo_advantages(rewards, self.num_generations)[rank * n : (rank + 1) * n]
        batch["returns"] = U.token_returns(seq_adv.to(old.dtype), old, ref, mask, beta)
        batch["old_per_token_logps"] = old
        return batch

    def official_advantages(self, batch: dict, old: torch.Tensor, ref: torch.Tensor | None,
                            rewards_per_func: torch.Tensor, beta: float) -> dict:
        """`official_returns`, whitened over every token of the rollout on all processes: the official advantages."""
        batch = self.official_returns(batch, old, ref, self._combined_rewards(rewards_per_func), beta)
        batch["advantages"] = U.whiten(batch.pop("returns"), batch["completion_mask"], self._all_reduce_sum)
        return batch

    # ------------------------------------------------------------------------------------------ DRPO
    def _prepare_inputs(self, generation_batch):
        """DRPO: TRL's buffering of a rollout over its micro-batches, split in order instead of after a row shuffle
        (as DRPO's published code splits its mini-batches), so that each micro-batch holds whole groups."""
        if self.update_rule != "drpo" or not self.model.training:
            return super()._prepare_inputs(generation_batch)
        from trl.trainer.utils import split_tensor_dict

        steps = self.args.steps_per_generation
        if self._step % (steps * self.num_iterations) == 0 or self._buffered_inputs is None:
            self._buffered_inputs = split_tensor_dict(self._generate_and_score_completions(generation_batch), steps)
        return self._buffered_inputs[self._step % steps]

    def _drpo_batch(self, batch: dict, rewards: list[float]) -> dict:
        """DRPO's per-sample inputs (`frugalthink.peers.drpo`): correct = reward > 0.5 (DRPO's rewards are 0/1), the
        group of each sample, and the length weights of the correct ones. Each micro-batch of each process holds
        whole groups, and its loss is the mean over its questions; with equal question counts everywhere, the
        average over micro-batches and processes is the mean over the step's questions, as on one process."""
        from frugalthink.peers.drpo import DEFAULTS, process_inputs

        lam = {**DEFAULTS, **self.drpo_options}["lambda"]
        correct, groups, weights = process_inputs(rewards, batch["completion_mask"].sum(dim=1),
                                                  self.accelerator.process_index, self.num_generations,
                                                  self.max_completion_length, lam)
        batch.update(drpo_correct=correct, drpo_group=groups, drpo_weight=weights)
        return batch

    def _drpo_loss(self, model, inputs):
        from frugalthink.peers.drpo import drpo_loss

        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, torch.cat([prompt_ids, completion_ids], dim=1), torch.cat([prompt_mask, mask], dim=1),
            completion_ids.size(1), compute_entropy=True)
        loss, info = drpo_loss(logps, inputs["old_per_token_logps"], mask, inputs["drpo_correct"],
                               inputs["drpo_weight"], inputs["drpo_group"], self.drpo_options)
        metrics = self._metrics["train"]
        n = mask.sum().clamp(min=1)
        metrics["entropy"].append((entropies * mask).sum().item() / n.item())
        metrics["kl"].append(info["kl"].item())
        return loss

    # ------------------------------------------------------------------------------------------ dynamic sampling
    def _dynamic_batch(self, inputs) -> dict:
        """DAPO / DLER dynamic sampling (`frugalthink.peers.dynamic_sampling`): groups whose rewards are all equal are
        dropped and refilled from further prompts, at most ``max_sampling_rounds`` rounds per rollout."""
        from frugalthink.peers import dynamic_sampling as D

        k = self.num_generations
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        n_local = len(inputs)
        n_groups = n_local * world // k  # of the whole rollout; every process decides alike on the gathered rewards
        batches, informative, inputs_round = [], [], inputs
        while True:
            batch, rewards = self._score_round(inputs_round)
            batches.append(self._gather_rows(batch) if world > 1 else batch)
            informative.append(D.informative_groups(rewards, k))
            if sum(map(len, informative)) >= n_groups or len(batches) >= self.max_sampling_rounds:
                break
            inputs_round = self._refill_inputs(n_groups)[rank * n_local : (rank + 1) * n_local]
        picked = D.choose_groups(informative, n_groups)
        mine = D.process_share(picked, rank, world)
        parts = [D.take_rows(batches[r], torch.arange(g * k, (g + 1) * k, device=batches[r]["completion_ids"].device))
                 for r, g in mine]
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/rounds"].append(float(len(batches)))
        metrics["dynamic_sampling/informative_first_round"].append(len(informative[0]) / n_groups)
        metrics["dynamic_sampling/informative_final"].append(
            sum(1 for r, g in picked if g in informative[r]) / n_groups)
        return D.merge_rows(parts, self._tokenizer.pad_token_id)

    def _gather_rows(self, batch: dict) -> dict:
        """Every process's rows of ``batch``, in rank order (the rollout's global layout): 2D tensors padded to the
        widest process first, prompts on the left, completions on the right, as `dynamic_sampling.merge_rows`."""
        from frugalthink.peers.dynamic_sampling import LEFT_PADDED

        out = {}
        for key, value in batch.items():
            if value.dim() > 1:
                fill = self._tokenizer.pad_token_id if key.endswith("_ids") else 0
                value = self.accelerator.pad_across_processes(value, dim=1, pad_index=fill,
                                                              pad_first=key in LEFT_PADDED)
            out[key] = self.accelerator.gather(value)
        return out

    def _refill_inputs(self, n_groups: int) -> list[dict]:
        """The next ``n_groups`` training prompts of a seeded walk over the dataset (a new order each pass), each
        ``k`` times, as TRL's sampler lays a rollout out."""
        import random

        rows = []
        for _ in range(n_groups):
            if not self._refill_order:
                self._refill_epoch += 1
                order = list(range(len(self.train_dataset)))
                random.Random(f"refill-{self.args.seed}-{self._refill_epoch}").shuffle(order)
                self._refill_order = order
            example = self.train_dataset[self._refill_order.pop()]
            rows += [dict(example) for _ in range(self.num_generations)]
        return rows

    def _all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(t, reduction="sum") if self.accelerator.num_processes > 1 else t

    def _compute_loss(self, model, inputs):
        if self.update_rule == "drpo" and "drpo_weight" in inputs:
            return self._drpo_loss(model, inputs)
        if self.update_rule == "trl" or "old_per_token_logps" not in inputs:
            return super()._compute_loss(model, inputs)
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, torch.cat([prompt_ids, completion_ids], dim=1), torch.cat([prompt_mask, mask], dim=1),
            completion_ids.size(1), compute_entropy=True)
        loss, clip = U.ppo_token_loss(logps, inputs["old_per_token_logps"], inputs["advantages"], mask,
                                      self.epsilon_low, self.epsilon_high)
        metrics = self._metrics["train" if self.model.training else "eval"]
        n = mask.sum().clamp(min=1)
        metrics["entropy"].append(self.accelerator.reduce((entropies * mask).sum() / n, reduction="mean").item())
        low = self.accelerator.reduce(clip["clip_low"], reduction="mean").item()
        high = self.accelerator.reduce(clip["clip_high"], reduction="mean").item()
        metrics["clip_ratio/low_mean"].append(low)
        metrics["clip_ratio/high_mean"].append(high)
        metrics["clip_ratio/region_mean"].append(low + high)
        return loss


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
