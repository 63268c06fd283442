"""RL glue on TRL's RLOOTrainer: recipe -> RLOOConfig, the efficiency reward callable, per-step logging.

What runs is TRL's RLOO: k samples per prompt, leave-one-out baseline, no critic, PPO-style clipped *sequence*
ratio, KL to the reference folded into the reward. The paper takes two optimizer steps per rollout (256 samples,
128 per step), so the ratio moves off 1 on the second step and the clip can act; we mirror that with
``steps_per_generation = updates_per_rollout * gradient_accumulation_steps``.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from frugalthink import rewards as R
from frugalthink.config import require_positive
from frugalthink.errors import UserError
from frugalthink.tasks.base import Problem

# reward -> {option: default}. "efficiency" is the method (its knob is the recipe's ``alpha``); the rest are the
# peers of docs/comparison.md, each a pure function in `frugalthink.rewards`.
REWARD_OPTIONS: dict[str, dict] = {
    "efficiency": {},
    "kimi": {"weight": 1.0},
    "l1_max": {"alpha": 0.0003, "delta": 0.5, "targets": [100, 4000]},
    "shorter_better": {"alpha": 2.0, "beta": 0.001},
    "grpo_lead": {"alpha": 0.1},
    "cosine": {"max_len": None, "min_value_wrong": -1.0, "max_value_wrong": -0.5, "min_value_correct": 0.5,
               "max_value_correct": 1.0},
    "dapo": {"max_len": None, "cache": None},
}


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
    num_generations: int = 8
    prompts_per_rollout: int = 32
    updates_per_rollout: int = 2
    gradient_accumulation_steps: int = 1
    rollouts: int = 100
    learning_rate: float = 5e-6
    beta: float = 0.001
    epsilon: float = 0.2
    temperature: float = 1.0
    max_completion_length: int = 32768
    group_std_normalize: bool = False
    bf16: bool = False
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

    def validate(self) -> None:
        if not 0.0 <= self.alpha < 1.0:
            raise UserError(f"alpha must be in [0, 1), got {self.alpha}")
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
        samples = self.prompts_per_rollout * self.num_generations
        per_update = self.updates_per_rollout * self.gradient_accumulation_steps * self.num_processes
        if samples % per_update:
            raise UserError(
                f"prompts_per_rollout*num_generations ({samples}) must split evenly over updates_per_rollout * "
                f"gradient_accumulation_steps * num_processes ({per_update})"
            )
        require_positive(self, ("rollouts", "prompts_per_rollout", "updates_per_rollout", "save_every",
                                "max_completion_length", "learning_rate"))

    def resolved_reward_options(self) -> dict:
        """The reward's options with defaults filled in (length caps default to ``max_completion_length``)."""
        opts = {**REWARD_OPTIONS[self.reward], **self.reward_options}
        if self.reward in ("cosine", "dapo") and opts.get("max_len") is None:
            opts["max_len"] = self.max_completion_length
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
        lr_scheduler_type="constant",
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
        num_iterations=1,
        # No per-batch normalisation either: alpha's reward gaps must reach the gradient at their true scale.
        normalize_advantages=False,
        max_steps=recipe.max_steps,
        save_strategy="steps",
        save_steps=recipe.save_every * recipe.updates_per_rollout,
        save_only_model=False,
        logging_steps=1,
        report_to=[],
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


