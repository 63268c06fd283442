"""`frugalthink demo` (what `make demo` runs): the method's whole story on the embedded default, on this CPU.

1. the tiny base reasoner (SFT on varied traces of the task)          -> DIR/base
   (`tally`'s took 28 min to build here, so the package ships it, built by its recipe: `shipped_base`)
2. train the family: one length-penalised RLOO run per alpha           -> DIR/alpha-*/
3. evaluate base and members with the same settings (T=0.6)            -> DIR/base_eval, DIR/alpha-*/eval
4. write the report and DIR/summary.json, print the family table

``--task chain|tally`` picks the embedded task (docs/benchmark.md); each has a base recipe and an RL recipe, listed
in `DEMO_TASKS`. Every stage skips what is already finished, so a re-run after an interruption resumes. ``--quick`` shrinks every
size (model, levels, steps, test set) to run in a few minutes through the same code path (used by the tests).
``--train-base`` builds a shipped base from its recipe instead of copying it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from frugalthink.config import from_dict, load_yaml
from frugalthink.eval.evaluate import EvalSettings
from frugalthink.organisms.base import METADATA, build_base
from frugalthink.organisms.sft import BaseRecipe
from frugalthink.report.family import family_table
from frugalthink.rl.recipe import RLRecipe
from frugalthink.studies.family import sweep
from frugalthink.util.outdir import claim

# The demo's settings are shipped recipes, one base and one RL recipe per embedded task: read here, written nowhere
# else.
DEMO_TASKS = {"chain": ("tiny/base", "tiny/rl"), "tally": ("tiny/tally/base", "tiny/tally/rl")}
DEMO_TASK = "tally"
# Bases the package ships (src/frugalthink/models/NAME, built by the task's base recipe; README.md there says how),
# for tasks whose base takes longer to build than the demo's time budget allows.
SHIPPED_BASES = {"tally": "tally-base"}
# Recorded recipe fields that do not change the weights a base recipe builds (one and two threads give the same
# weights, docs/benchmark.md), so a shipped base built with another value still matches its recipe.
NOT_BUILD_SETTINGS = ("threads", "log_every")
DEMO_ALPHAS = (0.0, 0.1, 0.2, 0.4)

QUICK_LEVELS = {"min_level": 2, "max_level": 4, "test_size": 6}
QUICK_BASE = {"steps": 40, "batch_size": 16, "log_every": 10,
              "model": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}}
QUICK_RL = {"rollouts": 2, "prompts_per_rollout": 4, "num_prompts": 64, "max_completion_length": 48, "save_every": 1}
QUICK_ALPHAS = (0.0, 0.2)


def demo_recipes(out: Path, quick: bool, task: str = DEMO_TASK) -> tuple[BaseRecipe, RLRecipe]:
    if task not in DEMO_TASKS:
        from frugalthink.util.errors import UserError

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


def demo_dir(task: str) -> str:
    """The default folder of a task's demo (`make demo`, `frugalthink demo`, `frugalthink sidebyside`)."""
    return f"runs/demo-{task}"


def shipped_base(task: str) -> Path | None:
    """The base the package ships for ``task`` (None when the demo builds it)."""
    name = SHIPPED_BASES.get(task)
    return Path(__file__).resolve().parent.parent / "models" / name if name else None


def check_shipped_base(shipped: Path, recipe: BaseRecipe) -> None:
    """A shipped base serves the demo only while it is what ``recipe`` builds: every recorded setting but
    `NOT_BUILD_SETTINGS` and other tasks' sections must equal the recipe's."""
    from frugalthink.config import to_dict
    from frugalthink.util.errors import UserError

    meta = shipped / METADATA
    try:
        old = json.loads(meta.read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise UserError(f"{meta}: cannot read the shipped base's recipe ({e}); use --train-base") from e
    new = json.loads(json.dumps(to_dict(recipe)))  # as it was written: tuples become lists
    other_tasks = set(DEMO_TASKS) - {recipe.task}
    for key in sorted(set(old) | set(new)):
        if key in NOT_BUILD_SETTINGS or key in other_tasks:
            continue
        if old.get(key) != new.get(key):
            raise UserError(f"{meta}: the shipped base was built with {key}={old.get(key)!r}, the recipe now says "
                            f"{new.get(key)!r}; rebuild it with --train-base (or restore the recipe)")


def prepare_base(out: Path, recipe: BaseRecipe, shipped: Path | None) -> None:
    """``out`` holds the base: a finished build is kept, a shipped base is copied after `check_shipped_base`, and
    otherwise the base is trained from ``recipe``."""
    if shipped is None or (out / "base_summary.json").exists():
        print(f"== 1/3 base reasoner -> {out}", flush=True)
        build_base(out, recipe)
        return
    check_shipped_base(shipped, recipe)
    print(f"== 1/3 base reasoner: the shipped {shipped.name} ({shipped / 'README.md'}) -> {out}", flush=True)
    claim(out, METADATA)
    # the recorded recipe first (it marks the folder as ours, so an interrupted copy is resumed, not refused), the
    # summary last (`build_base` reads it as "finished", then checks the copy's task and model)
    first, last = METADATA, "base_summary.json"
    rest = sorted(f.name for f in shipped.iterdir() if f.name not in (first, last, "README.md"))
    for name in (first, *rest, last):
        shutil.copy2(shipped / name, out / name)
    build_base(out, recipe)


def run_demo(out: Path, quick: bool, alphas: list[float] | None = None, task: str = DEMO_TASK,
             train_base: bool = False) -> dict:
    """Base, family and report (each stage skips what is finished); writes DIR/summary.json, returns the family."""
    t0 = time.perf_counter()
    base_recipe, rl_recipe = demo_recipes(out, quick, task)
    alphas = alphas or list(QUICK_ALPHAS if quick else DEMO_ALPHAS)
    shipped = None if quick or train_base else shipped_base(task)
    prepare_base(out / "base", base_recipe, shipped)
    print(f"== 2/3 family (alphas {', '.join(f'{a:g}' for a in alphas)}), each trained then evaluated", flush=True)
    fam = sweep(rl_recipe, alphas, out, demo_eval_settings(out, rl_recipe, quick), console=True, parallel=2)
    print("== 3/3 report", flush=True)
    from frugalthink.report.family import write_report

    report = write_report(out)
    summary = {"task": task, "shipped_base": shipped.name if shipped else None,
               **demo_summary(fam, wall_s=time.perf_counter() - t0, quick=quick)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(family_table(fam))
    print(f"report: {report}")
    print(f"summary: {out / 'summary.json'}  (wall time {summary['wall_s']:.0f}s)")
    return fam


def run(args) -> int:
    from frugalthink.studies.sweep import parse_alphas

    alphas = parse_alphas(args.alphas) if args.alphas is not None else None  # checked before the base is built
    task = args.task or DEMO_TASK
    run_demo(Path(args.out or demo_dir(task)), args.quick, alphas, task, train_base=args.train_base)
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
