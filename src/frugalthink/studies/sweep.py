"""`frugalthink sweep`, `report` and `pick`: the efficiency family from one recipe."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from frugalthink.eval.evaluate import EvalSettings
from frugalthink.report.family import family_table, load_family
from frugalthink.studies.family import conditioned_sweep, pick, sweep
from frugalthink.tasks import EMBEDDED
from frugalthink.tasks.conditioning import beyond_trained
from frugalthink.util.errors import UserError

PAPER_ALPHAS = (0.05, 0.1, 0.2, 0.4)


def parse_floats(text: str, flag: str) -> list[float]:
    """``"0.05,0.1"`` -> ``[0.05, 0.1]``; empty lists, NaN and text are errors naming the flag."""
    import math

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.05,0.1,0.2,0.4") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise UserError(f"{flag} {text!r}: expected at least one finite number")
    return values


def parse_alphas(text: str, flag: str = "--alphas") -> list[float]:
    alphas = parse_floats(text, flag)
    bad = [a for a in alphas if not 0 <= a < 1]
    if bad:
        raise UserError(f"{flag}: every alpha must lie in [0, 1), got {', '.join(f'{a:g}' for a in bad)}")
    return alphas


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``"0,1"`` -> ``[0, 1]``; fractions and negatives are errors (``0.5`` is not silently seed 0)."""
    seeds = parse_floats(text, flag)
    if not all(s.is_integer() and s >= 0 for s in seeds):
        raise UserError(f"{flag} {text!r}: seeds are integers >= 0")
    return [int(s) for s in seeds]


def sweep_eval_settings(recipe, args) -> EvalSettings:
    """How a sweep evaluates: the recipe's ``eval`` section when it has one (the R1 recipes: the paper's evaluation
    sets, samples per problem and message), else the recipe's own task on its test split, with the training cap.
    ``--task`` and the other flags override; a task other than the training task does not inherit the training
    task's options."""
    ev = recipe.eval or {}
    tasks = ev.get("tasks", {})
    task = args.task or (next(iter(tasks)) if tasks else recipe.task)
    if task == recipe.task and not tasks:
        options = recipe.task_options or None
    else:
        options = {"message": ev["message"]} if "message" in ev and task not in EMBEDDED else None
    from frugalthink.config import parse_options

    extra = parse_options(getattr(args, "task_option", []), "--task-option")
    if extra:
        options = {**(options or {}), **extra}
    return EvalSettings(model=recipe.model, task=task, split=getattr(args, "split", None) or "test",
                        samples=args.samples or tasks.get(task),
                        temperature=args.temperature if args.temperature is not None else ev.get("temperature", 0.6),
                        max_new_tokens=(args.max_new_tokens or ev.get("max_new_tokens")
                                        or (recipe.max_completion_length if task == recipe.task else None)),
                        top_p=ev.get("top_p", 1.0), budgets=ev.get("budgets"),
                        limit=args.limit, seed=0,
                        latency_requests=args.latency_requests, task_options=options)


def run_sweep(args) -> int:
    from frugalthink.rl.train import load_recipe

    # a conditioned sweep trains on --alphas (else the recipe's): set before the recipe is checked (efforts need them)
    given = parse_alphas(args.alphas) if args.alphas is not None else None
    extra = [f"alphas=[{', '.join(f'{a:g}' for a in given)}]"] if args.conditioned and given else []
    recipe = load_recipe(args.recipe, None, args.set + extra)
    if recipe.alphas and not args.conditioned:
        raise UserError(f"{args.recipe}: an alpha-conditioned recipe (alphas: {recipe.alphas}); add --conditioned, "
                        "or sweep a recipe without 'alphas' for one model per alpha")
    alphas = list(recipe.alphas if args.conditioned else given or ()) or list(PAPER_ALPHAS)
    if recipe.reward != "efficiency":
        raise UserError(f"--alphas: reward {recipe.reward!r} has no alpha (it would train identical models); sweep "
                        f"its own knob with `frugalthink train --set reward_options.KEY=VALUE` per run")
    seeds = parse_seeds(args.seeds)
    settings = sweep_eval_settings(recipe, args)
    if args.conditioned:
        eval_alphas = parse_alphas(args.eval_alphas, "--eval-alphas") if args.eval_alphas else alphas
        for a in eval_alphas:
            notice = beyond_trained(a, alphas)
            if notice:
                print(f"frugalthink sweep: note: --eval-alphas: {notice}", file=sys.stderr)
        if len(seeds) > 1:
            raise UserError("--conditioned trains one model: give one --seeds value or none")
        fam = conditioned_sweep(replace(recipe, seed=seeds[0]), alphas, eval_alphas, args.out, settings)
        print(family_table(fam))
        print(f"family: {Path(args.out) / 'family.json'}")
        return 0
    if args.eval_alphas:
        raise UserError("--eval-alphas: only with --conditioned (a family of separate models is evaluated per member)")
    fam = sweep(recipe, alphas, args.out, settings, seeds=seeds, parallel=args.parallel)
    print(family_table(fam))
    print(f"family: {Path(args.out) / 'family.json'}")
    return 0


def run_report(args) -> int:
    from pathlib import Path

    from frugalthink.report.family import write_report

    if (Path(args.dir) / "comparison.json").exists():  # a `frugalthink sidebyside` directory
        from frugalthink.report.comparison import write_comparison_report

        md, png = write_comparison_report(args.dir)
        print(md.read_text())
        print(f"plot: {png}")
        return 0
    path = write_report(args.dir)
    print(family_table(load_family(args.dir)))
    print(f"report: {path}")
    return 0


def run_pick(args) -> int:
    fam = load_family(args.dir)
    choice = pick(fam, args.min_accuracy, args.max_tokens, args.max_latency_ms)
    if choice is None:
        print("no member of the family meets the constraint")
        return 1
    lat = choice.get("latency_p50_ms")
    lat_s = f"{lat:.1f} ms" if lat is not None else "n/a"
    print(f"{choice['name']}: model {choice['model']} | accuracy {choice['accuracy']:.3f} | "
          f"mean tokens {choice['mean_tokens']:.1f} | p50 latency {lat_s}")
    if choice.get("ask"):  # a tier of a budget-tier model: how to request it
        print(f"ask with: frugalthink eval --model {choice['model']} {choice['ask']}")
    return 0