class LengthReward:
    """TRL reward function: grade with the one grader, then the recipe's reward (ours or a peer's) per prompt group.

    A prompt's k completions can sit on different ranks when training on several processes, so the group
    statistics are computed after gathering (correct, length, group) from every rank; each rank returns its slice.
    Truncated completions (no EOS) are graded wrong for every reward.
    """

    def __init__(self, task, alpha: float, eos_token_ids, group_std: bool = False, reward: str = "efficiency",
                 options: dict | None = None) -> None:
        self.task, self.alpha, self.group_std = task, alpha, group_std
        self.kind, self.options = reward, dict(options or {})
        self.__name__ = reward
        self.eos = set(eos_token_ids)
        self._overlong = None
        if reward == "dapo":
            from trl.rewards import get_soft_overlong_punishment

            self._overlong = get_soft_overlong_punishment(self.options["max_len"], self.options["cache"])

    def __call__(self, prompts, completions, completion_ids, answer, problem_id, **kwargs) -> list[float]:
        truncated = [not ids or ids[-1] not in self.eos for ids in completion_ids]
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        problems = [Problem(id=str(pid), question="", answer=str(a)) for pid, a in zip(problem_id, answer, strict=True)]
        grades = self.task.grade(texts, problems, truncated)
        correct = [g.correct for g in grades]
        lengths = [len(ids) for ids in completion_ids]
        groups = [str(pid) for pid in problem_id]
        targets = list(kwargs.get("target") or [0] * len(lengths))
        all_correct, all_lengths, all_groups, all_trunc, all_targets, offset = _gather_lists(
            correct, lengths, groups, truncated, targets)
        rewards = self.rewards(all_correct, all_lengths, all_groups, all_targets)
        if self.group_std:
            rewards = R.group_std_normalize(rewards, all_groups)
        log_metric = kwargs.get("log_metric")
        if log_metric:
            for name, value in batch_metrics(all_correct, all_lengths, all_groups, all_trunc).items():
                log_metric(name, value)
        return rewards[offset : offset + len(completions)]

    def rewards(self, correct, lengths, groups, targets) -> list[float]:
        o = self.options
        if self.kind == "efficiency":
            return R.efficiency_rewards(correct, lengths, groups, self.alpha)
        if self.kind == "kimi":
            return R.kimi_length_rewards(correct, lengths, groups, weight=o["weight"])
        if self.kind == "l1_max":
            return R.l1_max_rewards(correct, lengths, targets, alpha=o["alpha"], delta=o["delta"])
        if self.kind == "shorter_better":
            return R.shorter_better_rewards(correct, lengths, groups, alpha=o["alpha"], beta=o["beta"])
        if self.kind == "grpo_lead":
            return R.grpo_lead_rewards(correct, lengths, groups, alpha=o["alpha"])
        if self.kind == "cosine":
            return R.cosine_rewards(correct, lengths, **o)
        if self.kind == "dapo":
            # TRL's soft overlong punishment (it only reads the ids' lengths) + DAPO's +1/-1 correctness.
            penalty = self._overlong([[0] * n for n in lengths])
            return [(1.0 if ok else -1.0) + p for ok, p in zip(correct, penalty, strict=True)]
        raise ValueError(f"unknown reward {self.kind!r}")


def l1_targets(problem_ids: list[str], low: int, high: int, seed: int) -> list[int]:
    """L1's per-prompt token budget, uniform in [low, high], fixed by the prompt id and seed (resumable)."""
    import random

    return [random.Random(f"l1-{seed}-{pid}").randint(low, high) for pid in problem_ids]


def batch_metrics(correct, lengths, groups, truncated) -> dict[str, float]:
    """Per-rollout statistics logged every step (computed on the gathered batch, identical on every rank)."""
    by_group: dict[str, list[bool]] = defaultdict(list)
    for c, g in zip(correct, groups, strict=True):
        by_group[g].append(c)
    return {
        "accuracy": sum(correct) / len(correct),
        "tokens_mean": statistics.fmean(lengths),
        "tokens_median": statistics.median(lengths),
        "frac_groups_all_correct": sum(all(v) for v in by_group.values()) / len(by_group),
        "frac_groups_all_wrong": sum(not any(v) for v in by_group.values()) / len(by_group),
        "truncated_frac": sum(truncated) / len(truncated),
    }


# Keys copied from TRL's logs into train_log.jsonl under our names.
LOG_KEYS = {
    "reward": "reward",
    "accuracy": "accuracy",
    "tokens_mean": "tokens_mean",
    "tokens_median": "tokens_median",
    "frac_groups_all_correct": "frac_all_correct",
    "frac_groups_all_wrong": "frac_all_wrong",
    "truncated_frac": "truncated_frac",
    "kl": "kl",
    "clip_ratio/region_mean": "clip_ratio",
    "entropy": "entropy",
    "loss": "loss",
    "learning_rate": "lr",
}


def make_log_callback(log_path: Path, console: bool = True):
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step}
            for src, dst in LOG_KEYS.items():
                for key in (src, f"train/{src}"):
                    if key in logs:
                        row[dst] = logs[key]
            if len(row) == 1:
                return
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if console and "reward" in row:
                parts = [f"step {row['step']:4d}"]
                for key, fmt in (("reward", "{:.3f}"), ("accuracy", "{:.3f}"), ("tokens_mean", "{:.1f}"),
                                 ("tokens_median", "{:.0f}"), ("frac_all_correct", "{:.2f}"),
                                 ("frac_all_wrong", "{:.2f}"), ("kl", "{:.4f}"), ("clip_ratio", "{:.3f}")):
                    if key in row:
                        parts.append(f"{key} " + fmt.format(row[key]))
                print(" | ".join(parts), flush=True)

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
