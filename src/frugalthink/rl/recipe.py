"""An RL run's recipe: its fields, checked once (each feature checks its own), and TRL's `RLOOConfig` built from it.

The update rule is the recipe's ``update_rule``: ``official`` (the paper's code: per-token ratio and clip, k1 KL
per token, whitened token advantages; `frugalthink.rl.update_rule`) or ``trl`` (TRL's sequence-level RLOO). Both take
two optimizer steps per rollout (256 samples, 128 per step) as the paper does, so the ratio moves off 1 on the
second step and the clip can act: ``steps_per_generation = updates_per_rollout * gradient_accumulation_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from frugalthink.config import require_positive
from frugalthink.rl import rewards as R
from frugalthink.util.errors import UserError


@dataclass
class LoraRecipe:
    """A recipe's ``lora:`` section: train LoRA adapters (Hu et al., 2021, arXiv:2106.09685) instead of every weight.

    Each targeted Linear ``W`` becomes ``W + (alpha / r) * B @ A`` with ``A`` (r, in) random, ``B`` (out, r) zero at
    the start, so the first rollout samples the base model; only ``A`` and ``B`` are trained. The reference model of
    the KL term is the base model (the policy with its adapters disabled). The default targets are every Linear of a
    Llama / Qwen / SmolLM2 block; the LM head and embeddings stay frozen.
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0  # only 0: RL here runs without dropout (`validate`)
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    def validate(self) -> None:
        if self.r < 1:
            raise UserError(f"lora.r must be a positive integer (the adapters' rank), got {self.r}")
        if self.alpha <= 0:
            raise UserError(f"lora.alpha must be positive (updates are scaled by alpha / r), got {self.alpha}")
        if self.dropout != 0.0:  # TRL's disable_dropout (build_rloo_config) zeroes every nn.Dropout, LoRA's too
            raise UserError(f"lora.dropout must be 0: the trainer turns dropout off so that the sampling and the "
                            f"updated policy's log-probs agree, and {self.dropout} would be ignored")
        if not self.target_modules or not all(name.strip() for name in self.target_modules):
            raise UserError(f"lora.target_modules must name at least one module (e.g. q_proj), got "
                            f"{self.target_modules!r}")

    def peft_config(self):
        """The section as peft's `LoraConfig` for a causal LM (TRL's ``peft_config``)."""
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), task_type="CAUSAL_LM")


