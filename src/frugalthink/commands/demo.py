"""`frugalthink demo` (what `make demo` runs): the method's whole story on the embedded default, on this CPU.

1. build the tiny base reasoner (SFT on varied traces of the task)    -> DIR/base
2. train the family: one length-penalised RLOO run per alpha           -> DIR/alpha-*/
3. evaluate base and members with the same settings (T=0.6)            -> DIR/base_eval, DIR/alpha-*/eval
4. write the report and DIR/summary.json, print the family table

``--task chain|tally`` picks the embedded task (docs/benchmark.md); each has a base recipe and an RL recipe, listed
in `DEMO_TASKS`. Every stage skips what is already finished, so a re-run after an interruption resumes. ``--quick`` shrinks every
size (model, levels, steps, test set) to run in a few minutes through the same code path (used by the tests).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from frugalthink.commands.base import build_base
from frugalthink.commands.evaluate import EvalSettings
from frugalthink.config import from_dict, load_yaml
from frugalthink.family import family_table, sweep
from frugalthink.rl import RLRecipe
from frugalthink.sft import BaseRecipe

# The demo's settings are shipped recipes, one base and one RL recipe per embedded task: read here, written nowhere
# else.
DEMO_TASKS = {"chain": ("tiny/base", "tiny/rl"), "tally": ("tiny/tally/base", "tiny/tally/rl")}
DEMO_TASK = "chain"
DEMO_ALPHAS = (0.0, 0.1, 0.2, 0.4)

QUICK_LEVELS = {"min_level": 2, "max_level": 4, "test_size": 6}
QUICK_BASE = {"steps": 40, "batch_size": 16, "log_every": 10,
              "model": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}}
QUICK_RL = {"rollouts": 2, "prompts_per_rollout": 4, "num_prompts": 64, "max_completion_length": 48, "save_every": 1}
QUICK_ALPHAS = (0.0, 0.2)


def demo_recipes(out: Path, quick: bool, task: str = DEMO_TASK) -> tuple[BaseRecipe, RLRecipe]:
    if task not in DEMO_TASKS:
        from frugalthink.errors import UserError

        raise UserError(f"--task: the demo runs on an embedded task ({', '.join(DEMO_TASKS)}), got {task!r}")
    base_name, rl_name = DEMO_TASKS[task]
    base, rl = load_yaml(base_name), load_yaml(rl_name)
    if quick:
        base = {**base, **QUICK_BASE, task: {**base.get(task, {}), **QUICK_LEVELS}}
        options = dict(rl.get("task_options") or {})
        rl = {**rl, **QUICK_RL, "task_options": {**options, "config": {**options.get("config", {}), **QUICK_LEVELS}}}
    rl["model"] = str(out / "base")
    return (from_dict(BaseRecipe, base, where=f"recipe {base_name}"),
            from_dict(RLRecipe, rl, where=f"recipe {rl_name}"))


def demo_eval_settings(out: Path, rl_recipe: RLRecipe, quick: bool) -> EvalSettings:
    """The one evaluation setting every model of the demo (and of the side-by-side comparison) is measured with."""
    return EvalSettings(model=str(out / "base"), task=rl_recipe.task, samples=1, temperature=0.6,
                        max_new_tokens=rl_recipe.max_completion_length, task_options=rl_recipe.task_options,
                        latency_requests=4 if quick else 32)


def run_demo(out: Path, quick: bool, alphas: list[float] | None = None, task: str = DEMO_TASK) -> dict:
    """Base, family and report (each stage skips what is finished); writes DIR/summary.json, returns the family."""
    t0 = time.perf_counter()
    base_recipe, rl_recipe = demo_recipes(out, quick, task)
    alphas = alphas or list(QUICK_ALPHAS if quick else DEMO_ALPHAS)
    print(f"== 1/3 base reasoner -> {out / 'base'}", flush=True)
    build_base(out / "base", base_recipe)
    print(f"== 2/3 family (alphas {', '.join(f'{a:g}' for a in alphas)}), each trained then evaluated", flush=True)
    fam = sweep(rl_recipe, alphas, out, demo_eval_settings(out, rl_recipe, quick), console=True, parallel=2)
    print("== 3/3 report", flush=True)
    from frugalthink.report import write_report

    report = write_report(out)
    summary = {"task": task, **demo_summary(fam, wall_s=time.perf_counter() - t0, quick=quick)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(family_table(fam))
    print(f"report: {report}")
    print(f"summary: {out / 'summary.json'}  (wall time {summary['wall_s']:.0f}s)")
    return fam


def run(args) -> int:
    from frugalthink.commands.family import parse_alphas

    alphas = parse_alphas(args.alphas) if args.alphas is not None else None  # checked before the base is built
    run_demo(Path(args.out), args.quick, alphas, args.task or DEMO_TASK)
    return 0


def demo_summary(fam: dict, wall_s: float, quick: bool) -> dict:
    base = fam["base"]

    def pick_keys(m: dict) -> dict:
        by_level = {
            lvl: {k: v[k] for k in ("accuracy", "mean_tokens", "oracle_mean_tokens") if k in v}
            for lvl, v in (m.get("by_level") or {}).items()
        }
        return {"accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"], "mean_tokens": m["mean_tokens"],
                "latency_p50_ms": m.get("latency_p50_ms"), "by_level": by_level}

    members = []
    for m in fam["members"]:
        entry = {"alpha": m["alpha"], "seed": m.get("seed", 0), **pick_keys(m),
                 "tokens_change_vs_base": m["mean_tokens"] / base["mean_tokens"] - 1 if base["mean_tokens"] else None,
                 "accuracy_vs_base": m["accuracy"] / base["accuracy"] if base["accuracy"] else None,
                 "train_wall_s": m["train"]["wall_s"], "s_per_rollout": m["train"]["s_per_rollout"]}
        members.append(entry)
    return {
        "quick": quick,
        "wall_s": wall_s,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "base": {**pick_keys(base), "oracle_mean_tokens": base.get("oracle_mean_tokens")},
        "members": members,
    }
