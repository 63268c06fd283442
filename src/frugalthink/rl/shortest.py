"""`frugalthink shortest`: the offline baselines -- SFT on the shortest correct of k self-generated samples, and DPO
on (shortest correct, longest correct) pairs -- with TRL's SFTTrainer / DPOTrainer; and ``method: tiers``, the
optional warm start of a budget-tier model: SFT on the model's own correct samples bucketed into its tiers by length
(`frugalthink.rl.budgets.warm_start_targets`), each written under its tier's prompt.

1. pool: k samples per training prompt from the model itself (temperature 1, as in RL), graded by the one grader;
   it is a `frugalthink eval` run on the train split, so it is resumable and can be shared by SFT and DPO;
2. data: `frugalthink.peers.shortest` picks the targets / pairs;
3. train, save a Hugging Face model in ``--out``.
Generation budget: ``num_prompts * samples`` samples, by default the same number the RL runs draw
(60 rollouts x 16 prompts x 8).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from frugalthink.config import apply_overrides, from_dict, load_yaml, require_positive, write_run_metadata
from frugalthink.util.errors import UserError
from frugalthink.util.outdir import claim

FINISHED = "train_summary.json"


@dataclass
class ShortestRecipe:
    model: str
    method: str = "sft"  # sft | dpo | tiers
    # method tiers: the budget tiers (and their unit) of the budget-tier run it warm-starts (`frugalthink.rl.budgets`)
    tiers: list[float] = field(default_factory=list)
    budget_unit: str = "ratio"
    task: str = "chain"
    task_options: dict = field(default_factory=dict)
    train_split: str = "train"
    num_prompts: int = 960
    samples: int = 8
    temperature: float = 1.0
    max_new_tokens: int = 256
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 2e-4
    beta: float = 0.1  # DPO
    sft_weight: float = 0.0  # DPO: add this times the SFT loss on the chosen answer (RPO-style; 0 = plain DPO)
    seed: int = 0
    threads: int | None = 2

    def validate(self) -> None:
        if self.method not in ("sft", "dpo", "tiers"):
            raise UserError(f"method must be sft, dpo or tiers, got {self.method!r}")
        if self.method == "tiers" and not self.tiers:
            raise UserError("method tiers: name the budget tiers to warm-start (tiers: [1.0, 0.6, 0.4])")
        if self.method != "tiers" and self.tiers:
            raise UserError(f"tiers: read by method tiers only, not {self.method!r}")
        require_positive(self, ("num_prompts", "samples", "max_new_tokens", "epochs", "batch_size"))
        if self.sft_weight < 0:
            raise UserError(f"sft_weight must be >= 0, got {self.sft_weight}")
        if self.method == "dpo" and self.samples < 2:
            raise UserError("dpo needs samples >= 2 (a short and a long correct answer per prompt)")


def sample_pool(recipe: ShortestRecipe, pool_dir: str | Path, quiet: bool = False) -> list[dict]:
    """k samples per training prompt from ``recipe.model`` (a resumable eval run on the train split)."""
    from frugalthink.eval.evaluate import EvalSettings, evaluate
    from frugalthink.util.jsonl import read_jsonl_tolerant

    settings = EvalSettings(model=recipe.model, task=recipe.task, split=recipe.train_split, samples=recipe.samples,
                            temperature=recipe.temperature, max_new_tokens=recipe.max_new_tokens,
                            limit=recipe.num_prompts, seed=recipe.seed, latency_requests=0,
                            task_options=recipe.task_options or None)
    evaluate(settings, pool_dir, quiet=quiet)
    return read_jsonl_tolerant(Path(pool_dir) / "records.jsonl")


def train_shortest(recipe: ShortestRecipe, out: str | Path, pool_dir: str | Path | None = None,
                   console: bool = True) -> dict:
    """Sample (or reuse) the pool, build SFT targets or DPO pairs, train; skip if ``out`` is finished."""
    recipe.validate()
    out = Path(out)
    if (out / FINISHED).exists():
        return json.loads((out / FINISHED).read_text())
    claim(out, "frugalthink_run.json")
    write_run_metadata(out, recipe, name="frugalthink_run.json")
    pool_dir = Path(pool_dir) if pool_dir else out / "pool"
    records = sample_pool(recipe, pool_dir, quiet=not console)

    import torch
    from datasets import Dataset

    from frugalthink.generation.model_files import load_causal_lm, load_tokenizer
    from frugalthink.peers.shortest import preference_pairs, shortest_correct
    from frugalthink.rl.run_log import make_log_callback
    from frugalthink.tasks import get_task
    from frugalthink.tasks.prompts import build_prompt

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    tokenizer = load_tokenizer(recipe.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    task = get_task(recipe.task, **recipe.task_options)
    problems = {p.id: p for p in task.load(recipe.train_split)[: recipe.num_prompts]}
    prompts = {pid: build_prompt(tokenizer, task, p) for pid, p in problems.items()}
    if recipe.method == "tiers":
        from frugalthink.rl.budgets import is_top, warm_start_targets

        def tier_prompt(pid, tier):
            if recipe.budget_unit == "ratio":
                return build_prompt(tokenizer, task, problems[pid], ratio=tier)
            top = is_top(tier, "tokens", recipe.max_new_tokens)
            return build_prompt(tokenizer, task, problems[pid], length_target=None if top else int(tier))

        chosen_tiers = warm_start_targets(records, recipe.tiers, recipe.budget_unit, recipe.max_new_tokens)
        rows = [{"prompt": tier_prompt(pid, tier), "completion": r["completion"]} for pid, tier, r in chosen_tiers]
        data_tokens = sum(r["tokens"] for _, _, r in chosen_tiers) / max(1, len(chosen_tiers))
    elif recipe.method == "sft":
        chosen = shortest_correct(records)
        rows = [{"prompt": prompts[pid], "completion": r["completion"]} for pid, r in sorted(chosen.items())]
        data_tokens = sum(r["tokens"] for r in chosen.values()) / max(1, len(chosen))
    else:
        pairs = preference_pairs(records)
        rows = [{"prompt": prompts[pid], "chosen": s["completion"], "rejected": lg["completion"]}
                for pid, (s, lg) in sorted(pairs.items())]
        data_tokens = sum(s["tokens"] for s, _ in pairs.values()) / max(1, len(pairs))
    if not rows:
        raise UserError(f"{pool_dir}: no usable {'pairs' if recipe.method == 'dpo' else 'targets'} "
                        "(no prompt has a correct sample); the model is too weak for this baseline")
    pool_tokens = sum(r["tokens"] for r in records) / len(records)
    if console:
        print(f"{recipe.method}: {len(rows)} examples from {len(records)} samples; mean tokens of the targets "
              f"{data_tokens:.1f} (pool mean {pool_tokens:.1f})", flush=True)
    model = load_causal_lm(recipe.model, dtype=torch.float32)
    common = dict(output_dir=str(out), num_train_epochs=recipe.epochs, per_device_train_batch_size=recipe.batch_size,
                  learning_rate=recipe.learning_rate, lr_scheduler_type="constant", logging_steps=5,
                  save_strategy="no", report_to=[], seed=recipe.seed, data_seed=recipe.seed,
                  use_cpu=not torch.cuda.is_available(), max_length=None, dataloader_num_workers=0)
    log_path = out / "train_log.jsonl"
    log_path.unlink(missing_ok=True)
    callbacks = [make_log_callback(log_path, console=False)]
    t0 = time.perf_counter()
    if recipe.method in ("sft", "tiers"):
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True),
                             train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=callbacks)
    else:
        from trl import DPOConfig, DPOTrainer

        losses = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, recipe.sft_weight]) if recipe.sft_weight else {}
        trainer = DPOTrainer(model=model, args=DPOConfig(**common, beta=recipe.beta, **losses),
                             train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=callbacks)
    trainer.train()
    trainer.save_model(str(out))
    tokenizer.save_pretrained(out)
    summary = {"method": recipe.method, "examples": len(rows), "pool_samples": len(records),
               "target_mean_tokens": round(data_tokens, 2), "pool_mean_tokens": round(pool_tokens, 2),
               "optimizer_steps": trainer.state.global_step, "wall_s": round(time.perf_counter() - t0, 1),
               "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "recipe": asdict(recipe)}
    (out / FINISHED).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_shortest_recipe(path: str | None, overrides: list[str], model: str | None, method: str | None) -> ShortestRecipe:
    data = apply_overrides(load_yaml(path) if path else {}, list(overrides))
    if model:
        data["model"] = model
    if method:
        data["method"] = method
    if "model" not in data:
        raise UserError("give --model (or a recipe with a 'model' field)")
    return from_dict(ShortestRecipe, data, where=path or "shortest recipe")


def run(args) -> int:
    recipe = load_shortest_recipe(args.recipe, args.set, args.model, args.method)
    summary = train_shortest(recipe, args.out, pool_dir=args.pool)
    print(f"{summary['method']}: {args.out} ({summary['examples']} examples, {summary['optimizer_steps']} steps, "
          f"{summary['wall_s']}s)")
    return 0