@dataclass
class RLRecipe:
    """One RL run (see recipes/*.yaml). ``rollouts`` is the paper's "steps" (generation rounds)."""

    model: str
    task: str = "chain"
    task_options: dict = field(default_factory=dict)
    train_split: str = "train"
    num_prompts: int | None = None
    alpha: float = 0.2
    reward: str = "efficiency"
    reward_options: dict = field(default_factory=dict)
    # Alpha-conditioned training (`frugalthink.tasks.conditioning`): each prompt gets one of these alphas, written into it;
    # empty = one model per alpha (``alpha`` above). ``efforts`` names alphas for `eval --effort`.
    alphas: list[float] = field(default_factory=list)
    efforts: dict[str, float] = field(default_factory=dict)
    # KL coefficient per trained alpha (alpha -> beta) in a conditioned run; an alpha not named uses ``beta``.
    # A strong anchor on the low tiers holds them near the reference while the penalty moves the high ones
    # (`frugalthink.tasks.conditioning.row_betas`, docs/results/conditioned.md).
    tier_beta: dict[float, float] = field(default_factory=dict)
    # Rescale each tier's advantages to the spread of the whole rollout (`update_rule.tier_balanced`), so that every
    # tier moves the shared weights alike; TRL rule only.
    tier_balance: bool = False
    # Every training problem at every trained alpha, a problem's tiers side by side in one rollout (the same number
    # of rollouts then covers len(alphas) times fewer problems); prompts_per_rollout must hold whole blocks.
    paired_tiers: bool = False
    # One model, every tier, by budgets (`frugalthink.rl.budgets`): every problem rolled out at every tier in one
    # rollout, the tier written into the prompt; B(x) = tier x L(x), L(x) the base's mean correct length on x
    # (``budget_unit: ratio``), or the tier itself in tokens (``tokens``); a ratio >= 1 is the top tier (correctness
    # at the full cap). Needs a budget reward (``budget_cutoff``, ``budget_l1``, ``budget_efficiency``).
    # ``budget_efforts`` names tiers for `eval --effort`; ``base_lengths`` a measured L(x) (a base_lengths.json or
    # an eval folder of the base), else ``base_samples`` samples per training problem are drawn before training;
    # ``cap_rollouts``: under the cutoff a tier's rollouts stop at B(x) (fast engine).
    budget_tiers: list[float] = field(default_factory=list)
    budget_unit: str = "ratio"
    budget_efforts: dict[str, float] = field(default_factory=dict)
    base_lengths: str | None = None
    base_samples: int = 8
    cap_rollouts: bool = True
    # An optional warm start (a `frugalthink shortest --method tiers` recipe): the model is first fine-tuned on its
    # own correct samples bucketed into the tiers (OUT/warm), RL starts from it, and its pool is L(x)
    warm_start: str | None = None
    num_generations: int = 8
    prompts_per_rollout: int = 32
    updates_per_rollout: int = 2
    gradient_accumulation_steps: int = 1
    rollouts: int = 100
    learning_rate: float = 5e-6
    # AdamW's beta2 (beta1 is 0.9 everywhere): transformers' default 0.999; the official run (OpenRLHF) uses 0.95
    adam_beta2: float = 0.999
    warmup_steps: int = 0  # linear warm-up (optimizer steps), then constant; the official run uses 6
    update_rule: str = "official"
    beta: float = 0.001
    epsilon: float = 0.2
    temperature: float = 1.0
    max_completion_length: int = 32768
    group_std_normalize: bool = False
    # An upper clip of its own (DAPO's clip-higher: 0.28 in DAPO, DLER, Laser). batch_normalize: (A - batch mean) /
    # batch std over the rollout's sequences (TRL's normalize_advantages); under the official rule it replaces the
    # token whitening (DLER's own normalisation, group-centred rewards whitened per token, is the official rule's).
    epsilon_high: float | None = None
    batch_normalize: bool = False
    # The peers' published setups under the official rule (verl's names; `frugalthink.rl.rules.OfficialRule`):
    # advantage rloo | grpo (GRPO: (r - group mean) / (group std + 1e-6), no whitening); kl_loss_coef: the k3 KL to
    # the reference as a loss term (verl's use_kl_loss with low_var_kl; beta is the KL in the reward); entropy_coeff:
    # an entropy bonus; loss_agg_mode seq-mean-token-mean (the paper's) | token-mean (verl's default); ratio_level
    # token (PPO) | sequence (TRL's RLOO: one ratio per completion).
    advantage: str = "rloo"
    kl_loss_coef: float = 0.0
    entropy_coeff: float = 0.0
    loss_agg_mode: str = "seq-mean-token-mean"
    ratio_level: str = "token"
    # DAPO / DLER dynamic sampling: groups whose rewards are all equal are dropped and refilled from more prompts,
    # at most max_sampling_rounds generation rounds per rollout (DAPO's max_num_gen_batches: 10 there; 0 = no limit,
    # DLER's); at the limit, sampling_limit "fill" (the rollout is filled with flat groups, in their order) or
    # "error" (DAPO: stop, the data are too easy or too hard).
    dynamic_sampling: bool = False
    max_sampling_rounds: int = 3
    sampling_limit: str = "fill"
    # update_rule: drpo (frugalthink.peers.drpo): lambda, tau, kl_delta, kl_beta; the paper's values by default
    drpo_options: dict = field(default_factory=dict)
    # LoRA adapters instead of full fine-tuning (`LoraRecipe`); None (the default) trains every weight
    lora: LoraRecipe | None = None
    # bf16 autocast over fp32 master weights (`load_dtype`); under DeepSpeed, bf16 weights with its fp32 master copy
    bf16: bool = False
    # How rollouts are sampled without vLLM: "fast" (frugalthink.generation.decoding, the default) or "hf" (transformers'
    # generate, TRL's own path). Both sample from softmax(logits / temperature), top_k 0, top_p 1.
    generation_engine: str = "fast"
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    gradient_checkpointing: bool = False
    save_every: int = 10
    seed: int = 0
    threads: int | None = None
    num_processes: int = 1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    deepspeed: str | None = None
    report_to: list[str] = field(default_factory=list)  # passed to TRL: "tensorboard", "wandb", ...
    # How the paper evaluates a trained model: {"tasks": {name: samples}, "temperature", "top_p", "max_new_tokens"};
    # and "budgets" (absolute token budgets of the summary; `frugalthink.eval.evaluate.check_eval_section`).
    eval: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Checked once, each group of fields by the feature that owns it; the trainer trusts a validated recipe."""
        from frugalthink.eval.evaluate import check_eval_section
        from frugalthink.peers import drpo, dynamic_sampling
        from frugalthink.rl import budgets, rewards, rules, tiers

        self._check_core()
        rules.check_recipe(self)
        check_eval_section(self)
        tiers.check_recipe(self)
        budgets.check_recipe(self)
        rewards.check_recipe(self)
        dynamic_sampling.check_recipe(self)
        drpo.check_recipe(self)
        self._check_update()
        if self.lora is not None:
            self.lora.validate()

    def _check_core(self) -> None:
        """The fields of the RLOO core: the rule, the engine, the optimizer, the sizes."""
        from frugalthink.rl.rules import RULES

        if not 0.0 <= self.alpha < 1.0:
            raise UserError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.update_rule not in RULES:
            raise UserError(f"update_rule: unknown {self.update_rule!r} (one of {', '.join(RULES)})")
        if self.generation_engine not in ("fast", "hf"):
            raise UserError(f"generation_engine: unknown {self.generation_engine!r} (fast or hf)")
        if self.warmup_steps < 0:
            raise UserError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise UserError(f"adam_beta2 must be in (0, 1) (0.95 in the official run), got {self.adam_beta2}")
        if self.num_generations < 2:
            raise UserError(f"num_generations must be >= 2 (RLOO needs a leave-one-out baseline), got {self.num_generations}")
        require_positive(self, ("rollouts", "prompts_per_rollout", "updates_per_rollout", "save_every",
                                "max_completion_length", "learning_rate", "temperature", "gradient_accumulation_steps",
                                "num_processes"))

    def _check_update(self) -> None:
        """How a rollout splits into updates, and the update's clip and KL."""
        samples = self.prompts_per_rollout * self.num_generations
        per_update = self.updates_per_rollout * self.gradient_accumulation_steps * self.num_processes
        if samples % per_update:
            raise UserError(
                f"prompts_per_rollout*num_generations ({samples}) must split evenly over updates_per_rollout * "
                f"gradient_accumulation_steps * num_processes ({per_update})"
            )
        if self.num_prompts is not None and self.num_prompts < 1:
            raise UserError(f"num_prompts must be a positive integer (or left out for all), got {self.num_prompts}")
        if self.beta < 0 or not 0 < self.epsilon < 1:
            raise UserError(f"beta must be >= 0 and epsilon in (0, 1), got beta={self.beta}, epsilon={self.epsilon}")
        if self.epsilon_high is not None and not 0 < self.epsilon_high < 1:
            raise UserError(f"epsilon_high must be in (0, 1) (the upper clip, 0.28 in DAPO/DLER), got {self.epsilon_high}")

    def resolved_reward_options(self) -> dict:
        """The reward's options with defaults filled in (cap-relative ones from ``max_completion_length``)."""
        return R.resolve_options(self.reward, self.reward_options, self.max_completion_length)

    @property
    def per_device_batch_size(self) -> int:
        return (self.prompts_per_rollout * self.num_generations) // (
            self.updates_per_rollout * self.gradient_accumulation_steps * self.num_processes
        )

    @property
    def max_steps(self) -> int:
        """Optimizer steps: two per rollout in the paper's setting."""
        return self.rollouts * self.updates_per_rollout


