"""RL glue on TRL's RLOOTrainer: recipe -> RLOOConfig, the reward callable, per-step logging and health checks.

The update rule is the recipe's ``update_rule``: ``official`` (the paper's code: per-token ratio and clip, k1 KL
per token, whitened token advantages; `frugalthink.update_rule`) or ``trl`` (TRL's sequence-level RLOO). Both take
two optimizer steps per rollout (256 samples, 128 per step) as the paper does, so the ratio moves off 1 on the
second step and the clip can act: ``steps_per_generation = updates_per_rollout * gradient_accumulation_steps``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from frugalthink import rewards as R
from frugalthink.config import require_positive
from frugalthink.errors import UserError
from frugalthink.evaluation import percentile
from frugalthink.tasks.base import Problem

# reward -> {option: default}: the papers' values, from the one registry (`frugalthink.rewards.REWARDS`).
REWARD_OPTIONS: dict[str, dict] = {name: spec.defaults for name, spec in R.REWARDS.items()}


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
    # Alpha-conditioned training (`frugalthink.conditioning`): each prompt gets one of these alphas, written into it;
    # empty = one model per alpha (``alpha`` above). ``efforts`` names alphas for `eval --effort`.
    alphas: list[float] = field(default_factory=list)
    efforts: dict[str, float] = field(default_factory=dict)
    # KL coefficient per trained alpha (alpha -> beta) in a conditioned run; an alpha not named uses ``beta``.
    # A strong anchor on the low tiers holds them near the reference while the penalty moves the high ones
    # (`frugalthink.conditioning.row_betas`, docs/results.md).
    tier_beta: dict[float, float] = field(default_factory=dict)
    # Rescale each tier's advantages to the spread of the whole rollout (`update_rule.tier_balanced`), so that every
    # tier moves the shared weights alike; TRL rule only.
    tier_balance: bool = False
    # Every training problem at every trained alpha, a problem's tiers side by side in one rollout (the same number
    # of rollouts then covers len(alphas) times fewer problems); prompts_per_rollout must hold whole blocks.
    paired_tiers: bool = False
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
    # DLER's optimisation options (NVlabs/DLER): a higher upper clip (0.28 there) and batch-wise normalisation of the
    # advantages, (A - batch mean) / batch std over the rollout's sequences (TRL's normalize_advantages; the
    # official rule already whitens every token of the rollout, so it takes no extra normalisation).
    epsilon_high: float | None = None
    batch_normalize: bool = False
    # DAPO / DLER dynamic sampling: groups whose rewards are all equal are dropped and refilled from more prompts,
    # at most max_sampling_rounds generation rounds per rollout (DAPO's max_num_gen_batches); one process only.
    dynamic_sampling: bool = False
    max_sampling_rounds: int = 3
    # update_rule: drpo (frugalthink.drpo): lambda, tau, kl_delta, kl_beta; the paper's values by default
    drpo_options: dict = field(default_factory=dict)
    # LoRA adapters instead of full fine-tuning (`LoraRecipe`); None (the default) trains every weight
    lora: LoraRecipe | None = None
    # bf16 autocast over fp32 master weights (`load_dtype`); under DeepSpeed, bf16 weights with its fp32 master copy
    bf16: bool = False
    # How rollouts are sampled without vLLM: "fast" (frugalthink.decoding, the default) or "hf" (transformers'
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
    # top_p must be 1.0 (the samplers have no nucleus, so another value is refused rather than ignored).
    eval: dict = field(default_factory=dict)

    def validate(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise UserError(f"alpha must be in [0, 1), got {self.alpha}")
        from frugalthink.update_rule import UPDATE_RULES

        if self.update_rule not in UPDATE_RULES:
            raise UserError(f"update_rule: unknown {self.update_rule!r} (one of {', '.join(UPDATE_RULES)})")
        self._validate_eval()
        if self.generation_engine not in ("fast", "hf"):
            raise UserError(f"generation_engine: unknown {self.generation_engine!r} (fast or hf)")
        if self.warmup_steps < 0:
            raise UserError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise UserError(f"adam_beta2 must be in (0, 1) (0.95 in the official run), got {self.adam_beta2}")
        self._validate_conditioning()
        if self.reward not in REWARD_OPTIONS:
            raise UserError(f"reward: unknown {self.reward!r} (one of {', '.join(REWARD_OPTIONS)})")
        unknown = set(self.reward_options) - set(REWARD_OPTIONS[self.reward])
        if unknown:
            raise UserError(f"reward_options: {', '.join(sorted(unknown))} not an option of reward {self.reward!r} "
                            f"(options: {', '.join(REWARD_OPTIONS[self.reward]) or 'none'})")
        if self.reward == "l1_max":
            lo, hi = self.resolved_reward_options()["targets"]
            if not 0 < lo <= hi:
                raise UserError(f"reward_options.targets must be [low, high] with 0 < low <= high, got {[lo, hi]}")
        if self.num_generations < 2:
            raise UserError(f"num_generations must be >= 2 (RLOO needs a leave-one-out baseline), got {self.num_generations}")
        require_positive(self, ("rollouts", "prompts_per_rollout", "updates_per_rollout", "save_every",
                                "max_completion_length", "learning_rate", "temperature", "gradient_accumulation_steps",
                                "num_processes", "max_sampling_rounds"))
        if (self.dynamic_sampling or self.update_rule == "drpo") and self.prompts_per_rollout % self.num_processes:
            what = "dynamic_sampling" if self.dynamic_sampling else "update_rule drpo"
            raise UserError(f"{what}: each process must hold whole prompt groups: prompts_per_rollout "
                            f"({self.prompts_per_rollout}) must be a multiple of num_processes ({self.num_processes})")
        self._validate_drpo()
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
        if self.batch_normalize and self.update_rule == "official":
            raise UserError("batch_normalize: the official rule already whitens the rollout's token advantages; "
                            "use it with update_rule: trl")
        if self.lora is not None:
            self.lora.validate()

    def _validate_conditioning(self) -> None:
        bad = [a for a in self.alphas if not 0.0 <= a < 1.0]
        if bad:
            raise UserError(f"alphas: every alpha must lie in [0, 1), got {', '.join(f'{a:g}' for a in bad)}")
        if self.alphas and self.reward != "efficiency":
            raise UserError(f"alphas: alpha-conditioned training needs reward: efficiency, not {self.reward!r}")
        if self.efforts and not self.alphas:
            raise UserError("efforts: named efforts need an alpha-conditioned recipe (alphas: [...])")
        bad = {k: v for k, v in self.efforts.items() if v not in self.alphas}
        if bad:
            raise UserError(f"efforts: {bad} not among the trained alphas {self.alphas}; a named effort must be a tier "
                            "the model was trained on")
        if self.tier_beta:
            try:  # keys come back as strings from the saved JSON config
                self.tier_beta = {float(k): float(v) for k, v in self.tier_beta.items()}
            except (TypeError, ValueError):
                raise UserError(f"tier_beta: expected a mapping alpha -> beta, got {self.tier_beta!r}") from None
            if not self.alphas:
                raise UserError("tier_beta: a KL coefficient per tier needs an alpha-conditioned recipe (alphas: [...])")
            unknown = sorted(a for a in self.tier_beta if a not in self.alphas)
            if unknown:
                raise UserError(f"tier_beta: {', '.join(f'{a:g}' for a in unknown)} not among the trained alphas "
                                f"{self.alphas}")
            if any(b < 0 for b in self.tier_beta.values()):
                raise UserError(f"tier_beta: every beta must be >= 0, got {self.tier_beta}")
            if self.beta <= 0:
                raise UserError("tier_beta: needs beta > 0 (the reference model is loaded only then); "
                                "a tier without a KL term can say 0 in tier_beta")
            if self.update_rule == "drpo":
                raise UserError("tier_beta: update_rule drpo has a KL term of its own (drpo_options)")
        if self.paired_tiers:
            if not self.alphas:
                raise UserError("paired_tiers: pairs the tiers of an alpha-conditioned recipe (alphas: [...])")
            if self.prompts_per_rollout % len(self.alphas):
                raise UserError(f"paired_tiers: prompts_per_rollout ({self.prompts_per_rollout}) must be a multiple of "
                                f"the number of alphas ({len(self.alphas)}), so that a rollout holds whole problems")
            if self.dynamic_sampling:
                raise UserError("paired_tiers: dynamic_sampling refills single groups and would split the tiers")
        if self.tier_balance and not self.alphas:
            raise UserError("tier_balance: balances the tiers of an alpha-conditioned recipe (alphas: [...])")
        if self.tier_balance and self.update_rule != "trl":
            raise UserError(f"tier_balance: needs update_rule trl, not {self.update_rule!r}")

    def _validate_eval(self) -> None:
        from frugalthink.tasks import BENCHMARKS, EMBEDDED

        known = {"tasks", "temperature", "top_p", "max_new_tokens", "message"}
        unknown = set(self.eval) - known
        if unknown:
            raise UserError(f"eval: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        top_p = self.eval.get("top_p", 1.0)
        if top_p != 1.0:  # every backend samples from softmax(logits / T) (frugalthink.generation); no nucleus
            raise UserError(f"eval.top_p: {top_p} would be ignored: evaluation samples with top_p 1.0 on every "
                            "backend; set eval.top_p: 1.0 (or remove it)")
        tasks = self.eval.get("tasks", {})
        if not isinstance(tasks, dict):
            raise UserError(f"eval.tasks: expected a mapping task -> samples, got {tasks!r}")
        for name, n in tasks.items():
            if name not in BENCHMARKS + EMBEDDED:
                raise UserError(f"eval.tasks: unknown task {name!r} (one of {', '.join(BENCHMARKS + EMBEDDED)})")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise UserError(f"eval.tasks.{name}: samples must be a positive integer, got {n!r}")

    def _validate_drpo(self) -> None:
        from frugalthink.drpo import DEFAULTS

        unknown = set(self.drpo_options) - set(DEFAULTS)
        if unknown:
            raise UserError(f"drpo_options: {', '.join(sorted(unknown))} unknown (options: {', '.join(DEFAULTS)})")
        if self.update_rule != "drpo":
            return
        if self.per_device_batch_size % self.num_generations:
            raise UserError(f"update_rule drpo: a question's samples share one loss term, so each micro-batch must "
                            f"hold whole groups: prompts_per_rollout * num_generations / (updates_per_rollout * "
                            f"gradient_accumulation_steps * num_processes) = {self.per_device_batch_size} is not a "
                            f"multiple of num_generations ({self.num_generations})")
        if self.beta:
            raise UserError(f"update_rule drpo: beta must be 0 (DRPO has no reference model; its KL hinge is "
                            f"against the sampling policy), got {self.beta}")
        if self.dynamic_sampling:
            raise UserError("update_rule drpo: dynamic_sampling must be off (DRPO drops one-sided groups itself)")

    def resolved_reward_options(self) -> dict:
        """The reward's options with defaults filled in (cap-relative ones from ``max_completion_length``)."""
        opts = {**REWARD_OPTIONS[self.reward], **self.reward_options}
        for name, share in R.REWARDS[self.reward].from_cap.items():
            if opts.get(name) is None:
                opts[name] = max(1, int(self.max_completion_length * share))
        if self.reward == "dapo" and opts.get("cache") is None:
            opts["cache"] = max(1, opts["max_len"] // 5)  # DAPO: a 4096-token cache of 20480
        return opts

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
        beta=recipe.beta,
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
    returns its slice. Completions are decoded from their ids with `frugalthink.prompts.decode_completion`, the
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
        from frugalthink.prompts import decode_completion, opens_thinking

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
        repeated = ([R.repeats_itself(list(ids)) for ids in completion_ids] if self.spec.needs_repetition
                    else [False] * len(lengths))
        all_correct, all_lengths, all_trunc, all_targets, all_alphas, all_formed, all_rep, offset = _gather_lists(
            correct, lengths, truncated, targets, alphas, formed, repeated)
        if len(all_correct) % self.k:
            raise ValueError(f"{len(all_correct)} completions do not form groups of num_generations={self.k}")
        all_groups = [i // self.k for i in range(len(all_correct))]
        rewards = self.rewards(all_correct, all_lengths, all_groups, all_targets, all_alphas, all_formed, all_rep)
        if self.group_std:
            rewards = R.group_std_normalize(rewards, all_groups)
        log_metric = kwargs.get("log_metric")
        if log_metric:
            for name, value in batch_metrics(all_correct, all_lengths, all_groups, all_trunc).items():
                log_metric(name, value)
            for name, value in tier_metrics(all_correct, all_lengths, all_alphas).items():
                log_metric(name, value)
        return rewards[offset : offset + len(completions)]

    def rewards(self, correct, lengths, groups, targets, alphas=None, formed=None, repeated=None) -> list[float]:
        """The reward of every sample; with per-sample ``alphas`` (a conditioned run, constant within a group) each
        alpha's groups are scored with that alpha. ``formed``: the sample has a final answer (default: correct);
        ``repeated``: it loops (`rewards.repeats_itself`; default: none does)."""
        alphas = alphas or [self.alpha] * len(correct)
        formed = formed if formed is not None else list(correct)
        repeated = repeated if repeated is not None else [False] * len(correct)
        options = self.options
        if self.monitor is not None:  # Laser-D/DE: this moment's targets; a band without one: the longest response
            options = {**options, "bucket_targets": self.monitor.bucket_targets(fallback=max(lengths))}
        out = [0.0] * len(correct)
        for a in sorted(set(alphas)):
            idx = [i for i, x in enumerate(alphas) if x == a]
            part = self.spec.compute([correct[i] for i in idx], [lengths[i] for i in idx], [groups[i] for i in idx],
                                     [targets[i] for i in idx], [formed[i] for i in idx], a, options,
                                     [repeated[i] for i in idx])
            for i, r in zip(idx, part, strict=True):
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


def tier_metrics(correct, lengths, alphas) -> dict[str, float]:
    """A conditioned run's accuracy and mean tokens per tier (``tier/<alpha>/accuracy``, ``.../tokens_mean``); empty
    for a run with one alpha. The first thing to read in such a run: do the tiers' lengths come apart?

    >>> tier_metrics([True, False, True, True], [10, 20, 4, 6], [0.0, 0.0, 0.4, 0.4])
    {'tier/0/accuracy': 0.5, 'tier/0/tokens_mean': 15.0, 'tier/0.4/accuracy': 1.0, 'tier/0.4/tokens_mean': 5.0}
    """
    tiers = sorted(set(alphas))
    if len(tiers) < 2:
        return {}
    out = {}
    for a in tiers:
        idx = [i for i, x in enumerate(alphas) if x == a]
        out[f"tier/{a:g}/accuracy"] = sum(correct[i] for i in idx) / len(idx)
        out[f"tier/{a:g}/tokens_mean"] = statistics.fmean(lengths[i] for i in idx)
    return out


# Keys copied from TRL's logs into train_log.jsonl under our names.
LOG_KEYS = {
    "reward": "reward",
    "accuracy": "accuracy",
    "tokens_mean": "tokens_mean",
    "tokens_median": "tokens_median",
    "tokens_correct_mean": "tokens_correct_mean",
    "tokens_correct_p90": "tokens_correct_p90",
    "tokens_wrong_mean": "tokens_wrong_mean",
    "tokens_wrong_p90": "tokens_wrong_p90",
    "frac_groups_all_correct": "frac_all_correct",
    "frac_groups_all_wrong": "frac_all_wrong",
    "truncated_frac": "truncated_frac",
    "generated_tokens": "generated_tokens",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "loss": "loss",
    "learning_rate": "lr",
    "dynamic_sampling/rounds": "sampling_rounds",
    "dynamic_sampling/informative_first_round": "informative_first_round",
    "dynamic_sampling/informative_final": "informative_final",
}
CONSOLE = (("reward", "{:.3f}"), ("accuracy", "{:.3f}"), ("tokens_mean", "{:.1f}"), ("tokens_correct_mean", "{:.1f}"),
           ("tokens_wrong_mean", "{:.1f}"), ("frac_all_correct", "{:.2f}"), ("frac_all_wrong", "{:.2f}"),
           ("truncated_frac", "{:.2f}"), ("kl", "{:.4f}"), ("clip_ratio", "{:.3f}"), ("entropy", "{:.3f}"),
           ("sampling_rounds", "{:.0f}"), ("informative_final", "{:.2f}"), ("s_per_rollout", "{:.1f}"),
           ("gen_tokens_per_s", "{:.0f}"))


def health_warnings(row: dict, history: list[dict]) -> list[str]:
    """Plain-words warnings for one log row, given the rows before it (the checks a user of RL runs asks first)."""
    out = []
    no_signal = row.get("frac_all_correct", 0.0) + row.get("frac_all_wrong", 0.0)
    if no_signal > 0.9:
        out.append(f"{no_signal:.0%} of prompt groups are all right or all wrong: they carry no learning signal "
                   "(data too easy or too hard for this model)")
    if row.get("truncated_frac", 0.0) > 0.2:
        out.append(f"{row['truncated_frac']:.0%} of completions hit max_completion_length and are graded wrong; "
                   "raise the limit or expect the length penalty to be dominated by truncation")
    past = [h["kl"] for h in history[-10:] if isinstance(h.get("kl"), float) and math.isfinite(h["kl"])]
    kl = row.get("kl")
    if past and isinstance(kl, float) and kl > 1e-3 and kl > 5 * max(statistics.median(past), 1e-3):
        out.append(f"KL to the reference jumped to {kl:.4g} (median of the last {len(past)} logged steps "
                   f"{statistics.median(past):.3g}); the learning rate may be too high")
    # A sequence-level clip ratio spikes to 0.1-0.2 in healthy runs here; a third of the batch clipped is not healthy.
    if row.get("clip_ratio", 0.0) > 0.3:
        out.append(f"{row['clip_ratio']:.0%} of the batch (of sequences, or of tokens under the official rule) was "
                   "clipped: the policy moved far within one rollout; "
                   "lower the learning rate or the updates per rollout")
    return out


def make_log_callback(log_path: Path, console: bool = True, updates_per_rollout: int = 1):
    """One JSON line per optimizer step in ``log_path`` and one console line per step, with health warnings.

    The row of a rollout's last update also carries ``s_per_rollout`` (wall time of the rollout: sampling, grading
    and all its updates) and ``gen_tokens_per_s`` (tokens generated in the rollout over that time).
    """
    import time

    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def __init__(self) -> None:
            self.history: list[dict] = []
            self.t_rollout = time.perf_counter()
            self.generated = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_rollout = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step}
            for src, dst in LOG_KEYS.items():
                for key in (src, f"train/{src}"):
                    value = logs.get(key)
                    if isinstance(value, int | float) and math.isfinite(value):
                        row[dst] = value
            for key, value in logs.items():  # a conditioned run's per-tier metrics (`tier_metrics`)
                name = key.removeprefix("train/")
                if name.startswith("tier/") and isinstance(value, int | float) and math.isfinite(value):
                    row[name] = value
            if len(row) == 1:
                return
            self.generated = row.get("generated_tokens", self.generated)
            if state.global_step % updates_per_rollout == 0:  # the last update of a rollout
                now = time.perf_counter()
                row["s_per_rollout"] = now - self.t_rollout
                if self.generated is not None:
                    row["gen_tokens_per_s"] = self.generated / max(row["s_per_rollout"], 1e-9)
                self.t_rollout, self.generated = now, None
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if console:
                parts = [f"step {row['step']:4d}"]
                parts += [f"{key} " + fmt.format(row[key]) for key, fmt in CONSOLE if key in row]
                tiers = sorted(((k.split("/")[1], v) for k, v in row.items() if k.startswith("tier/") and
                                k.endswith("/tokens_mean")), key=lambda t: float(t[0]))
                if tiers:
                    parts.append("tokens by alpha " + " ".join(f"{a}:{v:.0f}" for a, v in tiers))
                print(" | ".join(parts), flush=True)
                for warning in health_warnings(row, self.history):
                    print(f"warning (step {row['step']}): {warning}", flush=True)
            self.history.append(row)

    return JsonlLogger()


def make_fault_callback():
    """Fault injection for the resume test: ``FRUGALTHINK_KILL_AT_STEP=N`` makes the process SIGKILL itself right
    after the checkpoint of step N is saved -- the same as a ``kill -9`` from outside, at a known moment."""
    import os
    import signal

    from transformers import TrainerCallback

    kill_at = os.environ.get("FRUGALTHINK_KILL_AT_STEP")
    if not kill_at:
        return None

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= int(kill_at):
                os.kill(os.getpid(), signal.SIGKILL)

    return KillAfterSave()
