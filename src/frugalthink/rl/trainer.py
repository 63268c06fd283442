"""TRL's `RLOOTrainer` with our prompt path, fast rollouts, and the recipe's features, each in its own module: the
update rule (`frugalthink.rl.rules`; DRPO's in `frugalthink.peers.drpo`), dynamic sampling
(`frugalthink.peers.dynamic_sampling`) and a conditioned run's tiers (`frugalthink.rl.tiers`). The trainer only
dispatches to them; it trusts a recipe checked by `frugalthink.rl.recipe.RLRecipe.validate`.

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

from frugalthink.peers.dynamic_sampling import DynamicSampling
from frugalthink.rl.rules import make_rule
from frugalthink.rl.tiers import Tiers
from frugalthink.tasks.prompts import encode_prompt


class FrugalRLOOTrainer(RLOOTrainer):
    def __init__(self, *args, update_rule: str = "official", generation_engine: str = "fast",
                 dynamic_sampling: bool = False, max_sampling_rounds: int = 3, drpo_options: dict | None = None,
                 tier_beta: dict[float, float] | None = None, tier_balance: bool = False, tier_block: int = 1,
                 rule_options: dict | None = None, sampling_limit: str = "fill", reward_beta: float | None = None,
                 **kwargs) -> None:
        self.generation_engine = generation_engine
        self.rule = make_rule(update_rule, drpo_options, **(rule_options or {}))
        self.dynamic = DynamicSampling(max_sampling_rounds, sampling_limit, tier_block) if dynamic_sampling else None
        self.tiers = Tiers(tier_beta, tier_balance, tier_block)
        self._capture: dict | None = None
        self._row_caps: list[int | None] | None = None  # this round's per-row rollout caps (budget tiers)
        super().__init__(*args, **kwargs)
        if reward_beta is not None:  # the KL in the reward; TRL's beta was raised to build a reference model
            self.beta = reward_beta
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
                          self._tokenizer.pad_token_id, caps=self._row_caps)

    # ------------------------------------------------------------------------------------------ one prompt path
    def _tokenize_prompts(self, prompts: list):
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("FrugalRLOOTrainer expects prompts rendered to text by frugalthink.tasks.prompts.build_prompt")
        return [encode_prompt(self.processing_class, p) for p in prompts], None, {}

    # ------------------------------------------------------------------------------------------ a rollout
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
        return self.tiers.sampler(super()._get_train_sampler(dataset))

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        if self.dynamic is not None:
            batch, rewards = self.dynamic.rollout(self, inputs), None
        else:
            batch, rewards = self._score_round(inputs)
        return self.rule.finish(self, batch, rewards)

    def _score_round(self, inputs) -> tuple[dict, list[float]]:
        """One round of TRL's rollout on ``inputs``, passed through the rule's ``scored``; returns the batch and the
        round's gathered scalar rewards. When the rule puts the KL term in itself, TRL's rollout runs with beta 0 and
        the sampling policy's per-token log-probs and the rewards are kept for it; with dynamic sampling TRL's batch
        normalisation is deferred to the rule's ``finish``, since a rollout may be assembled from several rounds."""
        beta, norm = self.beta, self.normalize_advantages
        self._capture = {}
        if self.rule.own_kl(self):
            self.beta = 0.0
        if self.dynamic is not None:
            self.normalize_advantages = False
        if inputs and "cap" in inputs[0]:  # a budget tier's rollout stops at its budget (0: the run's cap)
            self._row_caps = [int(x["cap"]) or None for x in inputs]
        try:
            batch = super()._generate_and_score_completions(inputs)
            captured = self._capture
        finally:
            self.beta, self.normalize_advantages, self._capture, self._row_caps = beta, norm, None, None
        rewards = self._combined_rewards(captured["rewards"])
        batch = self.rule.scored(self, batch, inputs, captured["old"], rewards, beta)
        return batch, rewards.tolist()

    def _prepare_inputs(self, generation_batch):
        split_in_order = getattr(self.rule, "prepare_inputs", None)  # DRPO: micro-batches of whole groups
        if split_in_order is None or not self.model.training:
            return super()._prepare_inputs(generation_batch)
        return split_in_order(self, generation_batch)

    def _compute_loss(self, model, inputs):
        loss = self.rule.loss(self, model, inputs)
        return super()._compute_loss(model, inputs) if loss is None else loss

    # ------------------------------------------------------------------------------------------ shared by the rules
    def policy_logps(self, model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token log-probs and entropies (B, T) of ``model`` on a micro-batch's completions, with gradients."""
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, torch.cat([prompt_ids, completion_ids], dim=1), torch.cat([prompt_mask, mask], dim=1),
            completion_ids.size(1), compute_entropy=True)
        return logps, entropies

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

    def _all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(t, reduction="sum") if self.accelerator.num_processes > 1 else t