def build_rloo_config(recipe: RLRecipe, out_dir: str | Path):
    """TRL `RLOOConfig` for a recipe; builds on CPU without any weights."""
    from trl import RLOOConfig

    return RLOOConfig(
        output_dir=str(out_dir),
        seed=recipe.seed,
        data_seed=recipe.seed,
        learning_rate=recipe.learning_rate,
        adam_beta2=recipe.adam_beta2,
        lr_scheduler_type="constant_with_warmup" if recipe.warmup_steps else "constant",
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        per_device_train_batch_size=recipe.per_device_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        steps_per_generation=recipe.updates_per_rollout * recipe.gradient_accumulation_steps,
        num_generations=recipe.num_generations,
        max_completion_length=recipe.max_completion_length,
        temperature=recipe.temperature,
        top_p=1.0,
        top_k=0,
        # TRL builds the reference model only when its beta > 0; the KL as a loss needs it too (the trainer's own
        # KL-in-reward coefficient is passed to it apart: `reward_beta`)
        beta=recipe.beta or recipe.kl_loss_coef,
        epsilon=recipe.epsilon,
        epsilon_high=recipe.epsilon_high,
        num_iterations=1,
        # No per-batch normalisation by default: alpha's reward gaps reach the gradient at their true scale (DLER's
        # setup turns it on: batch_normalize).
        normalize_advantages=recipe.batch_normalize,
        max_steps=recipe.max_steps,
        save_strategy="steps",
        save_steps=recipe.save_every * recipe.updates_per_rollout,
        save_only_model=False,
        logging_steps=1,
        report_to=list(recipe.report_to),
        bf16=recipe.bf16,
        gradient_checkpointing=recipe.gradient_checkpointing,
        use_vllm=recipe.use_vllm,
        vllm_mode=recipe.vllm_mode,
        use_cpu=not _has_gpu(),
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=False,
        deepspeed=recipe.deepspeed,
        disable_dropout=True,
    )


def load_dtype(recipe: RLRecipe):
    """The dtype the policy is loaded in: bf16 only under DeepSpeed, which keeps an fp32 master copy of bf16
    weights; else fp32, the Trainer's ``bf16`` being autocast around fp32 master weights. A pure-bf16 AdamW would
    lose every update below bf16's spacing (lr 5e-6 on a weight of 0.02, whose spacing is 1.2e-4)."""
    import os

    import torch
    from transformers.utils.generic import strtobool

    # accelerate's DeepSpeed switch, read as TrainingArguments reads it
    deepspeed = bool(recipe.deepspeed) or strtobool(os.environ.get("ACCELERATE_USE_DEEPSPEED", "false"))
    return torch.bfloat16 if recipe.bf16 and deepspeed else torch.float32


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


