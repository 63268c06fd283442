"""`frugalthink train`: length-penalised RLOO (Arora & Zanette, 2025) on TRL, from a YAML recipe.

Reads top to bottom: recipe -> data (task prompts rendered exactly as evaluation renders them) -> model -> reward
-> `FrugalRLOOTrainer` (TRL's RLOO with our prompt encoding and the recipe's update rule) -> checkpoints every
``save_every`` rollouts -> final Hugging Face model in ``--out`` (with ``lora:``, the adapters merged into it).
Simplifications: one reward function; prompts are pre-rendered strings (chat template applied by us) that the
trainer encodes with `frugalthink.tasks.prompts.encode_prompt`, the function evaluation uses.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

from frugalthink.config import apply_overrides, from_dict, load_yaml, write_run_metadata
from frugalthink.rl.recipe import RLRecipe
from frugalthink.rl.rewards import MONITORED
from frugalthink.util.errors import UserError
from frugalthink.util.outdir import claim

FINISHED = "train_summary.json"
METADATA = "frugalthink_run.json"
ADAPTER = "adapter"  # a LoRA run's adapters, beside the merged model (`save_merged`)
# Recipe fields a run may change between its sessions: how long it trains, and what never reaches the weights.
RESUMABLE = ("rollouts", "save_every", "threads", "report_to", "eval")


def load_recipe(path: str, alpha: float | None = None, overrides: list[str] = ()) -> RLRecipe:
    data = apply_overrides(load_yaml(path), list(overrides))
    if alpha is not None:
        if data.get("reward", "efficiency") != "efficiency":
            raise UserError(f"--alpha: reward {data['reward']!r} has no alpha (it would be ignored); set its own "
                            "knob with --set reward_options.KEY=VALUE")
        if data.get("alphas"):
            raise UserError(f"--alpha: {path} trains an alpha-conditioned model (alphas: {data['alphas']}); each prompt "
                            "carries its own alpha, so --alpha would be ignored")
        data["alpha"] = alpha
    if "model" not in data:
        raise UserError(f"{path}: missing field 'model' (a model directory or hub name)")
    try:
        return from_dict(RLRecipe, data, where=str(path))
    except UserError as exc:  # a check of the recipe's values: say which file holds them
        if str(exc).startswith(str(path)):
            raise
        raise UserError(f"{path}: {exc}") from None


def last_checkpoint(out: Path) -> Path | None:
    ckpts = [p for p in out.glob("checkpoint-*") if p.is_dir() and (p / "trainer_state.json").exists()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1])) if ckpts else None


def check_same_run(out: Path, recipe: RLRecipe) -> None:
    """Refuse to train ``recipe`` into ``out`` when the run saved there (``frugalthink_run.json``) had another recipe
    outside `RESUMABLE`, naming the fields; a field the saved run predates counts as its default."""
    try:
        saved = json.loads((out / METADATA).read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return
    now = json.loads(json.dumps(asdict(recipe)))  # the saved form: lists for tuples, text keys
    default = json.loads(json.dumps(asdict(RLRecipe(model=recipe.model))))
    diffs = [f"{k} {saved.get(k, default[k])!r:.60} there, {v!r:.60} here" for k, v in now.items()
             if k not in RESUMABLE and saved.get(k, default[k]) != v]
    if diffs:
        raise UserError(f"{out}: holds a run of another recipe: {'; '.join(diffs)}; use another --out (a resume may "
                        f"change only {', '.join(RESUMABLE)})")


def finished_summary(out: Path, recipe: RLRecipe, resume: bool) -> dict | None:
    """The summary of the finished run in ``out`` when it is ``recipe``'s run; None when there is none, or when
    ``resume`` continues it to more rollouts (its summary, ours, is removed: a kill before the longer run ends
    leaves a plain interrupted run). A run of another recipe in ``out`` is refused (`check_same_run`)."""
    path = out / FINISHED
    if path.exists() or last_checkpoint(out):
        check_same_run(out, recipe)
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    done = summary.get("rollouts", recipe.rollouts)
    if recipe.rollouts == done:
        return summary
    if recipe.rollouts < done:
        raise UserError(f"{out}: holds a finished run of {done} rollouts; rollouts={recipe.rollouts} would be "
                        "another (shorter) run: use another --out")
    if not resume:
        raise UserError(f"{out}: holds a finished run of {done} rollouts; pass --resume to continue it to "
                        f"{recipe.rollouts}, or use another --out")
    if _main_process():
        path.unlink(missing_ok=True)
    return None


def train(recipe: RLRecipe, out: str | Path, resume: bool = False, console: bool = True) -> dict:
    """Run (or resume, or skip if finished) one RL run into ``out``; returns the train summary."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != recipe.num_processes:
        # The recipe's batch arithmetic is per process: recompute it for the launch we are actually in, and say so.
        if console and _main_process():
            print(f"note: recipe num_processes={recipe.num_processes} but this launch has WORLD_SIZE={world}; "
                  f"per-device batch recomputed for {world} process(es), same samples per update")
        recipe = replace(recipe, num_processes=world)
        recipe.validate()
    out = Path(out)
    summary = finished_summary(out, recipe, resume)
    if summary is not None:
        return summary
    ckpt = last_checkpoint(out) if out.exists() else None
    if ckpt and not resume:
        raise UserError(f"{out}: holds checkpoints ({ckpt.name}); pass --resume to continue, or use another --out")
    if ckpt and int(ckpt.name.split("-")[1]) > recipe.max_steps:
        raise UserError(f"{out}: {ckpt.name} is past rollouts={recipe.rollouts} ({recipe.max_steps} optimizer "
                        "steps); use another --out")
    claim(out, METADATA)
    import torch
    from datasets import Dataset

    from frugalthink.generation.model_files import load_causal_lm, load_tokenizer
    from frugalthink.rl.recipe import build_rloo_config, load_dtype
    from frugalthink.rl.reward_fn import LengthReward, l1_targets
    from frugalthink.rl.rules import OFFICIAL_OPTIONS
    from frugalthink.rl.run_log import make_fault_callback, make_log_callback
    from frugalthink.rl.trainer import FrugalRLOOTrainer
    from frugalthink.tasks import get_task
    from frugalthink.tasks.conditioning import training_rows
    from frugalthink.tasks.prompts import build_prompt

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    main_process = _main_process()  # only rank 0 writes files; every rank trains
    if main_process:
        write_run_metadata(out, recipe, name=METADATA)
    tokenizer = load_tokenizer(recipe.model)
    if tokenizer.eos_token is None:
        raise UserError(f"model {recipe.model!r}: the tokenizer has no EOS token, so no completion could ever end")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    task = get_task(recipe.task, **recipe.task_options)
    problems = task.load(recipe.train_split)
    if recipe.num_prompts:
        problems = problems[: recipe.num_prompts]
    if len(problems) * max(1, len(recipe.budget_tiers)) < recipe.prompts_per_rollout:
        raise UserError(f"only {len(problems)} training prompts; prompts_per_rollout is {recipe.prompts_per_rollout}")
    options = recipe.resolved_reward_options()
    # L1: every prompt carries its own token budget, which the reward reads back from the "target" column.
    targets = (l1_targets([p.id for p in problems], *options["targets"], recipe.seed) if recipe.reward == "l1_max"
               else [None] * len(problems))
    # Budget tiers: every problem at every tier, its budget in the "target" column the reward reads, where its
    # rollout stops in "cap", the tier in "tier" (frugalthink.rl.budgets).
    tier_rows = None
    if recipe.budget_tiers:
        from frugalthink.rl import budgets

        if recipe.warm_start:  # fine-tuned once into OUT/warm; the run then starts from it
            if world > 1:
                raise UserError("warm_start on several processes: train the warm start first (frugalthink shortest "
                                "--method tiers) and pass it as model, its pool as base_lengths")
            recipe = budgets.warm_start(recipe, out / "warm", console=console and main_process)
            tokenizer = load_tokenizer(recipe.model)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        if world > 1 and not recipe.base_lengths:
            raise UserError("budget_tiers on several processes: measure L(x) first (frugalthink base-lengths) and "
                            "pass it as base_lengths")
        lengths = (budgets.measure_base_lengths(recipe, problems, out, quiet=not (console and main_process))
                   if recipe.budget_unit == "ratio" else {})  # token tiers: budgets of their own, no L(x)
        tier_rows = budgets.training_rows(problems, recipe.budget_tiers, lengths, recipe.budget_unit,
                                          recipe.max_completion_length,
                                          recipe.cap_rollouts and recipe.reward == "budget_cutoff")
        problems = [problems[r["index"]] for r in tier_rows]
        targets = [r["target"] for r in tier_rows]
    # Alpha-conditioned: every prompt carries its alpha, in the text and in the "alpha" column the reward reads.
    if recipe.alphas:
        rows = training_rows([p.id for p in problems], recipe.alphas, recipe.seed, recipe.paired_tiers)
        problems, targets = [problems[i] for i, _ in rows], [targets[i] for i, _ in rows]
        alphas = [a for _, a in rows]
    else:
        alphas = [None] * len(problems)
    if tier_rows is not None:
        dataset = Dataset.from_list([
            {"prompt": _tier_prompt(tokenizer, task, p, r["tier"], recipe), "answer": p.answer, "problem_id": p.id,
             "target": r["target"], "top": r["top"], "cap": r["cap"], "tier": r["tier"]}
            for p, r in zip(problems, tier_rows, strict=True)
        ])
    else:
        dataset = Dataset.from_list([
            {"prompt": build_prompt(tokenizer, task, p, length_target=t, alpha=a), "answer": p.answer,
             "problem_id": p.id, **({"target": t} if t is not None else {}), **({"alpha": a} if a is not None else {})}
            for p, t, a in zip(problems, targets, alphas, strict=True)
        ])
    model = load_causal_lm(recipe.model, dtype=load_dtype(recipe))  # fp32 master weights unless DeepSpeed keeps them
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    monitor = None
    if recipe.reward in MONITORED:  # Laser-D's target lengths, measured on the first training prompts
        from frugalthink.peers.laser import LaserMonitor

        chosen = problems[: int(options["monitor_prompts"])]
        monitor = LaserMonitor(task, tokenizer, chosen, [build_prompt(tokenizer, task, p) for p in chosen], options,
                               recipe.max_completion_length, eos_ids, seed=recipe.seed)
        if ckpt:
            monitor.load(ckpt)
    reward = LengthReward(task, recipe.alpha, eos_ids, group_std=recipe.group_std_normalize, reward=recipe.reward,
                          options=options, tokenizer=tokenizer, num_generations=recipe.num_generations,
                          monitor=monitor)
    log_path = out / "train_log.jsonl"
    if main_process and ckpt:
        _truncate_log(log_path, int(ckpt.name.split("-")[1]))
    elif main_process and log_path.exists():
        log_path.unlink()
    trainer = FrugalRLOOTrainer(
        update_rule=recipe.update_rule,
        generation_engine=recipe.generation_engine,
        dynamic_sampling=recipe.dynamic_sampling,
        max_sampling_rounds=recipe.max_sampling_rounds,
        drpo_options=recipe.drpo_options,
        tier_beta=recipe.tier_beta,
        tier_balance=recipe.tier_balance,
        tier_block=len(recipe.alphas) if recipe.paired_tiers else max(1, len(recipe.budget_tiers)),
        rule_options=({k: getattr(recipe, k) for k in OFFICIAL_OPTIONS} if recipe.update_rule == "official" else None),
        sampling_limit=recipe.sampling_limit,
        reward_beta=recipe.beta,
        model=model,
        peft_config=recipe.lora.peft_config() if recipe.lora else None,  # None: every weight is trained
        reward_funcs=[reward],
        args=build_rloo_config(recipe, out),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[cb for cb in (make_log_callback(log_path, console=console, updates_per_rollout=recipe.updates_per_rollout),
                                 # the monitor's state goes into a checkpoint before the fault test may kill it
                                 _monitor_callback(monitor, recipe, console), make_fault_callback()) if cb],
    )
    _quiet_progress(trainer)
    t0 = time.perf_counter()
    start_step = int(ckpt.name.split("-")[1]) if ckpt else 0
    trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    wall = time.perf_counter() - t0
    if recipe.lora:
        save_merged(trainer, recipe, out)
    else:
        trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(out)
    steps_run = recipe.max_steps - start_step
    summary = {
        "reward": recipe.reward,
        "alpha": recipe.alpha,
        **({"alphas": list(recipe.alphas)} if recipe.alphas else {}),
        **({"budget_tiers": list(recipe.budget_tiers)} if recipe.budget_tiers else {}),
        "optimizer_steps": recipe.max_steps,
        "rollouts": recipe.rollouts,
        "resumed_from_step": start_step,
        "wall_s": round(wall, 1),
        "s_per_rollout": round(wall / max(1, steps_run / recipe.updates_per_rollout), 3),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if trainer.is_world_process_zero():
        (out / FINISHED).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _tier_prompt(tokenizer, task, problem, tier: float, recipe: RLRecipe) -> str:
    """A budget tier's prompt: its ratio (`Task.ratio_message`), or its token budget (`Task.budget_message`; the top
    tier, at the cap, the plain prompt)."""
    from frugalthink.rl.budgets import is_top
    from frugalthink.tasks.prompts import build_prompt

    if recipe.budget_unit == "ratio":
        return build_prompt(tokenizer, task, problem, ratio=tier)
    top = is_top(tier, "tokens", recipe.max_completion_length)
    return build_prompt(tokenizer, task, problem, length_target=None if top else int(tier))


def save_merged(trainer, recipe: RLRecipe, out: Path) -> None:
    """A LoRA run's output: its adapters in ``out/adapter`` (peft's format; checkpoints hold adapters only too), and
    in ``out`` the plain full model with the adapters merged into the base weights, ``W + (alpha / r) B A``, which
    `frugalthink eval --model OUT` and ``AutoModelForCausalLM`` load like any other. The merge starts from the
    saved adapters and a fresh copy of the base, so it holds under DeepSpeed too, whose live weights may be sharded."""
    from peft import PeftModel

    from frugalthink.generation.model_files import load_causal_lm
    from frugalthink.rl.recipe import load_dtype

    trainer.save_model(str(out / ADAPTER))  # every rank: a collective under DeepSpeed
    if not trainer.is_world_process_zero():
        return
    base = load_causal_lm(recipe.model, dtype=load_dtype(recipe))
    PeftModel.from_pretrained(base, out / ADAPTER).merge_and_unload().save_pretrained(out)


def _monitor_callback(monitor, recipe, console: bool):
    if monitor is None:
        return None
    from frugalthink.peers.laser import make_monitor_callback

    return make_monitor_callback(monitor, recipe.updates_per_rollout, log=print if console else (lambda *_: None))


def _quiet_progress(trainer) -> None:
    """Keep TRL's progress bar but drop its raw dict print per step (our logger prints a readable line)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return

    trainer.remove_callback(PrinterCallback)
    if any(isinstance(cb, ProgressCallback) for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly)


def _truncate_log(log_path: Path, step: int) -> None:
    """On resume, drop log lines past the checkpoint: those steps are run again."""
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError):
            break
    log_path.write_text("".join(x + "\n" for x in keep))


def _main_process() -> bool:
    """Rank 0 of a launch (or the only process): the one that writes files and prints the summary."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _close_process_group() -> None:
    """Leave a multi-process launch cleanly: without this, gloo's threads are torn down at interpreter exit and a
    rank can abort ("terminate called without an active exception") after a finished run."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run(args) -> int:
    recipe = load_recipe(args.recipe, args.alpha, args.set)
    try:
        summary = train(recipe, args.out, resume=args.resume)
    finally:
        _close_process_group()
    if not _main_process():
        return 0
    what = f"alpha={recipe.alpha}" if recipe.reward == "efficiency" else f"reward={recipe.reward}"
    print(f"trained {what}: {args.out} ({summary['optimizer_steps']} optimizer steps, "
          f"{summary['wall_s']}s, {summary['s_per_rollout']} s/rollout)")
    return 0
