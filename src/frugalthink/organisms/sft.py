"""Supervised fine-tuning of the tiny base reasoner on freshly sampled traces of an embedded task (chain, tally).

A plain PyTorch loop rather than TRL's SFTTrainer: the data are generated on the fly (every step sees new traces,
so there is no dataset to map or pack), and at this model size the Trainer's per-step overhead is a large share of
the step time (see docs/benchmark.md). The loss is on completion tokens only (prompt masked), EOS included.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from frugalthink.organisms.tiny import TinyModelConfig
from frugalthink.tasks import EMBEDDED as EMBEDDED_TASKS
from frugalthink.tasks import chain, tally
from frugalthink.tasks.chain import ChainConfig, prompt_of
from frugalthink.tasks.tally import TallyConfig


@dataclass
class BaseRecipe:
    """Recipe for `frugalthink base` (see recipes/tiny/base.yaml and recipes/tiny/tally/base.yaml). ``task`` names
    the embedded task the traces come from; its settings are the section of the same name."""

    task: str = "chain"
    chain: ChainConfig = field(default_factory=ChainConfig)
    tally: TallyConfig = field(default_factory=TallyConfig)
    model: TinyModelConfig = field(default_factory=TinyModelConfig)
    steps: int = 2000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    # seed 1: both seeds learn with the curriculum, seed 0 less well at levels 6-8 (dev/LOG.md). One and two
    # threads gave bit-identical weights here; two are ~1.6x faster.
    seed: int = 1
    threads: int = 2
    log_every: int = 50
    answer_only: bool = False
    # Curriculum: checks and filler start rare and reach their full rate at this fraction of training. Clean short
    # traces teach the lookups and the arithmetic quickly; without this the loss sat on a plateau for a variable,
    # schedule-dependent number of steps (dev/LOG.md).
    verbosity_ramp: float = 0.4
    # ... and the hardest level grows from min_level + 1 to max_level over the same fraction: the first few hundred
    # steps are short problems, which are learned fast and cost little.
    level_ramp: float = 0.4

    def validate(self) -> None:
        from frugalthink.util.errors import UserError

        for name in ("steps", "batch_size", "threads", "log_every"):
            if getattr(self, name) <= 0:
                raise UserError(f"base recipe: {name} must be positive, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise UserError(f"base recipe: lr must be in (0, 1), got {self.lr}")
        if self.task not in EMBEDDED_TASKS:
            raise UserError(f"base recipe: task must be one of {', '.join(EMBEDDED_TASKS)}, got {self.task!r}")

    @property
    def task_config(self) -> ChainConfig | TallyConfig:
        return getattr(self, self.task)


def sample_trace(recipe: BaseRecipe, rng: random.Random, level: int, verbosity: float) -> tuple[str, str]:
    """(prompt, completion) of one fresh training problem of the recipe's task at ``level``."""
    cfg = recipe.task_config
    if recipe.task == "tally":
        digits = tally.sample_digits(rng, level, "train", cfg.bucket)
        if recipe.answer_only:
            return prompt_of(digits), tally.answer_only_completion(digits, cfg.modulus, cfg.answer_mod)
        if rng.random() < cfg.practice_share:
            return tally.practice_prompt(digits), tally.verbose_completion(digits, rng, cfg, verbosity, terse=True)
        return prompt_of(digits), tally.verbose_completion(digits, rng, cfg, verbosity)
    if verbosity < 1.0:
        cfg = dataclasses.replace(cfg, check_prob=tuple(verbosity * p for p in cfg.check_prob),
                                  filler_prob=tuple(verbosity * p for p in cfg.filler_prob))
    digits = chain.sample_digits(rng, level, test=False, bucket=cfg.test_bucket)
    completion = chain.answer_only_completion(digits) if recipe.answer_only else chain.verbose_completion(digits, rng, cfg)
    return prompt_of(digits), completion


def make_batch(tokenizer, rng: random.Random, recipe: BaseRecipe, verbosity: float = 1.0,
               max_level: int | None = None):
    """A batch of (prompt + completion + EOS) sequences, labels masked to the completion.

    ``verbosity`` in [0, 1] scales the check and filler probabilities (the curriculum); chain's wrong steps stay
    always checked.
    """
    import torch

    cfg = recipe.task_config
    # One level per batch: sequences of a level have nearly equal length, so almost nothing is padding
    # (mixed-level batches spent ~40% of the step on pad tokens).
    level = rng.randint(cfg.min_level, max_level or cfg.max_level)
    seqs, labels = [], []
    for _ in range(recipe.batch_size):
        prompt, completion = sample_trace(recipe, rng, level, verbosity)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(len(s) for s in seqs)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lb) in enumerate(zip(seqs, labels, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(lb)] = torch.tensor(lb)
        att[i, : len(s)] = 1
    return ids, att, lab


def curriculum(recipe: BaseRecipe, step: int) -> tuple[float, int]:
    """(verbosity, hardest level) at ``step``: both ramp linearly, then stay at the full task."""
    v_ramp = recipe.verbosity_ramp * recipe.steps
    verbosity = min(1.0, 0.1 + 0.9 * step / v_ramp) if v_ramp > 0 else 1.0
    lo, hi = recipe.task_config.min_level, recipe.task_config.max_level
    l_ramp = recipe.level_ramp * recipe.steps
    start = min(hi, lo + 1)
    level = hi if l_ramp <= 0 else min(hi, start + int((hi - start + 1) * step / l_ramp))
    return verbosity, level


def train_base(model, tokenizer, recipe: BaseRecipe, log_path: Path, progress: Callable | None = None) -> dict:
    """Run the SFT loop in place on ``model``; append one JSON line per logged step to ``log_path``."""
    import torch

    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    rng = random.Random(f"sft-{recipe.seed}")
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return recipe.lr * (step + 1) / recipe.warmup_steps
        frac = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return recipe.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    model.train()
    t0 = time.perf_counter()
    running = None
    with log_path.open("a") as log:
        for step in range(recipe.steps):
            verbosity, max_level = curriculum(recipe, step)
            ids, att, lab = make_batch(tokenizer, rng, recipe, verbosity, max_level)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            if progress:
                progress(step + 1, running)
            if (step + 1) % recipe.log_every == 0 or step + 1 == recipe.steps:
                rec = {"step": step + 1, "loss": round(running, 5), "lr": lr_at(step),
                       "elapsed_s": round(time.perf_counter() - t0, 2)}
                log.write(json.dumps(rec) + "\n")
                log.flush()
    model.eval()
    return {"steps": recipe.steps, "final_loss": running, "wall_s": time.perf_counter() - t0}
